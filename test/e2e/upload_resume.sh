#!/usr/bin/env bash
# An interrupted upload resumes: after SIGINT (clean stop, exit 130, a
# message saying how to resume) and after kill -9 at random points, `vhdup
# upload --resume` sends only what is missing and the blob comes out
# identical to the disk. What is sent twice is bounded by what was in flight
# when the upload died (connections x 4 MiB). A source that changed since
# (size, mtime, UUID) is refused instead of mixing two disks. Runs against
# our strict server, whose answers are slowed (trickle) so there is time to
# interrupt, and whose counters tell what crossed the wire.
source "$(dirname "$0")/lib.sh"
source "$(dirname "$0")/lib_azure.sh"
source "$(dirname "$0")/lib_server.sh"
M=$((1024 * 1024))
CONNS=2
export XDG_STATE_HOME=$T/state

# A 256 MiB dynamic disk holding 60 MiB: whole blocks and an island.
qemu-img create -q -f vpc -o subformat=dynamic,force_size=on "$T/disk.vhd" 256M
qemu-io -f vpc -c 'write -P 0x5a 0 20M' -c 'write -P 0xa5 100M 30M' -c 'write -P 0x33 200M 4k' \
  -c 'write -P 0x77 250M 6M' "$T/disk.vhd" >/dev/null
qemu-img convert -f vpc -O raw "$T/disk.vhd" "$T/disk.raw"
printf '%s' "$AZURITE_KEY" >"$T/key"
NEED=$(python3 - "$T/disk.raw" <<'PY'
import sys
z = bytes(512); n = 0
with open(sys.argv[1], 'rb') as f:
    while (b := f.read(512)):
        n += len(b) if b != z[:len(b)] else 0
print(n + 512)
PY
)

# Every answer to a Put Page trickles out (about a second each), so a 60 MiB
# upload at 2 connections takes a few seconds.
start_testserver --key "$AZURITE_KEY" --require-md5 --trickle-ms 4 --faults trickle:100000
az_mkcontainer "$TS_URL" vhds

# The command itself (not a shell function) goes in the background, so the
# signals reach vhdup and not a subshell.
UPLOAD=("$VHDUP" upload --progress=json -c "$CONNS" --account-key-file "$T/key")
upload() { "${UPLOAD[@]}" "$@"; }
field() { tail -n 1 "$1" | python3 -c 'import json,sys; print(json.load(sys.stdin)[sys.argv[1]])' "$2"; }

# check NAME: the stored blob is the disk plus a fixed footer.
check() {
  local data=$TS_STORE/devstoreaccount1/vhds/$1.vhd.data
  [ "$(stat -c %s "$data")" -eq $((256 * M + 512)) ] || fail "$1: stored size $(stat -c %s "$data")"
  cmp -n $((256 * M)) "$T/disk.raw" "$data" || fail "$1: blob differs from the disk"
  python3 "$VHDUP_SOURCE_DIR/test/tools/check_footer.py" "$data" $((256 * M)) || fail "$1: bad footer"
}

# interrupt NAME SIGNAL DELAY: starts an upload, sends SIGNAL DELAY seconds
# later, but never before its journal holds a confirmed write (under
# valgrind the first write comes seconds late); prints the exit code.
interrupt() {
  local rc=0 i
  "${UPLOAD[@]}" "$T/disk.vhd" "$TS_URL/vhds/$1.vhd" >"$T/$1.1.json" 2>"$T/$1.1.err" &
  local pid=$!
  for ((i = 0; i < 1200; i++)); do
    cat "$T/state/vhdup/"*.journal 2>/dev/null | grep -q '^W ' && break
    sleep 0.1
  done
  python3 -c 'import sys, time; time.sleep(max(0.0, float(sys.argv[1]) - int(sys.argv[2]) / 10))' "$3" "$i"
  kill "-$2" "$pid" 2>/dev/null || true
  wait "$pid" || rc=$?
  echo "$rc"
}

# resume_ok NAME: resumes; the result is identical and what crossed the
# wire twice is at most what can be in flight.
resume_ok() {
  local first rc=0
  first=$(ts_stat put_page_bytes)
  ts_reset_stats
  upload --resume "$T/disk.vhd" "$TS_URL/vhds/$1.vhd" >"$T/$1.2.json" 2>"$T/$1.2.err" || rc=$?
  [ "$rc" -eq 0 ] || fail "$1: resume exited $rc: $(cat "$T/$1.2.err")"
  [ "$(field "$T/$1.2.json" status)" = ok ] || fail "$1: $(tail -n 1 "$T/$1.2.json")"
  check "$1"
  local second twice
  second=$(ts_stat put_page_bytes)
  twice=$((first + second - NEED))
  [ "$twice" -le $((CONNS * 4 * M)) ] ||
    fail "$1: $twice bytes sent twice, more than $CONNS x 4 MiB in flight (first $first, second $second, need $NEED)"
  echo "$1: first run $first bytes, resume $second bytes, sent twice $twice"
}

# 1. SIGINT: exit 130, the message says how to resume, nothing lost.
rc=$(interrupt int INT 1.5)
[ "$rc" -eq 130 ] || fail "SIGINT: exit $rc, not 130: $(cat "$T/int.1.err")"
grep -q -- "--resume" "$T/int.1.err" || fail "SIGINT: no word on how to resume: $(cat "$T/int.1.err")"
ls "$T/state/vhdup/"*.journal >/dev/null 2>&1 || fail "SIGINT: no journal kept"
resume_ok int
ls "$T/state/vhdup/"*.journal >/dev/null 2>&1 && fail "the journal is left after a complete upload"
pass "SIGINT: exit 130 with a resume hint; --resume finishes, identical"

# 2. kill -9 at five random points of one upload, resuming each time.
first=1
for i in 1 2 3 4 5; do
  delay=$(python3 -c "import random; print(round(random.uniform(0.3, 2.0), 2))")
  if [ "$first" = 1 ]; then
    rc=$(interrupt kill KILL "$delay")
    first=0
  else
    rc=0
    ts_reset_stats
    "${UPLOAD[@]}" --resume "$T/disk.vhd" "$TS_URL/vhds/kill.vhd" >"$T/kill.r$i.json" 2>"$T/kill.r$i.err" &
    pid=$!
    sleep "$delay"
    kill -KILL "$pid" 2>/dev/null || true
    wait "$pid" || rc=$?
  fi
  echo "kill -9 #$i after ${delay}s: exit $rc"
done
resume_ok kill
pass "kill -9 five times at random points; --resume finishes, identical"

# 2b. The same for a manifest run: kill -9 mid-way, `vhdup run --resume`.
cp "$T/disk.vhd" "$T/m1.vhd"
cp "$T/disk.vhd" "$T/m2.vhd"
{
  echo "version: 1"
  echo "defaults: { connections: $CONNS }"
  echo "credentials:"
  echo "  strict: { account: devstoreaccount1, key: { file: key }, endpoint: \"$TS_URL\" }"
  echo "uploads:"
  echo "  - { source: m1.vhd, container: vhds, blob: m1.vhd, credential: strict }"
  echo "  - { source: m2.vhd, container: vhds, blob: m2.vhd, credential: strict }"
} >"$T/m.yaml"
rm -f "$T/state/vhdup/"*.journal
(cd "$T" && exec "$VHDUP" run m.yaml --quiet) &
pid=$!
# Kill once some writes are confirmed (a journal has lines), whenever that is.
for ((i = 0; i < 300; i++)); do
  cat "$T/state/vhdup/"*.journal 2>/dev/null | grep -q '^W ' && break
  sleep 0.1
done
kill -KILL "$pid" 2>/dev/null || true
wait "$pid" || true
(cd "$T" && "$VHDUP" run m.yaml --resume --report resume.json) >"$T/mr.out" 2>&1 ||
  fail "manifest --resume failed: $(cat "$T/mr.out")"
check m1
check m2
python3 - "$T/resume.json" <<'PY' || fail "manifest resume report: $(cat "$T/resume.json")"
import json, sys
r = json.load(open(sys.argv[1]))
assert r["failed"] == 0, r
assert sum(u["bytes_resumed"] for u in r["uploads"]) > 0, r
PY
pass "manifest killed with -9 mid-way; vhdup run --resume finished both, identical"

# 3. The source changed after the interruption: refused, nothing mixed.
rc=$(interrupt changed INT 1)
[ "$rc" -eq 130 ] || fail "changed: first run exit $rc"
qemu-io -f vpc -c 'write -P 0x99 50M 1M' "$T/disk.vhd" >/dev/null
rc=0
upload --resume "$T/disk.vhd" "$TS_URL/vhds/changed.vhd" >"$T/changed.2.json" 2>"$T/changed.2.err" || rc=$?
[ "$rc" -ne 0 ] || fail "changed source: resume succeeded"
grep -qE "journal belongs to another upload: the source's (size|modification time) changed" "$T/changed.2.err" ||
  fail "changed source: unclear message: $(cat "$T/changed.2.err")"
pass "a source changed since the interruption is refused: $(tail -n 1 "$T/changed.2.err")"

# 4. --resume with nothing to resume says so.
rc=0
upload --resume "$T/disk.vhd" "$TS_URL/vhds/never.vhd" >/dev/null 2>"$T/never.err" || rc=$?
[ "$rc" -ne 0 ] || fail "resume of a never-started upload succeeded"
grep -qi "resume" "$T/never.err" || fail "never: unclear message: $(cat "$T/never.err")"
pass "resume without an earlier upload: $(tail -n 1 "$T/never.err")"
