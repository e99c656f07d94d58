#!/usr/bin/env bash
# The main job, end to end on this machine: set up, build, start a local
# Azurite (the pinned emulator) on a free loopback port, make a sample
# dynamic VHD with qemu-img (a 2 GiB disk holding ~40 MiB of scattered
# data), upload it with `vhdup upload`, read the blob back and check it is
# exactly the disk as qemu-img sees it plus a fixed VHD footer, and print
# the summary. Everything it starts is stopped by PID at exit.
#   scripts/demo.sh        keeps nothing; DEMO_DIR=path keeps the files there
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
step() { printf '\n==> %s\n' "$*"; }

step "setup (idempotent)"
"$root/scripts/setup.sh"
step "build"
export VHDUP_BUILD_DIR=${VHDUP_BUILD_DIR:-$root/build}
"$root/scripts/build.sh" >/dev/null
vhdup=$VHDUP_BUILD_DIR/vhdup
"$vhdup" --version

# The e2e helpers start Azurite and read blobs back with a signer of their
# own (bash + openssl), independent of vhdup's code.
# shellcheck source=../test/e2e/lib.sh
source "$root/test/e2e/lib.sh"
# shellcheck source=../test/e2e/lib_azure.sh
source "$root/test/e2e/lib_azure.sh"
dir=${DEMO_DIR:-$T}
mkdir -p "$dir"
disk=$dir/sample.vhd
rm -f "$disk" "$dir/sample.raw" "$dir/blob.vhd"

step "start Azurite $(cat "$root/third_party/azurite/VERSION") on a free loopback port"
start_azurite
echo "Azurite at $AZURITE_URL (pid ${_pids[-1]})"

step "make a 2 GiB dynamic VHD holding ~40 MiB of scattered data (qemu-img, qemu-io)"
qemu-img create -q -f vpc -o subformat=dynamic,force_size=on "$disk" 2G
qemu-io -f vpc \
  -c 'write -P 0xaa 0 1M' \
  -c 'write -P 0xbb 100M 32M' \
  -c 'write -P 0xcc 1000M 4k' \
  -c 'write -P 0xdd 1500M 6M' \
  -c 'write -P 0xee 2047M 1M' "$disk" >/dev/null
ls -ls "$disk"

step "vhdup inspect"
"$vhdup" inspect "$disk"

step "vhdup upload (credentials from AZURE_STORAGE_CONNECTION_STRING, as the Azure CLI reads them)"
AZURE_STORAGE_CONNECTION_STRING=$AZURITE_CONN \
  "$vhdup" upload "$disk" "$AZURITE_URL/vhds/sample.vhd" --create-container --verify

step "read the blob back (independent signer) and compare with qemu-img convert -O raw"
az_get "$AZURITE_URL" vhds/sample.vhd "$dir/blob.vhd"
qemu-img convert -f vpc -O raw "$disk" "$dir/sample.raw"
size=$(stat -c %s "$dir/sample.raw")
[ "$(stat -c %s "$dir/blob.vhd")" -eq $((size + 512)) ] || fail "blob is not the disk + 512 bytes"
cmp -n "$size" "$dir/sample.raw" "$dir/blob.vhd" || fail "blob data differs from the disk"
qemu-img info -f vpc "$dir/blob.vhd" | grep -E '^(file format|virtual size)'
echo "identical: the blob is the disk's $size bytes followed by a 512-byte fixed VHD footer"
echo "done${DEMO_DIR:+; files in $DEMO_DIR}"
