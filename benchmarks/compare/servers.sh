# shellcheck shell=bash disable=SC2154,SC2034 # variables shared with the driver: check with shellcheck -x benchmarks/compare.sh
# Sourced by benchmarks/compare.sh: starting, stopping and measuring the two servers. Every pid started goes into
# PIDS, which the driver's EXIT trap stops.

TS_PID="" TS_PORT="" RD_PID="" RD_PORT=""

start_tinyserver() { # $1: log file
    env "${SERVER_ENV_ARGS[@]}" "$tmp/server/TinyServer.Server" --port 0 --bind 127.0.0.1 --max-connections 20000 >"$1" 2>&1 &
    TS_PID=$!
    PIDS+=("$TS_PID")
    TS_PORT=""
    for _ in $(seq 300); do
        TS_PORT=$(grep -oE 'Listening on 127\.0\.0\.1:[0-9]+' "$1" | head -1 | cut -d: -f2 || true)
        [[ -n $TS_PORT ]] && break
        kill -0 "$TS_PID" 2>/dev/null || { cat "$1" >&2; die "TinyServer exited at startup"; }
        sleep 0.1
    done
    [[ -n $TS_PORT ]] || { cat "$1" >&2; die "TinyServer did not log its port within 30 s"; }
    python3 "$tmp/ready.py" tinyserver "$TS_PORT" 30 || die "TinyServer does not answer on port $TS_PORT"
}

start_redis() { # $1: log file
    RD_PORT=$(python3 "$tmp/freeport.py")
    # maxclients above the default 10,000 so that the memory probe fits beside $HOLD held connections.
    redis-server --save '' --appendonly no --protected-mode yes --bind 127.0.0.1 --port "$RD_PORT" --daemonize no \
        --maxclients 19000 >"$1" 2>&1 &
    RD_PID=$!
    PIDS+=("$RD_PID")
    python3 "$tmp/ready.py" redis "$RD_PORT" 30 || { cat "$1" >&2; die "redis-server does not answer on port $RD_PORT"; }
}

forget() { # $1: pid, ended and waited for: cleanup must not signal a pid the kernel may have reused
    local kept=() pid
    for pid in "${PIDS[@]}"; do [[ $pid == "$1" ]] || kept+=("$pid"); done
    PIDS=("${kept[@]+"${kept[@]}"}")
}

stop_server() { # $1: pid
    kill -TERM "$1" 2>/dev/null || true
    for _ in $(seq 100); do kill -0 "$1" 2>/dev/null || break; sleep 0.1; done
    kill -KILL "$1" 2>/dev/null || true
    wait "$1" 2>/dev/null || true
    forget "$1"
}

rss_kib() { awk '/^VmRSS:/ { print $2 }' "/proc/$1/status"; }

pin() { # $1: pinned|unpinned
    local cpus=0
    [[ $1 == pinned ]] || cpus="0-$((NCPU - 1))"
    taskset -a -p -c "$cpus" "$TS_PID" >/dev/null
    taskset -a -p -c "$cpus" "$RD_PID" >/dev/null
}
