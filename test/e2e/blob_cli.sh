#!/usr/bin/env bash
# Someone debugging an upload looks at the blob with `vhdup blob`: `info`
# shows its size, type, ETag and the Content-MD5 that `vhdup upload
# --disk-md5` stored (the MD5 its summary printed); `ranges` lists exactly
# the page ranges written (set up here with an independent signer, not with
# vhdup), text and --json, on a fragmented blob of hundreds of ranges, with a
# range crossing the default 150 MiB segment boundary shown once and whole,
# and, against vhdup-testserver (Azurite ignores maxresults), paged through
# markers. A missing blob exits 5, a wrong key 4 with the service's
# authentication error and no secret in the output. Credentials are taken
# as by `vhdup upload`: connection string, key file, SAS file or URL,
# environment.
source "$(dirname "$0")/lib.sh"
source "$(dirname "$0")/lib_azure.sh"
source "$(dirname "$0")/lib_server.sh"
M=$((1024 * 1024))

start_azurite
az_mkcontainer "$AZURITE_URL" vhds
printf '%s' "$AZURITE_KEY" >"$T/key"

# put_pages BASE BLOB START LEN...: writes random pages at each START (LEN
# bytes) with the independent signer; appends "START-END LEN" to
# $T/BLOB.want.
put_pages() {
  local base=$1 blob=$2 st
  shift 2
  while [ $# -gt 0 ]; do
    head -c "$2" /dev/urandom >"$T/page"
    st=$(az_req PUT "$base" "vhds/$blob" "comp=page" "$T/page" "x-ms-page-write: update" \
      "x-ms-range: bytes=$1-$(($1 + $2 - 1))")
    [ "$st" = 201 ] || fail "put page $1+$2 on $blob: HTTP $st $(cat "$T/az.body")"
    shift 2
  done
}

# make_page_blob BASE BLOB SIZE
make_page_blob() {
  local st
  st=$(az_req PUT "$1" "vhds/$2" "" "" "x-ms-blob-type: PageBlob" \
    "x-ms-blob-content-length: $3" "Content-Length: 0")
  [ "$st" = 201 ] || fail "create page blob $2: HTTP $st $(cat "$T/az.body")"
}

# ranges_of JSONFILE: "START-END LEN" lines from a `blob ranges --json`.
ranges_of() {
  python3 - "$1" <<'PY'
import json, sys
j = json.load(open(sys.argv[1]))
assert j["complete"] is True, j
assert j["count"] == len(j["ranges"]), j
assert j["bytes"] == sum(r["length"] for r in j["ranges"]), j
for r in j["ranges"]:
    assert r["length"] == r["end"] + 1 - r["start"], r
    print("%d-%d %d" % (r["start"], r["end"], r["length"]))
PY
}

# ------------------------------------------------- 1. a fragmented page blob
# 300 single pages with a page of gap between them, then larger ranges, one
# across the 150 MiB segment boundary, and two adjacent writes that the
# service reports as one range.
FRAG_SIZE=$((160 * M + 512))
make_page_blob "$AZURITE_URL" frag.vhd $FRAG_SIZE
args=()
for ((i = 0; i < 300; i++)); do args+=($((i * 1024)) 512); done
put_pages "$AZURITE_URL" frag.vhd "${args[@]}"
put_pages "$AZURITE_URL" frag.vhd $((1 * M)) $((64 * 1024)) \
  $((150 * M - 4096)) 8192 $((155 * M)) 4096 $((155 * M + 4096)) 1024 \
  $((FRAG_SIZE - 512)) 512
{
  for ((i = 0; i < 300; i++)); do echo "$((i * 1024))-$((i * 1024 + 511)) 512"; done
  echo "$((1 * M))-$((1 * M + 65535)) 65536"
  echo "$((150 * M - 4096))-$((150 * M + 4095)) 8192"
  echo "$((155 * M))-$((155 * M + 5119)) 5120"
  echo "$((FRAG_SIZE - 512))-$((FRAG_SIZE - 1)) 512"
} >"$T/frag.want"
want_count=$(wc -l <"$T/frag.want")
want_bytes=$(awk '{ s += $2 } END { print s }' "$T/frag.want")

AZURE_STORAGE_CONNECTION_STRING="$AZURITE_CONN" \
  "$VHDUP" blob ranges "$AZURITE_URL/vhds/frag.vhd" >"$T/frag.txt" 2>"$T/err" ||
  fail "blob ranges exited $?: $(cat "$T/err")"
grep -v '^total: ' "$T/frag.txt" | diff "$T/frag.want" - || fail "blob ranges: not the ranges written"
grep -qx "total: $want_count ranges, $want_bytes bytes (.*) in \[0, $FRAG_SIZE) of $FRAG_SIZE" \
  "$T/frag.txt" || fail "blob ranges: summary $(tail -n 1 "$T/frag.txt")"
pass "blob ranges lists exactly the $want_count ranges written, one across the segment boundary whole"

"$VHDUP" blob ranges --json --connection-string "$AZURITE_CONN" vhds/frag.vhd >"$T/frag.json" \
  2>"$T/err" || fail "blob ranges --json exited $?: $(cat "$T/err")"
ranges_of "$T/frag.json" | diff "$T/frag.want" - || fail "--json: not the ranges written"
python3 -c 'import json,sys; j=json.load(open(sys.argv[1])); assert j["blob_size"]==int(sys.argv[2]) and j["offset"]==0 and j["length"]==int(sys.argv[2]), j' \
  "$T/frag.json" $FRAG_SIZE || fail "--json header fields"
pass "blob ranges --json parses, count and bytes add up (CONTAINER/BLOB with --connection-string)"

# Small segments cut nearly every range; the listing must not change.
"$VHDUP" blob ranges --json --segment 1536 --length $((2 * M)) --account-key-file "$T/key" \
  "$AZURITE_URL/vhds/frag.vhd" >"$T/seg.json" 2>"$T/err" || fail "--segment exited $?: $(cat "$T/err")"
ranges_of "$T/seg.json" | diff <(head -n 301 "$T/frag.want") - || fail "--segment 1536: listing differs"
# A span clips the ranges at its edges.
"$VHDUP" blob ranges --offset $((150 * M)) --length $((5 * M + 1024)) --account-key-file "$T/key" \
  "$AZURITE_URL/vhds/frag.vhd" >"$T/span.txt" 2>"$T/err" || fail "--offset exited $?: $(cat "$T/err")"
diff <(printf '%s\n' "$((150 * M))-$((150 * M + 4095)) 4096" "$((155 * M))-$((155 * M + 1023)) 1024") \
  <(grep -v '^total: ' "$T/span.txt") || fail "--offset/--length: ranges not clipped to the span"
pass "small segments and a span (--account-key-file): same ranges, clipped at the edges"

# -------------------------------------- 2. marker paging (vhdup-testserver)
GOODSIG=dGhlLXRlc3Qtc2VydmVyLWFjY2VwdHMtdGhpcw
start_testserver --key "$AZURITE_KEY" --sas-sig "$GOODSIG"
az_mkcontainer "$TS_URL" vhds
make_page_blob "$TS_URL" frag.vhd $((4 * M))
args=()
for ((i = 0; i < 200; i++)); do args+=($((i * 2048)) 512); done
put_pages "$TS_URL" frag.vhd "${args[@]}"
ts_reset_stats
"$VHDUP" blob ranges --json --max-results 7 --segment 256K --account-key-file "$T/key" \
  "$TS_URL/vhds/frag.vhd" >"$T/paged.json" 2>"$T/err" || fail "paged listing exited $?: $(cat "$T/err")"
ranges_of "$T/paged.json" | diff <(for ((i = 0; i < 200; i++)); do echo "$((i * 2048))-$((i * 2048 + 511)) 512"; done) - ||
  fail "paged listing: not the ranges written"
# 16 segments of 256 KiB: the first holds 128 ranges (19 answers of at
# most 7), the second 72 (11 answers), the other 14 none (one answer each);
# and one HEAD first.
requests=$(ts_stat requests)
[ "$requests" -eq $((1 + 19 + 11 + 14)) ] || fail "$requests requests, expected 45: not paged as asked"
pass "marker paging: 200 ranges, 7 per answer, $requests requests, none lost or repeated"

# A service version before 2020-10-02 (as managed disks' SAS URLs carry) has
# no marker: maxresults is not sent, each segment is answered whole.
ts_reset_stats
"$VHDUP" blob ranges --json --max-results 7 --segment 256K --service-version 2019-12-12 \
  --account-key-file "$T/key" "$TS_URL/vhds/frag.vhd" >"$T/old.json" 2>"$T/err" ||
  fail "listing with 2019-12-12 exited $?: $(cat "$T/err")"
ranges_of "$T/old.json" | diff <(ranges_of "$T/paged.json") - || fail "2019-12-12: ranges differ"
requests=$(ts_stat requests)
[ "$requests" -eq $((1 + 16)) ] || fail "2019-12-12: $requests requests, expected 17 (no paging)"
pass "an old service version: no marker paging, the same ranges"

# A SAS from --sas-token-file, and one in the URL: same listing, and the
# signature never shows, not even in the -v trace.
printf '?sv=2021-08-06&sr=b&sp=r&sig=%s\n' "$GOODSIG" >"$T/sas"
"$VHDUP" blob ranges -v --sas-token-file "$T/sas" "$TS_URL/vhds/frag.vhd" >"$T/sas.txt" \
  2>"$T/sas.err" || fail "--sas-token-file exited $?: $(cat "$T/sas.err")"
"$VHDUP" blob ranges -v "$TS_URL/vhds/frag.vhd?sv=2021-08-06&sr=b&sp=r&sig=$GOODSIG" \
  >"$T/sasurl.txt" 2>>"$T/sas.err" || fail "SAS URL exited $?: $(cat "$T/sas.err")"
diff <(ranges_of "$T/paged.json") <(grep -v '^total: ' "$T/sas.txt") || fail "--sas-token-file: ranges"
diff "$T/sas.txt" "$T/sasurl.txt" || fail "SAS in the URL: ranges"
grep -q "sig=REDACTED" "$T/sas.err" || fail "-v shows no redacted SAS"
grep -qF -- "$GOODSIG" "$T/sas.txt" "$T/sasurl.txt" "$T/sas.err" && fail "the SAS signature leaked"
pass "--sas-token-file and a SAS in the URL: the same ranges, the signature never shown"

# ------------------------------- 3. info after an upload with --disk-md5
qemu-img create -q -f vpc -o subformat=dynamic,force_size=on "$T/d.vhd" 24M
qemu-io -f vpc -c 'write -P 0xab 0 64k' -c "write -P 0xcd $((9 * M)) 1m" "$T/d.vhd" >/dev/null
AZURE_STORAGE_CONNECTION_STRING="$AZURITE_CONN" \
  "$VHDUP" upload --disk-md5 --progress=none "$T/d.vhd" "$AZURITE_URL/vhds/d.vhd" >"$T/up.txt" \
  2>"$T/err" || fail "upload exited $?: $(cat "$T/err")"
md5=$(sed -n 's/^  disk MD5 *\([0-9a-f]\{32\}\)$/\1/p' "$T/up.txt")
[ -n "$md5" ] || fail "the upload summary has no disk MD5: $(cat "$T/up.txt")"
b64=$(printf '%s' "$md5" | xxd -r -p | base64)
AZURE_STORAGE_ACCOUNT=$AZURITE_ACCOUNT AZURE_STORAGE_KEY=$AZURITE_KEY \
  "$VHDUP" blob info "$AZURITE_URL/vhds/d.vhd" >"$T/info.txt" 2>"$T/err" ||
  fail "blob info exited $?: $(cat "$T/err")"
for want in "type            PageBlob" \
  "size            $((24 * M + 512)) bytes (24.00 MiB)" \
  "                24 MiB + 512: fits a managed disk or VM image" \
  "content MD5     $md5 (base64 $b64)" \
  "lease           available, unlocked"; do
  grep -qxF -- "$want" "$T/info.txt" || fail "blob info lacks '$want':
$(cat "$T/info.txt")"
done
grep -Eq '^etag            "0x[0-9A-F]+"$' "$T/info.txt" || fail "blob info: etag"
grep -Eq '^last modified   [A-Z][a-z]{2}, [0-9]{2} [A-Z][a-z]{2} [0-9]{4} [0-9:]{8} GMT$' \
  "$T/info.txt" || fail "blob info: last modified"
"$VHDUP" blob info --json --connection-string "$AZURITE_CONN" vhds/d.vhd >"$T/info.json" ||
  fail "blob info --json exited $?"
python3 - "$T/info.json" "$md5" "$b64" $((24 * M + 512)) <<'PY' || fail "info --json: $(cat "$T/info.json")"
import json, sys
j = json.load(open(sys.argv[1]))
assert j["size"] == int(sys.argv[4]) and j["blob_type"] == "PageBlob", j
assert j["content_md5"] == sys.argv[2] and j["content_md5_base64"] == sys.argv[3], j
assert j["etag"].startswith('"') and j["lease_state"] == "available", j
assert j["blob"].endswith("/vhds/d.vhd") and j["sequence_number"] == 0, j
PY
# The uploaded blob's ranges: the data written and the footer, last.
"$VHDUP" blob ranges --connection-string "$AZURITE_CONN" vhds/d.vhd >"$T/d.ranges" ||
  fail "ranges of the upload exited $?"
grep -qx "$((24 * M))-$((24 * M + 511)) 512" "$T/d.ranges" || fail "no footer range: $(cat "$T/d.ranges")"
grep -qx "0-65535 65536" "$T/d.ranges" || fail "no data range at 0: $(cat "$T/d.ranges")"
pass "blob info after upload --disk-md5: size, type, ETag, the summary's MD5 in hex and base64"

# ------------------------------------------------------ 4. failures
expect_fail 5 "BlobNotFound.*no such blob" -- \
  "$VHDUP" blob info --connection-string "$AZURITE_CONN" vhds/none.vhd
expect_fail 5 "ContainerNotFound.*no such container" -- \
  "$VHDUP" blob ranges --connection-string "$AZURITE_CONN" nocontainer/none.vhd
"$VHDUP" blob ranges --json --connection-string "$AZURITE_CONN" vhds/none.vhd >"$T/nf.json" 2>/dev/null &&
  fail "ranges of a missing blob succeeded"
python3 -c 'import json,sys; j=json.load(open(sys.argv[1])); assert j["complete"] is False and j["error_code"]=="VHDUP_ENOTFOUND", j' \
  "$T/nf.json" || fail "--json on failure: $(cat "$T/nf.json")"
pass "a missing blob or container: clear message, exit 5, JSON says so"

# A wrong key: another valid base64 key. Azurite answers AuthorizationFailure,
# Azure (and vhdup-testserver) AuthenticationFailed.
WRONG_KEY=$(head -c 64 /dev/urandom | base64 -w0)
printf '%s\n' "$WRONG_KEY" >"$T/wrong"
for base in "$AZURITE_URL" "$TS_URL"; do
  expect_fail 4 "HTTP 403 Auth(entication|orization)Fail" -- \
    "$VHDUP" blob info --account-key-file "$T/wrong" "$base/vhds/frag.vhd"
  expect_fail 4 "HTTP 403 Auth" -- \
    "$VHDUP" blob ranges --json --account-key-file "$T/wrong" "$base/vhds/frag.vhd"
done
expect_fail 4 "HTTP 403 AuthenticationFailed" -- \
  env "AZURE_STORAGE_ACCOUNT=$AZURITE_ACCOUNT" "AZURE_STORAGE_KEY=$WRONG_KEY" \
  "$VHDUP" blob info "$TS_URL/vhds/frag.vhd"
# A SAS in the URL with a made-up signature: refused, and never echoed.
SIG=c2VjcmV0c2lnbmF0dXJlZm9ydGVzdHM
expect_fail 4 "sig=REDACTED" -- \
  "$VHDUP" blob info -v "$AZURITE_URL/vhds/frag.vhd?sv=2021-08-06&sr=b&sp=r&se=2099-01-01&sig=$SIG"
for f in "$T/out" "$T/err"; do
  grep -qF -- "$SIG" "$f" && fail "the SAS signature leaked into $f"
done
# The keys never appear.
for key in "$WRONG_KEY" "$AZURITE_KEY" "${WRONG_KEY:0:20}"; do
  "$VHDUP" blob info --account-key-file "$T/wrong" -v "$TS_URL/vhds/frag.vhd" >"$T/o" 2>&1 || true
  grep -qF -- "$key" "$T/o" && fail "a key leaked into the output"
done
expect_fail 4 "no credential" -- env -u AZURE_STORAGE_CONNECTION_STRING \
  -u AZURE_STORAGE_ACCOUNT -u AZURE_STORAGE_KEY -u AZURE_STORAGE_SAS_TOKEN \
  "$VHDUP" blob info "$AZURITE_URL/vhds/frag.vhd"
pass "a wrong key or SAS: exit 4 with the service's error, no secret in the output"

# A block blob has no page ranges.
echo hello >"$T/hello"
st=$(az_req PUT "$AZURITE_URL" vhds/hello.txt "" "$T/hello" "x-ms-blob-type: BlockBlob")
[ "$st" = 201 ] || fail "put block blob: HTTP $st"
"$VHDUP" blob info --connection-string "$AZURITE_CONN" vhds/hello.txt | grep -qx "type            BlockBlob" ||
  fail "info of a block blob"
expect_fail 3 "is a BlockBlob, not a page blob" -- \
  "$VHDUP" blob ranges --connection-string "$AZURITE_CONN" vhds/hello.txt
pass "a block blob: info shows it, ranges refuses"

# Usage errors.
expect_fail 2 "needs a subcommand" -- "$VHDUP" blob
expect_fail 2 "unknown subcommand 'frob'" -- "$VHDUP" blob frob x
expect_fail 2 "info needs one URL" -- "$VHDUP" blob info
expect_fail 2 "are for ranges" -- "$VHDUP" blob info --offset 512 x
expect_fail 2 "--offset takes a multiple of 512" -- "$VHDUP" blob ranges --offset 100 x
expect_fail 2 "--segment takes a multiple of 512 from 512" -- "$VHDUP" blob ranges --segment 0 x
expect_fail 2 "beyond the blob's end" -- "$VHDUP" blob ranges --offset $((200 * M)) \
  --connection-string "$AZURITE_CONN" vhds/frag.vhd
pass "usage errors"
