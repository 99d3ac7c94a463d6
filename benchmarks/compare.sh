#!/usr/bin/env bash
# TinyServer against redis-server, under the same load generators, on loopback. One command:
#
#   benchmarks/compare.sh                      # about 6 minutes at the default DURATION=5
#   DURATION=3 benchmarks/compare.sh
#
# It builds Release, starts TinyServer and redis-server side by side, drives both with TinyServer's load generator
# (--redis mode for Redis) and, when ../shared/tools/loadgen exists, with the C reference load generator, at every
# connections x pipeline of the matrix, with server and load generator pinned to different CPUs and unpinned. Then it
# measures idle memory per held connection and startup time to the first accepted connection of both servers, and
# writes $OUT.md (a markdown table) and $OUT.svg (a plot). Every load run is bounded in time; every process it starts
# is stopped on exit. See benchmarks/README.md.
#
# Environment (all optional):
#   DURATION=5                 seconds of each measured run
#   CONNS="1 50 1000"          connection counts
#   PIPELINES="1 16"           requests in flight per connection
#   MODES="pinned unpinned"    pinned: server on CPU 0 (taskset -a -p -c 0), load generator on CPU 1 (taskset -c 1)
#   LOADGENS="dotnet c"        dotnet: src/TinyServer.LoadGen; c: the C reference (skipped with a note if absent)
#   SKIP=""                    combinations to leave out, e.g. SKIP="1000x16" (connections x pipeline)
#   SERVER_ENV=""              extra environment for TinyServer only, e.g. SERVER_ENV="DOTNET_gcServer=1"
#   OUT=benchmarks/results     writes $OUT.md and $OUT.svg (relative to the repository root)
#   EXTRAS=1                   0 skips the memory and startup measurements
#   HOLD=10000                 idle connections held for the memory measurement
#   STARTUP_RUNS=5             starts of each server for the startup measurement
#   BUILD=aot                  aot: the server as deployed, published with Native AOT (dotnet publish -p:PublishAot=true,
#                              about 2 minutes); jit: the plain Release build that `dotnet run` uses
#   SERVER_DIR=""              a TinyServer build output folder to measure instead of building src/TinyServer.Server
#                              (e.g. another branch's bin/Release/net10.0)
set -euo pipefail

cd "$(dirname "$0")/.."
for name in CONNS PIPELINES MODES LOADGENS SKIP SERVER_ENV SERVER_DIR BUILD; do
    [[ -n ${!name:-} ]] && export "${name}_SET=1"
done
DURATION=${DURATION:-5}
CONNS=${CONNS:-"1 50 1000"}
PIPELINES=${PIPELINES:-"1 16"}
MODES=${MODES:-"pinned unpinned"}
LOADGENS=${LOADGENS:-"dotnet c"}
SKIP=${SKIP:-""}
SERVER_ENV=${SERVER_ENV:-""}
OUT=${OUT:-benchmarks/results}
EXTRAS=${EXTRAS:-1}
HOLD=${HOLD:-10000}
STARTUP_RUNS=${STARTUP_RUNS:-5}
SERVER_DIR=${SERVER_DIR:-""}
BUILD=${BUILD:-aot}
[[ $BUILD == aot || $BUILD == jit ]] || { echo "[compare] error: BUILD must be aot or jit" >&2; exit 1; }
read -ra SERVER_ENV_ARGS <<<"$SERVER_ENV" # NAME=VALUE words, for env
RUN_LIMIT=$((DURATION + 90)) # a run's hard limit: the measurement plus connecting, starting and reporting

say() { printf '[compare] %s\n' "$*" >&2; }
die() { say "error: $*"; exit 1; }

[[ $DURATION =~ ^[0-9]+$ && $DURATION -ge 1 && $DURATION -le 3600 ]] || die "DURATION must be 1 to 3600 seconds"
ulimit -n 20000 2>/dev/null || ulimit -n "$(ulimit -Hn)"
[[ $(ulimit -n) -ge $((HOLD + 200)) ]] || die "ulimit -n is $(ulimit -n): raise the hard limit to hold $HOLD connections"

# ---------------------------------------------------------------- prerequisites
SUDO=""
[[ $(id -u) -eq 0 ]] || SUDO=sudo
if ! command -v redis-server >/dev/null; then
    say "installing redis-server with apt-get"
    $SUDO apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq redis-server >/dev/null
fi
for tool in dotnet python3 taskset timeout; do
    command -v "$tool" >/dev/null || die "$tool is needed"
done
NCPU=$(nproc)

tmp=$(mktemp -d /tmp/tinyserver-compare.XXXXXX)
PIDS=()
cleanup() {
    local pid
    for pid in "${PIDS[@]+"${PIDS[@]}"}"; do
        kill -TERM "$pid" 2>/dev/null || true
    done
    for pid in "${PIDS[@]+"${PIDS[@]}"}"; do
        for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
        kill -KILL "$pid" 2>/dev/null || true
        wait "$pid" 2>/dev/null || true
    done
    rm -rf "$tmp"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# ---------------------------------------------------------------- helpers in python3 (standard library only)
cat > "$tmp/freeport.py" <<'EOF'
import socket
s = socket.socket()
s.bind(("127.0.0.1", 0))
print(s.getsockname()[1])
EOF

# Waits until a server answers: the banner (tinyserver) or +PONG (redis). Exit 1 after the timeout.
cat > "$tmp/ready.py" <<'EOF'
import socket, sys, time
kind, port, limit = sys.argv[1], int(sys.argv[2]), float(sys.argv[3])
deadline = time.monotonic() + limit
while time.monotonic() < deadline:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=2) as s:
            if kind == "redis":
                s.sendall(b"PING\r\n")
            data = b""
            while b"\n" not in data:
                chunk = s.recv(256)
                if not chunk:
                    break
                data += chunk
            if data.startswith(b"WELCOME" if kind == "tinyserver" else b"+PONG"):
                sys.exit(0)
    except OSError:
        pass
    time.sleep(0.05)
sys.exit(1)
EOF

# Holds N idle connections (the fallback when the C reference is absent): dials 64 at a time; a TinyServer
# connection counts once its banner has arrived, a Redis one once connected. Prints "HOLDING connected=N", holds,
# then closes everything.
cat > "$tmp/hold.py" <<'EOF'
import selectors, socket, sys, time
kind, port, count, hold = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), float(sys.argv[4])
banner = kind == "tinyserver"
sel = selectors.DefaultSelector()
held, pending, started, failed = [], {}, 0, 0
t0 = time.monotonic()
deadline = t0 + 60
while (started < count or pending) and time.monotonic() < deadline:
    while started < count and len(pending) < 64:
        s = socket.socket()
        s.setblocking(False)
        s.connect_ex(("127.0.0.1", port))
        pending[s] = b""
        sel.register(s, selectors.EVENT_WRITE)
        started += 1
    for key, ev in sel.select(0.1):
        s = key.fileobj
        if ev & selectors.EVENT_WRITE:
            if s.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR):
                sel.unregister(s); s.close(); del pending[s]; failed += 1
            elif banner:
                sel.modify(s, selectors.EVENT_READ)
            else:
                sel.unregister(s); held.append(s); del pending[s]
        else:
            try:
                data = s.recv(256)
            except OSError:
                data = b""
            if not data:
                sel.unregister(s); s.close(); del pending[s]; failed += 1
                continue
            pending[s] += data
            if b"\n" in pending[s]:
                sel.unregister(s); held.append(s); del pending[s]
print(f"HOLDING connected={len(held)} failed={failed + len(pending)} connect_s={time.monotonic() - t0:.3f}", flush=True)
time.sleep(hold)
print(f"held connected={len(held)}", flush=True)
EOF

# Starts a server RUNS times and times each start until the first connection is answered (banner, or +PONG).
# Usage: startup.py KIND RUNS COMMAND... (the word PORT in COMMAND is replaced by a free port below the kernel's
# ephemeral range: TinyServer takes 1025-49151 only)
cat > "$tmp/startup.py" <<'EOF'
import random, signal, socket, statistics, subprocess, sys, time
kind, runs, template = sys.argv[1], int(sys.argv[2]), sys.argv[3:]

def free_port():
    while True:
        port = random.randint(20000, 32000)
        with socket.socket() as s:
            try:
                s.bind(("127.0.0.1", port))
                return port
            except OSError:
                pass

times = []
for _ in range(runs):
    port = free_port()
    cmd = [str(port) if a == "PORT" else a for a in template]
    t0 = time.monotonic()
    p = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    ok = False
    try:
        while time.monotonic() - t0 < 30 and p.poll() is None:
            try:
                with socket.create_connection(("127.0.0.1", port), timeout=5) as c:
                    if kind == "redis":
                        c.sendall(b"PING\r\n")
                    data = c.recv(256)
                    if data.startswith(b"WELCOME" if kind == "tinyserver" else b"+PONG"):
                        ok = True
                        break
            except OSError:
                time.sleep(0.001)
        elapsed = (time.monotonic() - t0) * 1000
    finally:
        p.send_signal(signal.SIGTERM)
        try:
            p.wait(10)
        except subprocess.TimeoutExpired:
            p.kill(); p.wait()
    if not ok:
        print(f"startup.py: {' '.join(cmd)}: no answer (exit code {p.returncode})", file=sys.stderr)
        print("- - -"); sys.exit(1)
    times.append(elapsed)
    time.sleep(0.2)
print(f"{statistics.median(times):.0f} {min(times):.0f} {max(times):.0f}")
EOF

# ---------------------------------------------------------------- build
if [[ -z $SERVER_DIR && $BUILD == aot ]]; then
    say "publishing the server with Native AOT (src/TinyServer.Server; about 2 minutes)"
    dotnet publish -c Release -r "linux-$(dotnet --info | awk '/RID:/ { split($2, r, "-"); print r[2]; exit }')" -p:PublishAot=true \
        --nologo -v quiet -o "$tmp/published" src/TinyServer.Server/TinyServer.Server.csproj >"$tmp/build.log" 2>&1 \
        || { tail -30 "$tmp/build.log" >&2; die "publish failed"; }
    SERVER_DIR=$tmp/published
elif [[ -z $SERVER_DIR ]]; then
    say "building Release (src/TinyServer.Server, src/TinyServer.LoadGen)"
    dotnet build -c Release --nologo -v quiet src/TinyServer.Server/TinyServer.Server.csproj >"$tmp/build.log" 2>&1 \
        || { tail -30 "$tmp/build.log" >&2; die "build failed"; }
    SERVER_DIR=src/TinyServer.Server/bin/Release/net10.0
else
    [[ -x $SERVER_DIR/TinyServer.Server ]] || die "SERVER_DIR: no TinyServer.Server in $SERVER_DIR"
    say "building Release (src/TinyServer.LoadGen); the server is $SERVER_DIR"
fi
dotnet build -c Release --nologo -v quiet src/TinyServer.LoadGen/TinyServer.LoadGen.csproj >>"$tmp/build.log" 2>&1 \
    || { tail -30 "$tmp/build.log" >&2; die "build failed"; }
# Private copies: a rebuild during the run cannot change the binaries under test.
cp -r "$SERVER_DIR" "$tmp/server"
cp -r src/TinyServer.LoadGen/bin/Release/net10.0 "$tmp/lg"

CLG=""
NOTES=()
if [[ " $LOADGENS " == *" c "* ]]; then
    if [[ -f ../shared/tools/loadgen/loadgen.c ]] && command -v gcc >/dev/null; then
        gcc -O2 -pthread -o "$tmp/loadgen" ../shared/tools/loadgen/loadgen.c
        CLG="$tmp/loadgen"
    else
        NOTES+=("The C reference load generator (../shared/tools/loadgen, and gcc) is not here: only TinyServer.LoadGen was used, and the idle connections were held by a small python3 script.")
        LOADGENS=$(tr ' ' '\n' <<<"$LOADGENS" | grep -vx c | tr '\n' ' ' || true)
    fi
fi
[[ -n ${LOADGENS// /} ]] || die "no load generator left to run"
if [[ $NCPU -lt 2 && $MODES == *pinned* ]]; then
    NOTES+=("One CPU only: the pinned runs were skipped.")
    MODES=unpinned
fi

# ---------------------------------------------------------------- servers
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

# ---------------------------------------------------------------- idle memory per held connection, startup time
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
LOAD_AFTER=$(cut -d' ' -f1-3 /proc/loadavg)

# ---------------------------------------------------------------- the report: $OUT.md and $OUT.svg
mkdir -p "$(dirname "$OUT")"
RUNTIME=$(dotnet --list-runtimes | awk '/Microsoft.NETCore.App/ { v = $2 } END { print v }')
REDIS_VERSION=$(redis-server --version | grep -oE 'v=[0-9.]+' | cut -d= -f2)
CPU_MODEL=$(awk -F': ' '/model name/ { print $2; exit }' /proc/cpuinfo)
NOTES_TEXT=$(printf '%s\n' "${NOTES[@]+"${NOTES[@]}"}")
export BUILD RUNS MEMORY STARTUP OUT DURATION CONNS PIPELINES MODES LOADGENS SKIP SERVER_ENV SERVER_DIR RUNTIME REDIS_VERSION CPU_MODEL NCPU LOAD_BEFORE LOAD_AFTER NOTES_TEXT \
    HOLD STARTUP_RUNS TS_RSS_AFTER_LOAD RD_RSS_AFTER_LOAD CLG
python3 - <<'EOF'
import os, math, platform, time
from html import escape

E = os.environ
runs = [l.rstrip("\n").split("\t") for l in open(E["RUNS"]) if l.strip()]
data = {}
for mode, lg, c, p, server, rps, p50, p99, errors in runs:
    data[(mode, lg, int(c), int(p), server)] = (rps, p50, p99, errors)
keys = []
for mode, lg, c, p, server, *_ in runs:
    k = (mode, lg, int(c), int(p))
    if k not in keys:
        keys.append(k)

def num(s):
    try:
        return float(s)
    except ValueError:
        return None

def fmt_rps(s):
    v = num(s)
    return "failed" if v is None else f"{v:,.0f}"

def fmt_us(s):
    v = num(s)
    return "-" if v is None else (f"{v:,.0f}" if v >= 100 else f"{v:.1f}")

lgname = {"dotnet": "TinyServer.LoadGen", "c": "C reference"}
md = []
md.append("# TinyServer and Redis under the same load")
md.append("")
command = f"DURATION={E['DURATION']} "
for name in ("CONNS", "PIPELINES", "MODES", "LOADGENS", "SKIP", "SERVER_ENV", "SERVER_DIR"):
    if E.get(name + "_SET"):
        command += f"{name}=\"{E[name]}\" "
md.append(f"Written by `benchmarks/compare.sh` on {time.strftime('%Y-%m-%d %H:%M %Z')}: `{command}benchmarks/compare.sh`.")
md.append("")
md.append(f"- Machine: {E['CPU_MODEL']}, {E['NCPU']} CPUs, Linux {platform.release()}; "
          f"load average {E['LOAD_BEFORE']} before, {E['LOAD_AFTER']} after (other work shares this machine).")
md.append(f"- TinyServer: {'Release build from `' + E['SERVER_DIR'] + '`' if E.get('SERVER_DIR_SET') else ('Native AOT publish' if E['BUILD'] == 'aot' else 'Release build (JIT)')} on .NET {E['RUNTIME']}, `--port 0 --bind 127.0.0.1 --max-connections 20000`"
          + (f", environment `{E['SERVER_ENV']}`" if E['SERVER_ENV'] else "") + ".")
md.append(f"- Redis {E['REDIS_VERSION']}: `redis-server --save '' --appendonly no --protected-mode yes --bind 127.0.0.1 "
          "--port P --daemonize no --maxclients 19000`.")
md.append(f"- Request: `ECHO hello` ({E['DURATION']} s per run after connecting; a warm-up of 2 s per server and pipeline depth before). "
          "pinned: server on CPU 0 (`taskset -a -p -c 0 PID`), load generator on CPU 1 (`taskset -c 1`); "
          "unpinned: no affinity.")
for n in filter(None, E["NOTES_TEXT"].split("\n")):
    md.append(f"- {n}")
md.append("")
md.append("## Throughput and latency")
md.append("")
md.append("| Pinning | Load generator | Connections | Pipeline | TinyServer requests/s | p50 µs | p99 µs "
          "| Redis requests/s | p50 µs | p99 µs | TinyServer / Redis |")
md.append("|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
for k in keys:
    t = data.get(k + ("tinyserver",), ("-",) * 4)
    r = data.get(k + ("redis",), ("-",) * 4)
    tv, rv = num(t[0]), num(r[0])
    ratio = f"{tv / rv:.2f}" if tv and rv else "-"
    err = []
    for name, row in (("TinyServer", t), ("Redis", r)):
        if row[3] not in ("0", "-"):
            err.append(f"{name} errors: {row[3]}")
    md.append(f"| {k[0]} | {lgname[k[1]]} | {k[2]:,} | {k[3]} | {fmt_rps(t[0])} | {fmt_us(t[1])} | {fmt_us(t[2])} "
              f"| {fmt_rps(r[0])} | {fmt_us(r[1])} | {fmt_us(r[2])} | {ratio}{' (' + '; '.join(err) + ')' if err else ''} |")
md.append("")
md.append("Latency is per request, from its write to its reply, each pipelined request timed on its own.")
md.append("")

mem = [l.rstrip("\n").split("\t") for l in open(E["MEMORY"]) if l.strip()]
if mem:
    md.append("## Idle memory per held connection")
    md.append("")
    holder = "the C reference `--connect-only -c N -d 5 --connect-batch 64`" if E["CLG"] else "a python3 script (the C reference is absent)"
    md.append(f"A fresh server; RSS (`VmRSS`) after one answered connection, then 2 s after {int(E['HOLD']):,} idle "
              f"connections are open (held by {holder}; TinyServer connections count once their banner arrived).")
    md.append("")
    md.append("| Server | RSS before | RSS holding | Connections held | (RSS held - RSS before) / connections |")
    md.append("|---|---:|---:|---:|---:|")
    for server, before, during, held, probe in mem:
        b, d, h = int(before), int(during), int(held)
        per = f"{(d - b) / h:.1f} KiB" if h else "-"
        md.append(f"| {'TinyServer' if server == 'tinyserver' else 'Redis'} | {b / 1024:.1f} MiB | {d / 1024:.1f} MiB | {h:,} | {per} |")
    md.append("")
    md.append(f"After the load runs above, before they were stopped: TinyServer RSS {int(E['TS_RSS_AFTER_LOAD']) / 1024:.1f} MiB, "
              f"Redis {int(E['RD_RSS_AFTER_LOAD']) / 1024:.1f} MiB.")
    md.append("")

st = [l.rstrip("\n").split("\t") for l in open(E["STARTUP"]) if l.strip()]
if st:
    md.append("## Startup to the first answered connection")
    md.append("")
    md.append(f"From starting the process to the first connection's banner (TinyServer, the apphost "
              f"`TinyServer.Server --port P --bind 127.0.0.1`) or `+PONG` (Redis), connecting every millisecond; "
              f"{E['STARTUP_RUNS']} starts each.")
    md.append("")
    md.append("| Server | Median ms | Min ms | Max ms |")
    md.append("|---|---:|---:|---:|")
    for row in st:
        name = "TinyServer" if row[0] == "tinyserver" else "Redis"
        md.append(f"| {name} | " + " | ".join(row[1:4]) + " |")
    md.append("")

open(E["OUT"] + ".md", "w").write("\n".join(md))

# The plot: requests/s (log scale) for each connections x pipeline, one panel per pinning mode.
modes = [m for m in ("pinned", "unpinned") if any(k[0] == m for k in keys)]
series = [(lg, s) for lg in ("dotnet", "c") for s in ("tinyserver", "redis") if any(k[1] == lg for k in keys)]
colors = {("dotnet", "tinyserver"): "#1f5fa8", ("dotnet", "redis"): "#c0392b",
          ("c", "tinyserver"): "#7fb2e5", ("c", "redis"): "#f1948a"}
groups = []
for k in keys:
    g = (k[2], k[3])
    if g not in groups:
        groups.append(g)
vals = [num(v[0]) for v in data.values() if num(v[0])]
lo = 10 ** math.floor(math.log10(min(vals))) if vals else 1
hi = 10 ** math.ceil(math.log10(max(vals))) if vals else 10
W, PH, top, left, right = 960, 300, 70, 80, 20
H = top + len(modes) * (PH + 70) + 20
gw = (W - left - right) / max(1, len(groups))
bw = min(28, gw * 0.75 / max(1, len(series)))
svg = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{W}" height="{H}" font-family="sans-serif" font-size="12">',
       f'<rect width="{W}" height="{H}" fill="white"/>',
       f'<text x="{W / 2}" y="22" text-anchor="middle" font-size="16">TinyServer and Redis, ECHO hello, requests/s (log scale)</text>',
       f'<text x="{W / 2}" y="{H - 8}" text-anchor="middle" fill="#555">under each group: TinyServer / Redis requests/s, '
       f'for each load generator in the order of the legend</text>']
lx = left
for lg, s in series:
    label = f"{'TinyServer' if s == 'tinyserver' else 'Redis'}, {lgname[lg]}"
    svg.append(f'<rect x="{lx}" y="36" width="12" height="12" fill="{colors[(lg, s)]}"/>')
    svg.append(f'<text x="{lx + 16}" y="46">{escape(label)}</text>')
    lx += 16 + 7.2 * len(label) + 20
def y_of(v, y0):
    return y0 + PH - (math.log10(v) - math.log10(lo)) / (math.log10(hi) - math.log10(lo)) * PH
for mi, mode in enumerate(modes):
    y0 = top + mi * (PH + 70) + 20
    svg.append(f'<text x="{left}" y="{y0 - 8}" font-weight="bold">{mode}</text>')
    d = lo
    while d <= hi * 1.0001:
        y = y_of(d, y0)
        svg.append(f'<line x1="{left}" x2="{W - right}" y1="{y:.1f}" y2="{y:.1f}" stroke="#ddd"/>')
        svg.append(f'<text x="{left - 6}" y="{y + 4:.1f}" text-anchor="end">{d:,.0f}</text>')
        d *= 10
    for gi, (c, p) in enumerate(groups):
        gx = left + gi * gw + (gw - bw * len(series)) / 2
        for si, (lg, s) in enumerate(series):
            v = data.get((mode, lg, c, p, s))
            x = gx + si * bw
            if v and num(v[0]):
                y = y_of(num(v[0]), y0)
                svg.append(f'<rect x="{x:.1f}" y="{y:.1f}" width="{bw - 2}" height="{y0 + PH - y:.1f}" fill="{colors[(lg, s)]}">'
                           f'<title>{escape(f"{mode} {lgname[lg]} c={c} P={p} {s}: {num(v[0]):,.0f} req/s, p99 {v[2]} us")}</title></rect>')
        svg.append(f'<text x="{left + gi * gw + gw / 2:.1f}" y="{y0 + PH + 16}" text-anchor="middle">c={c:,} P={p}</text>')
        ratios = []
        for lg in ("dotnet", "c"):
            t, r = data.get((mode, lg, c, p, "tinyserver")), data.get((mode, lg, c, p, "redis"))
            if t and r and num(t[0]) and num(r[0]):
                ratios.append(f"{num(t[0]) / num(r[0]):.2f}")
        if ratios:
            svg.append(f'<text x="{left + gi * gw + gw / 2:.1f}" y="{y0 + PH + 32}" text-anchor="middle" fill="#555">'
                       f'{" / ".join(ratios)}</text>')
    svg.append(f'<line x1="{left}" x2="{W - right}" y1="{y0 + PH}" y2="{y0 + PH}" stroke="#333"/>')
svg.append("</svg>")
open(E["OUT"] + ".svg", "w").write("\n".join(svg) + "\n")
EOF
say "wrote $OUT.md and $OUT.svg"
cat "$OUT.md"
