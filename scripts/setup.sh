#!/usr/bin/env bash
# Installs what a fresh Debian 12 machine lacks to build and test vhdup, and
# the pinned Azurite (third_party/azurite/VERSION) into a cache outside the
# clone, so repeated runs reuse it. Idempotent: a second run installs nothing.
#   scripts/setup.sh            everything
#   VHDUP_SKIP_AZURITE=1 ...    skip the npm part
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)

apt_packages=(
  build-essential cmake pkg-config clang clang-format libclang-rt-14-dev
  libuv1-dev libcurl4-openssl-dev libmbedtls-dev libyaml-dev libcmocka-dev
  libhttp-parser-dev qemu-utils openssl python3 valgrind iproute2 curl ca-certificates procps time socat
  strace libnbd-dev nbdkit libjson-c-dev
)
missing=()
for p in "${apt_packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done
if ! command -v node >/dev/null 2>&1 || ! command -v npm >/dev/null 2>&1; then
  missing+=(nodejs npm)
fi
if [ ${#missing[@]} -gt 0 ]; then
  echo "setup: installing ${missing[*]}"
  sudo=""
  [ "$(id -u)" -eq 0 ] || sudo=sudo
  export DEBIAN_FRONTEND=noninteractive
  $sudo apt-get update -q
  $sudo apt-get install -y -q --no-install-recommends "${missing[@]}"
fi

if [ -z "${VHDUP_SKIP_AZURITE:-}" ]; then
  version=$(cat "$root/third_party/azurite/VERSION")
  cache=${VHDUP_CACHE:-$HOME/.cache/vhdup}/azurite-$version
  bin=$cache/node_modules/.bin/azurite-blob
  if [ ! -x "$bin" ]; then
    echo "setup: installing azurite@$version into $cache (this can take minutes)"
    mkdir -p "$cache"
    cp "$root/third_party/azurite/package.json" "$cache/package.json"
    (cd "$cache" && npm install --no-audit --no-fund --loglevel=error)
  fi
  "$bin" --version >/dev/null
fi
echo "setup: ready"
