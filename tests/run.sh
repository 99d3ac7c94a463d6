#!/usr/bin/env bash
# The whole test suite, on a fresh Debian machine too: installs the real peers the tests drive (tests/install-peers.sh:
# netcat-openbsd, socat, telnet, expect, openssl, haproxy, redis-server; systemd for systemd-analyze), waiting for another apt-get
# or dpkg if one is at work, builds Release with warnings as errors, runs every test.
#
# tests/run.sh --fast: builds the same way and runs only the unit tier ([Trait("Tier", "unit")]: in process, no real
# program or peer, no waiting on real time), without installing the peers; prints how long it took, build included.
# The other tiers are "process" (real programs and peers, real timeouts) and "load" (the machine under load).
set -euo pipefail
cd "$(dirname "$0")/.."

fast=false
case "${1:-}" in
    "") ;;
    --fast) fast=true ;;
    *) echo "usage: tests/run.sh [--fast]" >&2; exit 2 ;;
esac

if ! $fast; then
    bash tests/install-peers.sh
fi

dotnet build TinyServer.sln -c Release --nologo -v q --tl:off -clp:NoSummary -warnaserror
if $fast; then
    dotnet test TinyServer.sln -c Release --no-build --nologo -v q --filter "Tier=unit"
    echo "unit tier: ${SECONDS} s, build included"
else
    # Quiet unless something fails; then each failed test's message, stack and output (from the TRX files).
    results=$(mktemp -d)
    trap 'rm -rf "$results"' EXIT
    set +e
    dotnet test TinyServer.sln -c Release --no-build --nologo -v q --results-directory "$results" --logger trx 2>&1 \
        | grep --line-buffered -v '^Results File: '
    status=${PIPESTATUS[0]}
    set -e
    if [[ $status != 0 ]]; then
        python3 tests/failures.py "$results"
        exit 1
    fi
fi
