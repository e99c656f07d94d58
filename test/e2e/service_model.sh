#!/usr/bin/env bash
# The test server's service model (test/server/model.c): Azure's per-blob
# request and byte targets and the account's ingress as token buckets.
# Under each, an upload still ends with exactly the disk in the blob, and
# the server let through no more than its buckets allow: over the span of
# the answers, at most capacity + rate x span requests and bytes.
# - refuse mode (the service's way): 503 ServerBusy above the blob's targets,
#   retried by vhdup;
# - the account's ingress shared by two uploads at once: 503 ServerBusy
#   "Ingress is over the account limit.";
# - queue mode: nothing refused, answers held;
# - a request held longer than the model's timeout: 500 OperationTimedOut.
source "$(dirname "$0")/lib.sh"
source "$(dirname "$0")/lib_azure.sh"
source "$(dirname "$0")/lib_server.sh"
MKVHD="$VHDUP_SOURCE_DIR/test/tools/mkvhd.py"
CHECK_FOOTER="$VHDUP_SOURCE_DIR/test/tools/check_footer.py"
M=$((1024 * 1024))
VSIZE=$((64 * M))
ACCT=devstoreaccount1

# 64 MiB holding about 14 MiB: whole 2 MiB blocks and scattered sectors.
python3 - "$T/disk.json" "$T/disk.vhd" "$VSIZE" <<'PY'
import json, sys
blocks = [{"index": i, "bitmap": "full", "seed": "m%d" % i} for i in (2, 9, 17, 23, 30)]
blocks += [{"index": i, "bitmap": [[1, 3], [200, 2], [3000, 8]]} for i in (1, 5, 12, 20, 28)]
blocks += [{"index": 31, "bitmap": "last"}]
json.dump({"path": sys.argv[2], "kind": "dynamic", "size": int(sys.argv[3]), "blocks": blocks},
          open(sys.argv[1], "w"))
PY
python3 "$MKVHD" spec "$T/disk.json"
RAW="$T/disk.vhd.raw"
printf '%s\n' "$AZURITE_KEY" >"$T/key"

start_testserver --key "$AZURITE_KEY" --require-md5
az_mkcontainer "$TS_URL" vhds

# ts_model SPEC: replaces the model of the server ("off" turns it off).
ts_model() {
  curl -sS --max-time 10 -o /dev/null -w '%{http_code}' --data-binary "$1" \
    "http://127.0.0.1:$TS_PORT/_control/model" | grep -q '^204$' || fail "model '$1' refused"
}

# check_stored NAME: the stored blob is the disk plus a fixed footer.
check_stored() {
  local f=$TS_STORE/$ACCT/vhds/$1.vhd.data
  [ "$(stat -c %s "$f")" -eq $((VSIZE + 512)) ] || fail "$1: stored blob is $(stat -c %s "$f") bytes"
  cp --sparse=always "$f" "$T/$1.cmp"
  truncate -s "$VSIZE" "$T/$1.cmp"
  python3 "$MKVHD" cmp "$RAW" "$T/$1.cmp" || fail "$1: stored blob differs from the disk"
  rm -f "$T/$1.cmp"
  python3 "$CHECK_FOOTER" "$f" "$VSIZE" || fail "$1: bad footer"
}

# check_model NAME REQ BYTES CHECKS: the model's statistics; REQ and BYTES
# are the rates (per second) it was given, CHECKS a Python expression over
# the stats dict m (e.g. "m['busy_blob'] > 0"). The rate bound allows each
# bucket its capacity (0.1 s of the rate, bytes at least 4 MiB) plus 5 ms
# of timer slack.
check_model() {
  ts_stats >"$T/stats.json"
  python3 - "$T/stats.json" "$2" "$3" "$4" <<'PY' || fail "$1: model stats: $(cat "$T/stats.json")"
import json, sys
s = json.load(open(sys.argv[1])); m = s['model']
req, bw = float(sys.argv[2]), float(sys.argv[3])
span = m['span_ms'] / 1000 + 0.005
assert m['on'] and m['admitted'] > 0, m
assert m['admitted'] <= max(req * 0.1, 1) + req * span + 1, ('requests over the rate', m)
assert m['admitted_bytes'] <= max(bw * 0.1, 4 * 2**20) + bw * span, ('bytes over the rate', m)
assert eval(sys.argv[4]), ('check failed: ' + sys.argv[4], m)
assert s['md5_missing'] == 0 and 0 < s['max_body'] <= 4 * 2**20, s
PY
}

# upload NAME [vhdup options]: uploads the disk to vhds/NAME.vhd.
upload() {
  local name=$1
  shift
  timeout -k 2 120 "$VHDUP" upload --progress=json --account-key-file "$T/key" "$@" \
    "$T/disk.vhd" "$TS_URL/vhds/$name.vhd" >"$T/$name.json" 2>"$T/$name.err" ||
    fail "$name: upload exited $?: $(tail -n 3 "$T/$name.err")"
}

# retries_of NAME: the upload's summary counts retries (the 503s).
retries_of() {
  tail -n 1 "$T/$1.json" | python3 -c 'import json,sys; d=json.load(sys.stdin); assert d["status"]=="ok" and d["retries"]>0, d' ||
    fail "$1: no retries in the summary: $(tail -n 1 "$T/$1.json")"
}

# Refuse mode: 100 requests/s and 8 MiB/s per blob, 8 connections.
ts_model "req=100,bw=8M"
ts_reset_stats
upload refuse -c 8
check_stored refuse
check_model refuse 100 $((8 * M)) "m['busy_blob'] > 0 and m['busy_account'] == 0 and m['queued'] == 0"
retries_of refuse
pass "refuse mode: identical; 503 ServerBusy above 100 req/s, 8 MiB/s, none let through over them"

# The account's ingress (6 MiB/s), two uploads at once, each blob allowed
# far more: the account's limit is the one met.
ts_model "req=1000,bw=60M,account=6M"
ts_reset_stats
upload acct1 -c 4 &
p1=$!
upload acct2 -c 4 &
p2=$!
wait "$p1" || fail "acct1 failed"
wait "$p2" || fail "acct2 failed"
check_stored acct1
check_stored acct2
check_model account 1000 $((6 * M)) "m['busy_account'] > 0"
retries_of acct1
retries_of acct2
pass "account ingress: both identical; 503 ServerBusy above 6 MiB/s in all"

# Queue mode: nothing refused, answers held.
ts_model "req=100,bw=8M,mode=queue"
ts_reset_stats
upload queued -c 8
check_stored queued
check_model queued 100 $((8 * M)) "m['busy_blob'] == 0 and m['queued'] > 0 and m['timed_out'] == 0"
python3 -c 'import json,sys; s=json.load(open(sys.argv[1])); assert "503" not in s["status_counts"], s' \
  "$T/stats.json" || fail "queued: a 503 was sent"
pass "queue mode: identical; no 503, answers held (max $(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["model"]["max_wait_ms"])' "$T/stats.json") ms)"

# Held too long: with 2 MiB/s and a 300 ms timeout, three 4 MiB Put Pages
# at once on one blob: the first empties the bucket (4 MiB), the others
# would wait 2 s and more, and are answered 500 OperationTimedOut after
# 300 ms.
start_testserver --sink
ts_model "bw=2M,mode=queue,timeout-ms=300"
python3 - "$TS_PORT" <<'PY' 2>"$T/timeout.out" || fail "timeout: $(cat "$T/timeout.out")"
import http.client, sys, threading, time
port = int(sys.argv[1])
def req(method, path, headers, body=b""):
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    c.request(method, path, body=body, headers=headers)
    r = c.getresponse(); data = r.read(); c.close()
    return r.status, r.getheader("x-ms-error-code"), data
v = {"x-ms-version": "2021-08-06"}
r = req("PUT", "/devstoreaccount1/ccc?restype=container", dict(v, **{"Content-Length": "0"}))
assert r[0] == 201, r
r = req("PUT", "/devstoreaccount1/ccc/b", dict(v, **{"x-ms-blob-type": "PageBlob",
        "x-ms-blob-content-length": str(16 << 20), "Content-Length": "0"}))
assert r[0] == 201, r
out = [None] * 3
def put(i):
    t0 = time.monotonic()
    h = dict(v, **{"x-ms-page-write": "update", "Range": "bytes=%d-%d" % (i << 22, ((i + 1) << 22) - 1),
                   "Content-Length": str(4 << 20)})
    st, code, _ = req("PUT", "/devstoreaccount1/ccc/b?comp=page", h, bytes(4 << 20))
    out[i] = (st, code, time.monotonic() - t0)
ts = [threading.Thread(target=put, args=(i,)) for i in range(3)]
for t in ts: t.start()
for t in ts: t.join()
ok = sorted(o for o in out if o[0] == 201)
bad = [o for o in out if o[0] != 201]
assert len(ok) == 1 and len(bad) == 2, out
for b in bad:
    assert b[:2] == (500, "OperationTimedOut") and 0.25 <= b[2] < 2, out
PY
[ "$(ts_stats | python3 -c 'import json,sys; print(json.load(sys.stdin)["model"]["timed_out"])')" -eq 2 ] ||
  fail "timeout: the model did not count two timed-out requests"
pass "queue mode: a request held over the timeout is answered 500 OperationTimedOut"
stop_testserver
