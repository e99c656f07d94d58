#!/usr/bin/env bash
# VHDX sources ([MS-VHDX]), read natively: qemu-img's fixed and dynamic
# VHDX (block sizes 1, 8, 32 and 256 MiB, a larger log, ZERO block states on
# and off, data written with qemu-io at scattered offsets, partial blocks,
# explicit zeros) expand byte for byte to qemu-img's raw conversion plus a
# valid fixed footer; the hand-built cases of test/tools/mkvhdx.py
# (differencing chains, every block state, 4096-byte sectors, header orders,
# torn copies, dirty logs replayed in memory, among them one that writes
# payload data, checked against qemu-img's replay) expand to their .raw, and its malformed files are refused
# with their exit code and message by expand and inspect alike; inspect
# says "vhdx"; a VHDX and a differencing VHDX upload to Azurite as their
# exact fixed VHDs.
source "$(dirname "$0")/lib.sh"
source "$(dirname "$0")/lib_azure.sh"
MKVHDX="$VHDUP_SOURCE_DIR/test/tools/mkvhdx.py"
CHECK_FOOTER="$VHDUP_SOURCE_DIR/test/tools/check_footer.py"
M=$((1024 * 1024))

# check_expand NAME DISK RAW [ARGS...]: expand equals RAW + a fixed footer.
check_expand() {
  local name=$1 disk=$2 raw=$3 out="$T/$1.out.vhd" size
  shift 3
  "$VHDUP" expand --no-resize --quiet "$@" "$disk" "$out" || fail "$name: expand exited $?"
  size=$(stat -c %s "$raw")
  [ "$(stat -c %s "$out")" -eq $((size + 512)) ] ||
    fail "$name: output is $(stat -c %s "$out") bytes, the raw $size + 512"
  cmp -n "$size" "$raw" "$out" || fail "$name: expansion differs from $raw"
  python3 "$CHECK_FOOTER" "$out" "$size" || fail "$name: bad fixed footer"
  rm -f "$out"
}

# ------------------------------------------------------- 1. qemu-img's VHDX
# qemu_case NAME MIB CREATE_OPTS: a qemu-img VHDX of MIB MiB with scattered
# writes.
qemu_case() {
  local name=$1 size=$(($2 * M)) opts=$3 disk="$T/$1.vhdx"
  qemu-img create -q -f vhdx -o "$opts" "$disk" "$size"
  qemu-io -f vhdx \
    -c 'write -P 0xab 0 4k' \
    -c 'write -P 0x01 1m 512' \
    -c "write -P 0x02 $((2 * M + 512 * 7)) 512" \
    -c "write -P 0xcd $((3 * M + 512)) $((5 * M))" \
    -c "write -P 0x11 $((20 * M)) $((9 * M))" \
    -c "write -z $((20 * M + 4096)) 64k" \
    -c "write -z $((24 * M)) $((M))" \
    -c "write -P 0x33 $((47 * M - 1024)) 1536" \
    -c "write -P 0xef $((size - 512)) 512" "$disk" >/dev/null
  qemu-img convert -f vhdx -O raw "$disk" "$T/$name.raw"
  check_expand "$name" "$disk" "$T/$name.raw"
  "$VHDUP" inspect --json "$disk" >"$T/$name.json" || fail "$name: inspect exited $?"
  python3 - "$T/$name.json" "$size" <<'PY' || fail "$name: inspect --json: $(cat "$T/$name.json")"
import json, sys
i = json.load(open(sys.argv[1]))
assert i["format"] == "vhdx" and i["virtual_size"] == int(sys.argv[2]), i
assert i["vhdx"]["logical_sector_size"] == 512 and i["chain_depth"] == 1, i
PY
  pass "$name: identical to qemu-img convert + fixed footer"
  rm -f "$T/$name.raw"
}
qemu_case dyn1m 64 block_size=1M,subformat=dynamic
qemu_case dyn8m 96 block_size=8M
qemu_case dyn32m 100 block_size=32M,log_size=4M
qemu_case dyn256m 300 block_size=256M
qemu_case fixed1m 50 block_size=1M,subformat=fixed
qemu_case fixed32m 64 block_size=32M,subformat=fixed
qemu_case nozero 64 block_size=8M,block_state_zero=off
"$VHDUP" inspect "$T/fixed1m.vhdx" | grep -q 'type *VHDX fixed' || fail "fixed1m: not shown as VHDX fixed"
"$VHDUP" inspect "$T/dyn1m.vhdx" | grep -q 'type *VHDX dynamic' || fail "dyn1m: not shown as VHDX dynamic"
# --format vhdx takes it; --format vhd refuses it.
"$VHDUP" inspect --format vhdx "$T/dyn8m.vhdx" >/dev/null || fail "--format vhdx refused a VHDX"
expect_fail 3 "not a VHD" -- "$VHDUP" inspect --format vhd "$T/dyn8m.vhdx"
qemu-img create -q -f vpc -o subformat=fixed "$T/plain.vhd" 4M
expect_fail 3 "not 'vhdxfile'" -- "$VHDUP" inspect --format vhdx "$T/plain.vhd"
pass "inspect and --format"

# --------------------------------------------- 2. the hand-built VHDX cases
python3 "$MKVHDX" cases "$T/cases"
ngood=0 nbad=0
while IFS=$'\t' read -r name kind file code regex extra; do
  case "$kind" in
  good)
    # shellcheck disable=SC2086
    check_expand "$name" "$file" "$file.raw" $extra
    ngood=$((ngood + 1))
    ;;
  warn)
    "$VHDUP" expand --no-resize "$file" "$T/$name.out.vhd" 2>"$T/err" >/dev/null ||
      fail "$name: expand exited $?: $(cat "$T/err")"
    grep -Eq -- "$regex" "$T/err" || fail "$name: no warning /$regex/: $(cat "$T/err")"
    rm -f "$T/$name.out.vhd"
    check_expand "$name" "$file" "$file.raw"
    ;;
  bad)
    out="$T/$name.out.vhd"
    # shellcheck disable=SC2086
    expect_fail "$code" "$regex" -- "$VHDUP" expand $extra "$file" "$out"
    grep -qF -- "$file" "$T/err" || fail "$name: message does not name $file: $(cat "$T/err")"
    [ ! -e "$out" ] && [ ! -e "$out.partial" ] || fail "$name: expand left $out behind"
    # shellcheck disable=SC2086
    expect_fail "$code" "$regex" -- "$VHDUP" inspect $extra "$file"
    [ ! -s "$T/out" ] || fail "$name: inspect printed a report for a bad disk"
    # shellcheck disable=SC2086
    expect_fail "$code" "$regex" -- "$VHDUP" inspect --json $extra "$file"
    nbad=$((nbad + 1))
    ;;
  esac
  pass "$name ($kind)"
done <"$T/cases/cases.tsv"
[ "$ngood" -ge 10 ] && [ "$nbad" -ge 20 ] || fail "only $ngood good and $nbad bad cases ran"

# The dirty logs: qemu-img replays a copy (writing it) and converts it; the
# result is what vhdup read without writing.
for m in bat torn zero_then_bat data; do
  cp "$T/cases/log_$m.vhdx" "$T/q.vhdx"
  qemu-img check -q -r all "$T/q.vhdx" >/dev/null 2>&1 || true
  qemu-img convert -f vhdx -O raw "$T/q.vhdx" "$T/q.raw"
  cmp "$T/q.raw" "$T/cases/log_$m.vhdx.raw" || fail "log_$m: qemu's replay differs from the generator's raw"
  "$VHDUP" inspect "$T/cases/log_$m.vhdx" | grep -q 'log entries were replayed in memory' ||
    fail "log_$m: inspect does not say the log was replayed"
  pass "log_$m: replayed in memory as qemu-img replays it"
done
cmp -s "$T/cases/log_bat.vhdx" "$T/q.vhdx" && fail "the copy was not replayed by qemu" || true

"$VHDUP" inspect --json "$T/cases/lss4k.vhdx" |
  python3 -c 'import json,sys; i=json.load(sys.stdin); assert i["vhdx"]["logical_sector_size"]==4096, i' ||
  fail "lss4k: inspect does not say 4096-byte sectors"
"$VHDUP" inspect --json "$T/cases/child4.vhdx" |
  python3 -c 'import json,sys; i=json.load(sys.stdin); assert i["chain_depth"]==3 and i["type"]=="differencing", i' ||
  fail "child4: not a three-layer differencing chain"

# 8 Mi BAT entries claimed, a 1 MiB BAT region: refused without allocating.
if [ -x /usr/bin/time ] && ! nm "$VHDUP" 2>/dev/null | grep -q __asan_init; then
  rc=0
  /usr/bin/time -f '%M' -o "$T/rss" "$VHDUP" inspect "$T/cases/bat_too_small.vhdx" 2>/dev/null || rc=$?
  [ "$rc" -eq 3 ] || fail "bat_too_small exited $rc"
  rss=$(tail -n 1 "$T/rss")
  [ "$rss" -lt 65536 ] || fail "bat_too_small: peak RSS ${rss} KiB"
  pass "hostile BAT size: peak RSS ${rss} KiB"
fi

# ------------------------------------------------------- 3. upload (Azurite)
start_azurite
az_mkcontainer "$AZURITE_URL" vhds
# upload_check NAME DISK RAW VSIZE: the blob is RAW, zero-padded to VSIZE,
# then a fixed footer.
upload_check() {
  local name=$1 disk=$2 raw=$3 vsize=$4 got="$T/$1.blob" rawsize
  AZURE_STORAGE_CONNECTION_STRING="$AZURITE_CONN" \
    "$VHDUP" upload --quiet "$disk" "$AZURITE_URL/vhds/$name.vhd" 2>"$T/$name.err" ||
    fail "$name: upload exited $?: $(cat "$T/$name.err")"
  az_get "$AZURITE_URL" "vhds/$name.vhd" "$got"
  [ "$(stat -c %s "$got")" -eq $((vsize + 512)) ] ||
    fail "$name: blob is $(stat -c %s "$got") bytes, expected $vsize + 512"
  rawsize=$(stat -c %s "$raw")
  cmp -n "$rawsize" "$raw" "$got" || fail "$name: blob differs from the raw"
  if [ "$rawsize" -lt "$vsize" ]; then
    cmp -n $((vsize - rawsize)) -i "0:$rawsize" /dev/zero "$got" ||
      fail "$name: the rounded-up tail is not zeros"
  fi
  python3 "$CHECK_FOOTER" "$got" "$vsize" || fail "$name: bad footer"
  pass "$name: uploaded, blob identical"
}
qemu-img convert -f vhdx -O raw "$T/dyn8m.vhdx" "$T/dyn8m.raw"
upload_check up_dyn8m "$T/dyn8m.vhdx" "$T/dyn8m.raw" $((96 * M))
qemu-img convert -f vhdx -O raw "$T/fixed32m.vhdx" "$T/fixed32m.raw"
upload_check up_fixed32m "$T/fixed32m.vhdx" "$T/fixed32m.raw" $((64 * M))
upload_check up_diff "$T/cases/child4.vhdx" "$T/cases/child4.vhdx.raw" $((8 * M))
# Not a whole MiB (11 MiB + 1536): rounded up by default.
upload_check up_states "$T/cases/states.vhdx" "$T/cases/states.vhdx.raw" $((12 * M))
upload_check up_lss4k "$T/cases/lss4k.vhdx" "$T/cases/lss4k.vhdx.raw" $((9 * M))
# A dirty log whose data sectors hold payload: sent from memory.
upload_check up_log_data "$T/cases/log_data.vhdx" "$T/cases/log_data.vhdx.raw" $((6 * M))
