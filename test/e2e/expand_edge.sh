#!/usr/bin/env bash
# Every hand-built disk from test/tools/mkvhd.py (odd block sizes,
# out-of-order blocks, partial bitmaps over garbage, data in the last
# sector, sizes not a multiple of the block size, a differencing chain, a
# 1 TiB disk holding a few MiB) expands to exactly the raw the generator
# computed independently, followed by a valid fixed footer.
source "$(dirname "$0")/lib.sh"
MKVHD="$VHDUP_SOURCE_DIR/test/tools/mkvhd.py"

python3 "$MKVHD" cases "$T/cases"
n=0
while IFS=$'\t' read -r name kind file code regex extra; do
  [ "$kind" = good ] || [ "$kind" = warn ] || continue
  out="$T/$name.fixed.vhd"
  # shellcheck disable=SC2086 # extra holds whole options
  "$VHDUP" expand --no-resize $extra "$file" "$out" >"$T/out" 2>"$T/err" ||
    fail "$name: expand exited $?: $(cat "$T/err")"
  if [ "$kind" = warn ]; then
    grep -Eq -- "$regex" "$T/err" || fail "$name: stderr lacks /$regex/: $(cat "$T/err")"
  fi
  raw="$file.raw"
  size=$(stat -c %s "$raw")
  [ "$(stat -c %s "$out")" -eq $((size + 512)) ] ||
    fail "$name: output is $(stat -c %s "$out") bytes, expected $((size + 512))"
  # The body against the generator's raw (sparse-aware: the 1 TiB case
  # would take minutes with cmp), then the footer.
  truncate -s "$size" "$out"
  python3 "$MKVHD" cmp "$raw" "$out" >&2 || fail "$name: expansion differs from the generator's raw"
  "$VHDUP" expand --no-resize --quiet --force $extra "$file" "$out"
  python3 - "$out" "$size" "$MKVHD" <<'PY' || fail "$name: bad footer"
import sys, importlib.util
spec = importlib.util.spec_from_file_location('mkvhd', sys.argv[3])
m = importlib.util.module_from_spec(spec); spec.loader.exec_module(m)
f = m.read_footer(sys.argv[1]); size = int(sys.argv[2])
assert f['cookie'] == 'conectix', f
assert f['disk_type'] == 2 and f['checksum_ok'], f
assert f['current_size'] == size and f['original_size'] == size, f
assert f['data_offset'] == 0xFFFFFFFFFFFFFFFF, f
assert [f['cylinders'], f['heads'], f['sectors_per_track']] == f['chs_expected'], f
PY
  pass "$name"
  n=$((n + 1))
done <"$T/cases/cases.tsv"
[ "$n" -ge 12 ] || fail "only $n good cases ran"

# The default path rounds the 5 MiB + 1536 disk up to 6 MiB and says so.
"$VHDUP" expand "$T/cases/tail.vhd" "$T/tail.rounded.vhd" >"$T/out" 2>"$T/err"
grep -q "not a whole number of MiB; rounding up to 6291456" "$T/err" || fail "no rounding note: $(cat "$T/err")"
[ "$(stat -c %s "$T/tail.rounded.vhd")" -eq $((6 * 1024 * 1024 + 512)) ] || fail "rounded size"
truncate -s $((6 * 1024 * 1024)) "$T/tail.rounded.vhd"
truncate -s $((6 * 1024 * 1024)) "$T/cases/tail.vhd.raw"
python3 "$MKVHD" cmp "$T/cases/tail.vhd.raw" "$T/tail.rounded.vhd" || fail "rounded body differs"
pass "tail rounded up to a whole MiB"

# A parent given with --parent instead of the locators.
mkdir "$T/moved"
cp "$T/cases/chain_w2ku.vhd" "$T/moved/child.vhd"
"$VHDUP" expand --no-resize --quiet --parent "$T/cases/chain_base.vhd" "$T/moved/child.vhd" "$T/moved/out.vhd"
truncate -s "$(stat -c %s "$T/cases/chain_w2ku.vhd.raw")" "$T/moved/out.vhd"
python3 "$MKVHD" cmp "$T/cases/chain_w2ku.vhd.raw" "$T/moved/out.vhd" || fail "--parent expansion differs"
pass "--parent"

# A chain whose layers have different block sizes (4 KiB under 2 MiB),
# made from a JSON spec.
mkdir "$T/spec"
cat >"$T/spec/s.json" <<JSON
{"path": "$T/spec/top.vhd", "kind": "differencing", "size": 6291456,
 "blocks": [{"index": 2, "bitmap": [[0, 3], [4000, 96]]}, {"index": 0, "bitmap": "odd", "zero_every": 4}],
 "parent": {"path": "$T/spec/base.vhd", "kind": "dynamic", "size": 6291456, "block_size": 4096,
            "blocks": [{"index": 1535, "bitmap": "full"}, {"index": 5}, {"index": 1030, "bitmap": "last"},
                       {"index": 1}]}}
JSON
python3 "$MKVHD" spec "$T/spec/s.json"
"$VHDUP" expand --no-resize --quiet "$T/spec/top.vhd" "$T/spec/out.vhd"
truncate -s 6291456 "$T/spec/out.vhd"
python3 "$MKVHD" cmp "$T/spec/top.vhd.raw" "$T/spec/out.vhd" || fail "mixed block sizes: expansion differs"
pass "chain with 4 KiB blocks under 2 MiB blocks"
