#!/usr/bin/env bash
# A sparse raw image (truncate, then dd conv=notrunc at scattered offsets:
# whole MiBs, single sectors, a write that is not sector-aligned, the last
# sector) is read through the file system's holes (SEEK_DATA/SEEK_HOLE):
# `vhdup expand` and an upload to the test server both give exactly what
# `qemu-img convert -f raw -O raw` gives, the summary's bytes_allocated
# (what the source holds, which is what is read) is about the data written
# and not the file size, and inspect shows the allocation. With
# VHDUP_NO_SEEK_DATA=1 the whole file is read again, with the same result.
source "$(dirname "$0")/lib.sh"
source "$(dirname "$0")/lib_azure.sh"
source "$(dirname "$0")/lib_server.sh"
CHECK_FOOTER="$VHDUP_SOURCE_DIR/test/tools/check_footer.py"
M=$((1024 * 1024))
VSIZE=$((512 * M))
ACCT=devstoreaccount1
IMG=$T/sparse.raw

truncate -s "$VSIZE" "$IMG"
# put BYTES OFFSET: BYTES of random data at byte OFFSET.
put() {
  head -c "$1" /dev/urandom | dd of="$IMG" bs=1M seek="$2" oflag=seek_bytes conv=notrunc status=none
}
put $((8 * M)) $((3 * M))
put 512 $((100 * M))
put 1000 $((200 * M + 7))
put $((2 * M + 4096)) $((300 * M - 4096))
put 4096 $((411 * M + 65536))
put 512 $((VSIZE - 512))
DATA=$((8 * M + 512 + 1000 + 2 * M + 4096 + 4096 + 512))
qemu-img convert -f raw -O raw "$IMG" "$T/qemu.raw"

# Allocation as the file system holds it (blocks of 4 KiB or more): the
# bytes read must be within a few blocks per write of the data.
SLACK=$((6 * 65536))
"$VHDUP" inspect --json "$IMG" >"$T/i.json" || fail "inspect exited $?"
alloc=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["bytes_allocated"])' "$T/i.json")
[ "$alloc" != None ] && [ "$alloc" -ge "$DATA" ] && [ "$alloc" -le $((DATA + SLACK)) ] ||
  fail "inspect: bytes_allocated $alloc for $DATA bytes of data"
"$VHDUP" inspect "$IMG" | grep -q "allocated  *$alloc bytes" || fail "inspect text lacks the allocation"
pass "inspect: $alloc bytes allocated for $DATA bytes written"

# summary_field JSONFILE NAME: a field of the last JSON line (the summary).
summary_field() {
  tail -n 1 "$1" | python3 -c 'import json,sys; print(json.load(sys.stdin)[sys.argv[1]])' "$2"
}

# check_expand NAME [ENV...]: expand under strace, compare with qemu's raw;
# sets READ to the bytes vhdup read from files (pread and friends, every
# thread).
check_expand() {
  local name=$1 out=$T/$1.vhd
  shift
  # LeakSanitizer cannot run under ptrace: leaks are checked by the upload.
  env ASAN_OPTIONS="${ASAN_OPTIONS:+$ASAN_OPTIONS:}detect_leaks=0" "$@" strace -f -qq -o "$T/$name.strace" -e trace=pread64,preadv,preadv2,read \
    "$VHDUP" expand --quiet "$IMG" "$out" || fail "$name: expand exited $?"
  [ "$(stat -c %s "$out")" -eq $((VSIZE + 512)) ] || fail "$name: output is $(stat -c %s "$out") bytes"
  cmp -n "$VSIZE" "$T/qemu.raw" "$out" || fail "$name: expansion differs from qemu-img convert"
  python3 "$CHECK_FOOTER" "$out" "$VSIZE" || fail "$name: bad footer"
  rm -f "$out"
  READ=$(awk '/= [0-9]+$/ { n += $NF } END { print n + 0 }' "$T/$name.strace")
}

# Counted with strace, unless it cannot trace here or valgrind (whose own
# reads would count) runs vhdup.
if [ -z "${VHDUP_VALGRIND:-}" ] && command -v strace >/dev/null &&
  strace -qq -o /dev/null true 2>/dev/null; then
  check_expand expand
  [ "$READ" -ge "$DATA" ] && [ "$READ" -le $((alloc + M)) ] ||
    fail "expand: $READ bytes read for $alloc allocated"
  pass "expand: identical to qemu-img convert, $READ bytes read of $VSIZE"
  check_expand expand-all VHDUP_NO_SEEK_DATA=1
  [ "$READ" -ge "$VSIZE" ] || fail "expand with VHDUP_NO_SEEK_DATA=1: only $READ bytes read"
  pass "expand with VHDUP_NO_SEEK_DATA=1: identical, $READ bytes read"
else
  echo "skip: reads not counted (no strace, or under valgrind); expand compared only"
  "$VHDUP" expand --quiet "$IMG" "$T/e.vhd" || fail "expand exited $?"
  cmp -n "$VSIZE" "$T/qemu.raw" "$T/e.vhd" || fail "expansion differs from qemu-img convert"
  rm -f "$T/e.vhd"
fi

start_testserver --key "$AZURITE_KEY" --require-md5
az_mkcontainer "$TS_URL" vhds
printf '%s\n' "$AZURITE_KEY" >"$T/key"
"$VHDUP" upload --progress=json -c 4 --account-key-file "$T/key" "$IMG" \
  "$TS_URL/vhds/sparse.vhd" >"$T/up.json" 2>"$T/up.err" ||
  fail "upload exited $?: $(tail -n 3 "$T/up.err")"
[ "$(summary_field "$T/up.json" status)" = ok ] || fail "upload: $(tail -n 1 "$T/up.json")"
got=$(summary_field "$T/up.json" bytes_allocated)
sent=$(summary_field "$T/up.json" bytes_sent)
[ "$got" -eq "$alloc" ] || fail "upload: bytes_allocated $got, inspect said $alloc"
[ "$sent" -ge "$DATA" ] && [ "$sent" -le "$got" ] || fail "upload: $sent bytes sent for $DATA of data"
blob=$TS_STORE/$ACCT/vhds/sparse.vhd.data
[ "$(stat -c %s "$blob")" -eq $((VSIZE + 512)) ] || fail "stored blob is $(stat -c %s "$blob") bytes"
cmp -n "$VSIZE" "$T/qemu.raw" "$blob" || fail "stored blob differs from qemu-img convert"
python3 "$CHECK_FOOTER" "$blob" "$VSIZE" || fail "stored blob: bad footer"
pass "upload: the blob is qemu's raw + footer; $got bytes read, $sent sent"
stop_testserver
