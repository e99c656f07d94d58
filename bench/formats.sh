#!/usr/bin/env bash
# What reading a disk format costs vhdup against qemu-img, in one run:
#
# 1. A 64 GiB dynamic VHDX (qemu-img create -f vhdx, subformat=dynamic,
#    qemu's default block size for that size) holding about 1 GiB in a
#    realistic layout, written with qemu-io: four big runs of 224 MiB
#    (an OS, a page file, applications) and 400 small islands of 4 KiB to
#    508 KiB at pseudo-random offsets (metadata, logs, scattered files).
#    Timed: `vhdup expand X.vhdx out.vhd` against
#    `qemu-img convert -f vhdx -O vpc -o subformat=fixed,force_size=on
#    X.vhdx out2.vhd`.
# 2. A 100 GiB sparse raw image holding the same 1 GiB (truncate, then dd
#    conv=notrunc of the same runs and islands). Timed: vhdup expand with
#    hole reporting (SEEK_DATA/SEEK_HOLE) and without it
#    (VHDUP_NO_SEEK_DATA=1, which makes vhdup take a raw image as one data
#    extent, as it did before), and qemu-img convert -f raw -O vpc.
#
# Runs are interleaved (A B C, A B C, ...), RUNS of each (default 3). For
# each: wall time, and the bytes the process read: rchar (every read
# system call, page cache included) and read_bytes (what reached the block
# device) from /proc/self/io of a Python parent around the run (a reaped
# child's I/O counts in its parent's). The page cache cannot be dropped
# here (no root), so read_bytes is near zero after the first run and
# rchar is the measure of work; the first run of each still pays for the
# page cache being refilled, so take the later ones. Outputs are deleted after every run
# (fixed outputs are sparse, so they take about the data on disk).
#   bench/formats.sh       VHDUP=path/to/vhdup RUNS=3 BENCH_DIR=dir (kept)
#                          RAW_GIB=100 VHDX_GIB=64
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
VHDUP=${VHDUP:-$root/build/vhdup}
RUNS=${RUNS:-3}
RAW_GIB=${RAW_GIB:-100}
VHDX_GIB=${VHDX_GIB:-64}
[ -x "$VHDUP" ] || { echo "bench: no vhdup at $VHDUP (build first, or set VHDUP)" >&2; exit 2; }
if [ -n "${BENCH_DIR:-}" ]; then
  dir=$BENCH_DIR
  mkdir -p "$dir"
else
  dir=$(mktemp -d "${TMPDIR:-/tmp}/vhdup-bench.XXXXXX")
  trap 'rm -rf "$dir"' EXIT
fi
M=$((1024 * 1024))
G=$((1024 * M))

# The layout, as "offset length" lines within VSIZE (same seed each time,
# so both images hold the same data at the same offsets).
layout() {
  python3 - "$1" <<'PY'
import random, sys
vsize = int(sys.argv[1]); M = 1 << 20
r = random.Random(20240601)
runs = [(int(vsize * f) // M * M, 224 * M) for f in (0.0, 0.21, 0.47, 0.83)]
islands = []
while len(islands) < 400:
    off = r.randrange(0, vsize - M) // 4096 * 4096
    ln = r.randrange(1, 128) * 4096
    if all(off + ln <= a or off >= a + n for a, n in runs):
        islands.append((off, ln))
for off, ln in runs + islands:
    print(off, ln)
PY
}

make_vhdx() {
  local f=$dir/x.vhdx args=() off len i=0
  qemu-img create -q -f vhdx -o subformat=dynamic "$f" "$((VHDX_GIB * G))"
  while read -r off len; do
    args+=(-c "write -P $((i % 250 + 1)) $off $len")
    i=$((i + 1))
  done < <(layout $((VHDX_GIB * G)))
  qemu-io -f vhdx "${args[@]}" "$f" >/dev/null
}

make_raw() {
  local f=$dir/x.raw off len
  truncate -s "$((RAW_GIB * G))" "$f"
  while read -r off len; do
    head -c "$len" /dev/urandom | dd of="$f" bs=1M seek="$off" oflag=seek_bytes conv=notrunc status=none
  done < <(layout $((RAW_GIB * G)))
}

# measure NAME OUT CMD...: runs CMD (output to /dev/null), removes OUT, and
# prints NAME, wall seconds, rchar and read_bytes of the run.
measure() {
  local name=$1 out=$2
  shift 2
  python3 - "$name" "$@" <<'PY'
import subprocess, sys, time
def io():
    d = {}
    for line in open('/proc/self/io'):
        k, v = line.split(':')
        d[k] = int(v)
    return d
a = io(); t = time.monotonic()
subprocess.run(sys.argv[2:], stdout=subprocess.DEVNULL, check=True)
t = time.monotonic() - t; b = io()
print('%-28s %8.2f s  rchar %8.1f MiB  read_bytes %8.1f MiB' % (
    sys.argv[1], t, (b['rchar'] - a['rchar']) / 2**20,
    (b['read_bytes'] - a['read_bytes']) / 2**20), flush=True)
PY
  rm -f "$out"
}

echo "# $(date -u +%Y-%m-%dT%H:%MZ) $(uname -m), $(nproc) cores, $(qemu-img --version | head -n 1)"
echo "# vhdup: $("$VHDUP" --version 2>/dev/null | head -n 1)"
make_vhdx
sync # the image's writeback must not land in the first timed run
qemu-img info "$dir/x.vhdx" | grep -E 'virtual size|disk size|cluster_size|block' || true
echo "# data written: $(layout $((VHDX_GIB * G)) | awk '{ n += $2 } END { printf "%.1f MiB", n / 1048576 }')"
for ((r = 1; r <= RUNS; r++)); do
  measure "vhdx: vhdup expand" "$dir/out.vhd" "$VHDUP" expand --quiet "$dir/x.vhdx" "$dir/out.vhd"
  measure "vhdx: qemu-img convert" "$dir/out2.vhd" \
    qemu-img convert -f vhdx -O vpc -o subformat=fixed,force_size=on "$dir/x.vhdx" "$dir/out2.vhd"
done
rm -f "$dir/x.vhdx"

make_raw
sync
echo "# raw: $(stat -c %s "$dir/x.raw") bytes, $(du -k "$dir/x.raw" | cut -f1) KiB on disk"
for ((r = 1; r <= RUNS; r++)); do
  measure "raw: vhdup expand" "$dir/out.vhd" "$VHDUP" expand --quiet "$dir/x.raw" "$dir/out.vhd"
  measure "raw: vhdup, NO_SEEK_DATA" "$dir/out.vhd" \
    env VHDUP_NO_SEEK_DATA=1 "$VHDUP" expand --quiet "$dir/x.raw" "$dir/out.vhd"
  measure "raw: qemu-img convert" "$dir/out2.vhd" \
    qemu-img convert -f raw -O vpc -o subformat=fixed,force_size=on "$dir/x.raw" "$dir/out2.vhd"
done
rm -f "$dir/x.raw"
