# shellcheck shell=bash disable=SC2154,SC2034 # variables shared with the driver: check with shellcheck -x benchmarks/compare.sh
# Sourced by benchmarks/compare.sh: idle memory per held connection ($MEMORY) and startup time ($STARTUP).

measure_extras() {
    MEMORY="$tmp/memory.tsv"
    : >"$MEMORY"
    STARTUP="$tmp/startup.tsv"
    : >"$STARTUP"
    if [[ $EXTRAS == 1 ]]; then
        for server in tinyserver redis; do
            # A fresh server, one connection answered, then the idle connections.
            if [[ $server == tinyserver ]]; then
                start_tinyserver "$tmp/logs/mem-tinyserver.log"; pid=$TS_PID; port=$TS_PORT
            else
                start_redis "$tmp/logs/mem-redis.log"; pid=$RD_PID; port=$RD_PORT
            fi
            sleep 1
            before=$(rss_kib "$pid")
            hold_out="$tmp/logs/hold-$server.out"
            if [[ -n $CLG ]]; then
                proto=(--expect-prefix "ECHO hello")
                [[ $server == redis ]] && proto=(--redis -m "ECHO hello" --expect-prefix "\$5")
                timeout -k 5 120 "$CLG" --connect-only -c "$HOLD" -d 5 --connect-batch 64 "${proto[@]}" 127.0.0.1 "$port" \
                    >"$hold_out" 2>"$hold_out.err" &
            else
                timeout -k 5 120 python3 "$tmp/hold.py" "$server" "$port" "$HOLD" 5 >"$hold_out" 2>"$hold_out.err" &
            fi
            holder=$!
            PIDS+=("$holder")
            for _ in $(seq 1200); do
                grep -q '^HOLDING' "$hold_out" 2>/dev/null && break
                kill -0 "$holder" 2>/dev/null || break
                sleep 0.1
            done
            held=$(grep -oE '^HOLDING connected=[0-9]+' "$hold_out" | cut -d= -f2 || true)
            sleep 2 # let the server finish accepting and settle
            during=$(rss_kib "$pid")
            wait "$holder" || true
            forget "$holder"
            probe=$(grep -oE 'probe=[a-z]+' "$hold_out" | cut -d= -f2 || true)
            say "$server: RSS ${before} KiB before, ${during} KiB holding ${held:-0} connections${probe:+, probe $probe}"
            printf '%s\t%s\t%s\t%s\t%s\n' "$server" "$before" "$during" "${held:-0}" "${probe:-}" >>"$MEMORY"
            stop_server "$pid"
        done

        say "startup: $STARTUP_RUNS starts of each server"
        ts_start=$(env "${SERVER_ENV_ARGS[@]}" python3 "$tmp/startup.py" tinyserver "$STARTUP_RUNS" \
            "$tmp/server/TinyServer.Server" --port PORT --bind 127.0.0.1) || ts_start="- - -"
        rd_start=$(python3 "$tmp/startup.py" redis "$STARTUP_RUNS" \
            redis-server --save '' --appendonly no --protected-mode yes --bind 127.0.0.1 --port PORT --daemonize no) || rd_start="- - -"
        printf 'tinyserver\t%s\nredis\t%s\n' "${ts_start// /$'\t'}" "${rd_start// /$'\t'}" >>"$STARTUP"
        say "startup ms (median min max): TinyServer $ts_start, redis-server $rd_start"
    fi
}
