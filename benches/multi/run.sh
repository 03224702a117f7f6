#!/usr/bin/env bash
# The multi-instance load test: N example-server instances on one shared store,
# driven at once, for each store and each N.
#
#   bash benches/multi/run.sh
#
# For each store in STORES and each N in INSTANCES, it starts N release builds
# of the example server on one store (emptied first), all with the same
# user-code key, and runs three loads, each for DURATION seconds:
#   authorize   POST /device_authorization: one wrk per instance, at once
#   pending     POST /token on a pool of POOL pending codes (made through the
#               instances), the pool split across the instances, one wrk each:
#               each code is polled on one instance at most once a second,
#               so the answers are authorization_pending (the table gives the
#               share)
#   flows       whole flows by benches/multi/flows.rs (WORKERS people, each
#               signed in on one instance; codes asked on any instance,
#               approved through the verification API, the device's poll sent
#               to every instance at once), after PACING pacing checks (a poll
#               on one instance, then at once on the next, must be slow_down)
# and prints, per load: requests/s in total and per instance, the worst
# instance's p99, the servers' CPU per request and the store's CPU per request
# (utime + stime from /proc, of redis-server, or of every PostgreSQL process).
# The flows load fails the run on a double or lost redemption, a pacing
# violation or an error.
#
# Everything runs on this machine: the servers, the store and the load share
# its cores, so the totals say what one machine's CPU gives, and the store's
# CPU per request is the figure to scale by (docs/capacity.md).
#
# Environment (defaults): STORES ("redis postgres", plus "redis-cluster" when
# DEVICE_GRANT_REDIS_CLUSTER_URL is set), INSTANCES ("1 2 4"), DURATION (5),
# CONNECTIONS (32, spread over the instances), POOL (40000), WORKERS (8, at most 8),
# PACING (200), RESULTS (a file to copy the table to).
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
INSTANCES=${INSTANCES:-"1 2 4"}
DURATION=${DURATION:-5}
CONNECTIONS=${CONNECTIONS:-32}
POOL=${POOL:-40000}
WORKERS=${WORKERS:-8}
PACING=${PACING:-200}

work=$(mktemp -d)
pids=()
stop_servers() {
    local pid
    for pid in "${pids[@]}"; do
        kill "$pid" 2>/dev/null || true
        wait "$pid" 2>/dev/null || true
    done
    pids=()
}
trap 'stop_servers; rm -rf "$work"' EXIT
die() {
    echo "run.sh: $*" >&2
    exit 1
}

if ! command -v wrk >/dev/null; then
    echo "installing wrk (Debian package)"
    apt-get update -qq && apt-get install -y -qq wrk >/dev/null
fi
# shellcheck source=/dev/null
source "$root/scripts/setup/10-services.sh"
default_stores="redis postgres"
[ -z "${DEVICE_GRANT_REDIS_CLUSTER_URL:-}" ] || default_stores="$default_stores redis-cluster"
STORES=${STORES:-$default_stores}

echo "building the example server and the flow driver (release)"
(cd "$root" && cargo build --release --example server --example multi-flows)
target=$(cd "$root" && cargo metadata --format-version 1 --no-deps |
    sed -n 's/.*"target_directory":"\([^"]*\)".*/\1/p')
server_bin="$target/release/examples/server"
flows_bin="$target/release/examples/multi-flows"

redis_port=$(sed -n 's#^redis://[^:]*:\([0-9]*\)/.*#\1#p' <<<"$DEVICE_GRANT_REDIS_URL")
pg_base=${DEVICE_GRANT_POSTGRES_URL%/*}
services=${DEVICE_GRANT_SERVICES_DIR:-/tmp/device-grant-services}

# store_url STORE: empties the store's benchmark database and prints its URL.
store_url() {
    case $1 in
        redis)
            redis-cli -p "$redis_port" -n 15 FLUSHDB >/dev/null
            echo "redis://127.0.0.1:$redis_port/15"
            ;;
        redis-cluster)
            local node first=${DEVICE_GRANT_REDIS_CLUSTER_URL#*://}
            first=${first%%[,/]*}
            for node in $(redis-cli -h "${first%:*}" -p "${first#*:}" cluster nodes |
                awk '$3 ~ /master/ { split($2, a, "@"); print a[1] }'); do
                redis-cli -h "${node%:*}" -p "${node#*:}" FLUSHALL >/dev/null
            done
            echo "$DEVICE_GRANT_REDIS_CLUSTER_URL"
            ;;
        postgres)
            psql -q "$pg_base/postgres" -c "DROP DATABASE IF EXISTS device_grant_bench WITH (FORCE)" \
                -c "CREATE DATABASE device_grant_bench" >/dev/null
            echo "$pg_base/device_grant_bench"
            ;;
        *) die "unknown store $1" ;;
    esac
}

# store_pids STORE: the store's processes.
store_pids() {
    case $1 in
        redis) cat "$services/redis.pid" ;;
        redis-cluster) pgrep -f 'redis-server .*cluster' | tr '\n' ' ' ;;
        postgres) pgrep -u postgres | tr '\n' ' ' ;;
    esac
}

# store_ticks STORE: the store's CPU time so far, in clock ticks.
store_ticks() {
    local pid total=0
    for pid in $(store_pids "$1"); do
        [ -r "/proc/$pid/stat" ] || continue
        total=$((total + $(awk '{print $14 + $15}' "/proc/$pid/stat" 2>/dev/null || echo 0)))
    done
    echo "$total"
}

server_ticks() {
    local pid total=0
    for pid in "${pids[@]}"; do
        total=$((total + $(awk '{print $14 + $15}' "/proc/$pid/stat")))
    done
    echo "$total"
}

# start_servers N URL: starts N instances on the store at URL; sets urls=().
start_servers() {
    local n=$1 store=$2 i url key
    key=$(printf '5a%.0s' $(seq 32))
    urls=()
    for i in $(seq "$n"); do
        # A file of an earlier round must not answer for this instance.
        rm -f "$work/server$i.out"
        DEVICE_GRANT_USER_CODE_KEY=$key \
            "$server_bin" --addr 127.0.0.1:0 --store "$store" --rate-limits off \
            --interval 1 --expires-in 3600 --client-address x-forwarded-for \
            >"$work/server$i.out" 2>"$work/server$i.err" &
        pids+=("$!")
        url=
        for _ in $(seq 100); do
            url=$(sed -n 's/^listening on \(http:[^ ]*\).*/\1/p' "$work/server$i.out" 2>/dev/null || true)
            [ -n "$url" ] && break
            sleep 0.1
        done
        [ -n "$url" ] || { cat "$work/server$i.err" >&2; die "instance $i did not start"; }
        urls+=("$url")
    done
}

ticks_per_s=$(getconf CLK_TCK)
table="$work/table"
echo "| store | instances | load | req/s total | req/s per instance | p99 ms (worst) | servers' CPU µs/req | store CPU µs/req | answers |" >"$table"
echo "| --- | ---: | --- | ---: | ---: | ---: | ---: | ---: | --- |" >>"$table"

# wrk_all NAME MODE [FILES...]: one wrk per instance at once; appends a row.
wrk_all() {
    local name=$1 mode=$2
    shift 2
    local n=${#urls[@]} i conns=$((CONNECTIONS / ${#urls[@]}))
    [ "$conns" -ge 1 ] || conns=1
    local s0 v0 s1 v1
    s0=$(store_ticks "$store"); v0=$(server_ticks)
    local wrk_pids=()
    for i in $(seq 0 $((n - 1))); do
        LOAD_THREADS=1 wrk -t1 -c"$conns" -d"${DURATION}s" --timeout 5s --latency \
            -s "$root/benches/http/load.lua" "${urls[$i]}" -- "$mode" 50000000 ${1:+"$work/$1.$i"} \
            >"$work/wrk$i.out" 2>&1 &
        wrk_pids+=("$!")
    done
    for i in "${!wrk_pids[@]}"; do
        wait "${wrk_pids[$i]}" || { cat "$work/wrk$i.out" >&2; die "wrk failed ($name)"; }
    done
    s1=$(store_ticks "$store"); v1=$(server_ticks)
    local total=0 worst=0 requests=0 counts="" line
    for i in $(seq 0 $((n - 1))); do
        line=$(grep '^RESULT' "$work/wrk$i.out") || { cat "$work/wrk$i.out" >&2; die "no result"; }
        total=$(awk -v a="$total" -v b="$(sed -n 's/.* rps=\([^ ]*\).*/\1/p' <<<"$line")" 'BEGIN { print a + b }')
        worst=$(awk -v a="$worst" -v b="$(sed -n 's/.* p99_us=\([^ ]*\).*/\1/p' <<<"$line")" 'BEGIN { print (b > a ? b : a) }')
        requests=$((requests + $(sed -n 's/.* requests=\([0-9]*\).*/\1/p' <<<"$line")))
        counts="$counts,$(sed -n 's/.* counts=\([^ ]*\).*/\1/p' <<<"$line")"
        [ "$(sed -n 's/.* socket_errors=\([0-9]*\).*/\1/p' <<<"$line")" = 0 ] || die "$name: socket errors: $line"
    done
    # Sum each answer's count over the instances.
    counts=$(tr ',' '\n' <<<"$counts" | awk -F= 'NF == 2 { c[$1] += $2 } END { for (k in c) printf "%s%s=%d", (n++ ? " " : ""), k, c[k] }')
    printf '| %s | %s | %s | %.0f | %.0f | %.1f | %.1f | %.1f | %s |\n' "$store" "$n" "$name" "$total" \
        "$(awk -v t="$total" -v n="$n" 'BEGIN { print t / n }')" \
        "$(awk -v w="$worst" 'BEGIN { print w / 1000 }')" \
        "$(awk -v t=$((v1 - v0)) -v hz="$ticks_per_s" -v r="$requests" 'BEGIN { print 1e6 * t / hz / r }')" \
        "$(awk -v t=$((s1 - s0)) -v hz="$ticks_per_s" -v r="$requests" 'BEGIN { print 1e6 * t / hz / r }')" \
        "$counts" | tee -a "$table"
}

for store in $STORES; do
    for n in $INSTANCES; do
        url=$(store_url "$store")
        start_servers "$n" "$url"
        echo "== $store, $n instance(s): ${urls[*]}"

        wrk_all authorize authorize

        # The pending pool, made through every instance, then split so that
        # each code is polled through one instance.
        : >"$work/pool"
        per=$(((POOL + n - 1) / n))
        pool_pids=()
        for i in $(seq 0 $((n - 1))); do
            : >"$work/pool.$i"
            LOAD_THREADS=1 timeout 300 wrk -t1 -c8 -d240s --timeout 5s -s "$root/benches/http/load.lua" \
                "${urls[$i]}" -- pool "$per" "$work/pool.$i" >"$work/poolwrk$i.out" 2>&1 &
            pool_pids+=("$!")
        done
        for i in $(seq 0 $((n - 1))); do
            for _ in $(seq 2400); do
                [ "$(wc -l <"$work/pool.$i")" -ge "$per" ] && break
                sleep 0.1
            done
            kill "${pool_pids[$i]}" 2>/dev/null || true
            wait "${pool_pids[$i]}" 2>/dev/null || true
            [ "$(wc -l <"$work/pool.$i")" -ge "$per" ] || die "pool $i: $(wc -l <"$work/pool.$i") codes"
        done
        # Polled through the next instance: every poll crosses instances.
        for i in $(seq 0 $((n - 1))); do
            cp "$work/pool.$(((i + 1) % n))" "$work/cross.$i"
        done
        wrk_all pending poll cross

        flows=$("$flows_bin" --instances "$(IFS=,; echo "${urls[*]}")" --workers "$WORKERS" \
            --seconds "$DURATION" --pacing "$PACING" --server-pids "${pids[*]}" \
            --store-pids "$(store_pids "$store")" 2>"$work/flows.err") ||
            { sort "$work/flows.err" | uniq -c | sort -rn | head -5 >&2; echo "$flows" >&2; die "flows failed ($store, $n)"; }
        rate=$(sed -n 's/.* flows_per_s=\([^ ]*\).*/\1/p' <<<"$flows")
        printf '| %s | %s | %s | %.1f | %.1f | %s | %.1f | %.1f | %s |\n' "$store" "$n" "flows" "$rate" \
            "$(awk -v t="$rate" -v n="$n" 'BEGIN { print t / n }')" \
            "$(sed -n 's/.* p99_ms=\([^ ]*\).*/\1/p' <<<"$flows")" \
            "$(sed -n 's/.* servers_cpu_us=\([^ ]*\).*/\1/p' <<<"$flows")" \
            "$(sed -n 's/.* store_cpu_us=\([^ ]*\).*/\1/p' <<<"$flows")" \
            "$(sed -n 's/.*\(double_redemptions=[0-9]*\).*\(lost_redemptions=[0-9]*\).*\(pacing_checked=[0-9]*\).*\(pacing_violations=[0-9]*\).*/\1 \2 \3 \4/p' <<<"$flows")" |
            tee -a "$table"
        stop_servers
    done
done

echo
echo "multi-instance load: $DURATION s per load, $CONNECTIONS wrk connections over the instances, $(nproc) cores shared by everything"
cat "$table"
[ -z "${RESULTS:-}" ] || cp "$table" "$RESULTS"
