#!/usr/bin/env bash
# `vhdup expand --no-resize` of disks qemu made (dynamic with and without
# force_size, fixed, scattered data from a sparse raw and from qemu-io
# writes) is byte for byte qemu-img's raw conversion followed by a valid
# fixed footer; the default path rounds a size that is not a whole MiB up
# and says so; the output is sparse.
source "$(dirname "$0")/lib.sh"
MKVHD="$VHDUP_SOURCE_DIR/test/tools/mkvhd.py"
M=$((1024 * 1024))

# check_expand NAME DISK: expand, compare with qemu's raw, check the footer.
check_expand() {
  local name=$1 disk=$2 out="$T/$1.fixed.vhd" raw="$T/$1.qemu.raw" size
  "$VHDUP" expand --no-resize --quiet "$disk" "$out" || fail "$name: expand exited $?"
  qemu-img convert -f vpc -O raw "$disk" "$raw"
  size=$(stat -c %s "$raw")
  [ "$(stat -c %s "$out")" -eq $((size + 512)) ] ||
    fail "$name: output is $(stat -c %s "$out") bytes, qemu's raw $size + 512"
  cmp -n "$size" "$raw" "$out" || fail "$name: expansion differs from qemu-img convert"
  check_footer "$name" "$out" "$size"
  # qemu reads the output back as the same disk.
  qemu-img info --output=json -f vpc "$out" |
    python3 -c 'import json,sys; i=json.load(sys.stdin); assert i["format"]=="vpc" and i["virtual-size"]==int(sys.argv[1]), i' "$size" ||
    fail "$name: qemu-img info disagrees"
  pass "$name: $size bytes, identical to qemu-img convert + fixed footer"
}

# check_footer NAME FILE SIZE: the last 512 bytes are a fixed footer for SIZE.
check_footer() {
  python3 "$MKVHD" footer "$2" | python3 -c '
import json, sys
f = json.load(sys.stdin); size = int(sys.argv[1])
assert f["cookie"] == "conectix", f
assert f["disk_type"] == 2, f
assert f["checksum_ok"], f
assert f["current_size"] == size and f["original_size"] == size, f
assert f["data_offset"] == 2**64 - 1, f
assert f["version"] == 0x00010000 and f["features"] & 2, f
assert [f["cylinders"], f["heads"], f["sectors_per_track"]] == f["chs_expected"], f
assert f["file_size"] == size + 512, f
' "$3" || fail "$1: bad fixed footer: $(python3 "$MKVHD" footer "$2")"
}

# 1. Dynamic, exact size (creator qem2), data written with qemu-io: a
#    block's first bytes, an unaligned run across blocks, a whole block,
#    explicit zeros in an allocated block, the very last sector.
qemu-img create -q -f vpc -o subformat=dynamic,force_size=on "$T/dyn.vhd" 64M
qemu-io -f vpc \
  -c 'write -P 0xab 0 4k' \
  -c "write -P 0xcd $((3 * M + 512)) $((5 * M))" \
  -c "write -P 0x11 $((20 * M)) $((2 * M))" \
  -c "write -z $((20 * M + 4096)) 64k" \
  -c "write -P 0xef $((64 * M - 512)) 512" "$T/dyn.vhd" >/dev/null
check_expand dyn "$T/dyn.vhd"

# 2. Dynamic without force_size (creator qemu): the size is the CHS product.
qemu-img create -q -f vpc "$T/chs.vhd" 100M
qemu-io -f vpc -c 'write -P 0x5a 1M 64k' -c 'write -P 0xa5 50M 3M' "$T/chs.vhd" >/dev/null
check_expand chs "$T/chs.vhd"

# 3. Fixed.
qemu-img create -q -f vpc -o subformat=fixed,force_size=on "$T/fixed.vhd" 20M
qemu-io -f vpc -c 'write -P 0x77 4k 8k' -c "write -P 0x78 $((20 * M - 4096)) 4k" "$T/fixed.vhd" >/dev/null
check_expand fixed "$T/fixed.vhd"

# 4. Scattered data from a sparse raw (not a whole MiB): islands of 512
#    bytes to 1 MiB at odd offsets; qemu-img allocates only the blocks
#    with data.
python3 - "$T/scatter.raw" <<'PY'
import os, sys, random
r = random.Random(42)
size = 129 * 2**20 + 64 * 1024
with open(sys.argv[1], 'wb') as f:
    f.truncate(size)
    for i in range(60):
        n = r.choice([512, 4096, 65536, 2**20])
        off = r.randrange(0, size - n) // 512 * 512
        f.seek(off)
        f.write(os.urandom(n))
    f.seek(size - 512)
    f.write(b'\xff' * 512)
PY
qemu-img convert -f raw -O vpc -o subformat=dynamic,force_size=on "$T/scatter.raw" "$T/scatter.vhd"
check_expand scatter "$T/scatter.vhd"
cmp -n "$(stat -c %s "$T/scatter.raw")" "$T/scatter.raw" "$T/scatter.fixed.vhd" ||
  fail "scatter: expansion differs from the source raw"

# 5. The default path: 129 MiB + 64 KiB is rounded up to 130 MiB.
size=$(stat -c %s "$T/scatter.raw")
"$VHDUP" expand "$T/scatter.vhd" "$T/scatter.resized.vhd" >"$T/out" 2>"$T/err" ||
  fail "resize: exit $?"
grep -qF "vhdup: note: virtual size $size is not a whole number of MiB; rounding up to $((130 * M)) (Azure requires whole MiB); use --no-resize to keep it exact" "$T/err" ||
  fail "resize: no notice: $(cat "$T/err")"
grep -q "virtual size $((130 * M))" "$T/out" || fail "resize: summary: $(cat "$T/out")"
check_footer resized "$T/scatter.resized.vhd" $((130 * M))
cmp -n "$size" "$T/scatter.raw" "$T/scatter.resized.vhd" || fail "resize: body differs"
cmp -n $((130 * M - size)) -i "$size:0" "$T/scatter.resized.vhd" /dev/zero || fail "resize: tail not zero"
"$VHDUP" expand --quiet --force "$T/dyn.vhd" "$T/dyn.resized.vhd" 2>"$T/err"
[ ! -s "$T/err" ] || fail "a whole-MiB disk printed: $(cat "$T/err")"
cmp "$T/dyn.fixed.vhd" "$T/dyn.resized.vhd" || fail "whole MiB: default and --no-resize differ"
pass "default path rounds up to a whole MiB, with the notice"

# 6. Sparse output: 1 GiB virtual, 3 MiB of data.
qemu-img create -q -f vpc -o force_size=on "$T/sparse.vhd" 1G
qemu-io -f vpc -c 'write -P 1 0 1M' -c 'write -P 2 500M 1M' -c "write -P 3 $((1023 * M)) 1M" "$T/sparse.vhd" >/dev/null
"$VHDUP" expand --quiet "$T/sparse.vhd" "$T/sparse.fixed.vhd"
used=$(du -k "$T/sparse.fixed.vhd" | cut -f1)
[ "$used" -lt 16384 ] || fail "sparse: output uses ${used} KiB for 3 MiB of data"
check_footer sparse "$T/sparse.fixed.vhd" $((1024 * M))
pass "sparse: 1 GiB disk, output uses ${used} KiB"

# 7. Interop: plain `qemu-img info` reads the expanded disk as its real
#    size. qemu takes the size from CHS geometry for creators it does not
#    know (only "win ", "qem2", "d2v ", "CTXS", "tap\0" get the current
#    size), so the fixed footer says "win ".
got=$(qemu-img info --output=json -f vpc "$T/dyn.fixed.vhd" | python3 -c 'import json,sys; print(json.load(sys.stdin)["virtual-size"])')
[ "$got" -eq $((64 * M)) ] ||
  fail "qemu-img info reads the expanded 64 MiB disk as $got bytes (see the creator in src/vhd vhdup__fixed_footer)"
pass "qemu-img info reads the fixed footer's size"
