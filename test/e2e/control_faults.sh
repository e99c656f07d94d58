#!/usr/bin/env bash
# One transient failure of a control request (not a Put Page: the blob
# create, HEAD, container create, Get Page Ranges, clear pages, Set Blob
# Properties, the Get Blob of --verify=content) must not fail an upload or a
# `vhdup blob` command: each is retried like a Put Page, counted in the
# JSON summary's retries and told on stderr ("retrying STEP after ERROR
# (attempt K of N)"). Our strict server injects one fault on each step
# (KIND@OP:N, test/server/README.md); its faults_by_op says each was
# consumed. A fault that never ends stops the upload with a message naming
# the step, after exactly --retries tries, and leaves nothing behind. An
# upload interrupted while it waits out a long Retry-After (503r, 60 s)
# stops at once, not after the wait.
#
# Every case runs on its own (part), so one finding does not hide the
# others; the test fails at the end if any failed.
source "$(dirname "$0")/lib.sh"
source "$(dirname "$0")/lib_azure.sh"
source "$(dirname "$0")/lib_server.sh"
CHECK_FOOTER="$VHDUP_SOURCE_DIR/test/tools/check_footer.py"
M=$((1024 * 1024))
VMIB=24
VSIZE=$((VMIB * M))
BSIZE=$((VSIZE + 512))
ACCT=devstoreaccount1
unset AZURE_STORAGE_CONNECTION_STRING AZURE_STORAGE_ACCOUNT AZURE_STORAGE_KEY AZURE_STORAGE_SAS_TOKEN

# A dynamic qemu-img VHD with 5 MiB of data in five places (not the first
# MiB, where the stale blob below has garbage that must be cleared), and
# its raw image, the oracle.
qemu-img create -q -f vpc -o subformat=dynamic,force_size=on "$T/disk.vhd" "${VMIB}M"
qemu-io -f vpc -c "write -P 17 $((2 * M)) 1m" -c "write -P 91 $((7 * M + 4096)) 512k" \
  -c "write -P 200 $((12 * M)) 1m" -c "write -P 5 $((18 * M)) 2m" -c "write -P 77 $((VSIZE - M)) 512k" \
  "$T/disk.vhd" >/dev/null
qemu-img convert -f vpc -O raw "$T/disk.vhd" "$T/disk.raw"
[ "$(stat -c %s "$T/disk.raw")" = "$VSIZE" ] || fail "qemu-img made a $(stat -c %s "$T/disk.raw")-byte disk"
printf '%s\n' "$AZURITE_KEY" >"$T/key"

start_testserver --key "$AZURITE_KEY" --trickle-ms 2
az_mkcontainer "$TS_URL" vhds

# check_stored NAME CONTAINER/BLOB: the server's blob is the disk (as qemu-img
# reads it) plus a valid fixed footer.
check_stored() {
  local f="$TS_STORE/$ACCT/$2.data"
  [ -f "$f" ] || fail "$1: no blob $2"
  [ "$(stat -c %s "$f")" -eq "$BSIZE" ] || fail "$1: blob is $(stat -c %s "$f") bytes, not $BSIZE"
  cmp -n "$VSIZE" "$T/disk.raw" "$f" || fail "$1: blob differs from qemu-img's raw image"
  python3 "$CHECK_FOOTER" "$f" "$VSIZE" || fail "$1: bad footer"
}

# done_field JSONFILE NAME: a field of the summary (the last JSON line).
done_field() {
  tail -n 1 "$1" | python3 -c 'import json,sys; print(json.load(sys.stdin)[sys.argv[1]])' "$2"
}

# faults_consumed NAME SPEC: the server's faults_by_op equals the counts of
# SPEC (a KIND@OP:N list), every other operation 0.
faults_consumed() {
  ts_stats >"$T/$1.stats"
  python3 - "$T/$1.stats" "$2" <<'PY' || fail "$1: faults not all consumed ($2): $(cat "$T/$1.stats")"
import json, sys
got = json.load(open(sys.argv[1]))["faults_by_op"]
want = {op: 0 for op in got}
for step in sys.argv[2].split(","):
    kind_op, n = step.rsplit(":", 1)
    want[kind_op.split("@")[1]] += int(n)
assert got == want, "faults_by_op %s, want %s" % (got, want)
PY
}

# nfaults SPEC: the number of faults in SPEC.
nfaults() { tr ',' '\n' <<<"$1" | awk -F: '{ s += $NF } END { print s }'; }

# What vhdup calls each operation when it tells a retry.
declare -A STEP=([create]="the blob create" [container]="the container create"
  [head]="Get Blob Properties" [ranges]="Get Page Ranges" [clear]="clearing stale pages"
  [props]="setting the blob's MD5" [get]="reading the blob back (Get Blob)")

# retries_told NAME ERRFILE SPEC: stderr has one "retrying" line per fault
# of SPEC, and each KIND@OP:1 is told as "retrying STEP after ERROR
# (attempt 2 of N)", naming OP's step and, for an HTTP answer, its error.
retries_told() {
  local n step kind op error
  n=$(grep -c retrying "$2" || true)
  [ "$n" -eq "$(nfaults "$3")" ] ||
    fail "$1: $n 'retrying' lines on stderr, want $(nfaults "$3") (one per fault): $(cat "$2")"
  for step in ${3//,/ }; do
    kind=${step%@*} op=${step#*@}
    op=${op%:*}
    case $kind in
    503*) error="HTTP 503 ServerBusy" ;;
    500) error="HTTP 500 OperationTimedOut" ;;
    500i) error="HTTP 500 InternalError" ;;
    *) error="" ;;
    esac
    grep -q "retrying ${STEP[$op]} after $error.*(attempt 2 of [0-9]*)" "$2" ||
      fail "$1: no retry of '${STEP[$op]}' after '$kind' told: $(cat "$2")"
  done
}

# upload_case NAME SPEC DEST [ARGS...]: uploads the disk to DEST with
# --verify=content --disk-md5 under the fault plan SPEC; all must go well.
upload_case() {
  local name=$1 spec=$2 dest=$3 rc=0 n retries
  shift 3
  n=$(nfaults "$spec")
  ts_faults "$spec"
  ts_reset_stats
  timeout -k 2 60 "$VHDUP" upload --progress=json -c 4 --verify=content --disk-md5 \
    --account-key-file "$T/key" "$@" "$T/disk.vhd" "$TS_URL/$dest" >"$T/$name.json" 2>"$T/$name.err" ||
    rc=$?
  ts_faults none
  [ "$rc" -eq 0 ] || fail "$name ($spec): upload exited $rc: $(tail -n 3 "$T/$name.err")"
  [ "$(done_field "$T/$name.json" status)" = ok ] || fail "$name: $(tail -n 1 "$T/$name.json")"
  check_stored "$name" "$dest"
  retries=$(done_field "$T/$name.json" retries)
  [ "$retries" -ge "$n" ] || fail "$name ($spec): $retries retries reported, want >= $n"
  faults_consumed "$name" "$spec"
  retries_told "$name" "$T/$name.err" "$spec"
  [ "$(ts_stat md5_missing)" -eq 0 ] || fail "$name: a Put Page without Content-MD5"
  pass "$name ($spec): exit 0, identical, $retries retries, each fault consumed and told"
}

# An existing blob of the right size with stale pages: --overwrite sends
# HEAD, Get Page Ranges, a clear per stale range, Get Page Ranges again,
# the Put Pages, Set Blob Properties (--disk-md5), then --verify=content's
# Get Page Ranges and Get Blobs.
overwrite_case() {
  az_put_blob_garbage "$TS_URL" vhds/over.vhd "$BSIZE"
  upload_case overwrite "503@head:1,reset@ranges:1,500@clear:1,503@props:1,503@get:1" \
    vhds/over.vhd --overwrite
}

# A new blob in a container that does not exist yet: Put Blob (404
# ContainerNotFound), Create Container, Put Blob again, then as above.
create_case() {
  upload_case create "503@create:1,503@container:1,503n@ranges:1,500i@get:1,500@props:1" \
    newc/new.vhd --create-container
}

# vhdup blob info and blob ranges: a fault on each step, the same output as
# without faults, a "retrying" line each.
blob_case() {
  local name=$1 spec=$2 rc=0
  shift 2
  ts_faults none
  "$VHDUP" blob "$@" --account-key-file "$T/key" "$TS_URL/vhds/blobcmd.vhd" >"$T/$name.want" ||
    fail "$name: without faults: exit $?"
  ts_faults "$spec"
  ts_reset_stats
  timeout -k 2 60 "$VHDUP" blob "$@" --account-key-file "$T/key" "$TS_URL/vhds/blobcmd.vhd" \
    >"$T/$name.out" 2>"$T/$name.err" || rc=$?
  ts_faults none
  [ "$rc" -eq 0 ] || fail "$name ($spec): exit $rc: $(cat "$T/$name.err")"
  # Nothing writes the blob in between, so all is the same but the
  # Last-Modified our server reports (the time of the answer, not of the
  # last write).
  diff <(grep -v '^last modified' "$T/$name.want") <(grep -v '^last modified' "$T/$name.out") \
    >"$T/$name.diff" || fail "$name: output differs under faults: $(cat "$T/$name.diff")"
  faults_consumed "$name" "$spec"
  retries_told "$name" "$T/$name.err" "$spec"
  pass "$name ($spec): exit 0, same output, fault consumed and told"
}

blob_cases() {
  timeout -k 2 60 "$VHDUP" upload --progress=none -c 4 --account-key-file "$T/key" "$T/disk.vhd" \
    "$TS_URL/vhds/blobcmd.vhd" 2>"$T/blobcmd.err" || fail "upload for blob commands: $(cat "$T/blobcmd.err")"
  local rc=0
  (blob_case blob_info "503@head:1" info) || rc=1
  (blob_case blob_ranges "reset@ranges:1" ranges) || rc=1
  (blob_case blob_ranges_json "reset@ranges:1" ranges --json) || rc=1
  grep -q '"complete":true' "$T/blob_ranges_json.want" || fail "blob ranges --json: $(cat "$T/blob_ranges_json.want")"
  [ "$(grep -c '^[0-9]*-[0-9]* [0-9]*$' "$T/blob_ranges.want")" -ge 5 ] ||
    fail "blob ranges lists too few ranges: $(cat "$T/blob_ranges.want")"
  return "$rc"
}

# A create that fails every time: a non-zero exit naming the step, after
# exactly --retries tries, and no blob.
endless_case() {
  local rc=0 spec="503@create:100"
  ts_faults "$spec"
  ts_reset_stats
  timeout -k 2 60 "$VHDUP" upload --progress=json --retries 2 -c 4 --account-key-file "$T/key" \
    "$T/disk.vhd" "$TS_URL/vhds/never.vhd" >"$T/never.json" 2>"$T/never.err" || rc=$?
  ts_faults none
  [ "$rc" -ne 0 ] && [ "$rc" -ne 124 ] && [ "$rc" -ne 137 ] ||
    fail "endless ($spec): exit $rc: $(tail -n 3 "$T/never.err")"
  grep -Eqi 'creat' "$T/never.err" && grep -Eq 'ServerBusy|503' "$T/never.err" ||
    fail "endless: the message does not name the create step and its error: $(cat "$T/never.err")"
  ts_stats >"$T/never.stats"
  python3 - "$T/never.stats" <<'PY' || fail "endless: want exactly 2 creates tried (--retries 2): $(cat "$T/never.stats")"
import json, sys
s = json.load(open(sys.argv[1]))
assert s["faults_by_op"]["create"] == 2, s["faults_by_op"]
assert s["put_pages"] == 0, s
PY
  [ ! -e "$TS_STORE/$ACCT/vhds/never.vhd.data" ] || fail "endless: a blob was created"
  [ "$(az_req HEAD "$TS_URL" vhds/never.vhd)" = 404 ] || fail "endless: the blob exists"
  pass "endless ($spec, --retries 2): exit $rc after 2 tries, nothing created: $(tail -n 1 "$T/never.err" | head -c 200)"
}

# Interrupted while the create waits out a 60 s Retry-After: the upload
# stops within 3 s of SIGINT with a non-zero exit, having tried the create
# once.
interrupt_case() {
  local rc=0 spec="503r@create:1" up i t0 ms
  ts_faults "$spec"
  ts_reset_stats
  "$VHDUP" upload --progress=json -c 4 --account-key-file "$T/key" "$T/disk.vhd" \
    "$TS_URL/vhds/interrupt.vhd" >"$T/interrupt.json" 2>"$T/interrupt.err" &
  up=$!
  for ((i = 0; i < 200; i++)); do
    grep -q retrying "$T/interrupt.err" && break
    sleep 0.05
  done
  (retries_told interrupt "$T/interrupt.err" "$spec") || {
    kill "$up"
    exit 1
  }
  t0=$(date +%s%N)
  kill -INT "$up"
  wait "$up" || rc=$?
  ms=$((($(date +%s%N) - t0) / 1000000))
  ts_faults none
  [ "$rc" -ne 0 ] || fail "interrupt: exit 0 after SIGINT"
  [ "$ms" -lt 3000 ] || fail "interrupt: took $ms ms to stop while waiting to retry"
  faults_consumed interrupt "$spec"
  pass "interrupt ($spec): stopped $ms ms after SIGINT while waiting to retry the create (exit $rc)"
}

failed=()
part() {
  local rc=0
  ("$@") || rc=$?
  [ "$rc" -eq 0 ] || failed+=("$1")
}
part overwrite_case
part create_case
part blob_cases
part endless_case
part interrupt_case

stop_testserver
[ "${#failed[@]}" -eq 0 ] || fail "control-fault cases failed: ${failed[*]}"
