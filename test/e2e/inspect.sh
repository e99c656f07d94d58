#!/usr/bin/env bash
# `vhdup inspect` in text and --json: the fields of a qemu dynamic disk, a
# whole-MiB disk, a differencing chain, warnings, JSON escaping; and every
# command's --help teaches (exits 0, shows an example and the exit codes).
source "$(dirname "$0")/lib.sh"
MKVHD="$VHDUP_SOURCE_DIR/test/tools/mkvhd.py"
M=$((1024 * 1024))

# A qemu dynamic disk of "100M": qemu stores the CHS product, 104865792.
qemu-img create -q -f vpc "$T/d.vhd" 100M
qemu-io -f vpc -c 'write -P 0xab 1M 64k' -c 'write -P 0xcd 50M 3M' "$T/d.vhd" >/dev/null
"$VHDUP" inspect "$T/d.vhd" >"$T/h" || fail "inspect exited $?"
for want in "type               VHD dynamic" \
  "virtual size       104865792 bytes (100.01 MiB)" \
  "file size          $(stat -c %s "$T/d.vhd") bytes" \
  "geometry (CHS)     1004/12/17 = 204816 sectors = 104865792 bytes" \
  'creator            "qemu"' \
  "block size         2097152 bytes (2 MiB)" \
  "max table entries  51" \
  "allocated          3 blocks, 6291456 bytes (6 MiB)" \
  "whole MiB          no: an upload rounds it up to 105906176 (101 MiB)" \
  "page blob size     105906688 bytes (101 MiB + 512-byte footer)" \
  "az disk create --upload-type Upload --upload-size-bytes 105906688" \
  "0  dynamic       $T/d.vhd"; do
  grep -qF -- "$want" "$T/h" || fail "inspect text lacks '$want':
$(cat "$T/h")"
done
grep -Eq "timestamp          20[0-9]{2}-[01][0-9]-[0-3][0-9]T[0-2][0-9]:[0-5][0-9]:[0-5][0-9]Z" "$T/h" || fail "timestamp"
grep -Eq "uuid               [0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$" "$T/h" || fail "uuid"
pass "text fields of a qemu dynamic disk"

"$VHDUP" inspect --json "$T/d.vhd" >"$T/j" || fail "inspect --json exited $?"
python3 - "$T/j" "$T/d.vhd" <<'PY' || fail "json fields: $(cat "$T/j")"
import json, re, sys
j = json.load(open(sys.argv[1]))
keys = {'file', 'format', 'type', 'virtual_size', 'file_size', 'geometry', 'qemu_virtual_size', 'creator',
        'original_size', 'uuid', 'timestamp', 'timestamp_raw', 'footer_recovered', 'block_size',
        'max_table_entries', 'blocks_allocated', 'bytes_allocated', 'parent_uuid',
        'parent_name', 'chain_depth', 'chain', 'azure', 'warnings'}
assert set(j) == keys, set(j) ^ keys
assert j['file'] == sys.argv[2] and j['format'] == 'vhd' and j['type'] == 'dynamic'
assert j['virtual_size'] == 104865792 and j['original_size'] == 104865792
g = j['geometry']
assert (g['cylinders'], g['heads'], g['sectors_per_track']) == (1004, 12, 17), g
assert g['sectors'] * 512 == g['bytes'] == j['virtual_size'], g
assert j['creator'] == {'application': 'qemu', 'version': '5.3', 'host_os': 'Wi2k'}, j['creator']
assert re.fullmatch(r'[0-9a-f]{8}-([0-9a-f]{4}-){3}[0-9a-f]{12}', j['uuid'])
assert re.fullmatch(r'\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ', j['timestamp'])
assert j['block_size'] == 2097152 and j['max_table_entries'] == 51
assert j['blocks_allocated'] == 3 and j['bytes_allocated'] == 3 * 2097152
assert j['chain_depth'] == 1 and j['chain'] == [{'path': sys.argv[2], 'type': 'dynamic', 'uuid': j['uuid']}]
assert j['azure'] == {'whole_mib': False, 'rounded_size': 101 * 2**20,
                      'blob_size': 101 * 2**20 + 512, 'upload_size_bytes': 101 * 2**20 + 512}, j['azure']
assert j['parent_uuid'] is None and j['footer_recovered'] is False
PY
pass "json fields of a qemu dynamic disk"

# A whole-MiB disk: the Azure check says yes.
qemu-img create -q -f vpc -o force_size=on "$T/w.vhd" 64M
"$VHDUP" inspect "$T/w.vhd" | grep -qF "whole MiB          yes (64 MiB)" || fail "whole MiB yes"
"$VHDUP" inspect --json "$T/w.vhd" | python3 -c '
import json, sys
j = json.load(sys.stdin)
assert j["azure"] == {"whole_mib": True, "rounded_size": 64 << 20, "blob_size": (64 << 20) + 512, "upload_size_bytes": (64 << 20) + 512}, j
assert j["creator"]["application"] == "qem2"' || fail "whole MiB json"
pass "whole-MiB disk"

# A differencing chain base <- mid <- top (hand-built).
python3 "$MKVHD" cases "$T/c" >/dev/null
"$VHDUP" inspect "$T/c/chain_top.vhd" >"$T/h" || fail "chain inspect exited $?"
for want in "type               VHD differencing" "chain              3 layers" \
  "0  differencing  $T/c/chain_top.vhd" "1  differencing  $T/c/chain_mid.vhd" \
  "2  dynamic       $T/c/chain_base.vhd" "parent name        chain_mid.vhd"; do
  grep -qF -- "$want" "$T/h" || fail "chain text lacks '$want':
$(cat "$T/h")"
done
"$VHDUP" inspect --json "$T/c/chain_top.vhd" >"$T/j"
"$VHDUP" inspect --json "$T/c/chain_mid.vhd" >"$T/jm"
python3 - "$T/j" "$T/jm" "$T/c" <<'PY' || fail "chain json: $(cat "$T/j")"
import json, sys
j = json.load(open(sys.argv[1])); m = json.load(open(sys.argv[2])); d = sys.argv[3]
assert j['type'] == 'differencing' and j['chain_depth'] == 3
assert [(l['path'], l['type']) for l in j['chain']] == [
    (d + '/chain_top.vhd', 'differencing'), (d + '/chain_mid.vhd', 'differencing'),
    (d + '/chain_base.vhd', 'dynamic')], j['chain']
assert j['parent_uuid'] == m['uuid'] == j['chain'][1]['uuid']
assert m['parent_uuid'] == j['chain'][2]['uuid']
assert j['parent_name'] == 'chain_mid.vhd'
assert j['virtual_size'] == 12 * 2**20 and j['azure']['whole_mib'] is True
PY
"$VHDUP" inspect --json --parent "$T/c/chain_base.vhd" "$T/c/chain_w2ku.vhd" |
  python3 -c 'import json,sys; j=json.load(sys.stdin); assert j["chain"][1]["path"]==sys.argv[1], j' "$T/c/chain_base.vhd" ||
  fail "--parent path in chain"
pass "differencing chain"

# Warnings: a footer recovered from its copy; creator "vpc " whose CHS
# product is not the current size (qemu would read another size).
"$VHDUP" inspect --json "$T/c/recovered.vhd" | python3 -c '
import json, sys
j = json.load(sys.stdin)
assert j["footer_recovered"] is True, j
assert any("recovered from the copy at offset 0" in w for w in j["warnings"]), j["warnings"]' ||
  fail "recovered warning"
"$VHDUP" inspect "$T/c/recovered.vhd" | grep -q "^Warnings" || fail "text warnings"
"$VHDUP" inspect --json "$T/c/creator_vpc.vhd" | python3 -c '
import json, sys
j = json.load(sys.stdin)
assert j["warnings"], j' || fail "no warning for a vpc creator whose CHS disagrees with the size"
pass "warnings"

# JSON strings are escaped: a file name with a quote, a backslash, a tab.
weird="$T/we\"ir\\d	name.vhd"
cp "$T/d.vhd" "$weird"
"$VHDUP" inspect --json "$weird" | python3 -c 'import json,sys; j=json.load(sys.stdin); assert j["file"]==sys.argv[1], j["file"]' "$weird" ||
  fail "json escaping"
pass "json escaping"

# A raw image.
truncate -s 3M "$T/disk.raw"
"$VHDUP" inspect --json "$T/disk.raw" | python3 -c '
import json, sys
j = json.load(sys.stdin)
assert j["format"] == "raw" and j["type"] == "raw" and j["virtual_size"] == 3 << 20 and j["uuid"] is None, j' ||
  fail "raw json"
pass "raw image"

# Help: top level, help COMMAND, COMMAND --help; each exits 0, has an
# example and the exit codes.
"$VHDUP" --help >"$T/h" || fail "--help exited $?"
for c in inspect expand; do grep -q "^  $c " "$T/h" || fail "--help lacks $c"; done
grep -q "130  interrupted" "$T/h" || fail "--help lacks exit codes"
"$VHDUP" --version | grep -Eq '^vhdup [0-9]+\.[0-9]+\.[0-9]+$' || fail "--version"
for c in $(sed -n '/^Commands:/,/^$/s/^  \([a-z]\+\) .*/\1/p' "$T/h"); do
  for form in "$c --help" "help $c" "$c -h"; do
    # shellcheck disable=SC2086
    "$VHDUP" $form >"$T/ch" || fail "vhdup $form exited $?"
    grep -q "^Usage: vhdup $c" "$T/ch" || fail "vhdup $form: no usage"
    grep -q "^Example:" "$T/ch" || fail "vhdup $form: no example"
    grep -A1 "^Example:" "$T/ch" | grep -q "vhdup $c" || fail "vhdup $form: example does not run $c"
    grep -q "^Exit codes:" "$T/ch" || fail "vhdup $form: no exit codes"
    grep -q "^Options:" "$T/ch" || fail "vhdup $form: no options"
  done
  pass "help for $c"
done
expect_fail 2 "unknown command 'nope'" -- "$VHDUP" help nope
"$VHDUP" >/dev/null 2>&1 && fail "no command should be a usage error"
pass "help"
