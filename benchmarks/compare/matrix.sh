# shellcheck shell=bash disable=SC2154,SC2034 # variables shared with the driver: check with shellcheck -x benchmarks/compare.sh
# Sourced by benchmarks/compare.sh: the load runs, each bounded by timeout (RUN_LIMIT = DURATION + 90 s).

# One bounded load run. Prints "rps p50_us p99_us errors" ("- - - fail" if the generator produced no result).
# $1 server (tinyserver|redis) $2 port $3 loadgen (dotnet|c) $4 connections $5 pipeline $6 mode $7 seconds $8 log
run_load() {
    local server=$1 port=$2 lg=$3 c=$4 p=$5 mode=$6 seconds=$7 log=$8
    local prefix=()
    [[ $mode == pinned ]] && prefix=(taskset -c 1)
    local out="$log.out"
    if [[ $lg == dotnet ]]; then
        local redis=()
        [[ $server == redis ]] && redis=(--redis)
        timeout -k 5 "$RUN_LIMIT" "${prefix[@]}" dotnet "$tmp/lg/TinyServer.LoadGen.dll" --host 127.0.0.1 --port "$port" \
            -c "$c" -P "$p" -d "$seconds" --command "ECHO hello" "${redis[@]}" --json >"$out" 2>"$log" || true
        python3 -c '
import json, sys
try:
    r = json.load(open(sys.argv[1]))
    print(r["requests_per_second"], r["p50_us"], r["p99_us"], r["errors"])
except Exception:
    print("- - - fail")' "$out"
    else
        local proto=(--expect-prefix "ECHO hello")
        [[ $server == redis ]] && proto=(--redis -m "ECHO hello" --expect-prefix "\$5")
        timeout -k 5 "$RUN_LIMIT" "${prefix[@]}" "$CLG" -c "$c" -P "$p" -d "$seconds" "${proto[@]}" 127.0.0.1 "$port" \
            >"$out" 2>"$log" || true
        python3 -c '
import sys
f = dict(kv.split("=", 1) for kv in open(sys.argv[1]).read().split() if "=" in kv)
print(f["rps"], f["p50_us"], f["p99_us"], f["errors"]) if "rps" in f else print("- - - fail")' "$out"
    fi
}

# Starts both servers, warms them up, runs the matrix into $RUNS (mode, load generator, connections, pipeline, server,
# rps, p50, p99, errors), records their RSS after load and stops them.
run_matrix() {
    LOAD_BEFORE=$(cut -d' ' -f1-3 /proc/loadavg)
    mkdir -p "$tmp/logs"
    start_tinyserver "$tmp/logs/tinyserver.log"
    start_redis "$tmp/logs/redis.log"
    say "TinyServer on 127.0.0.1:$TS_PORT (pid $TS_PID${SERVER_ENV:+, $SERVER_ENV}), redis-server on 127.0.0.1:$RD_PORT (pid $RD_PID)"

    # Warm-up, not recorded: the JIT's tiers, the thread pool, the allocators of both servers.
    pin unpinned
    for p in 1 16; do
        run_load tinyserver "$TS_PORT" dotnet 50 "$p" unpinned 2 "$tmp/logs/warmup" >/dev/null
        run_load redis "$RD_PORT" dotnet 50 "$p" unpinned 2 "$tmp/logs/warmup" >/dev/null
    done

    # ---------------------------------------------------------------- the load matrix
    RUNS="$tmp/runs.tsv"
    : >"$RUNS"
    for mode in $MODES; do
        pin "$mode"
        for c in $CONNS; do
            for p in $PIPELINES; do
                if [[ " $SKIP " == *" ${c}x${p} "* ]]; then
                    NOTES+=("c=$c P=$p was skipped (SKIP).")
                    continue
                fi
                for lg in $LOADGENS; do
                    for server in tinyserver redis; do
                        port=$TS_PORT
                        [[ $server == redis ]] && port=$RD_PORT
                        log="$tmp/logs/$mode-$lg-$c-$p-$server"
                        read -r rps p50 p99 errors < <(run_load "$server" "$port" "$lg" "$c" "$p" "$mode" "$DURATION" "$log")
                        say "$(printf '%-8s %-6s c=%-4s P=%-2s %-10s %12s req/s  p50 %8s us  p99 %8s us  errors %s' \
                            "$mode" "$lg" "$c" "$p" "$server" "$rps" "$p50" "$p99" "$errors")"
                        [[ $errors == fail ]] && tail -5 "$log" "$log.out" >&2
                        printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$mode" "$lg" "$c" "$p" "$server" "$rps" "$p50" "$p99" "$errors" >>"$RUNS"
                        kill -0 "$TS_PID" 2>/dev/null || { tail -20 "$tmp/logs/tinyserver.log" >&2; die "TinyServer died"; }
                        kill -0 "$RD_PID" 2>/dev/null || { tail -20 "$tmp/logs/redis.log" >&2; die "redis-server died"; }
                    done
                done
            done
        done
    done
    TS_RSS_AFTER_LOAD=$(rss_kib "$TS_PID")
    RD_RSS_AFTER_LOAD=$(rss_kib "$RD_PID")
    stop_server "$TS_PID"
    stop_server "$RD_PID"
}
