#!/usr/bin/env bash
# A user uploads a disk over a bad network to a busy service (our strict,
# fault-injecting server: Shared Key checked, Content-MD5 required on every
# Put Page): throttling 503s with and without Retry-After, 500s, connections
# reset mid-body, slow answers trickled a byte at a time, a request that
# stalls. Each upload still ends with exactly the disk in the blob, the
# retries show in the JSON, and vhdup kept the rules: no body over 4 MiB,
# Content-MD5 on every write, at most -c requests in flight. A SAS/key that
# stops working mid-upload (403 after N writes) stops it with exit 4.
#
# The stall case uses --stall-timeout 5 (default 60 s), so the stalled
# request is abandoned and retried after 5-10 s (libcurl averages speed over
# 5 s); it runs in the background against a second server while the other
# cases run.
source "$(dirname "$0")/lib.sh"
source "$(dirname "$0")/lib_azure.sh"
source "$(dirname "$0")/lib_server.sh"
MKVHD="$VHDUP_SOURCE_DIR/test/tools/mkvhd.py"
CHECK_FOOTER="$VHDUP_SOURCE_DIR/test/tools/check_footer.py"
M=$((1024 * 1024))
VSIZE=$((192 * M))
ACCT=devstoreaccount1

# A dynamic disk of 192 MiB holding about 24 MiB spread across it: full
# blocks, partial bitmaps, zero sectors inside allocated blocks, the last
# block; blocks in the file out of order.
python3 - "$T/disk.json" "$T/disk.vhd" "$VSIZE" <<'PY'
import json, sys
blocks = [{"index": i, "bitmap": "full", "seed": "f%d" % i} for i in (90, 3, 40, 17, 61, 77, 8, 25, 50)]
blocks += [{"index": 95, "bitmap": "last"}, {"index": 0, "bitmap": [[1, 7], [300, 1000]]},
           {"index": 33, "bitmap": "full", "zero_every": 3}, {"index": 70, "bitmap": "odd"}]
json.dump({"path": sys.argv[2], "kind": "dynamic", "size": int(sys.argv[3]), "blocks": blocks},
          open(sys.argv[1], "w"))
PY
python3 "$MKVHD" spec "$T/disk.json"
RAW="$T/disk.vhd.raw"
printf '%s\n' "$AZURITE_KEY" >"$T/key"

# check_stored NAME FILE: the server's stored blob FILE is the disk plus a
# fixed footer.
check_stored() {
  [ -f "$2" ] || fail "$1: no stored blob at $2"
  [ "$(stat -c %s "$2")" -eq $((VSIZE + 512)) ] || fail "$1: stored blob is $(stat -c %s "$2") bytes"
  cp --sparse=always "$2" "$T/$1.cmp"
  truncate -s "$VSIZE" "$T/$1.cmp"
  python3 "$MKVHD" cmp "$RAW" "$T/$1.cmp" || fail "$1: stored blob differs from the disk"
  rm -f "$T/$1.cmp"
  python3 "$CHECK_FOOTER" "$2" "$VSIZE" || fail "$1: bad footer"
}

# done_field JSONFILE NAME: a field of the last JSON line.
done_field() {
  tail -n 1 "$1" | python3 -c 'import json,sys; print(json.load(sys.stdin)[sys.argv[1]])' "$2"
}

# stats_ok NAME CONNS: the server saw no body over 4 MiB, no write without
# Content-MD5, and at most CONNS requests at once.
stats_ok() {
  ts_stats >"$T/stats.json"
  python3 - "$T/stats.json" "$2" <<'PY' || fail "$1: server stats: $(cat "$T/stats.json")"
import json, sys
s = json.load(open(sys.argv[1])); conns = int(sys.argv[2])
assert s['put_pages'] > 0, s
assert 0 < s['max_body'] <= 4 * 2**20, s
assert s['md5_missing'] == 0, s
assert s['max_inflight'] <= conns, s
PY
}

# ------------------------------------------------------------ the stall
# (second server, in the background)
start_testserver --key "$AZURITE_KEY" --require-md5 --faults stall:1
STALL_URL=$TS_URL STALL_STORE=$TS_STORE STALL_PORT=$TS_PORT
az_mkcontainer "$STALL_URL" vhds
stall_start=$(date +%s)
"$VHDUP" upload --progress=json -c 4 --stall-timeout 5 --account-key-file "$T/key" "$T/disk.vhd" \
  "$STALL_URL/vhds/stall.vhd" >"$T/stall.json" 2>"$T/stall.err" &
stall_pid=$!
_pids+=("$stall_pid")

# ------------------------------------------------------------ the main server
start_testserver --key "$AZURITE_KEY" --require-md5 --trickle-ms 2
az_mkcontainer "$TS_URL" vhds

# fault_case NAME SPEC [slow]: upload with -c 4 under the fault plan SPEC;
# the result is the disk, retries > 0 in the JSON (for "slow" answers, which
# are not failures, none are needed), stats within the rules.
fault_case() {
  local name=$1 spec=$2 slow=${3:-} t0 rc=0
  ts_faults "$spec"
  ts_reset_stats
  t0=$(date +%s%N)
  timeout -k 2 12 "$VHDUP" upload --progress=json -c 4 --account-key-file "$T/key" "$T/disk.vhd" \
    "$TS_URL/vhds/$name.vhd" >"$T/$name.json" 2>"$T/$name.err" || rc=$?
  [ "$rc" -ne 124 ] && [ "$rc" -ne 137 ] ||
    fail "$name ($spec): upload hung (killed after 12 s): $(tail -n 1 "$T/$name.json")"
  [ "$rc" -eq 0 ] || fail "$name ($spec): upload exited $rc: $(tail -n 3 "$T/$name.err")"
  [ "$(done_field "$T/$name.json" status)" = ok ] || fail "$name: $(tail -n 1 "$T/$name.json")"
  local retries
  retries=$(done_field "$T/$name.json" retries)
  [ -n "$slow" ] || [ "$retries" -gt 0 ] || fail "$name ($spec): no retries reported: $(tail -n 1 "$T/$name.json")"
  stats_ok "$name" 4
  check_stored "$name" "$TS_STORE/$ACCT/vhds/$name.vhd.data"
  pass "$name ($spec): identical after $retries retries, $((($(date +%s%N) - t0) / 1000000)) ms"
}

# Each case runs in a subshell (fail() ends only that case) so one finding
# does not hide the others; the test fails at the end if any failed.
failed=()
part() {
  local rc=0
  ("$@") || rc=$?
  [ "$rc" -eq 0 ] || failed+=("$2")
}
part fault_case busy "503:4"
part fault_case busy_noretryafter "503n:4"
part fault_case optimeout "500:3"
part fault_case internal "500i:3"
part fault_case reset "reset:3"
part fault_case trickle "trickle:3" slow
part fault_case mixed "seed:7,rate:0.1,mix:503n+500i+reset"

# No fault: the connection budget is still kept with a higher -c, and the
# summary reports 0 retries.
ts_faults none
ts_reset_stats
timeout -k 2 12 "$VHDUP" upload --progress=json -c 2 --account-key-file "$T/key" "$T/disk.vhd" \
  "$TS_URL/vhds/clean.vhd" >"$T/clean.json" 2>"$T/clean.err" || fail "clean upload exited $?"
[ "$(done_field "$T/clean.json" retries)" -eq 0 ] || fail "clean: retries reported"
stats_ok clean 2
check_stored clean "$TS_STORE/$ACCT/vhds/clean.vhd.data"
pass "no faults, -c 2: identical, 0 retries, max_inflight <= 2"

# Non-retryable answers (400, 404, 409): the server cannot inject these on
# Put Page, so they are not tested here.
echo "skip: non-retryable 400/404/409 mid-upload (vhdup-testserver cannot inject them)"

# The credential stops working after 5 good writes.
ts_faults "403after:5"
ts_reset_stats
expect_fail 4 "AuthenticationFailed" -- timeout -k 2 12 "$VHDUP" upload -c 4 --account-key-file "$T/key" \
  "$T/disk.vhd" "$TS_URL/vhds/expired.vhd"
grep -qF -- "$AZURITE_KEY" "$T/out" "$T/err" && fail "403after: the key was printed"
ts_faults none
pass "403 AuthenticationFailed after 5 writes: exit 4: $(tail -n 1 "$T/err" | head -c 160)"

# ------------------------------------------------------------ the stall, back
rc=0
wait "$stall_pid" || rc=$?
secs=$(($(date +%s) - stall_start))
[ "$rc" -eq 0 ] || fail "stall: upload exited $rc after ${secs}s: $(tail -n 3 "$T/stall.err")"
[ "$(done_field "$T/stall.json" retries)" -gt 0 ] || fail "stall: no retries reported"
TS_PORT=$STALL_PORT
stats_ok stall 4
check_stored stall "$STALL_STORE/$ACCT/vhds/stall.vhd.data"
pass "stall: identical after the stalled request timed out and was retried (${secs}s)"

[ "${#failed[@]}" -eq 0 ] || fail "fault cases failed: ${failed[*]}"
