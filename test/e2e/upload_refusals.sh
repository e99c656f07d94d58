#!/usr/bin/env bash
# A user makes the usual mistakes with `vhdup upload` against a real
# storage account (Azurite), and each is refused clearly, with the right
# exit code, before harm is done: a broken VHD (exit 3, the file named, no
# blob created); an existing blob (exit 5, pointing at --overwrite);
# --overwrite into a blob of the right size full of stale data (allowed:
# the result is exactly the disk, the stale data gone) or of the wrong size
# (exit 5, the size needed and the `az disk create` hint); a wrong account
# key (exit 4, Azure's AuthenticationFailed, the key never printed); a key
# or SAS file too long, empty or of two lines (exit 3, the file named); no
# credential at all (exit 4, where to put one); plain http:// to a host
# that is not loopback (exit 2, at once, nothing sent); a container that
# does not exist (said so).
source "$(dirname "$0")/lib.sh"
source "$(dirname "$0")/lib_azure.sh"
MKVHD="$VHDUP_SOURCE_DIR/test/tools/mkvhd.py"
CHECK_FOOTER="$VHDUP_SOURCE_DIR/test/tools/check_footer.py"
M=$((1024 * 1024))

start_azurite
az_mkcontainer "$AZURITE_URL" vhds
export AZURE_STORAGE_CONNECTION_STRING="$AZURITE_CONN"
python3 "$MKVHD" cases "$T/cases" >/dev/null

# no_blob NAME BLOB: the blob does not exist.
no_blob() {
  local st
  st=$(az_status "$AZURITE_URL" "$2")
  [ "$st" = 404 ] || fail "$1: $2 exists after a refused upload (HEAD: HTTP $st)"
}

# Each part runs in a subshell (set -e and fail() end only that part), so
# one finding does not hide the others; the test fails at the end if any
# part failed.
failed=()
part() {
  local name=$1 rc=0
  shift
  ("$@") || rc=$?
  [ "$rc" -eq 0 ] || failed+=("$name")
}

# ------------------------------------------------------- 1. invalid sources
invalid_sources() {
n=0
while IFS=$'\t' read -r name _kind file code regex extra; do
  case "$name" in
  bad_cookie | bad_footer_checksum | truncated_mid | bat_overlap | block_size_not_pow2 | \
    hostile_entries | missing_parent | random | empty) ;;
  *) continue ;;
  esac
  # shellcheck disable=SC2086 # extra holds whole options
  expect_fail "$code" "$regex" -- "$VHDUP" upload $extra "$file" "$AZURITE_URL/vhds/$name.vhd"
  grep -qF -- "$file" "$T/err" || fail "$name: the message does not name the file: $(cat "$T/err")"
  no_blob "$name" "vhds/$name.vhd"
  n=$((n + 1))
done <"$T/cases/cases.tsv"
[ "$n" -eq 9 ] || fail "only $n malformed cases ran"
expect_fail 3 "nonexistent.vhd" -- "$VHDUP" upload "$T/nonexistent.vhd" "$AZURITE_URL/vhds/none.vhd"
no_blob missing vhds/none.vhd
pass "invalid sources: exit 3, file named, no blob created"
}
part "invalid sources" invalid_sources

# ------------------------------------------------------- 2. existing blobs
qemu-img create -q -f vpc -o subformat=dynamic,force_size=on "$T/d.vhd" 8M
qemu-io -f vpc -c 'write -P 0x42 64k 128k' -c "write -P 0x43 $((5 * M)) 512" "$T/d.vhd" >/dev/null
qemu-img convert -f vpc -O raw "$T/d.vhd" "$T/d.raw"
"$VHDUP" upload --quiet -v "$T/d.vhd" "$AZURITE_URL/vhds/d.vhd" 2>"$T/first.err" || fail "first upload exited $?"
existing() {
# A plain upload creates the blob without asking first (one round trip
# less); only a refused create asks what is there, to say why.
[ "$(grep -oE '^> (HEAD|PUT|GET)' "$T/first.err" | head -1)" = "> PUT" ] ||
  fail "a plain upload did not start with its create: $(grep '^> ' "$T/first.err" | head -3)"
grep -q "^> HEAD" "$T/first.err" && fail "a plain upload asked before creating: $(grep '^> ' "$T/first.err" | head -3)"
expect_fail 5 "already exists.*--overwrite" -- "$VHDUP" upload -v "$T/d.vhd" "$AZURITE_URL/vhds/d.vhd"
[ "$(grep -oE '^> (HEAD|PUT|GET)' "$T/err" | head -2 | tr '\n' ' ')" = "> PUT > HEAD " ] ||
  fail "a refused create is not followed by HEAD: $(grep '^> ' "$T/err" | head -3)"
pass "an existing blob is refused (exit 5, mentions --overwrite), after a conditional create"

# Right size, stale random data in the first and last MiB (where the disk
# has zeros too): after --overwrite the blob is exactly the disk.
az_put_blob_garbage "$AZURITE_URL" vhds/stale.vhd $((8 * M + 512))
"$VHDUP" upload --quiet --overwrite "$T/d.vhd" "$AZURITE_URL/vhds/stale.vhd" ||
  fail "--overwrite into a blob of the right size exited $?"
az_get "$AZURITE_URL" vhds/stale.vhd "$T/stale.blob"
[ "$(stat -c %s "$T/stale.blob")" -eq $((8 * M + 512)) ] || fail "overwritten blob size"
cmp -n $((8 * M)) "$T/d.raw" "$T/stale.blob" || fail "--overwrite left stale data"
python3 "$CHECK_FOOTER" "$T/stale.blob" $((8 * M)) || fail "--overwrite: bad footer"
pass "--overwrite into a blob holding garbage: identical to the disk"

# Wrong size: refused, saying the size needed.
az_put_blob_garbage "$AZURITE_URL" vhds/small.vhd $((4 * M + 512))
expect_fail 5 "$((8 * M + 512))" -- "$VHDUP" upload --overwrite "$T/d.vhd" "$AZURITE_URL/vhds/small.vhd"
grep -qF -- "az disk create" "$T/err" && grep -qF -- "--upload-size-bytes $((8 * M + 512))" "$T/err" ||
  fail "wrong size: no 'az disk create --upload-size-bytes' hint: $(cat "$T/err")"
az_get "$AZURITE_URL" vhds/small.vhd "$T/small.blob"
[ "$(stat -c %s "$T/small.blob")" -eq $((4 * M + 512)) ] || fail "wrong size: the blob was resized"
pass "--overwrite into a blob of the wrong size: exit 5 with the size needed"
}
part "existing blobs" existing

# ------------------------------------------------------- 3. credentials
badkey=$(head -c 64 /dev/urandom | base64 -w0)
printf '%s\n' "$badkey" >"$T/badkey"
credentials() {
# A wrong (well-formed) key, from a file, then from the environment.
# Azure answers a HEAD signed with a wrong key 403 AuthenticationFailed;
# Azurite 3.35 says AuthorizationFailure. Either way the code is Azure's.
expect_fail 4 "HTTP 403 (AuthenticationFailed|AuthorizationFailure)" -- env -u AZURE_STORAGE_CONNECTION_STRING \
  "$VHDUP" upload -v --account-key-file "$T/badkey" "$T/d.vhd" "$AZURITE_URL/vhds/auth.vhd"
grep -qF -- "$badkey" "$T/out" "$T/err" && fail "the account key was printed"
grep -qF -- "${badkey:0:20}" "$T/out" "$T/err" && fail "part of the account key was printed"
badconn="DefaultEndpointsProtocol=http;AccountName=$AZURITE_ACCOUNT;AccountKey=$badkey;BlobEndpoint=$AZURITE_URL;"
expect_fail 4 "HTTP 403 (AuthenticationFailed|AuthorizationFailure)" -- env AZURE_STORAGE_CONNECTION_STRING="$badconn" \
  "$VHDUP" upload --progress=json "$T/d.vhd" "$AZURITE_URL/vhds/auth.vhd"
grep -qF -- "${badkey:0:20}" "$T/out" "$T/err" && fail "the account key was printed (env)"
no_blob auth vhds/auth.vhd
pass "wrong account key: exit 4, AuthenticationFailed, key never printed"

# A key or SAS file that cannot hold one: refused before anything is sent
# (exit 3), naming the option, the file and the problem; a too-long file is
# never cut to a prefix that might pass for a key.
head -c 65537 /dev/zero | tr '\0' 'A' >"$T/long.key"
: >"$T/empty.key"
printf ' \n\n' >"$T/blank.sas"
printf 'sv=1&sig=x\nsecond line\n' >"$T/twolines.sas"
expect_fail 3 "^vhdup: --account-key-file $T/long.key: the file is larger than 65536 bytes: not an account key\$" \
  -- "$VHDUP" upload --account-key-file "$T/long.key" "$T/d.vhd" "$AZURITE_URL/vhds/long.vhd"
expect_fail 3 "^vhdup: --account-key-file $T/empty.key: the file is empty: not an account key\$" \
  -- "$VHDUP" upload --account-key-file "$T/empty.key" "$T/d.vhd" "$AZURITE_URL/vhds/long.vhd"
expect_fail 3 "^vhdup: --sas-token-file $T/blank.sas: the file is empty: not a SAS token\$" \
  -- "$VHDUP" upload --sas-token-file "$T/blank.sas" "$T/d.vhd" "$AZURITE_URL/vhds/long.vhd"
expect_fail 3 "^vhdup: --sas-token-file $T/twolines.sas: the file holds more than one line" \
  -- "$VHDUP" upload --sas-token-file "$T/twolines.sas" "$T/d.vhd" "$AZURITE_URL/vhds/long.vhd"
grep -qF "sig=x" "$T/err" && fail "the SAS file's text was printed"
expect_fail 3 "^vhdup: --account-key-file $T/none.key: cannot read: " \
  -- "$VHDUP" upload --account-key-file "$T/none.key" "$T/d.vhd" "$AZURITE_URL/vhds/long.vhd"
no_blob long vhds/long.vhd
pass "key and SAS files too long (65537 bytes), empty, blank, of two lines or missing: exit 3, file named"

expect_fail 4 "AZURE_STORAGE_CONNECTION_STRING" -- env -u AZURE_STORAGE_CONNECTION_STRING \
  -u AZURE_STORAGE_ACCOUNT -u AZURE_STORAGE_KEY -u AZURE_STORAGE_SAS_TOKEN \
  "$VHDUP" upload "$T/d.vhd" "$AZURITE_URL/vhds/nocred.vhd"
grep -qiE -- "no credential|credential" "$T/err" || fail "no credential: $(cat "$T/err")"
no_blob nocred vhds/nocred.vhd
pass "no credential: exit 4 with guidance"
}
part credentials credentials

# ------------------------------------------------------- 4. plain http
# 198.18.0.1 (benchmarking range) is never reachable from here: a refusal
# that comes back at once proves no connection was attempted.
plain_http() {
start=$(date +%s%N)
expect_fail 2 "http" -- timeout $((20 * SLOW)) "$VHDUP" upload --account-key-file "$T/badkey" \
  "$T/d.vhd" "http://198.18.0.1/acct/vhds/x.vhd"
ms=$((($(date +%s%N) - start) / 1000000))
[ "$ms" -lt $((2000 * SLOW)) ] || fail "http:// refusal took $ms ms (a connection was tried?)"
grep -qE -- "--allow-http|https" "$T/err" || fail "http:// refusal does not say what to do: $(cat "$T/err")"
grep -qF -- "${badkey:0:20}" "$T/out" "$T/err" && fail "the account key was printed (http)"
pass "plain http:// to a non-loopback host refused at once (${ms} ms)"
}
part "plain http" plain_http

# ------------------------------------------------------- 5. missing container
missing_container() {
rc=0
"$VHDUP" upload "$T/d.vhd" "$AZURITE_URL/nosuchcontainer/x.vhd" >"$T/out" 2>"$T/err" || rc=$?
[ "$rc" -ne 0 ] || fail "upload into a missing container succeeded"
grep -qiE -- "container" "$T/err" || fail "missing container: message does not say so: $(cat "$T/err")"
grep -qF -- "ContainerNotFound" "$T/err" || fail "missing container: no Azure code: $(cat "$T/err")"
pass "missing container: exit $rc, $(tail -n 1 "$T/err" | head -c 200)"
}
part "missing container" missing_container

[ "${#failed[@]}" -eq 0 ] || fail "parts failed: ${failed[*]}"
