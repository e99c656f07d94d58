#!/usr/bin/env bash
# A user fills a managed disk: `az disk create --upload-type Upload
# --upload-size-bytes N`, `az disk grant-access` gives a SAS URL to a blob
# that already exists at its final size and accepts no creation, deletion
# or properties (our strict server's --managed-disk mode). `vhdup upload
# disk.vhd SAS-URL --overwrite` writes the disk in place (stale pages
# cleared) and the blob is exactly the disk; a disk of another size is
# refused before any page is written, saying the size it needs; without
# --overwrite the existing blob is refused (exit 5).
source "$(dirname "$0")/lib.sh"
source "$(dirname "$0")/lib_azure.sh"
source "$(dirname "$0")/lib_server.sh"
CHECK_FOOTER="$VHDUP_SOURCE_DIR/test/tools/check_footer.py"
M=$((1024 * 1024))
ACCT=devstoreaccount1
SAS='sv=2018-03-28&sr=b&sp=rw&sig=mdsig'

qemu-img create -q -f vpc -o subformat=dynamic,force_size=on "$T/d.vhd" 12M
qemu-io -f vpc -c 'write -P 0x61 0 64k' -c "write -P 0x62 $((5 * M + 512)) 3m" \
  -c "write -P 0x63 $((12 * M - 512)) 512" "$T/d.vhd" >/dev/null
qemu-img convert -f vpc -O raw "$T/d.vhd" "$T/d.raw"
NEED=$((12 * M + 512))

# ------------------------------------------------- the right size, in place
start_testserver --key "$AZURITE_KEY" --sas-sig mdsig --require-md5 --managed-disk "disks/md1:$NEED"
# Stale data from an earlier attempt, where the disk has zeros (written
# with Shared Key through the independent signer).
head -c $((256 * 1024)) /dev/urandom >"$T/stale"
for off in $((2 * M)) $((10 * M)); do
  st=$(az_req PUT "$TS_URL" disks/md1 "comp=page" "$T/stale" "x-ms-page-write: update" \
    "x-ms-range: bytes=$off-$((off + 256 * 1024 - 1))" \
    "Content-MD5: $(openssl dgst -md5 -binary "$T/stale" | base64)")
  [ "$st" = 201 ] || fail "stale page: HTTP $st $(cat "$T/az.body")"
done
ts_reset_stats
env -u AZURE_STORAGE_CONNECTION_STRING "$VHDUP" upload --overwrite --progress=json \
  "$T/d.vhd" "$TS_URL/disks/md1?$SAS" >"$T/ok.json" 2>"$T/ok.err" ||
  fail "managed disk upload exited $?: $(cat "$T/ok.err")"
tail -n 1 "$T/ok.json" | python3 -c '
import json, sys
d = json.load(sys.stdin)
assert d["event"] == "done" and d["status"] == "ok", d
assert d["blob_size"] == int(sys.argv[1]), d
' "$NEED" || fail "managed: $(tail -n 1 "$T/ok.json")"
stored="$TS_STORE/$ACCT/disks/md1.data"
[ "$(stat -c %s "$stored")" -eq "$NEED" ] || fail "managed disk size changed"
cmp -n $((12 * M)) "$T/d.raw" "$stored" || fail "managed disk differs from the disk (stale data left?)"
python3 "$CHECK_FOOTER" "$stored" $((12 * M)) || fail "managed disk: bad footer"
# Nothing created or deleted (the server answers those 403). Blob
# properties: vhdup recognises managed-disk endpoints by their md-* host, so
# here (127.0.0.1) it tries once to store the whole-disk MD5, is refused
# (400 UnsupportedHeader), says so, and succeeds; no property is set.
ts_stats >"$T/stats.json"
python3 - "$T/stats.json" <<'PY' || fail "managed: requests the endpoint refuses: $(cat "$T/stats.json")"
import json, sys
s = json.load(open(sys.argv[1]))
c = s["status_counts"]
assert not any(int(k) >= 400 and k != "400" for k in c), c
assert c.get("400", 0) <= 1, c
assert s["put_pages"] > 0, s
PY
if grep -q '"400"' "$T/stats.json"; then
  grep -q "does not accept blob properties" "$T/ok.err" ||
    fail "managed: properties refused but no notice: $(cat "$T/ok.err")"
fi
st=$(az_req HEAD "$TS_URL" disks/md1)
[ "$st" = 200 ] && [ -z "$(az_header Content-MD5)" ] || fail "managed: a Content-MD5 property was set"
grep -qF mdsig "$T/ok.json" "$T/ok.err" && fail "managed: the SAS signature was printed"
pass "managed disk --overwrite: written in place, identical, nothing created, no properties set"

# ------------------------------------------------- without --overwrite
expect_fail 5 "already exists.*--overwrite" -- env -u AZURE_STORAGE_CONNECTION_STRING \
  "$VHDUP" upload "$T/d.vhd" "$TS_URL/disks/md1?$SAS"
pass "managed disk without --overwrite: refused as existing (exit 5)"

# ------------------------------------------------- the wrong size
start_testserver --key "$AZURITE_KEY" --sas-sig mdsig --require-md5 --managed-disk "disks/md2:$((16 * M + 512))"
ts_reset_stats
expect_fail 5 "needs exactly $NEED" -- env -u AZURE_STORAGE_CONNECTION_STRING \
  "$VHDUP" upload --overwrite "$T/d.vhd" "$TS_URL/disks/md2?$SAS"
grep -qF -- "--upload-size-bytes $NEED" "$T/err" || fail "wrong size: no az disk create hint: $(cat "$T/err")"
[ "$(ts_stat put_pages)" -eq 0 ] || fail "wrong size: pages were written: $(ts_stats)"
[ "$(stat -c %s "$TS_STORE/$ACCT/disks/md2.data")" -eq $((16 * M + 512)) ] || fail "wrong size: resized"
pass "managed disk of the wrong size: refused before any page (exit 5, needs $NEED)"
