#!/usr/bin/env bash
# A SAS round trip with the real emulator: a container SAS (signed by the
# test with python's hmac, not by vhdup) in the destination URL is the whole
# credential; the blob reads back identical; the signature never appears in
# the output (sig=REDACTED). A read-only SAS is refused with Azure's code,
# exit 4, and nothing is written.
source "$(dirname "$0")/lib.sh"
source "$(dirname "$0")/lib_azure.sh"
M=$((1024 * 1024))
start_azurite
az_mkcontainer "$AZURITE_URL" sas-vhds
qemu-img create -q -f vpc -o subformat=dynamic,force_size=on "$T/d.vhd" 40M
qemu-io -f vpc -c 'write -P 0x71 3M 5M' -c 'write -P 0x17 39M 1M' "$T/d.vhd" >/dev/null
qemu-img convert -f vpc -O raw "$T/d.vhd" "$T/d.raw"

SAS=$(az_container_sas sas-vhds racwd)
SIG=$(python3 -c 'import sys, urllib.parse; print(dict(urllib.parse.parse_qsl(sys.argv[1]))["sig"])' "$SAS")
env -u AZURE_STORAGE_CONNECTION_STRING -u AZURE_STORAGE_KEY \
  "$VHDUP" upload --verify=content "$T/d.vhd" "$AZURITE_URL/sas-vhds/d.vhd?$SAS" >"$T/out" 2>&1 ||
  fail "SAS upload failed: $(cat "$T/out")"
grep -qF "$SIG" "$T/out" && fail "the SAS signature was printed"
grep -q "sig=REDACTED" "$T/out" || fail "no redacted URL in the summary: $(cat "$T/out")"
az_get "$AZURITE_URL" sas-vhds/d.vhd "$T/blob"
cmp -n $((40 * M)) "$T/d.raw" "$T/blob" || fail "blob differs from the disk"
python3 "$VHDUP_SOURCE_DIR/test/tools/check_footer.py" "$T/blob" $((40 * M)) || fail "bad footer"
pass "container SAS in the URL: uploaded, verified by content, identical, signature never printed"

RO=$(az_container_sas sas-vhds r)
rc=0
"$VHDUP" upload "$T/d.vhd" "$AZURITE_URL/sas-vhds/ro.vhd?$RO" >"$T/out" 2>&1 || rc=$?
[ "$rc" -eq 4 ] || fail "read-only SAS: exit $rc, not 4: $(cat "$T/out")"
grep -qE "HTTP 403 (AuthorizationPermissionMismatch|AuthorizationFailure|AuthenticationFailed)" "$T/out" ||
  fail "read-only SAS: no Azure code: $(cat "$T/out")"
[ "$(az_status "$AZURITE_URL" sas-vhds/ro.vhd)" = 404 ] || fail "read-only SAS: a blob was created"
pass "read-only SAS refused: $(tail -n 1 "$T/out" | head -c 200)"
