#!/usr/bin/env bash
# Soak: several minutes of mixed load with connection churn against a Release server, reporting errors (must be 0)
# and the server's RSS over time (must stay flat once warm).
#   scripts/soak.sh [SECONDS]        default 300
# Loopback only; every load run is bounded by its duration.
set -euo pipefail
cd "$(dirname "$0")/.."
seconds=${1:-300}
warmup=15
out=$(mktemp -d)
server=""
trap '[ -n "$server" ] && kill "$server" 2>/dev/null; rm -rf "$out"' EXIT

for project in src/TinyServer.Server src/TinyServer.LoadGen; do
  dotnet build "$project" -c Release -v q --nologo -clp:NoSummary >/dev/null
done
ulimit -n "$(ulimit -Hn)"
dotnet src/TinyServer.Server/bin/Release/net10.0/TinyServer.Server.dll --port 0 --bind 127.0.0.1 >"$out/server.log" 2>&1 &
server=$!
for _ in $(seq 100); do grep -q 'Listening on 127.0.0.1:' "$out/server.log" && break; sleep 0.1; done
port=$(grep -o 'Listening on 127.0.0.1:[0-9]*' "$out/server.log" | cut -d: -f2)
rss() { awk '/VmRSS/ {print $2}' "/proc/$server/status"; }
loadgen() { dotnet src/TinyServer.LoadGen/bin/Release/net10.0/TinyServer.LoadGen.dll --host 127.0.0.1 --port "$port" --json "$@"; }

echo "soak: ${seconds}s against 127.0.0.1:$port (server pid $server)"
# Three loads at once: steady pipelined traffic, non-pipelined traffic with big payloads, and churn
# (20 requests, QUIT, reconnect).
loadgen -c 100 -P 8 -d "$seconds" --command 'ECHO hello:6,TIME:2,HELP:1' >"$out/steady.json" 2>/dev/null &
a=$!
loadgen -c 20 -P 1 -d "$seconds" --payload-size 4000 >"$out/payload.json" 2>/dev/null &
b=$!
loadgen -c 50 -P 1 -d "$seconds" --requests-per-session 20 >"$out/churn.json" 2>/dev/null &
c=$!

sleep "$warmup"
start=$(rss)
echo "t=${warmup}s rss=${start} KiB (after warm-up)"
samples=("$start")
elapsed=$warmup
while [ "$elapsed" -lt "$seconds" ]; do
  step=$(( seconds - elapsed < 30 ? seconds - elapsed : 30 ))
  sleep "$step"
  elapsed=$(( elapsed + step ))
  now=$(rss)
  samples+=("$now")
  echo "t=${elapsed}s rss=${now} KiB"
done
status=0
wait "$a" || status=1
wait "$b" || status=1
wait "$c" || status=1
end=$(rss)

errors=0
for run in steady payload churn; do
  summary=$(python3 -c 'import json,sys; r=json.load(open(sys.argv[1])); print(r["requests_per_second"], r["errors"], r["p99_us"])' "$out/$run.json")
  read -r rps errs p99 <<<"$summary"
  echo "$run: ${rps} requests/s, p99 ${p99} us, errors ${errs}"
  errors=$(( errors + errs ))
done
echo "errors: $errors"
echo "server rss: ${start} KiB after warm-up, ${end} KiB at the end (max $(printf '%s\n' "${samples[@]}" | sort -n | tail -1) KiB)"
# Flat: the end may not exceed the post-warm-up figure by more than 20%.
if [ "$errors" -ne 0 ] || [ "$status" -ne 0 ] || [ "$end" -gt $(( start * 12 / 10 )) ]; then
  echo "soak: FAILED"
  exit 1
fi
echo "soak: passed"
