#!/usr/bin/env bash
# A script drives `vhdup upload` and reads what it prints: with
# --progress=json every stdout line is a JSON object, the last one the
# "done" event with status ok and numbers that agree with each other and
# with what the server received; --quiet prints nothing at all on success;
# and whatever is printed (JSON, summary, notes, the -v HTTP trace, error
# messages) never contains the SAS signature: URLs show sig=REDACTED.
source "$(dirname "$0")/lib.sh"
source "$(dirname "$0")/lib_azure.sh"
source "$(dirname "$0")/lib_server.sh"
CHECK_FOOTER="$VHDUP_SOURCE_DIR/test/tools/check_footer.py"
M=$((1024 * 1024))
ACCT=devstoreaccount1
SAS='sv=2021-08-06&ss=b&srt=o&sp=rwc&sig=SECRETSIG'
unset AZURE_STORAGE_CONNECTION_STRING AZURE_STORAGE_ACCOUNT AZURE_STORAGE_KEY AZURE_STORAGE_SAS_TOKEN

start_testserver --key "$AZURITE_KEY" --sas-sig SECRETSIG --require-md5 --trickle-ms 4
az_mkcontainer "$TS_URL" vhds

qemu-img create -q -f vpc -o subformat=dynamic,force_size=on "$T/d.vhd" 32M
qemu-io -f vpc -c 'write -P 0x71 0 1m' -c "write -P 0x72 $((7 * M + 512)) 2m" \
  -c "write -z $((7 * M + 512 + 4096)) 8k" \
  -c "write -P 0x73 $((32 * M - 4096)) 4k" "$T/d.vhd" >/dev/null
qemu-img convert -f vpc -O raw "$T/d.vhd" "$T/d.raw"

# ------------------------------------------------------------- JSON
# Two slow answers (trickled a byte at a time) so that the upload lasts
# over a second and progress events appear too.
ts_faults "trickle:3"
ts_reset_stats
"$VHDUP" upload --disk-md5 --progress=json --merge-gap 0 -v "$T/d.vhd" "$TS_URL/vhds/j.vhd?$SAS" \
  >"$T/j.out" 2>"$T/j.err" || fail "json upload exited $?: $(tail -n 3 "$T/j.err")"
ts_stats >"$T/j.stats"
python3 - "$T/j.out" "$T/j.stats" $((32 * M)) <<'PY' || fail "JSON output: $(cat "$T/j.out")"
import json, sys
lines = open(sys.argv[1]).read().splitlines()
stats = json.load(open(sys.argv[2]))
vsize = int(sys.argv[3])
assert lines, 'no output'
ev = []
for i, l in enumerate(lines):
    try:
        o = json.loads(l)
    except ValueError as e:
        raise AssertionError('line %d is not JSON: %r (%s)' % (i + 1, l, e))
    assert isinstance(o, dict) and 'event' in o, l
    ev.append(o)
assert all(e['event'] in ('progress', 'note', 'done') for e in ev), [e['event'] for e in ev]
d = ev[-1]
assert d['event'] == 'done' and d['status'] == 'ok', d
assert sum(1 for e in ev if e['event'] == 'done') == 1, 'more than one done event'
assert d['error'] == '' and d['error_code'] == '', d
assert d['virtual_size'] == vsize and d['blob_size'] == vsize + 512, d
assert 'sig=REDACTED' in d['destination'] and 'SECRETSIG' not in d['destination'], d
assert len(d['disk_md5']) == 32, d
# What vhdup says it sent is what the server stored, request for request.
assert d['bytes_sent'] == stats['put_page_bytes'], (d, stats)
assert d['requests'] == stats['put_pages'], (d, stats)
assert d['retries'] == 0, d
# Allocated data is either sent or skipped as zeros; the footer is sent too.
assert d['bytes_sent'] - 512 + d['bytes_skipped'] == d['bytes_allocated'], d
assert 512 < d['bytes_sent'] <= d['blob_size'], d
assert d['seconds'] > 0, d
prog = [e for e in ev if e['event'] == 'progress']
assert prog, 'no progress event in a run of %.1f s' % d['seconds']
last = 0
for p in prog:
    assert p['bytes_sent'] >= last, prog
    last = p['bytes_sent']
    assert p['bytes_sent'] <= d['bytes_sent'], (p, d)
    assert p['bytes_allocated'] == d['bytes_allocated'], (p, d)
    assert p['in_flight'] >= 0 and p['requests'] <= d['requests'], (p, d)
print('json: %d lines, %d progress events, %d bytes sent in %d requests' %
      (len(lines), len(prog), d['bytes_sent'], d['requests']))
PY
stored="$TS_STORE/$ACCT/vhds/j.vhd.data"
cmp -n $((32 * M)) "$T/d.raw" "$stored" || fail "json upload: blob differs"
python3 "$CHECK_FOOTER" "$stored" $((32 * M)) || fail "json upload: bad footer"
md5=$(tail -n 1 "$T/j.out" | python3 -c 'import json,sys; print(json.load(sys.stdin)["disk_md5"])')
[ "$(md5sum <"$stored" | cut -d' ' -f1)" = "$md5" ] || fail "json: disk_md5 is not the blob's MD5"
grep -q "sig=REDACTED" "$T/j.err" || fail "-v trace shows no redacted URL"
! grep -qF SECRETSIG "$T/j.out" "$T/j.err" || fail "SAS signature printed: $(grep -F SECRETSIG "$T/j.out" "$T/j.err" | head -3)"
pass "--progress=json: every line JSON, last 'done' ok, numbers consistent, no signature (even with -v)"
ts_faults none

# ------------------------------------------------------------- summary
"$VHDUP" upload --disk-md5 -v "$T/d.vhd" "$TS_URL/vhds/s.vhd?$SAS" >"$T/s.out" 2>"$T/s.err" ||
  fail "summary upload exited $?: $(tail -n 3 "$T/s.err")"
grep -q "^uploaded .*sig=REDACTED" "$T/s.out" || fail "summary lacks sig=REDACTED: $(cat "$T/s.out")"
grep -q "disk MD5" "$T/s.out" || fail "summary lacks the disk MD5: $(cat "$T/s.out")"
! grep -qF SECRETSIG "$T/s.out" "$T/s.err" || fail "SAS signature printed (summary/-v)"
pass "summary and -v trace: sig=REDACTED, never the signature"

# ------------------------------------------------------------- quiet
"$VHDUP" upload --quiet "$T/d.vhd" "$TS_URL/vhds/q.vhd?$SAS" >"$T/q.out" 2>"$T/q.err" ||
  fail "quiet upload exited $?: $(cat "$T/q.err")"
[ ! -s "$T/q.out" ] && [ ! -s "$T/q.err" ] ||
  fail "--quiet printed: stdout '$(cat "$T/q.out")' stderr '$(cat "$T/q.err")'"
cmp -n $((32 * M)) "$T/d.raw" "$TS_STORE/$ACCT/vhds/q.vhd.data" || fail "quiet upload: blob differs"
pass "--quiet: nothing printed on success"

# ------------------------------------------------------------- errors
# A wrong signature: refused (exit 4), the JSON says error, and neither the
# wrong signature nor the right one appears anywhere.
rc=0
"$VHDUP" upload --progress=json -v "$T/d.vhd" "$TS_URL/vhds/e.vhd?sv=2021-08-06&sig=WRONGSIG" \
  >"$T/e.out" 2>"$T/e.err" || rc=$?
[ "$rc" -eq 4 ] || fail "wrong SAS: exit $rc, expected 4: $(tail -n 2 "$T/e.err")"
tail -n 1 "$T/e.out" | python3 -c '
import json, sys
d = json.load(sys.stdin)
assert d["event"] == "done" and d["status"] == "error" and d["error_code"], d
assert "AuthenticationFailed" in d["error"], d
' || fail "wrong SAS: last JSON line: $(tail -n 1 "$T/e.out")"
! grep -qF WRONGSIG "$T/e.out" "$T/e.err" || fail "wrong SAS signature printed"
! grep -qF SECRETSIG "$T/e.out" "$T/e.err" || fail "SAS signature printed (error)"
# A SAS from --sas-token-file: not printed either.
printf '%s\n' "$SAS" >"$T/sas"
"$VHDUP" upload --progress=json -v --sas-token-file "$T/sas" "$T/d.vhd" "$TS_URL/vhds/f.vhd" \
  >"$T/f.out" 2>"$T/f.err" || fail "--sas-token-file upload exited $?: $(tail -n 3 "$T/f.err")"
! grep -qF SECRETSIG "$T/f.out" "$T/f.err" || fail "SAS signature printed (--sas-token-file)"
pass "errors and --sas-token-file: no signature printed"
