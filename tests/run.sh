#!/usr/bin/env bash
# The whole test suite, on a fresh Debian machine too: installs the real peers the tests drive
# (netcat-openbsd, socat, telnet, expect, openssl, haproxy; systemd for systemd-analyze), builds Release with warnings as errors, runs every test.
set -euo pipefail
cd "$(dirname "$0")/.."

missing=()
# haproxy: the tests run their own haproxy in the foreground on free ports; Debian's packaged service, if it
# starts at all (policy-rc.d stops it in containers), listens on nothing with the stock configuration.
for package in netcat-openbsd socat telnet expect openssl haproxy systemd; do
  dpkg -s "$package" >/dev/null 2>&1 || missing+=("$package")
done
if [ ${#missing[@]} -gt 0 ]; then
  sudo=""
  [ "$(id -u)" -ne 0 ] && sudo=sudo
  echo "installing ${missing[*]}"
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq "${missing[@]}" >/dev/null
fi

dotnet build TinyServer.sln -c Release --nologo -v q --tl:off -clp:NoSummary -warnaserror
dotnet test TinyServer.sln -c Release --no-build --nologo -v q
