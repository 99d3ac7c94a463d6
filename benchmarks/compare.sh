#!/usr/bin/env bash
# TinyServer against redis-server, under the same load generators, on loopback. One command:
#
#   benchmarks/compare.sh                      # about 10 minutes at the default DURATION=5, TLS included
#   DURATION=3 benchmarks/compare.sh
#   PLAIN=0 EXTRAS=0 benchmarks/compare.sh     # the TLS rows only
#
# It builds Release, starts TinyServer and redis-server side by side, drives both with TinyServer's load generator
# (--redis mode for Redis) and, when ../shared/tools/loadgen exists, with the C reference load generator, at every
# connections x pipeline of the matrix, with server and load generator pinned to different CPUs and unpinned. Then the
# same over TLS, both servers with the same certificate (ECDSA P-256, RSA 2048), driven by the C reference built with
# TLS, plus full handshakes per second with openssl s_time, and TinyServer.LoadGen over TLS (requests, full and resumed
# handshakes, memory per idle TLS connection). Then it measures idle memory per held connection and
# startup time to the first accepted connection of both servers, and writes $OUT.md (a markdown table), $OUT.svg (a
# plot), $TLS_OUT.md and $TLS_OUT.svg; $OUT.md gets the TLS tables of the same run too. Every load run is bounded in time; every process it starts is stopped on exit.
# See benchmarks/README.md.
#
# This file is the driver: settings, prerequisites, the exit trap, and the order of the steps. The steps are in
# benchmarks/compare/, sourced (they share this shell's variables and its PIDS list):
#   build.sh    build_binaries: the server (Native AOT, Release, or SERVER_DIR), TinyServer.LoadGen, the C reference
#   servers.sh  start_tinyserver, start_redis, stop_server, forget, rss_kib, pin
#   matrix.sh   run_load (one bounded load run), run_matrix (warm-up, then the connections x pipeline matrix)
#   tls.sh      make_certs, run_tls_load, run_handshakes, run_tls (the TLS rows)
#   extras.sh   measure_extras: idle memory per held connection, startup time
#   *.py        python3 helpers, standard library only: freeport, ready, hold, startup, cpuwin (a server's CPU time
#               during a load run), report ($OUT.md, $OUT.svg) and report_tls ($TLS_OUT.md, $TLS_OUT.svg)
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
#   PLAIN=1                    0 skips the plaintext matrix ($OUT.md is then written only for EXTRAS=1)
# TLS (the C reference built with -DWITH_TLS, which needs libssl-dev; without it a note and no TLS rows):
#   TLS=1                      0 skips the TLS rows
#   TLS_CERTS="ecdsa rsa"      certificates, made for the run: ecdsa (P-256), rsa (2048 bits)
#   TLS_LOADS=CONNS x PIPELINES, less SKIP: connections x pipeline over TLS 1.3, e.g. TLS_LOADS="50x1 1000x1"
#   TLS12_LOADS="50x1"         the same over TLS 1.2 ("" for none; "handshake" adds the TLS 1.2 handshake rate)
#   TLS_MODES="unpinned"       pinning modes of the TLS rows, as MODES
#   TLS_HANDSHAKE_CLIENTS=2    openssl s_time -new clients at once for the handshake rate; 0 skips it
#   TLS_ROUNDS=1               rounds of all TLS points, interleaved; the report gives medians
#   TLS_LOADGEN=1              TinyServer.LoadGen too, at every TLS 1.3 point, both servers (0 skips): requests, and
#                              new sessions of one request each, full handshakes and resumed (TLS 1.3 tickets)
#   TLS_HANDSHAKE_CONNS=16     TinyServer.LoadGen's connections at once for its handshake rows
#   TLS_HOLD=2000              idle TLS sessions held (by TinyServer.LoadGen) for memory per idle TLS connection; 0 skips
#   TLS_OUT=$OUT-tls           writes $TLS_OUT.md and $TLS_OUT.svg
#   RUN_NOTE=""                a sentence for the notes of both reports, e.g. what else the machine was doing
set -euo pipefail

cd "$(dirname "$0")/.."
for name in CONNS PIPELINES MODES LOADGENS SKIP SERVER_ENV SERVER_DIR BUILD PLAIN TLS_CERTS TLS_LOADS TLS12_LOADS TLS_MODES \
    TLS_HANDSHAKE_CLIENTS TLS_ROUNDS TLS_LOADGEN TLS_HANDSHAKE_CONNS TLS_HOLD; do
    [[ -n ${!name:-} ]] && export "${name}_SET=1"
done
[[ -n ${TLS12_LOADS+set} ]] && export TLS12_LOADS_SET=1 # "" is a choice: no TLS 1.2 point
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
PLAIN=${PLAIN:-1}
TLS=${TLS:-1}
TLS_CERTS=${TLS_CERTS:-"ecdsa rsa"}
if [[ -z ${TLS_LOADS:-} ]]; then
    TLS_LOADS=""
    for c in $CONNS; do
        for p in $PIPELINES; do
            [[ " $SKIP " == *" ${c}x${p} "* ]] || TLS_LOADS+="${c}x${p} "
        done
    done
fi
TLS12_LOADS=${TLS12_LOADS-"50x1"}
TLS_MODES=${TLS_MODES:-unpinned}
TLS_HANDSHAKE_CLIENTS=${TLS_HANDSHAKE_CLIENTS:-2}
TLS_ROUNDS=${TLS_ROUNDS:-1}
TLS_LOADGEN=${TLS_LOADGEN:-1}
TLS_HANDSHAKE_CONNS=${TLS_HANDSHAKE_CONNS:-16}
TLS_HOLD=${TLS_HOLD:-2000}
TLS_OUT=${TLS_OUT:-$OUT-tls}
[[ $BUILD == aot || $BUILD == jit ]] || { echo "[compare] error: BUILD must be aot or jit" >&2; exit 1; }
read -ra SERVER_ENV_ARGS <<<"$SERVER_ENV" # NAME=VALUE words, for env
RUN_LIMIT=$((DURATION + 90)) # a run's hard limit: the measurement plus connecting, starting and reporting

say() { printf '[compare] %s\n' "$*" >&2; }
die() { say "error: $*"; exit 1; }

[[ $DURATION =~ ^[0-9]+$ && $DURATION -ge 1 && $DURATION -le 3600 ]] || die "DURATION must be 1 to 3600 seconds"
[[ $PLAIN == [01] && $TLS == [01] && $EXTRAS == [01] ]] || die "PLAIN, TLS and EXTRAS are 0 or 1"
for cert in $TLS_CERTS; do [[ $cert == ecdsa || $cert == rsa ]] || die "TLS_CERTS: '$cert' is not ecdsa or rsa"; done
for point in $TLS_LOADS $TLS12_LOADS; do
    [[ $point =~ ^[0-9]+x[0-9]+$ || ($point == handshake && " $TLS12_LOADS " == *" handshake "*) ]] \
        || die "TLS_LOADS, TLS12_LOADS: '$point' is not CONNECTIONSxPIPELINE (TLS12_LOADS may also name handshake)"
done
for mode in $TLS_MODES; do [[ $mode == pinned || $mode == unpinned ]] || die "TLS_MODES: '$mode' is not pinned or unpinned"; done
[[ $TLS_HANDSHAKE_CLIENTS =~ ^[0-9]+$ && $TLS_HANDSHAKE_CLIENTS -le 64 ]] || die "TLS_HANDSHAKE_CLIENTS must be 0 to 64"
[[ $TLS_ROUNDS =~ ^[0-9]+$ && $TLS_ROUNDS -ge 1 && $TLS_ROUNDS -le 20 ]] || die "TLS_ROUNDS must be 1 to 20"
[[ $TLS_LOADGEN == [01] ]] || die "TLS_LOADGEN is 0 or 1"
[[ $TLS_HANDSHAKE_CONNS =~ ^[0-9]+$ && $TLS_HANDSHAKE_CONNS -ge 1 && $TLS_HANDSHAKE_CONNS -le 1000 ]] || die "TLS_HANDSHAKE_CONNS must be 1 to 1000"
[[ $TLS_HOLD =~ ^[0-9]+$ && $TLS_HOLD -le 15000 ]] || die "TLS_HOLD must be 0 to 15000"
[[ $PLAIN == 1 || $TLS == 1 || $EXTRAS == 1 ]] || die "PLAIN=0, TLS=0 and EXTRAS=0: nothing to run"
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

# ---------------------------------------------------------------- the steps
PARTS=benchmarks/compare
# shellcheck source=benchmarks/compare/build.sh
source "$PARTS/build.sh"
# shellcheck source=benchmarks/compare/servers.sh
source "$PARTS/servers.sh"
# shellcheck source=benchmarks/compare/matrix.sh
source "$PARTS/matrix.sh"
# shellcheck source=benchmarks/compare/tls.sh
source "$PARTS/tls.sh"
# shellcheck source=benchmarks/compare/extras.sh
source "$PARTS/extras.sh"
cp "$PARTS"/*.py "$tmp/" # private copies, like the binaries

build_binaries
[[ $PLAIN == 1 || $TLS == 1 || $EXTRAS == 1 ]] || die "nothing left to run"
if [[ -n ${RUN_NOTE:-} ]]; then
    NOTES+=("$RUN_NOTE")
    TLS_NOTES+=("$RUN_NOTE")
fi
LOAD_BEFORE=$(cut -d' ' -f1-3 /proc/loadavg)
RUNS="$tmp/runs.tsv"
: >"$RUNS"
TS_RSS_AFTER_LOAD="" RD_RSS_AFTER_LOAD=""
[[ $PLAIN == 0 ]] || run_matrix
run_tls
measure_extras
LOAD_AFTER=$(cut -d' ' -f1-3 /proc/loadavg)

# ---------------------------------------------------------------- the reports: $OUT.md, $OUT.svg, $TLS_OUT.md, $TLS_OUT.svg
RUNTIME=$(dotnet --list-runtimes | awk '/Microsoft.NETCore.App/ { v = $2 } END { print v }')
REDIS_VERSION=$(redis-server --version | grep -oE 'v=[0-9.]+' | cut -d= -f2)
CPU_MODEL=$(awk -F': ' '/model name/ { print $2; exit }' /proc/cpuinfo)
NOTES_TEXT=$(printf '%s\n' "${NOTES[@]+"${NOTES[@]}"}")
export BUILD RUNS MEMORY STARTUP OUT DURATION CONNS PIPELINES MODES LOADGENS SKIP SERVER_ENV SERVER_DIR RUNTIME REDIS_VERSION CPU_MODEL NCPU LOAD_BEFORE LOAD_AFTER NOTES_TEXT \
    HOLD STARTUP_RUNS TS_RSS_AFTER_LOAD RD_RSS_AFTER_LOAD CLG
if [[ $PLAIN == 1 || $EXTRAS == 1 ]]; then
    mkdir -p "$(dirname "$OUT")"
    python3 "$tmp/report.py"
    if [[ $PLAIN == 1 ]]; then say "wrote $OUT.md and $OUT.svg"; else say "wrote $OUT.md"; fi
    cat "$OUT.md"
fi
if [[ $TLS == 1 ]]; then
    mkdir -p "$(dirname "$TLS_OUT")"
    OPENSSL_VERSION=$(openssl version | cut -d' ' -f2)
    TLS_NOTES_TEXT=$(printf '%s\n' "${TLS_NOTES[@]+"${TLS_NOTES[@]}"}")
    export TLS_RUNS TLS_LG_RUNS TLS_MEMORY TLS_LOADGEN TLS_HANDSHAKE_CONNS TLS_HOLD TLS_OUT TLS_CERTS TLS_LOADS TLS12_LOADS TLS_MODES TLS_HANDSHAKE_CLIENTS TLS_ROUNDS TLS_LOAD_BEFORE TLS_LOAD_AFTER \
        TLS_NOTES_TEXT OPENSSL_VERSION PLAIN EXTRAS
    python3 "$tmp/report_tls.py"
    say "wrote $TLS_OUT.md and $TLS_OUT.svg"
    cat "$TLS_OUT.md"
    if [[ $PLAIN == 1 || $EXTRAS == 1 ]]; then # the TLS tables in $OUT.md too, from the same run: one page for both
        { printf '\n# Over TLS, in the same run\n\nHow it was measured: [%s.md](%s.md).\n\n' "$(basename "$TLS_OUT")" "$(basename "$TLS_OUT")"
          sed -n '/^## /,$p' "$TLS_OUT.md" | sed 's/^## /### /'; } >>"$OUT.md"
        say "appended the TLS tables to $OUT.md"
    fi
fi
