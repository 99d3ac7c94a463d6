#!/usr/bin/env bash
# The whole test suite, on a fresh Debian machine too: installs the real peers the tests drive (tests/install-peers.sh:
# netcat-openbsd, socat, telnet, expect, openssl, haproxy; systemd for systemd-analyze), waiting for another apt-get
# or dpkg if one is at work, builds Release with warnings as errors, runs every test.
set -euo pipefail
cd "$(dirname "$0")/.."

bash tests/install-peers.sh

dotnet build TinyServer.sln -c Release --nologo -v q --tl:off -clp:NoSummary -warnaserror
dotnet test TinyServer.sln -c Release --no-build --nologo -v q
