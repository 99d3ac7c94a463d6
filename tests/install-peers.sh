#!/usr/bin/env bash
# Installs with apt-get (through sudo when not root) the real peers the tests drive, those that are missing:
# netcat-openbsd, socat, telnet, expect, openssl, haproxy, redis-server (the load generator's --redis --tls tests);
# systemd for systemd-analyze and systemd-socket-activate; python3 for the socket activation tests' launcher. Or the
# packages named.
#   tests/install-peers.sh [PACKAGE...]
#
# Another package manager at work (unattended-upgrades on a fresh machine) is waited for, up to 300 s: apt-get
# waits by itself for dpkg's locks (DPkg::Lock::Timeout) but takes the package lists' lock (update) and the
# downloads' lock (install) at once or fails (apt 2.6 to 3.1); those failures are retried until the same deadline.
set -euo pipefail

# haproxy: the tests run their own haproxy in the foreground on free ports; Debian's packaged service, if it
# starts at all (policy-rc.d stops it in containers), listens on nothing with the stock configuration.
# redis-server: the load generator's tests run their own on a free port (TLS only, nothing saved).
packages=(netcat-openbsd socat telnet expect openssl haproxy redis-server systemd python3)
[ $# -eq 0 ] || packages=("$@")
missing=()
for package in "${packages[@]}"; do
  dpkg -s "$package" >/dev/null 2>&1 || missing+=("$package")
done
[ ${#missing[@]} -gt 0 ] || exit 0

lock_wait=300
sudo=()
[ "$(id -u)" -eq 0 ] || sudo=(sudo)

# sudo resets the environment: env sets it for apt-get (APT_CONFIG only if set). C messages, to recognise the lock's.
apt_get() {
  "${sudo[@]}" env LC_ALL=C DEBIAN_FRONTEND=noninteractive ${APT_CONFIG:+APT_CONFIG="$APT_CONFIG"} \
    apt-get -qq -o DPkg::Lock::Timeout="$lock_wait" "$@"
}

apt_get_waiting() {
  local deadline=$((SECONDS + lock_wait)) errors told=""
  while ! errors=$(apt_get "$@" 2>&1 >/dev/null); do
    if [[ $errors != *"Could not get lock"* ]] || [ $SECONDS -ge $deadline ]; then
      printf '%s\n' "$errors" >&2
      return 100
    fi
    [ -n "$told" ] || echo "apt-get $1 waits for another package manager: ${errors%%$'\n'*}"
    told=yes
    sleep 2
  done
  [ -z "$errors" ] || printf '%s\n' "$errors" >&2
}

echo "installing ${missing[*]}"
apt_get_waiting update
apt_get_waiting install -y "${missing[@]}"
