#!/usr/bin/env bash
# Secrets never leave vhdup: a user uploads with a known account key (from a
# file and from the environment, alone and inside a connection string) and a
# known SAS (its sig= in the URL, in --sas-token-file, in a manifest
# credential and inline in a manifest), with --progress=json and -v (the
# HTTP trace), both when it works and when it fails: a wrong key, a wrong
# SAS, a credential that stops working mid-upload (the strict server's
# 403after:N), a non-retryable 400, a stalled request given up after
# --stall-timeout 2 --retries 1, a connection string whose key is not
# base64, a bad manifest with secrets written inline; and `vhdup blob info`
# and `ranges` with the same credentials. Then EVERYTHING vhdup
# wrote — stdout, stderr (JSON lines, notes, the trace), the resume journals
# under $XDG_STATE_HOME/vhdup, `vhdup run --report` files, anything new
# under $HOME or next to the sources — is searched for each secret: the
# base64 key, its decoded bytes (raw, and as hex in either case), its
# percent-encoded form, a 24-character piece of it, and the SAS signature
# encoded, decoded and in part. Any hit fails the test.
source "$(dirname "$0")/lib.sh"
source "$(dirname "$0")/lib_azure.sh"
source "$(dirname "$0")/lib_server.sh"
M=$((1024 * 1024))
ACCT=devstoreaccount1

# The secrets: a 64-byte account key with + and / in its base64, a wrong
# key, a key that is not base64 at all, and a SAS signature as Azure writes
# it (percent-encoded base64) plus a wrong one.
KEY='Vms3d5gCDjj5rIFn1H6jD00yAH2n4q+bBBRN62LNR0KeePCpxur1HzGpH/utMfMJRPZx8+GiiMPKAuSpszhKaQ=='
WRONG_KEY='Qm9vcHMgdGhpcyBpcyB0aGUgd3Jvbmcga2V5IGZvciB0aGlzIGFjY291bnQsIHN1cmVseSBpdCBmYWlscyE='
BAD_KEY='Zk3pNotBase64!!SecretPart_9xQw#Lm2Vr7Tz$Hy4'
SIG_ENC='q7Zk%2FxP3mN9wLr2vT8yB%2BhJ4cE6sD1aF0gH5iK3oU8eR2%3D'
SIG_DEC='q7Zk/xP3mN9wLr2vT8yB+hJ4cE6sD1aF0gH5iK3oU8eR2='
WRONG_SIG='Wr0ngS1gnatureZ8kD3xV6nB1mQ4tY7uI0pA5sL2fH9jK'
SAS="sv=2021-08-06&sr=b&sp=rcw&se=2099-01-01T00%3A00%3A00Z&sig=$SIG_ENC"
WRONG_SAS="sv=2021-08-06&sr=b&sp=rcw&sig=$WRONG_SIG"
printf '%s' "$KEY" | base64 -d >/dev/null 2>&1 || fail "test key is not base64"

OUT=$T/out        # every stdout/stderr capture and report
SRC=$T/src        # the disks (new files here are scanned too)
SECRETS=$T/secrets # inputs holding secrets (not scanned)
mkdir -p "$OUT" "$SRC" "$SECRETS" "$T/state" "$T/home"
export XDG_STATE_HOME=$T/state HOME=$T/home
unset AZURE_STORAGE_CONNECTION_STRING AZURE_STORAGE_ACCOUNT AZURE_STORAGE_KEY AZURE_STORAGE_SAS_TOKEN

# A 16 MiB dynamic disk with eight separate 64 KiB runs (so several Put
# Pages, and 403after:N has writes to count).
qemu-img create -q -f vpc -o subformat=dynamic,force_size=on "$SRC/disk.vhd" 16M
qio=()
for i in 0 1 2 3 4 5 6 7; do qio+=(-c "write -P 0x$((i + 1))$((i + 1)) $((i * 2 * M + 4096)) 64k"); done
qemu-io -f vpc "${qio[@]}" "$SRC/disk.vhd" >/dev/null
printf '%s\n' "$KEY" >"$SECRETS/key"
printf '%s\n' "$WRONG_KEY" >"$SECRETS/wrong.key"
printf '?%s\n' "$SAS" >"$SECRETS/sas"

# The stall runs in the background on a server of its own while the rest
# goes on (it takes a few seconds to be given up).
start_testserver --key "$KEY" --sas-sig "$SIG_DEC" --require-md5 --faults stall:1
STALL_URL=$TS_URL
AZ_KEY=$KEY az_mkcontainer "$STALL_URL" vhds
"$VHDUP" upload --progress=json -v -c 1 --stall-timeout 2 --retries 1 "$SRC/disk.vhd" \
  "$STALL_URL/vhds/stall.vhd?$SAS" >"$OUT/stall.out" 2>"$OUT/stall.err" &
stall_pid=$!
_pids+=("$stall_pid")

start_testserver --key "$KEY" --sas-sig "$SIG_DEC" --require-md5
AZ_KEY=$KEY az_mkcontainer "$TS_URL" vhds

# up NAME CODE [ENV=VALUE...] -- ARGS...: `vhdup upload --progress=json -v
# ARGS` (with the environment given), which must exit CODE; output in
# $OUT/NAME.out and .err.
up() {
  local name=$1 code=$2 rc=0
  shift 2
  local envs=()
  while [ "$1" != -- ]; do
    envs+=("$1")
    shift
  done
  shift
  env "${envs[@]}" timeout -k 2 30 "$VHDUP" upload --progress=json -v -c 2 "$@" \
    >"$OUT/$name.out" 2>"$OUT/$name.err" || rc=$?
  [ "$rc" -eq "$code" ] || fail "$name: exit $rc, expected $code: $(tail -n 3 "$OUT/$name.err")"
  python3 -c '
import json, sys
for line in open(sys.argv[1]):
    json.loads(line)' "$OUT/$name.out" || fail "$name: stdout is not JSON lines"
  [ -s "$OUT/$name.err" ] || fail "$name: -v wrote no trace"
  pass "$name: exit $rc"
}

# Working uploads, one per way of giving the credential.
up keyfile 0 -- --account-key-file "$SECRETS/key" "$SRC/disk.vhd" "$TS_URL/vhds/keyfile.vhd"
grep -q 'Authorization' "$OUT/keyfile.err" || fail "keyfile: -v shows no request headers"
up keyenv 0 AZURE_STORAGE_ACCOUNT=$ACCT "AZURE_STORAGE_KEY=$KEY" -- \
  "$SRC/disk.vhd" "$TS_URL/vhds/keyenv.vhd"
CONN="DefaultEndpointsProtocol=http;AccountName=$ACCT;AccountKey=$KEY;BlobEndpoint=$TS_URL;"
up connenv 0 "AZURE_STORAGE_CONNECTION_STRING=$CONN" -- "$SRC/disk.vhd" "$TS_URL/vhds/connenv.vhd"
up connarg 0 -- --connection-string "$CONN" "$SRC/disk.vhd" "$TS_URL/vhds/connarg.vhd"
up sasurl 0 -- "$SRC/disk.vhd" "$TS_URL/vhds/sasurl.vhd?$SAS"
grep -q 'sig=REDACTED' "$OUT/sasurl.err" "$OUT/sasurl.out" || fail "sasurl: no sig=REDACTED shown"
up sasfile 0 -- --sas-token-file "$SECRETS/sas" "$SRC/disk.vhd" "$TS_URL/vhds/sasfile.vhd"
up sasenv 0 "AZURE_STORAGE_ACCOUNT=$ACCT" "AZURE_STORAGE_SAS_TOKEN=$SAS" -- \
  "$SRC/disk.vhd" "$TS_URL/vhds/sasenv.vhd"

# Refused credentials.
up wrongkey 4 -- --account-key-file "$SECRETS/wrong.key" "$SRC/disk.vhd" "$TS_URL/vhds/wk.vhd"
up wrongsas 4 -- "$SRC/disk.vhd" "$TS_URL/vhds/ws.vhd?$WRONG_SAS"
up wrongkeyenv 4 AZURE_STORAGE_ACCOUNT=$ACCT "AZURE_STORAGE_KEY=$WRONG_KEY" -- \
  "$SRC/disk.vhd" "$TS_URL/vhds/wke.vhd"

# A credential that stops working mid-upload: the journal stays behind.
ts_faults "403after:3"
up expired_key 4 -- -c 1 --account-key-file "$SECRETS/key" "$SRC/disk.vhd" "$TS_URL/vhds/ek.vhd"
ts_faults "403after:3"
up expired_sas 4 -- -c 1 "$SRC/disk.vhd" "$TS_URL/vhds/es.vhd?$SAS"
ts_faults "403after:2"
up expired_connenv 4 "AZURE_STORAGE_CONNECTION_STRING=$CONN" -- -c 1 \
  "$SRC/disk.vhd" "$TS_URL/vhds/ec.vhd"
# A non-retryable 400 on a write.
ts_faults "400:1"
up bad_request 1 -- --sas-token-file "$SECRETS/sas" "$SRC/disk.vhd" "$TS_URL/vhds/br.vhd"
grep -q 'InvalidHeaderValue' "$OUT/bad_request.err" || fail "400: not reported"
ts_faults none

# A connection string whose key is not base64 (argument and environment).
BADCONN="DefaultEndpointsProtocol=http;AccountName=$ACCT;AccountKey=$BAD_KEY;BlobEndpoint=$TS_URL;"
for how in arg env; do
  rc=0
  if [ "$how" = arg ]; then
    "$VHDUP" upload --progress=json -v --connection-string "$BADCONN" "$SRC/disk.vhd" \
      "$TS_URL/vhds/badconn.vhd" >"$OUT/badconn_$how.out" 2>"$OUT/badconn_$how.err" || rc=$?
  else
    AZURE_STORAGE_CONNECTION_STRING=$BADCONN "$VHDUP" upload --progress=json -v "$SRC/disk.vhd" \
      "$TS_URL/vhds/badconn.vhd" >"$OUT/badconn_$how.out" 2>"$OUT/badconn_$how.err" || rc=$?
  fi
  [ "$rc" -ne 0 ] || fail "malformed key ($how): accepted"
  [ -s "$OUT/badconn_$how.err" ] || fail "malformed key ($how): no message"
  pass "connection string with a malformed key ($how): exit $rc: $(head -c 160 "$OUT/badconn_$how.err")"
done

# Manifests: a credential from a file, one from the environment, one
# inline (a warning), and a destination URL with its own SAS.
mkdir -p "$T/man"
export SECRETS_TEST_SAS=$SAS SECRETS_TEST_CONN=$CONN
manifest() { # FILE EXTRA-UPLOAD-LINES...
  local f=$1
  shift
  {
    cat <<YAML
version: 1
defaults:
  connections: 4
  memory: 8M
credentials:
  keyfile:
    account: $ACCT
    key: { file: $SECRETS/key }
    endpoint: $TS_URL
  sasenv:
    sas: { env: SECRETS_TEST_SAS }
    endpoint: $TS_URL
  connenv:
    connection_string: { env: SECRETS_TEST_CONN }
  inline:
    account: $ACCT
    key: "$KEY"
    endpoint: $TS_URL
  inlinesas:
    sas: "$SAS"
    endpoint: $TS_URL
uploads:
YAML
    printf '%s\n' "$@"
  } >"$f"
}
uploads_for() { # PREFIX: one upload per way
  printf '%s\n' \
    "  - { source: $SRC/disk.vhd, container: vhds, blob: $1-kf.vhd, credential: keyfile }" \
    "  - { source: $SRC/disk.vhd, container: vhds, blob: $1-se.vhd, credential: sasenv }" \
    "  - { source: $SRC/disk.vhd, container: vhds, blob: $1-ce.vhd, credential: connenv }" \
    "  - { source: $SRC/disk.vhd, container: vhds, blob: $1-il.vhd, credential: inline }" \
    "  - { source: $SRC/disk.vhd, container: vhds, blob: $1-is.vhd, credential: inlinesas }" \
    "  - { source: $SRC/disk.vhd, destination: \"$TS_URL/vhds/$1-url.vhd?$SAS\" }"
}
mapfile -t lines < <(uploads_for good)
manifest "$T/man/good.yaml" "${lines[@]}"
runm() { # NAME CODE ARGS...
  local name=$1 code=$2 rc=0
  shift 2
  timeout -k 2 40 "$VHDUP" run "$@" >"$OUT/$name.out" 2>"$OUT/$name.err" || rc=$?
  [ "$rc" -eq "$code" ] || fail "$name: exit $rc, expected $code: $(tail -n 5 "$OUT/$name.err")"
  pass "$name: exit $rc"
}
runm run_good 0 "$T/man/good.yaml" --progress json --report "$OUT/run_good.report.json"
grep -q 'inline' "$OUT/run_good.err" || fail "run_good: no warning about the inline secrets"
runm run_dry 0 "$T/man/good.yaml" --dry-run --progress json --report "$OUT/run_dry.report.json"

# The same manifest when the credentials stop working mid-upload.
mapfile -t lines < <(uploads_for expired)
manifest "$T/man/expired.yaml" "${lines[@]}"
ts_faults "403after:4"
runm run_expired 4 "$T/man/expired.yaml" --progress json --report "$OUT/run_expired.report.json"
ts_faults none
# Wrong secrets given inline, and a wrong key from a file.
cat >"$T/man/wrong.yaml" <<YAML
version: 1
credentials:
  wrongkey:
    account: $ACCT
    key: { file: $SECRETS/wrong.key }
    endpoint: $TS_URL
  wronginline:
    account: $ACCT
    key: "$WRONG_KEY"
    endpoint: $TS_URL
uploads:
  - { source: $SRC/disk.vhd, container: vhds, blob: w1.vhd, credential: wrongkey }
  - { source: $SRC/disk.vhd, container: vhds, blob: w2.vhd, credential: wronginline }
  - { source: $SRC/disk.vhd, destination: "$TS_URL/vhds/w3.vhd?$WRONG_SAS" }
YAML
runm run_wrong 4 "$T/man/wrong.yaml" --progress json --report "$OUT/run_wrong.report.json"

# A bad manifest (errors besides the inline secrets): refused up front.
cat >"$T/man/bad.yaml" <<YAML
version: 1
defaults:
  conections: 4
credentials:
  inline:
    account: $ACCT
    key: "$KEY"
    endpoint: $TS_URL
  inlinesas:
    sas: "$SAS"
    endpoint: $TS_URL
  badconn:
    connection_string: "$BADCONN"
  both:
    account: $ACCT
    key: "$KEY"
    sas: "$SAS"
uploads:
  - { source: $SRC/disk.vhd, container: vhds, blob: b1.vhd, credential: inline, md5: maybe }
  - { source: $SRC/disk.vhd, container: vhds, blob: b2.vhd, credential: inlinesas }
  - { source: $SRC/disk.vhd, container: vhds, blob: b3.vhd, credential: badconn }
  - { source: $SRC/disk.vhd, destination: "$TS_URL/vhds/b4.vhd?$SAS", credential: nosuch }
  - { source: $SRC/disk.vhd, destination: "$TS_URL/vhds/b4.vhd?$WRONG_SAS" }
YAML
runm run_bad 3 "$T/man/bad.yaml" --progress json --report "$OUT/run_bad.report.json"
grep -q 'conections' "$OUT/run_bad.err" || fail "run_bad: the unknown key is not reported"
# A connection string with a malformed key, by reference: found at run time.
cat >"$T/man/badconn.yaml" <<YAML
version: 1
credentials:
  badconn:
    connection_string: { env: SECRETS_TEST_BADCONN }
uploads:
  - { source: $SRC/disk.vhd, container: vhds, blob: bc.vhd, credential: badconn }
YAML
rc=0
SECRETS_TEST_BADCONN=$BADCONN "$VHDUP" run "$T/man/badconn.yaml" --progress json \
  --report "$OUT/run_badconn.report.json" >"$OUT/run_badconn.out" 2>"$OUT/run_badconn.err" || rc=$?
[ "$rc" -ne 0 ] || fail "run_badconn: a malformed key was accepted"
pass "run_badconn: exit $rc"

# `vhdup blob` (info and ranges, --json and -v) with each kind of credential,
# on a blob that exists, one that does not, and a refused credential.
blob_case() { # NAME CODE ARGS...
  local name=$1 code=$2 rc=0
  shift 2
  timeout -k 2 30 "$VHDUP" blob "$@" --json -v >"$OUT/blob_$name.out" 2>"$OUT/blob_$name.err" || rc=$?
  [ "$rc" -eq "$code" ] || fail "blob $name: exit $rc, expected $code: $(tail -n 3 "$OUT/blob_$name.err")"
}
for cmd in info ranges; do
  blob_case "${cmd}_sas" 0 "$cmd" "$TS_URL/vhds/sasurl.vhd?$SAS"
  blob_case "${cmd}_keyfile" 0 "$cmd" --account-key-file "$SECRETS/key" "$TS_URL/vhds/keyfile.vhd"
  blob_case "${cmd}_sasfile_missing" 5 "$cmd" --sas-token-file "$SECRETS/sas" "$TS_URL/vhds/nosuch.vhd"
  blob_case "${cmd}_wrongsas" 4 "$cmd" "$TS_URL/vhds/sasurl.vhd?$WRONG_SAS"
  blob_case "${cmd}_wrongkey" 4 "$cmd" --account-key-file "$SECRETS/wrong.key" "$TS_URL/vhds/keyfile.vhd"
done
pass "vhdup blob info/ranges with SAS, key file, missing blob, wrong credentials"

# The stall, back.
rc=0
wait "$stall_pid" || rc=$?
[ "$rc" -ne 0 ] || fail "stall: the upload succeeded though every write stalled"
grep -qiE 'tim(ed|e) ?out|stall' "$OUT/stall.err" || fail "stall: no timeout reported: $(tail -n 3 "$OUT/stall.err")"
pass "stall with --stall-timeout 2 --retries 1: exit $rc"

# What was written, so the search is not vacuous.
ls "$XDG_STATE_HOME"/vhdup/*.journal >/dev/null 2>&1 || fail "no resume journal was left behind to search"
for r in run_good run_expired run_wrong; do
  [ -s "$OUT/$r.report.json" ] || fail "$r: no report written"
done
nj=$(find "$XDG_STATE_HOME" -type f | wc -l)
nf=$(find "$OUT" -type f | wc -l)

# The search: every file vhdup could have written. The scanner proves itself
# first on a file that holds each secret.
cat >"$T/scan.py" <<'PY'
import base64, os, sys, urllib.parse
key, wrong_key, bad_key, sig_enc, sig_dec, wrong_sig = sys.argv[1:7]
roots = sys.argv[7:]
needles = {}
for name, k in (("key", key), ("wrong key", wrong_key)):
    raw = base64.b64decode(k)
    needles[name + " (base64)"] = k.encode()
    needles[name + " (24 chars of base64)"] = k[20:44].encode()
    needles[name + " (percent-encoded)"] = urllib.parse.quote(k, safe="").encode()
    needles[name + " (bytes)"] = raw
    needles[name + " (hex)"] = raw.hex().encode()
    needles[name + " (HEX)"] = raw.hex().upper().encode()
    needles[name + " (16 bytes as hex)"] = raw[8:24].hex().encode()
needles["malformed key"] = bad_key.encode()
needles["malformed key (part)"] = b"SecretPart_9xQw"
needles["sig (encoded)"] = sig_enc.encode()
needles["sig (decoded)"] = sig_dec.encode()
needles["sig (part)"] = b"mN9wLr2vT8yB"
needles["sig (tail)"] = b"hJ4cE6sD1aF0gH5iK3oU8eR2"
needles["wrong sig"] = wrong_sig.encode()
needles["wrong sig (part)"] = b"nB1mQ4tY7uI0pA5s"
if roots[0] == "--canary":  # write every needle into a file, print how many
    open(roots[1], "wb").write(b"\n".join(needles.values()))
    print(len(needles))
    sys.exit(0)
hits, files = [], 0
for root in roots:
    paths = [root] if os.path.isfile(root) else [
        os.path.join(d, f) for d, _, fs in os.walk(root) for f in fs]
    for p in paths:
        files += 1
        data = open(p, "rb").read()
        low = data.lower()
        for name, n in needles.items():
            if n in data or (name.endswith("(hex)") and n in low):
                hits.append("%s: %s" % (p, name))
for h in hits:
    print(h)
print("scanned %d files" % files, file=sys.stderr)
sys.exit(1 if hits else 0)
PY
scan() { python3 "$T/scan.py" "$KEY" "$WRONG_KEY" "$BAD_KEY" "$SIG_ENC" "$SIG_DEC" "$WRONG_SIG" "$@"; }
nneedles=$(scan --canary "$T/canary")
scan "$T/canary" >"$T/canary.hits" 2>/dev/null && fail "the scanner found nothing in the canary"
[ "$(wc -l <"$T/canary.hits")" -eq "$nneedles" ] ||
  fail "the scanner missed needles in the canary: $(cat "$T/canary.hits")"

# New files next to the sources (a journal placed there, say) count too.
extra=$(find "$SRC" -type f ! -name disk.vhd)
[ -z "$extra" ] || echo "note: vhdup left files next to the source: $extra"
if ! scan "$OUT" "$XDG_STATE_HOME" "$HOME" "$SRC" >"$T/hits" 2>"$T/scan.err"; then
  sed "s|$T/||" "$T/hits" | head -40 >&2
  fail "secrets found in what vhdup wrote ($(wc -l <"$T/hits") hits)"
fi
pass "no secret in $nf captured outputs and reports, $nj state files ($(cat "$T/scan.err"))"
