# shellcheck shell=bash disable=SC2154,SC2034 # variables shared with the driver: check with shellcheck -x benchmarks/compare.sh
# Sourced by benchmarks/compare.sh: starting, stopping and measuring the two servers. Every pid started goes into
# PIDS, which the driver's EXIT trap stops.

TS_PID="" TS_PORT="" TS_TLS_PORT="" RD_PID="" RD_PORT=""

# $1: log file; more arguments go to the server. With --tls-port among them, TS_TLS_PORT is its TLS port.
start_tinyserver() {
    local log=$1 tls=""
    shift
    [[ " $* " == *" --tls-port "* ]] && tls=1
    env "${SERVER_ENV_ARGS[@]}" "$tmp/server/TinyServer.Server" --port 0 --bind 127.0.0.1 --max-connections 20000 "$@" >"$log" 2>&1 &
    TS_PID=$!
    PIDS+=("$TS_PID")
    TS_PORT="" TS_TLS_PORT=""
    for _ in $(seq 300); do
        TS_PORT=$(grep -vF '(TLS)' "$log" | grep -oE 'Listening on 127\.0\.0\.1:[0-9]+' | head -1 | cut -d: -f2 || true)
        [[ -n $tls ]] && TS_TLS_PORT=$(grep -oE 'Listening on 127\.0\.0\.1:[0-9]+ \(TLS\)' "$log" | head -1 | cut -d: -f2 | cut -d' ' -f1 || true)
        [[ -n $TS_PORT && ( -z $tls || -n $TS_TLS_PORT ) ]] && break
        kill -0 "$TS_PID" 2>/dev/null || { cat "$log" >&2; die "TinyServer exited at startup"; }
        sleep 0.1
    done
    [[ -n $TS_PORT && ( -z $tls || -n $TS_TLS_PORT ) ]] || { cat "$log" >&2; die "TinyServer did not log its ports within 30 s"; }
    python3 "$tmp/ready.py" tinyserver "$TS_PORT" 30 || die "TinyServer does not answer on port $TS_PORT"
    [[ -z $tls ]] || python3 "$tmp/ready.py" tinyserver "$TS_TLS_PORT" 30 tls || die "TinyServer does not answer TLS on port $TS_TLS_PORT"
}

# $1: log file; with $2 (certificate) and $3 (key), TLS only: RD_PORT is then its TLS port (--port 0 --tls-port).
start_redis() {
    local log=$1 listen=() tls=()
    RD_PORT=$(python3 "$tmp/freeport.py")
    listen=(--port "$RD_PORT")
    if [[ -n ${2:-} ]]; then
        tls=(tls)
        listen=(--port 0 --tls-port "$RD_PORT" --tls-cert-file "$2" --tls-key-file "$3" --tls-auth-clients no)
    fi
    # maxclients above the default 10,000 so that the memory probe fits beside $HOLD held connections.
    redis-server --save '' --appendonly no --protected-mode yes --bind 127.0.0.1 "${listen[@]}" --daemonize no \
        --maxclients 19000 >"$log" 2>&1 &
    RD_PID=$!
    PIDS+=("$RD_PID")
    python3 "$tmp/ready.py" redis "$RD_PORT" 30 "${tls[@]}" || { cat "$log" >&2; die "redis-server does not answer on port $RD_PORT"; }
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
