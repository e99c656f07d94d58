#!/usr/bin/env bash
# --crc64: every Put Page carries x-ms-content-crc64 (Azure's CRC-64/NVME)
# instead of Content-MD5, and the strict server checks each one (a wrong
# CRC is a 400); the blob comes out identical. A service version older than
# 2019-02-02 refuses --crc64 before anything is sent.
source "$(dirname "$0")/lib.sh"
source "$(dirname "$0")/lib_azure.sh"
source "$(dirname "$0")/lib_server.sh"
M=$((1024 * 1024))
start_testserver --key "$AZURITE_KEY"
az_mkcontainer "$TS_URL" vhds
printf '%s' "$AZURITE_KEY" >"$T/key"
qemu-img create -q -f vpc -o subformat=dynamic,force_size=on "$T/d.vhd" 48M
qemu-io -f vpc -c 'write -P 0x3c 512 9M' -c 'write -P 0xc3 30M 4k' -c 'write -P 0x11 47M 1M' \
  "$T/d.vhd" >/dev/null
qemu-img convert -f vpc -O raw "$T/d.vhd" "$T/d.raw"

"$VHDUP" upload --quiet --crc64 -c 4 --account-key-file "$T/key" "$T/d.vhd" "$TS_URL/vhds/d.vhd" ||
  fail "--crc64 upload failed"
data=$TS_STORE/devstoreaccount1/vhds/d.vhd.data
cmp -n $((48 * M)) "$T/d.raw" "$data" || fail "--crc64: blob differs"
python3 "$VHDUP_SOURCE_DIR/test/tools/check_footer.py" "$data" $((48 * M)) || fail "bad footer"
[ "$(ts_stat md5_missing)" -eq "$(ts_stat put_pages)" ] || fail "--crc64 also sent Content-MD5"
pass "--crc64: $(ts_stat put_pages) Put Pages checked by CRC64 on the server, blob identical"

rc=0
"$VHDUP" upload --quiet --crc64 --service-version 2018-11-09 --account-key-file "$T/key" \
  "$T/d.vhd" "$TS_URL/vhds/old.vhd" 2>"$T/err" || rc=$?
[ "$rc" -ne 0 ] || fail "--crc64 with 2018-11-09 accepted"
grep -q "2019-02-02" "$T/err" || fail "unclear: $(cat "$T/err")"
[ "$(az_status "$TS_URL" vhds/old.vhd)" = 404 ] || fail "a blob was created anyway"
pass "--crc64 with an older service version refused first: $(cat "$T/err")"
