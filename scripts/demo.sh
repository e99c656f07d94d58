#!/usr/bin/env bash
# What vhdup does today, end to end in under a minute: set up, build, make a
# sample dynamic VHD with qemu-img (scattered data in a mostly empty 2 GiB
# disk), inspect it, expand it into the fixed VHD an upload would leave in
# the page blob, and check that against qemu-img's own conversion.
# (When `vhdup upload` lands this becomes a real upload to Azurite.)
#   scripts/demo.sh        keeps nothing; DEMO_DIR=path keeps the files there
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
step() { printf '\n==> %s\n' "$*"; }

step "setup (idempotent; Azurite is not needed yet)"
VHDUP_SKIP_AZURITE=${VHDUP_SKIP_AZURITE:-1} "$root/scripts/setup.sh"
step "build"
export VHDUP_BUILD_DIR=${VHDUP_BUILD_DIR:-$root/build}
"$root/scripts/build.sh" >/dev/null
vhdup=$VHDUP_BUILD_DIR/vhdup
"$vhdup" --version

if [ -n "${DEMO_DIR:-}" ]; then
  dir=$DEMO_DIR
  mkdir -p "$dir"
else
  dir=$(mktemp -d "${TMPDIR:-/tmp}/vhdup-demo.XXXXXX")
  trap 'rm -rf "$dir"' EXIT
fi
disk=$dir/sample.vhd
rm -f "$disk" "$dir/sample-fixed.vhd" "$dir/sample.raw"

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

step "vhdup expand (sparse output: only non-zero sectors are written)"
"$vhdup" expand "$disk" "$dir/sample-fixed.vhd"
ls -ls "$dir/sample-fixed.vhd"

step "compare with qemu-img convert -O raw"
qemu-img convert -f vpc -O raw "$disk" "$dir/sample.raw"
size=$(stat -c %s "$dir/sample.raw")
cmp -n "$size" "$dir/sample.raw" "$dir/sample-fixed.vhd"
qemu-img info --image-opts "driver=vpc,force_size_calc=current_size,file.filename=$dir/sample-fixed.vhd" |
  grep -E '^(file format|virtual size)'
echo "identical: the first $size bytes match qemu's raw, followed by a 512-byte fixed footer"
echo "data written: $(du -h "$dir/sample-fixed.vhd" | cut -f1) of a $(($(stat -c %s "$dir/sample-fixed.vhd"))) byte file"
echo "done${DEMO_DIR:+; files in $DEMO_DIR}"
