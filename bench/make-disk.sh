#!/usr/bin/env bash
# Test disks for the benches, made with qemu-img + qemu-io only: a dynamic
# VHD (qemu's, force_size) holding non-zero data at fixed places.
#
# usage: bench/make-disk.sh [--layout reference|scatter|gaps] OUT.vhd [VIRTUAL_SIZE]
#   reference (default; VIRTUAL_SIZE 2G): the layout of the reference disk the
#     peers' figures were measured on (that one fills the runs with
#     pseudo-random bytes, this one with one byte pattern per run, the same
#     to the zero scan): 1 MiB at 0, 37 MiB at 3 MiB+4 KiB, 50 MiB at 100 MiB,
#     2000 x 4 KiB islands every 256 KiB from 511 MiB+512, 60 MiB at
#     1200 MiB, 40 MiB at 1600 MiB, the last MiB. Runs that do not fit below
#     VIRTUAL_SIZE are left out.
#   scatter (VIRTUAL_SIZE >= 1G): the same 197 MiB whatever the virtual size,
#     for comparing sizes: 96 runs of 2 MiB, each 4 KiB past the start of
#     its 1/96 of the disk (so it straddles two 2 MiB blocks), 256 x 4 KiB
#     islands 3 MiB further on, and the last 4 KiB of the disk.
#   gaps (VIRTUAL_SIZE >= 512M): zero gaps of known sizes, for --merge-gap:
#     five areas one after the other from 1 MiB, each of 1024 x 4 KiB
#     islands with a zero gap of 1, 4, 16, 64 or 256 KiB after each
#     (20 MiB of data over 361 MiB), and the last 4 KiB of the disk.
# VIRTUAL_SIZE takes qemu-img suffixes (K M G T). Writes only OUT.vhd.
set -euo pipefail
layout=reference
if [ "${1:-}" = --layout ]; then
  layout=${2:?--layout needs reference or scatter}
  shift 2
fi
out=${1:?usage: make-disk.sh [--layout reference|scatter|gaps] OUT.vhd [VIRTUAL_SIZE]}
vsize_arg=${2:-}
if [ -z "$vsize_arg" ]; then
  vsize_arg=2G
  [ "$layout" = gaps ] && vsize_arg=1G
fi
if ! command -v qemu-img >/dev/null || ! command -v qemu-io >/dev/null; then
  echo "make-disk: needs qemu-img and qemu-io (apt-get install qemu-utils)" >&2
  exit 2
fi

K=1024
M=$((1024 * K))
case "$vsize_arg" in
*[kK]) vsize=$((${vsize_arg%?} * K)) ;;
*[mM]) vsize=$((${vsize_arg%?} * M)) ;;
*[gG]) vsize=$((${vsize_arg%?} * 1024 * M)) ;;
*[tT]) vsize=$((${vsize_arg%?} * 1024 * 1024 * M)) ;;
*) vsize=$vsize_arg ;;
esac
if [ $((vsize % M)) -ne 0 ] || [ "$vsize" -lt $((8 * M)) ]; then
  echo "make-disk: VIRTUAL_SIZE must be a whole number of MiB, >= 8M" >&2
  exit 2
fi

cmds=()
pattern=0
# put OFFSET LENGTH: one run of non-zero bytes, if it fits.
put() {
  pattern=$((pattern % 254 + 1))
  if [ $(($1 + $2)) -le "$vsize" ]; then
    cmds+=(-c "write -P $pattern $1 $2")
  fi
}

case "$layout" in
reference)
  put 0 $((1 * M))
  put $((3 * M + 4 * K)) $((37 * M))
  put $((100 * M)) $((50 * M))
  for ((i = 0; i < 2000; i++)); do put $((511 * M + 512 + i * 256 * K)) $((4 * K)); done
  put $((1200 * M)) $((60 * M))
  put $((1600 * M)) $((40 * M))
  put $((vsize - M)) $M
  ;;
scatter)
  [ "$vsize" -ge $((1024 * M)) ] || { echo "make-disk: scatter needs VIRTUAL_SIZE >= 1G" >&2; exit 2; }
  step=$((vsize / 96 / M * M))
  for ((i = 0; i < 96; i++)); do put $((i * step + 4 * K)) $((2 * M)); done
  for ((j = 0; j < 256; j++)); do
    put $(((j % 96) * step + 3 * M + (j / 96) * 64 * K)) $((4 * K))
  done
  put $((vsize - 4 * K)) $((4 * K))
  ;;
gaps)
  [ "$vsize" -ge $((512 * M)) ] || { echo "make-disk: gaps needs VIRTUAL_SIZE >= 512M" >&2; exit 2; }
  off=$M
  for gap in 1 4 16 64 256; do
    for ((i = 0; i < 1024; i++)); do
      put "$off" $((4 * K))
      off=$((off + 4 * K + gap * K))
    done
  done
  put $((vsize - 4 * K)) $((4 * K))
  ;;
*)
  echo "make-disk: unknown layout '$layout' (reference, scatter or gaps)" >&2
  exit 2
  ;;
esac

rm -f "$out"
qemu-img create -q -f vpc -o subformat=dynamic,force_size=on "$out" "$vsize"
qemu-io -f vpc "${cmds[@]}" "$out" >/dev/null
