#!/usr/bin/env bash
# Every malformed disk from test/tools/mkvhd.py is refused before anything
# is written: the expected exit code, a message naming the file and the
# field or offset, no OUT and no OUT.partial left behind; inspect refuses
# it the same way. Hostile headers do not make vhdup allocate in proportion
# to what they claim.
source "$(dirname "$0")/lib.sh"
MKVHD="$VHDUP_SOURCE_DIR/test/tools/mkvhd.py"

python3 "$MKVHD" cases "$T/cases"
n=0
while IFS=$'\t' read -r name kind file code regex extra; do
  [ "$kind" = bad ] || continue
  out="$T/$name.out.vhd"
  # shellcheck disable=SC2086
  expect_fail "$code" "$regex" -- "$VHDUP" expand $extra "$file" "$out"
  grep -qF -- "$file" "$T/err" || fail "$name: message does not name $file: $(cat "$T/err")"
  grep -q '^vhdup: ' "$T/err" || fail "$name: message not prefixed 'vhdup: '"
  [ ! -e "$out" ] && [ ! -e "$out.partial" ] || fail "$name: expand left $out behind"
  # shellcheck disable=SC2086
  expect_fail "$code" "$regex" -- "$VHDUP" inspect $extra "$file"
  [ ! -s "$T/out" ] || fail "$name: inspect printed a report for a bad disk"
  expect_fail "$code" "$regex" -- "$VHDUP" inspect --json $extra "$file"
  pass "$name: exit $code, /$regex/"
  n=$((n + 1))
done <"$T/cases/cases.tsv"
[ "$n" -ge 15 ] || fail "only $n malformed cases ran"

# 2^31 claimed BAT entries in a 4 MiB file: refused without allocating 8 GiB.
if [ -x /usr/bin/time ] && ! nm "$VHDUP" 2>/dev/null | grep -q __asan_init; then
  rc=0
  /usr/bin/time -f '%M' -o "$T/rss" "$VHDUP" inspect "$T/cases/hostile_entries.vhd" 2>/dev/null || rc=$?
  [ "$rc" -eq 3 ] || fail "hostile_entries exited $rc"
  rss=$(tail -n 1 "$T/rss")
  [ "$rss" -lt 65536 ] || fail "hostile_entries: peak RSS ${rss} KiB"
  pass "hostile max_table_entries: peak RSS ${rss} KiB"
fi

# The source must exist; usage errors are 2; an existing OUT is 5.
expect_fail 3 "nope.vhd: .*(No such file|ENOENT|no such file)" -- "$VHDUP" inspect "$T/nope.vhd"
expect_fail 3 "nope.vhd" -- "$VHDUP" expand "$T/nope.vhd" "$T/x.vhd"
[ ! -e "$T/x.vhd" ] || fail "expand of a missing file created OUT"
expect_fail 2 "FILE is missing" -- "$VHDUP" inspect
expect_fail 2 "needs FILE and OUT" -- "$VHDUP" expand "$T/cases/bs4k.vhd"
expect_fail 2 "unknown option '--bogus'" -- "$VHDUP" expand --bogus a b
expect_fail 2 "--format must be auto, vhd, vhdx or raw" -- "$VHDUP" inspect --format qcow2 "$T/cases/bs4k.vhd"
expect_fail 2 "needs an argument" -- "$VHDUP" inspect "$T/cases/bs4k.vhd" --parent
expect_fail 2 "unknown command 'frobnicate'" -- "$VHDUP" frobnicate
echo existing >"$T/exists.vhd"
expect_fail 5 "exists.vhd: already exists; use --force" -- "$VHDUP" expand "$T/cases/bs4k.vhd" "$T/exists.vhd"
[ "$(cat "$T/exists.vhd")" = existing ] || fail "expand touched an existing OUT without --force"
"$VHDUP" expand --quiet --force "$T/cases/bs4k.vhd" "$T/exists.vhd" || fail "--force"
[ ! -e "$T/exists.vhd.partial" ] || fail "partial left after success"
pass "usage errors, missing source, existing OUT"

# A raw image by name, or forced with --format raw; junk forced as vhd.
head -c 1048576 /dev/urandom >"$T/disk.img"
"$VHDUP" inspect "$T/disk.img" | grep -q "raw image" || fail "disk.img not taken as raw"
cp "$T/disk.img" "$T/disk.data"
expect_fail 3 "not a VHD" -- "$VHDUP" inspect "$T/disk.data"
"$VHDUP" inspect --format raw "$T/disk.data" >/dev/null || fail "--format raw"
pass "raw by name and by --format"

# Interrupted: SIGINT mid-copy exits 130 and leaves neither OUT nor
# OUT.partial. A 1 TiB all-hole raw image keeps expand busy reading zeros
# when its holes are not looked for.
truncate -s 1T "$T/huge.raw"
VHDUP_NO_SEEK_DATA=1 "$VHDUP" expand --quiet "$T/huge.raw" "$T/huge.vhd" 2>"$T/err" &
pid=$!
for ((i = 0; i < 500; i++)); do
  [ -e "$T/huge.vhd.partial" ] && break
  sleep 0.01
done
[ -e "$T/huge.vhd.partial" ] || fail "expand of huge.raw never created its partial file"
kill -INT "$pid"
rc=0
wait "$pid" || rc=$?
[ "$rc" -eq 130 ] || fail "interrupted expand exited $rc: $(cat "$T/err")"
grep -q "interrupted" "$T/err" || fail "no interruption message: $(cat "$T/err")"
[ ! -e "$T/huge.vhd" ] && [ ! -e "$T/huge.vhd.partial" ] || fail "interrupted expand left files"
pass "SIGINT: exit 130, nothing left behind"
