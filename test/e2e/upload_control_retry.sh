#!/usr/bin/env bash
# A busy service answers 503 ServerBusy once to a control request (the blob
# create, Get Blob Properties, Get Page Ranges, clearing stale pages,
# setting the blob's MD5, verify's reads; Azure may answer any operation so
# and asks clients to retry): the upload and `vhdup blob` still succeed,
# each retry is told on stderr ("retrying <step> after ... (attempt 2 of
# N)") and counted in the summary JSON. A proxy in front of our test server
# (test/tools/busy_proxy.py) gives the 503s; it needs no server change.
source "$(dirname "$0")/lib.sh"
source "$(dirname "$0")/lib_azure.sh"
source "$(dirname "$0")/lib_server.sh"
MKVHD="$VHDUP_SOURCE_DIR/test/tools/mkvhd.py"
PROXY="$VHDUP_SOURCE_DIR/test/tools/busy_proxy.py"
M=$((1024 * 1024))

python3 - "$T/disk.json" "$T/disk.vhd" $((8 * M)) <<'PY'
import json, sys
blocks = [{"index": 0, "bitmap": "full", "seed": "a"}, {"index": 2, "bitmap": "odd"}]
json.dump({"path": sys.argv[2], "kind": "dynamic", "size": int(sys.argv[3]), "blocks": blocks},
          open(sys.argv[1], "w"))
PY
python3 "$MKVHD" spec "$T/disk.json"
printf '%s\n' "$AZURITE_KEY" >"$T/key"

start_testserver --key "$AZURITE_KEY" --require-md5
az_mkcontainer "$TS_URL" vhds

# start_proxy NAME OP:N...: a proxy giving those 503s; sets PX_URL.
start_proxy() {
  local name=$1 pf=$T/px-port.$1 i
  shift
  python3 "$PROXY" "$TS_PORT" "$pf" "$@" 2>"$T/px-$name.log" &
  _pids+=("$!")
  for ((i = 0; i < 100; i++)); do
    [ -s "$pf" ] && break
    sleep 0.05
  done
  [ -s "$pf" ] || fail "$name: the proxy did not start: $(cat "$T/px-$name.log")"
  PX_URL=http://127.0.0.1:$(cat "$pf")/devstoreaccount1
}

# expect_retried NAME STEP...: the run told each STEP's retry on stderr.
expect_retried() {
  local name=$1 step
  shift
  for step in "$@"; do
    grep -q "retrying $step after HTTP 503 ServerBusy.*(attempt 2 of [0-9]*)" "$T/$name.err" ||
      fail "$name: no retry of '$step' told: $(cat "$T/$name.err")"
  done
}

# upload_case NAME 'OP:N ...' 'STEP|...' [OPTIONS...]: uploads to
# vhds/NAME.vhd (or $DEST) through a proxy with that plan; it must succeed,
# tell each STEP's retry, and count them in the summary JSON.
upload_case() {
  local name=$1 plan=$2 steps=$3 rc=0
  shift 3
  # shellcheck disable=SC2086
  start_proxy "$name" $plan
  timeout -k 2 60 "$VHDUP" upload --progress=json --account-key-file "$T/key" "$@" \
    "$T/disk.vhd" "$PX_URL/${DEST:-vhds/$name.vhd}" >"$T/$name.json" 2>"$T/$name.err" || rc=$?
  [ "$rc" -eq 0 ] || fail "$name ($plan): exit $rc: $(tail -n 3 "$T/$name.err")"
  local retries
  retries=$(tail -n 1 "$T/$name.json" | python3 -c 'import json,sys; print(json.load(sys.stdin)["retries"])')
  local want
  want=$(echo "$plan" | tr ' ' '\n' | awk -F: '{s += $2} END {print s}')
  [ "$retries" -ge "$want" ] || fail "$name: $retries retries counted, $want expected"
  local IFS='|'
  # shellcheck disable=SC2086
  expect_retried "$name" $steps
  pass "$name ($plan): uploaded, $retries retries told and counted"
}

upload_case create "create:1" "the blob create"
upload_case verify "ranges:1 get:1" "Get Page Ranges|reading the blob back (Get Blob)" \
  --verify=content
upload_case props "props:1" "setting the blob's MD5" --disk-md5
# The blob from "create" exists: --overwrite asks what is there, lists its
# pages and clears them.
DEST=vhds/create.vhd upload_case overwrite "head:1 ranges:1 clear:1" \
  "Get Blob Properties|Get Page Ranges|clearing stale pages" --overwrite
# A container that is not there yet: the create finds none, the container
# create is retried, then the blob is created.
DEST=fresh/disk.vhd upload_case container "container:1" "the container create" \
  --create-container

# blob_case NAME 'OP:N' STEP COMMAND...: `vhdup blob` through a proxy with
# that plan succeeds and tells the retry on stderr.
blob_case() {
  local name=$1 plan=$2 step=$3 rc=0
  shift 3
  start_proxy "$name" "$plan"
  timeout -k 2 60 "$VHDUP" blob "$@" "$PX_URL/vhds/create.vhd" --account-key-file "$T/key" \
    >"$T/$name.out" 2>"$T/$name.err" || rc=$?
  [ "$rc" -eq 0 ] || fail "$name ($plan): exit $rc: $(cat "$T/$name.err")"
  expect_retried "$name" "$step"
  pass "$name ($plan): answered after a retry"
}
blob_case blob_info "head:1" "Get Blob Properties" info
blob_case blob_ranges "ranges:1" "Get Page Ranges" ranges

# Interrupted while a control request waits out a long Retry-After: the
# upload stops at once rather than after the wait.
start_proxy interrupt "create:1:60"
"$VHDUP" upload --progress=json --account-key-file "$T/key" "$T/disk.vhd" \
  "$PX_URL/vhds/interrupt.vhd" >"$T/interrupt.json" 2>"$T/interrupt.err" &
up=$!
_pids+=("$up")
for ((i = 0; i < 100; i++)); do
  grep -q "retrying the blob create" "$T/interrupt.err" 2>/dev/null && break
  sleep 0.05
done
grep -q "retrying the blob create" "$T/interrupt.err" || fail "interrupt: no retry told"
t0=$(date +%s%N)
kill -INT "$up"
rc=0
wait "$up" || rc=$?
ms=$((($(date +%s%N) - t0) / 1000000))
[ "$rc" -ne 0 ] || fail "interrupt: exit 0 after SIGINT"
[ "$ms" -lt 3000 ] || fail "interrupt: took $ms ms to stop while waiting to retry"
pass "interrupt: stopped $ms ms after SIGINT while waiting to retry the create (exit $rc)"
