#!/usr/bin/env bash
# The README's test command: set up, build, run every test (unit, fuzz corpus
# replays, end-to-end against qemu-img disks, Azurite and our test server).
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
"$root/scripts/setup.sh"
export VHDUP_BUILD_DIR=${VHDUP_BUILD_DIR:-$root/build}
"$root/scripts/build.sh"
cd "$VHDUP_BUILD_DIR"
ctest --output-on-failure -j "$(nproc)" "$@"
