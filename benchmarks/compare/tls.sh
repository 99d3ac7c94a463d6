# shellcheck shell=bash disable=SC2154,SC2034,SC2153 # variables shared with the driver: check with shellcheck -x benchmarks/compare.sh
# Sourced by benchmarks/compare.sh: the TLS rows ($TLS_RUNS). For each certificate, TinyServer (--tls-port) and
# redis-server (--port 0 --tls-port) run side by side with the same certificate and key. Requests are driven by the C
# reference built with TLS ($CLG_TLS), handshakes by openssl s_time; every run is bounded by timeout.

# Self-signed certificates for 127.0.0.1, made for this run in $tmp/certs: ecdsa (P-256) and rsa (2048 bits).
make_certs() {
    local cert key=()
    mkdir -p "$tmp/certs"
    for cert in $TLS_CERTS; do
        case $cert in
            ecdsa) key=(-newkey ec -pkeyopt ec_paramgen_curve:P-256) ;;
            rsa) key=(-newkey rsa:2048) ;;
        esac
        openssl req -x509 "${key[@]}" -nodes -days 2 -subj /CN=127.0.0.1 -addext subjectAltName=IP:127.0.0.1 \
            -keyout "$tmp/certs/$cert.key" -out "$tmp/certs/$cert.crt" >>"$tmp/logs/certs.log" 2>&1 \
            || { cat "$tmp/logs/certs.log" >&2; die "openssl could not make the $cert certificate"; }
    done
}

# The server's CPU time per request over the measured window, in µs: $1 "cpu_s window_s wall_s" from cpuwin.py, $2 rps.
cpu_per_request() {
    python3 -c '
import sys
try:
    cpu, window, _ = map(float, sys.argv[1].split())
    print(f"{cpu / (float(sys.argv[2]) * window) * 1e6:.2f}")
except Exception:
    print("-")' "$1" "$2"
}

# One bounded request run over TLS with the C reference. Prints "rps p50_us p99_us errors cpu_us_per_request".
# $1 server (tinyserver|redis) $2 server pid $3 TLS port $4 connections $5 pipeline $6 protocol (1.3|1.2) $7 mode
# $8 seconds $9 log
run_tls_load() {
    local server=$1 pid=$2 port=$3 c=$4 p=$5 proto=$6 mode=$7 seconds=$8 log=$9
    local prefix=() args=(--tls) cpu rps p50 p99 errors
    [[ $mode == pinned ]] && prefix=(taskset -c 1)
    [[ $proto == 1.2 ]] && args+=(--tls-max 1.2)
    if [[ $server == redis ]]; then
        args+=(--redis -m "ECHO hello" --expect-prefix "\$5")
    else
        args+=(--expect-prefix "ECHO hello")
    fi
    cpu=$(python3 "$tmp/cpuwin.py" "$pid" "$seconds" 1 "$log" timeout -k 5 "$RUN_LIMIT" "${prefix[@]}" "$CLG_TLS" "${args[@]}" \
        -c "$c" -P "$p" -d "$seconds" 127.0.0.1 "$port") || cpu=""
    read -r rps p50 p99 errors < <(python3 -c '
import sys
try:
    f = dict(kv.split("=", 1) for kv in open(sys.argv[1]).read().split() if "=" in kv)
    print(f["rps"], f["p50_us"], f["p99_us"], f["errors"])
except Exception:
    print("- - - fail")' "$log.0")
    echo "$rps $p50 $p99 $errors $(cpu_per_request "$cpu" "$rps")"
}

# Full handshakes per second: $TLS_HANDSHAKE_CLIENTS copies of `openssl s_time -new` at once, each a new TLS session
# after the other on a fresh connection (handshake, then close; no request). Prints "handshakes/s mean_ms errors
# cpu_us_per_handshake", mean_ms being the time of one handshake as each client sees it.
# $1 server pid $2 TLS port $3 protocol (1.3|1.2) $4 mode $5 seconds $6 log
run_handshakes() {
    local pid=$1 port=$2 proto=$3 mode=$4 seconds=$5 log=$6
    local prefix=() args=() cpu
    [[ $mode == pinned ]] && prefix=(taskset -c 1)
    [[ $proto == 1.2 ]] && args=(-tls1_2)
    cpu=$(python3 "$tmp/cpuwin.py" "$pid" 0 "$TLS_HANDSHAKE_CLIENTS" "$log" timeout -k 5 "$RUN_LIMIT" "${prefix[@]}" \
        openssl s_time -connect "127.0.0.1:$port" -new -time "$seconds" "${args[@]}") || cpu=""
    python3 -c '
import re, sys
log, clients, cpu = sys.argv[1], int(sys.argv[2]), sys.argv[3]
try:
    counts = []
    for n in range(clients):
        m = re.search(r"^(\d+) connections in [\d.]+s;", open(f"{log}.{n}").read(), re.M)
        counts.append(int(m.group(1)))
    cpu_s, _, wall = map(float, cpu.split())
    total = sum(counts)
    print(f"{total / wall:.1f} {wall * clients / total * 1e3:.3f} 0 {cpu_s / total * 1e6:.1f}")
except Exception:
    print("- - fail -")' "$log" "$TLS_HANDSHAKE_CLIENTS" "$cpu"
}

# One bounded TinyServer.LoadGen run over TLS 1.3: requests over established sessions ($6 requests), or new sessions of one
# request each, full handshakes ($6 full) or resumed from the server's tickets ($6 resumed; the host is then localhost:
# .NET resumes only for a name). Prints "rate p50_us p99_us errors server_cpu_us client_cpu_us", the rate and CPU per
# request or per handshake. $1 server $2 server pid $3 TLS port $4 connections $5 pipeline $6 kind $7 seconds $8 log
run_tls_loadgen() {
    local server=$1 pid=$2 port=$3 c=$4 p=$5 kind=$6 seconds=$7 log=$8
    local args=(--host 127.0.0.1 --port "$port" --tls --insecure -c "$c" -P "$p" -d "$seconds" --warmup 1 --command "ECHO hello" --json) cpu
    [[ $server == redis ]] && args+=(--redis)
    [[ $kind == requests ]] || args+=(--requests-per-session 1)
    [[ $kind == resumed ]] && args=("${args[@]/#127.0.0.1/localhost}") && args+=(--tls-resume)
    cpu=$(python3 "$tmp/cpuwin.py" "$pid" "$seconds" 1 "$log" timeout -k 5 "$RUN_LIMIT" dotnet "$tmp/lg/TinyServer.LoadGen.dll" "${args[@]}") || cpu=""
    python3 -c '
import json, sys
kind, cpu = sys.argv[2], sys.argv[3]
try:
    r = json.loads(open(sys.argv[1] + ".0").read())
    if kind == "resumed" and r["handshakes_resumed"] < r["handshakes"] * 0.5: # Redis turns down some tickets (87 % resumed)
        raise ValueError("not resumed")
    rate = r["requests_per_second"] if kind == "requests" else r["handshakes_per_second"]
    cpu_s, window, _ = map(float, cpu.split())
    client = r["loadgen_cpu_us_per_request"] if kind == "requests" else r["loadgen_cpu_s"] * 1e6 / r["handshakes"]
    print(rate, r["p50_us"], r["p99_us"], r["errors"], f"{cpu_s / (rate * window) * 1e6:.2f}", f"{client:.2f}")
except Exception:
    print("- - - fail - -")' "$log" "$kind" "$cpu"
}

# Memory per idle TLS connection: a fresh server, $TLS_HOLD TLS sessions opened by TinyServer.LoadGen (handshake, then
# one request a second among all of them), its RSS before and while they are held. Appends "cert server before_kib
# during_kib held" to $TLS_MEMORY. $1 server $2 certificate
measure_tls_memory() {
    local server=$1 cert=$2 pid port holder held before during redis=() _
    if [[ $server == tinyserver ]]; then
        start_tinyserver "$tmp/logs/tls-mem-$cert-tinyserver.log" --tls-port 0 --tls-cert "$tmp/certs/$cert.crt" --tls-key "$tmp/certs/$cert.key"
        pid=$TS_PID port=$TS_TLS_PORT
    else
        start_redis "$tmp/logs/tls-mem-$cert-redis.log" "$tmp/certs/$cert.crt" "$tmp/certs/$cert.key"
        pid=$RD_PID port=$RD_PORT redis=(--redis)
    fi
    sleep 1
    before=$(rss_kib "$pid")
    timeout -k 5 "$RUN_LIMIT" dotnet "$tmp/lg/TinyServer.LoadGen.dll" --host 127.0.0.1 --port "$port" --tls --insecure \
        -c "$TLS_HOLD" --rate 1 -d 20 --command "ECHO hello" "${redis[@]}" --json >"$tmp/logs/tls-hold-$server.out" 2>&1 &
    holder=$!
    PIDS+=("$holder")
    held=0
    for _ in $(seq 600); do # until every session is established on the server's side, at most 60 s
        held=$(ss -Htn state established "( sport = :$port )" | wc -l)
        [[ $held -ge $TLS_HOLD ]] && break
        kill -0 "$holder" 2>/dev/null || break
        sleep 0.1
    done
    sleep 2 # let the server settle
    during=$(rss_kib "$pid")
    kill -TERM "$holder" 2>/dev/null || true
    wait "$holder" 2>/dev/null || true
    forget "$holder"
    say "TLS $cert $server: RSS ${before} KiB before, ${during} KiB holding $held TLS sessions"
    printf '%s\t%s\t%s\t%s\t%s\n' "$cert" "$server" "$before" "$during" "$held" >>"$TLS_MEMORY"
    stop_server "$pid"
}

# For each certificate: both servers with it, a warm-up, then for each pinning mode and round the TLS 1.3 loads, the
# TLS 1.2 loads and the handshakes, TinyServer then Redis at each point. Rows go to $TLS_RUNS: mode, certificate,
# protocol, connections (handshakes: s_time clients), pipeline (handshakes: hs), server, requests/s (or handshakes/s),
# p50 µs, p99 µs (handshakes: mean ms and -), errors, server CPU µs per request (or handshake), round.
run_tls() {
    TLS_RUNS="$tmp/tls-runs.tsv"
    TLS_LG_RUNS="$tmp/tls-loadgen-runs.tsv"
    TLS_MEMORY="$tmp/tls-memory.tsv"
    : >"$TLS_RUNS"
    : >"$TLS_LG_RUNS"
    : >"$TLS_MEMORY"
    [[ $TLS == 1 ]] || return 0
    mkdir -p "$tmp/logs"
    make_certs
    TLS_LOAD_BEFORE=$(cut -d' ' -f1-3 /proc/loadavg)
    local cert mode round point proto c p server pid port log rps p50 p99 errors cpu points
    points=()
    for point in $TLS_LOADS; do points+=("1.3:$point"); done
    [[ $TLS_HANDSHAKE_CLIENTS -gt 0 ]] && points+=("1.3:handshake")
    for point in $TLS12_LOADS; do
        [[ $point != handshake || $TLS_HANDSHAKE_CLIENTS -gt 0 ]] && points+=("1.2:$point")
    done
    for cert in $TLS_CERTS; do
        start_tinyserver "$tmp/logs/tls-$cert-tinyserver.log" --tls-port 0 --tls-cert "$tmp/certs/$cert.crt" --tls-key "$tmp/certs/$cert.key"
        start_redis "$tmp/logs/tls-$cert-redis.log" "$tmp/certs/$cert.crt" "$tmp/certs/$cert.key"
        say "TLS, $cert certificate: TinyServer on 127.0.0.1:$TS_TLS_PORT (pid $TS_PID), redis-server on 127.0.0.1:$RD_PORT (pid $RD_PID)"
        pin unpinned
        for p in 1 16; do # warm-up, not recorded
            run_tls_load tinyserver "$TS_PID" "$TS_TLS_PORT" 50 "$p" 1.3 unpinned 2 "$tmp/logs/tls-warmup" >/dev/null
            run_tls_load redis "$RD_PID" "$RD_PORT" 50 "$p" 1.3 unpinned 2 "$tmp/logs/tls-warmup" >/dev/null
        done
        for mode in $TLS_MODES; do
            pin "$mode"
            for round in $(seq "$TLS_ROUNDS"); do
                for point in "${points[@]}"; do
                    proto=${point%%:*} point=${point#*:}
                    for server in tinyserver redis; do
                        pid=$TS_PID port=$TS_TLS_PORT
                        [[ $server == redis ]] && pid=$RD_PID port=$RD_PORT
                        log="$tmp/logs/tls-$cert-$proto-$mode-$point-$server-$round"
                        if [[ $point == handshake ]]; then
                            c=$TLS_HANDSHAKE_CLIENTS p=hs p99=-
                            read -r rps p50 errors cpu < <(run_handshakes "$pid" "$port" "$proto" "$mode" "$DURATION" "$log")
                            say "$(printf 'TLS %-5s %s %-8s handshakes, %s clients %-10s %10s handshakes/s  mean %8s ms  server %8s us CPU/handshake' \
                                "$cert" "$proto" "$mode" "$c" "$server" "$rps" "$p50" "$cpu")"
                        else
                            c=${point%x*} p=${point#*x}
                            read -r rps p50 p99 errors cpu < <(run_tls_load "$server" "$pid" "$port" "$c" "$p" "$proto" "$mode" "$DURATION" "$log")
                            say "$(printf 'TLS %-5s %s %-8s c=%-4s P=%-2s %-10s %10s req/s  p99 %8s us  server %6s us CPU/request  errors %s' \
                                "$cert" "$proto" "$mode" "$c" "$p" "$server" "$rps" "$p99" "$cpu" "$errors")"
                        fi
                        [[ $errors == fail ]] && tail -n 5 "$log".0* >&2
                        printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$mode" "$cert" "$proto" "$c" "$p" "$server" \
                            "$rps" "$p50" "$p99" "$errors" "$cpu" "$round" >>"$TLS_RUNS"
                        kill -0 "$TS_PID" 2>/dev/null || { tail -20 "$tmp/logs/tls-$cert-tinyserver.log" >&2; die "TinyServer died"; }
                        kill -0 "$RD_PID" 2>/dev/null || { tail -20 "$tmp/logs/tls-$cert-redis.log" >&2; die "redis-server died"; }
                    done
                    [[ $TLS_LOADGEN == 1 && $proto == 1.3 ]] || continue # TinyServer.LoadGen speaks TLS 1.3 here
                    local kind kinds=(requests) lgc=$c lgp=$p client
                    [[ $point == handshake ]] && kinds=(full resumed) lgc=$TLS_HANDSHAKE_CONNS lgp=1
                    for kind in "${kinds[@]}"; do
                        for server in tinyserver redis; do
                            pid=$TS_PID port=$TS_TLS_PORT
                            [[ $server == redis ]] && pid=$RD_PID port=$RD_PORT
                            log="$tmp/logs/tls-lg-$cert-$mode-$point-$kind-$server-$round"
                            read -r rps p50 p99 errors cpu client < <(run_tls_loadgen "$server" "$pid" "$port" "$lgc" "$lgp" "$kind" "$DURATION" "$log")
                            say "$(printf 'TLS %-5s LoadGen %-8s c=%-4s P=%-2s %-9s %-10s %10s /s  p99 %8s us  server %6s us CPU each, client %s' \
                                "$cert" "$mode" "$lgc" "$lgp" "$kind" "$server" "$rps" "$p99" "$cpu" "$client")"
                            [[ $errors == fail ]] && tail -n 5 "$log".0* >&2
                            printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$mode" "$cert" "$proto" "$lgc" "$lgp" \
                                "$server" "$kind" "$rps" "$p50" "$p99" "$errors" "$cpu" "$client" "$round" >>"$TLS_LG_RUNS"
                        done
                    done
                done
            done
        done
        stop_server "$TS_PID"
        stop_server "$RD_PID"
        if [[ $TLS_LOADGEN == 1 && $TLS_HOLD -gt 0 ]]; then
            measure_tls_memory tinyserver "$cert"
            measure_tls_memory redis "$cert"
        fi
    done
    TLS_LOAD_AFTER=$(cut -d' ' -f1-3 /proc/loadavg)
}
