#!/usr/bin/env bash
# The HTTP load benchmark: the example server's POST /device_authorization and
# POST /token under wrk on loopback, each against a ceiling (benches/http/
# ceiling.rs: a fixed answer of the same size and headers from the same axum and
# runtime), side by side in one run, repeated, medians printed.
#
#   bash benches/http/run.sh
#
# Loads, each for DURATION seconds with wrk (THREADS threads, CONNECTIONS
# connections):
#   authorize        POST /device_authorization (rate limits off): 200s
#   token pending    POST /token rotating through a pool of pending device codes
#                    large enough that each code is polled at its allowed pace:
#                    authorization_pending (400)
#   token slow_down  POST /token rotating through SLOW_POOL codes, far too fast:
#                    slow_down (400), the interval grown to its cap
#   ceiling          the same requests against http-ceiling, answering the real
#                    responses' bytes (captured from the example server) for
#                    /device_authorization and /token
# Each round runs every load once (every other round in reverse order, so that
# drift in the machine's load does not favour one side); the table gives medians
# over ROUNDS rounds, the spread (min-max) and each load's ratio to its ceiling
# (median of the per-round ratios). Every response is counted by status and
# error code and checked: a load that measured another path fails the run.
#
# The yardstick is the server's CPU time per request (utime + stime of the
# server process from /proc/PID/stat over the run, divided by the requests
# answered), which holds steadier than req/s on a shared machine: the table gives
# it in µs per request for every load, and each load's CPU ratio, ceiling CPU per
# request / server CPU per request (median of the per-round ratios; 1.0 = as
# cheap as the ceiling, higher is better). Each round's line also gives user_us,
# the user-space part of cpu_us (the rest is the kernel's: loopback TCP, epoll,
# system calls, about the same for every server). Where `perf stat` works, it also
# counts the server's instructions per request (user and kernel), which CPU
# contention from other processes does not inflate as it does CPU time.
#
# Pinning: the server under test runs on SERVER_CPUS and wrk on CLIENT_CPUS
# (default: CPU 0 and CPU 1), so they do not compete for a core; tokio's default
# worker count follows the affinity, so both servers run one worker on 2 cores.
# On a 1-CPU machine nothing is pinned.
#
# Environment (defaults): ROUNDS (5), DURATION (8, seconds), THREADS (2, wrk's),
# CONNECTIONS (32),
# INTERVAL (1, the server's polling interval in seconds), SLOW_POOL (64),
# SERVER_CPUS (0), CLIENT_CPUS (1), MAX_REQUESTS (5000000, a per-load cap),
# RESULTS (a file to copy the raw per-round results to), ALT_SERVER (another
# build of the example server, e.g. one with a different store: its three loads
# run in the same rounds as "alt authorize", "alt token pending" and
# "alt token slow_down", against the same ceiling).
#
# Needs cargo and wrk (installed with apt-get when missing). Exits non-zero if
# anything fails; stops every process it started.
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
ROUNDS=${ROUNDS:-5}
DURATION=${DURATION:-8}
THREADS=${THREADS:-2}
CONNECTIONS=${CONNECTIONS:-32}
# load.lua spreads the pools' codes over wrk's threads.
export LOAD_THREADS=$THREADS
INTERVAL=${INTERVAL:-1}
SLOW_POOL=${SLOW_POOL:-64}
MAX_REQUESTS=${MAX_REQUESTS:-5000000}
SERVER_CPUS=${SERVER_CPUS:-0}
CLIENT_CPUS=${CLIENT_CPUS:-1}

work=$(mktemp -d)
pids=()
cleanup() {
    local pid
    for pid in "${pids[@]}"; do
        kill "$pid" 2>/dev/null || true
        wait "$pid" 2>/dev/null || true
    done
    rm -rf "$work"
}
trap cleanup EXIT

die() {
    echo "run.sh: $*" >&2
    exit 1
}

# --- tools -----------------------------------------------------------------
if ! command -v wrk >/dev/null; then
    echo "installing wrk (Debian package)"
    sudo=""
    [ "$(id -u)" = 0 ] || sudo=sudo
    $sudo apt-get update -qq
    $sudo apt-get install -y -qq wrk >/dev/null
fi
command -v wrk >/dev/null || die "wrk is not installed"

instructions=0
# (Virtual machines often have no hardware counters: perf then counts nothing.)
if command -v perf >/dev/null &&
    perf stat -x, -e instructions true 2>&1 >/dev/null | grep -q '^[0-9][0-9]*,'; then
    instructions=1
fi

server_pin=()
client_pin=()
if [ "$(nproc)" -ge 2 ] && command -v taskset >/dev/null; then
    server_pin=(taskset -c "$SERVER_CPUS")
    client_pin=(taskset -c "$CLIENT_CPUS")
fi

echo "building the example server and the ceiling (release)"
(cd "$root" && cargo build --release --example server --example http-ceiling)
target=$(cd "$root" && cargo metadata --format-version 1 --no-deps |
    sed -n 's/.*"target_directory":"\([^"]*\)".*/\1/p')
[ -n "$target" ] || die "cannot find cargo's target directory"
server_bin="$target/release/examples/server"
ceiling_bin="$target/release/examples/http-ceiling"

# --- servers ---------------------------------------------------------------
# start NAME COMMAND...: starts a server pinned to SERVER_CPUS, waits for its
# "listening on http://ADDR" line; sets $pid and $url.
start() {
    local name=$1
    shift
    "${server_pin[@]}" "$@" >"$work/$name.out" 2>"$work/$name.err" &
    pid=$!
    pids+=("$pid")
    local i
    for i in $(seq 100); do
        url=$(sed -n 's/^listening on \(http:[^ ]*\).*/\1/p' "$work/$name.out")
        [ -n "$url" ] && return 0
        kill -0 "$pid" 2>/dev/null || break
        sleep 0.1
    done
    cat "$work/$name.err" >&2
    die "$name did not start"
}

start server "$server_bin" --addr 127.0.0.1:0 --rate-limits off \
    --interval "$INTERVAL" --expires-in 3600
server_pid=$pid
server_url=$url
alt_pid=
alt_url=
if [ -n "${ALT_SERVER:-}" ]; then
    [ -x "$ALT_SERVER" ] || die "ALT_SERVER: $ALT_SERVER is not an executable"
    start alt "$ALT_SERVER" --addr 127.0.0.1:0 --rate-limits off \
        --interval "$INTERVAL" --expires-in 3600
    alt_pid=$pid
    alt_url=$url
fi

# Real responses, for the ceiling's bodies and to compare headers.
form=(-H 'Content-Type: application/x-www-form-urlencoded')
status=$(curl -sS -o "$work/authorize.json" -D "$work/authorize.headers" -w '%{http_code}' \
    "${form[@]}" --data 'client_id=tv-app' "$server_url/device_authorization")
[ "$status" = 200 ] || die "POST /device_authorization answered $status"
code=$(sed -n 's/.*"device_code":"\([^"]*\)".*/\1/p' "$work/authorize.json")
[ -n "$code" ] || die "no device_code in $(cat "$work/authorize.json")"
token_form="grant_type=urn:ietf:params:oauth:grant-type:device_code&client_id=tv-app&device_code=$code"
status=$(curl -sS -o "$work/pending.json" -D "$work/pending.headers" -w '%{http_code}' \
    "${form[@]}" --data "$token_form" "$server_url/token")
[ "$status" = 400 ] && grep -q '"error":"authorization_pending"' "$work/pending.json" ||
    die "POST /token answered $status $(cat "$work/pending.json")"

start ceiling "$ceiling_bin" --addr 127.0.0.1:0 \
    --route "/device_authorization=200=$work/authorize.json" \
    --route "/token=400=$work/pending.json"
ceiling_pid=$pid
ceiling_url=$url

# The ceiling must answer what the server answers: same status, body size and
# number of headers.
for endpoint in authorize:device_authorization pending:token; do
    name=${endpoint%%:*}
    path=/${endpoint#*:}
    data='client_id=tv-app'
    [ "$name" = pending ] && data=$token_form
    curl -sS -o "$work/ceiling-$name.json" -D "$work/ceiling-$name.headers" \
        "${form[@]}" --data "$data" "$ceiling_url$path"
    real_headers=$(grep -c ':' "$work/$name.headers")
    ceiling_headers=$(grep -c ':' "$work/ceiling-$name.headers")
    real_size=$(wc -c <"$work/$name.json")
    ceiling_size=$(wc -c <"$work/ceiling-$name.json")
    echo "POST $path: server $real_headers headers, $real_size-byte body;" \
        "ceiling $ceiling_headers headers, $ceiling_size-byte body"
    [ "$real_headers" = "$ceiling_headers" ] && [ "$real_size" = "$ceiling_size" ] ||
        die "the ceiling's answer to $path differs from the server's"
done

# --- wrk -------------------------------------------------------------------
# load NAME URL DURATION MODE [FILE]: one wrk run; sets $result to its RESULT
# line plus the server's CPU use during the run: cpu= (percent of one core) and
# cpu_us= (µs of CPU per request answered) and, with perf, kinst= (thousands
# of instructions per request).
load() {
    local name=$1 target_url=$2 seconds=$3 mode=$4 file=${5:-} target_pid
    case $target_url in
        "$server_url") target_pid=$server_pid ;;
        "$alt_url") target_pid=$alt_pid ;;
        *) target_pid=$ceiling_pid ;;
    esac
    local before after before_user after_user ticks
    local perf_pid=
    if [ "$instructions" = 1 ]; then
        perf stat -x, -e instructions -p "$target_pid" -o "$work/perf.out" &
        perf_pid=$!
    fi
    before=$(awk '{print $14 + $15}' "/proc/$target_pid/stat")
    before_user=$(awk '{print $14}' "/proc/$target_pid/stat")
    timeout $((seconds + 60)) "${client_pin[@]}" wrk -t"$THREADS" -c"$CONNECTIONS" -d"${seconds}s" \
        --timeout 2s --latency -s "$here/load.lua" "$target_url" -- \
        "$mode" "$MAX_REQUESTS" $file >"$work/wrk.out" 2>&1 ||
        { cat "$work/wrk.out" >&2; die "wrk failed ($name)"; }
    after=$(awk '{print $14 + $15}' "/proc/$target_pid/stat")
    after_user=$(awk '{print $14}' "/proc/$target_pid/stat")
    local inst=0
    if [ -n "$perf_pid" ]; then
        kill -INT "$perf_pid" 2>/dev/null || true
        wait "$perf_pid" 2>/dev/null || true
        inst=$(awk -F, '$3 ~ /^instructions/ { print $1 }' "$work/perf.out")
    fi
    ticks=$(getconf CLK_TCK)
    result=$(grep '^RESULT' "$work/wrk.out") ||
        { cat "$work/wrk.out" >&2; die "no result from wrk ($name)"; }
    result="$result cpu=$(awk -v t=$((after - before)) -v hz="$ticks" -v s="$seconds" \
        'BEGIN { printf "%.0f", 100 * t / hz / s }')"
    result="$result cpu_us=$(awk -v t=$((after - before)) -v hz="$ticks" \
        -v n="$(sed -n 's/.* requests=\([0-9]*\).*/\1/p' <<<"$result")" \
        'BEGIN { printf "%.3f", (n > 0 ? 1e6 * t / hz / n : 0) }')"
    result="$result user_us=$(awk -v t=$((after_user - before_user)) -v hz="$ticks" \
        -v n="$(sed -n 's/.* requests=\([0-9]*\).*/\1/p' <<<"$result")" \
        'BEGIN { printf "%.3f", (n > 0 ? 1e6 * t / hz / n : 0) }')"
    result="$result kinst=$(awk -v i="${inst:-0}" \
        -v n="$(sed -n 's/.* requests=\([0-9]*\).*/\1/p' <<<"$result")" \
        'BEGIN { printf "%.2f", (n > 0 ? i / n / 1000 : 0) }')"
    kill -0 "$server_pid" 2>/dev/null || die "the server died during $name"
    [ -z "$alt_pid" ] || kill -0 "$alt_pid" 2>/dev/null || die "the alt server died during $name"
    kill -0 "$ceiling_pid" 2>/dev/null || die "the ceiling died during $name"
}

field() { sed -n "s/.* $1=\([^ ]*\).*/\1/p" <<<"$result"; }

# count KEY: how many responses of $result were KEY (e.g. 400:slow_down).
count() {
    field counts | tr ',' '\n' | sed -n "s/^$1=//p" | awk '{ n += $1 } END { print n + 0 }'
}

# check NAME EXPECTED MIN_SHARE: fails unless EXPECTED (a counts key) is at least
# MIN_SHARE of the responses and there were no socket errors.
check() {
    local name=$1 expected=$2 min_share=$3 total got
    total=$(field requests)
    got=$(count "$expected")
    [ "$(field socket_errors)" = 0 ] || die "$name: socket errors: $result"
    awk -v g="$got" -v t="$total" -v m="$min_share" 'BEGIN { exit !(t > 0 && g >= m * t) }' ||
        die "$name: expected $expected, got $(field counts) of $total"
}

# --- pools -----------------------------------------------------------------
# Pool size: a code must not be polled again before interval - leeway (0.5 s at
# a 1 s interval); rotating through P codes at R requests/s polls each every
# P/R s. R is at most the ceiling's /token rate, so P = 2 x R x INTERVAL gives
# every code at least twice its interval between polls.
echo "$code" >"$work/one-code"
echo "calibrating: ceiling POST /token for 3 s"
load calibrate "$ceiling_url" 3 poll "$work/one-code"
calibrated=$(field rps)
pool=$(awk -v r="$calibrated" -v i="$INTERVAL" 'BEGIN { p = int(2 * r * i) + 1; print (p < 1000 ? 1000 : p) }')
echo "ceiling /token: $calibrated req/s; pending pool: 2 x $calibrated x ${INTERVAL} s = $pool codes"

# make_pool FILE N [URL]: N pending device codes, made through POST
# /device_authorization (of the example server, or of URL).
# wrk's thread stops sending after N answers, but wrk itself waits out -d: the
# file is watched and wrk stopped (by its PID) once the N codes are in, within
# 180 s at most.
make_pool() {
    local file=$1 n=$2 pool_url=${3:-$server_url} wrk_pid i
    : >"$file"
    timeout 200 "${client_pin[@]}" wrk -t1 -c"$CONNECTIONS" -d180s --timeout 2s \
        -s "$here/load.lua" "$pool_url" -- pool "$n" "$file" >"$work/pool.out" 2>&1 &
    wrk_pid=$!
    pids+=("$wrk_pid")
    for i in $(seq 1800); do
        [ "$(wc -l <"$file")" -ge "$n" ] && break
        kill -0 "$wrk_pid" 2>/dev/null || break
        sleep 0.1
    done
    kill "$wrk_pid" 2>/dev/null || true
    wait "$wrk_pid" 2>/dev/null || true
    [ "$(wc -l <"$file")" -ge "$n" ] ||
        { cat "$work/pool.out" >&2; die "pool: $(wc -l <"$file") codes of $n"; }
}
make_pool "$work/pending-pool" "$pool"
make_pool "$work/slow-pool" "$SLOW_POOL"
echo "pools: $(wc -l <"$work/pending-pool") pending codes, $(wc -l <"$work/slow-pool") for slow_down"
if [ -n "$alt_url" ]; then
    make_pool "$work/alt-pending-pool" "$pool" "$alt_url"
    make_pool "$work/alt-slow-pool" "$SLOW_POOL" "$alt_url"
fi

# --- rounds ----------------------------------------------------------------
# name|url|mode|file|expected key|minimum share of it
# With ALT_SERVER, each of its loads runs right after the same load of the
# example server, so that the two meet the same machine.
loads=("ceiling authorize|$ceiling_url|authorize||200|1"
    "authorize|$server_url|authorize||200|1")
[ -z "$alt_url" ] || loads+=("alt authorize|$alt_url|authorize||200|1")
loads+=("ceiling token|$ceiling_url|poll|$work/one-code|400:authorization_pending|1"
    "token pending|$server_url|poll|$work/pending-pool|400:authorization_pending|1")
[ -z "$alt_url" ] ||
    loads+=("alt token pending|$alt_url|poll|$work/alt-pending-pool|400:authorization_pending|1")
loads+=("token slow_down|$server_url|poll|$work/slow-pool|400:slow_down|0.99")
[ -z "$alt_url" ] ||
    loads+=("alt token slow_down|$alt_url|poll|$work/alt-slow-pool|400:slow_down|0.99")
raw="$work/results"
: >"$raw"
for round in $(seq "$ROUNDS"); do
    order=($(seq 0 $((${#loads[@]} - 1))))
    [ $((round % 2)) = 0 ] && order=($(seq $((${#loads[@]} - 1)) -1 0))
    for i in "${order[@]}"; do
        IFS='|' read -r name target_url mode file expected share <<<"${loads[$i]}"
        load "$name" "$target_url" "$DURATION" "$mode" "$file"
        check "$name" "$expected" "$share"
        printf 'round %s %-16s %s\n' "$round" "$name" "${result#RESULT }"
        echo "$round|$name|$(field rps)|$(field p50_us)|$(field p99_us)|$(field cpu)|$(field counts)|$(field cpu_us)|$(field kinst)" >>"$raw"
    done
done
[ -z "${RESULTS:-}" ] || cp "$raw" "$RESULTS"

# --- table -----------------------------------------------------------------
# column NAME FIELD: the values of FIELD (3 rps, 4 p50, 5 p99, 6 cpu, 8 cpu_us,
# 9 kinst) of a load.
column() { awk -F'|' -v n="$1" -v f="$2" '$2 == n { print $f }' "$raw"; }
median() { sort -g | awk '{ v[NR] = $1 } END { if (NR % 2) print v[(NR + 1) / 2]; else print (v[NR / 2] + v[NR / 2 + 1]) / 2 }'; }
spread() { sort -g | awk '{ v[NR] = $1 } END { printf "%.0f-%.0f", v[1], v[NR] }'; }
# ratios LOAD CEILING: the per-round ratios of LOAD's rps to CEILING's.
ratios() {
    awk -F'|' -v l="$1" -v c="$2" '$2 == l { a[$1] = $3 } $2 == c { b[$1] = $3 }
        END { for (r in a) printf "%.3f\n", a[r] / b[r] }' "$raw"
}
# cpu_ratios LOAD CEILING: the per-round ratios of CEILING's CPU per request to
# LOAD's (1.0: as cheap as the ceiling).
cpu_ratios() {
    awk -F'|' -v l="$1" -v c="$2" '$2 == l { a[$1] = $8 } $2 == c { b[$1] = $8 }
        END { for (r in a) if (a[r] > 0) printf "%.3f\n", b[r] / a[r] }' "$raw"
}
# inst_ratios LOAD CEILING: the same for instructions per request.
inst_ratios() {
    awk -F'|' -v l="$1" -v c="$2" '$2 == l { a[$1] = $9 } $2 == c { b[$1] = $9 }
        END { for (r in a) if (a[r] > 0) printf "%.3f\n", b[r] / a[r] }' "$raw"
}
# range: "min-max" of numbers, one a line.
range() { sort -g | awk 'NR == 1 { a = $1 } { b = $1 } END { print a "-" b }'; }

echo
echo "HTTP load: wrk -t$THREADS -c$CONNECTIONS -d${DURATION}s, $ROUNDS rounds, server on CPU" \
    "${SERVER_CPUS}, wrk on CPU ${CLIENT_CPUS}; medians (min-max over rounds)"
echo
echo "| load | server CPU µs/req | CPU ratio (ceiling/server) | kinstr/req | instr ratio | req/s | p50 µs | p99 µs | server CPU % | req/s ratio to ceiling |"
echo "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |"
entries=("ceiling authorize|" "authorize|ceiling authorize" "ceiling token|"
    "token pending|ceiling token" "token slow_down|ceiling token")
[ -z "$alt_url" ] || entries+=("alt authorize|ceiling authorize"
    "alt token pending|ceiling token" "alt token slow_down|ceiling token")
for entry in "${entries[@]}"; do
    name=${entry%%|*}
    ceiling=${entry#*|}
    ratio="-"
    cpu_ratio="-"
    inst_ratio="-"
    if [ -n "$ceiling" ]; then
        [ "$instructions" = 0 ] ||
            inst_ratio="$(inst_ratios "$name" "$ceiling" | median) ($(inst_ratios "$name" "$ceiling" | range))"
        ratio="$(ratios "$name" "$ceiling" | median) ($(ratios "$name" "$ceiling" | range))"
        cpu_ratio="$(cpu_ratios "$name" "$ceiling" | median) ($(cpu_ratios "$name" "$ceiling" |
            range))"
    fi
    printf '| %s | %.2f (%s) | %s | %.1f | %s | %.0f (%s) | %.0f (%s) | %.0f (%s) | %.0f | %s |\n' "$name" \
        "$(column "$name" 8 | median)" "$(column "$name" 8 | range)" "$cpu_ratio" \
        "$(column "$name" 9 | median)" "$inst_ratio" \
        "$(column "$name" 3 | median)" "$(column "$name" 3 | spread)" \
        "$(column "$name" 4 | median)" "$(column "$name" 4 | spread)" \
        "$(column "$name" 5 | median)" "$(column "$name" 5 | spread)" \
        "$(column "$name" 6 | median)" "$ratio"
done
echo
echo "responses (all rounds):"
echo "$(awk -F'|' '{ print $2 ": " $7 }' "$raw" | sort |
    awk -F': ' '{ split($2, kv, ","); for (i in kv) { split(kv[i], p, "="); n[$1 " " p[1]] += p[2] } }
        END { for (k in n) print "  " k "=" n[k] }' | sort)"
echo "targets (reported, not asserted): CPU ratio token pending and token slow_down >= 0.85," \
    "authorize >= 0.75"
