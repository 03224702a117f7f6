#!/usr/bin/env bash
# Instructions per pending poll of a server build under callgrind
# (user space only; exact whatever else the machine runs):
#
#   bash benches/http/callgrind.sh target/release/examples/server
#   bash benches/http/callgrind.sh target/release/examples/http-crate-floor
#   bash benches/http/callgrind.sh target/release/examples/http-ceiling \
#       --route /device_authorization=200=authorize.json --route /token=400=pending.json
#
# Arguments after the build replace the example server's load-test options
# (`--rate-limits off --interval 1 --expires-in 3600`); `--addr` is always
# given.
# Starts the build under valgrind with instrumentation off, makes 3,000
# pending codes, switches instrumentation on for a 10 s `wrk -t1 -c8` poll
# load (each code polled at its 1 s pace: authorization_pending), and prints
# the requests answered, the instructions counted and their quotient.
# Needs valgrind and wrk. PORT (18100) is where the server listens.
set -euo pipefail
bin=$(realpath "$1")
shift
options=("$@")
[ ${#options[@]} -gt 0 ] || options=(--rate-limits off --interval 1 --expires-in 3600)
port=${PORT:-18100}
here=$(cd "$(dirname "$0")" && pwd)
work=$(mktemp -d)
trap 'kill "$vp" 2>/dev/null || true; rm -rf "$work"' EXIT
export LOAD_THREADS=1
valgrind --tool=callgrind --callgrind-out-file="$work/cg.%p" --instr-atstart=no \
    "$bin" --addr "127.0.0.1:$port" "${options[@]}" \
    >/dev/null 2>&1 &
vp=$!
for _ in $(seq 300); do
    curl -s -o /dev/null "http://127.0.0.1:$port/.well-known/oauth-authorization-server" && break
    sleep 0.2
done
: >"$work/pool"
timeout 120 wrk -t1 -c8 -d100s -s "$here/load.lua" "http://127.0.0.1:$port" -- pool 3000 "$work/pool" \
    >/dev/null 2>&1 &
wp=$!
for _ in $(seq 1000); do
    [ "$(wc -l <"$work/pool")" -ge 3000 ] && break
    sleep 0.2
done
kill "$wp" 2>/dev/null || true
sleep 1.5
callgrind_control -i on "$vp" >/dev/null
result=$(wrk -t1 -c8 -d10s -s "$here/load.lua" "http://127.0.0.1:$port" -- poll 100000000 "$work/pool" |
    grep RESULT)
callgrind_control -i off "$vp" >/dev/null
callgrind_control -d "$vp" >/dev/null
requests=$(sed -n 's/.* requests=\([0-9]*\).*/\1/p' <<<"$result")
instructions=$(callgrind_annotate "$(ls -t "$work"/cg.*.1 | head -1)" 2>/dev/null |
    sed -n 's/^\([0-9,]*\) .*PROGRAM TOTALS.*/\1/p' | tr -d ,)
echo "$result"
echo "requests=$requests instructions=$instructions per_request=$((instructions / requests))"
