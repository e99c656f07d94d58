#!/usr/bin/env bash
# Hostile conditions, by seed: over a thousand Put Pages through a seeded
# random mix of 503 ServerBusy (with and without Retry-After), 500
# OperationTimedOut and InternalError, connection resets mid-body, slow
# trickled answers and answers that never come (stall, past
# --stall-timeout). Each run must end byte-identical, with retries bounded
# and reported, and the strict server must never have seen a body over
# 4 MiB or one without Content-MD5. Then: a non-retryable answer (400, 404,
# 409, 412) stops the job at once, nothing retried; a credential that
# starts failing mid-run (403) leaves a journal from which --resume with a
# fresh credential (a SAS instead of the key) finishes identically.
#   SOAK_SEEDS="1 2 3" (default), SOAK_RATE=0.04
source "$(dirname "$0")/lib.sh"
source "$(dirname "$0")/lib_azure.sh"
source "$(dirname "$0")/lib_server.sh"
M=$((1024 * 1024))
SEEDS=${SOAK_SEEDS:-1 2 3}
RATE=${SOAK_RATE:-0.04}
export XDG_STATE_HOME=$T/state

# 1100 islands of 4 KiB, 64 KiB apart, plus two 6 MiB runs: with
# --merge-gap 0 that is over a thousand Put Pages.
qemu-img create -q -f vpc -o subformat=dynamic,force_size=on "$T/d.vhd" 128M
python3 - "$T/cmds" <<'PY'
import sys
with open(sys.argv[1], 'w') as f:
    for i in range(1100):
        f.write("write -P 0x%02x %d 4k\n" % (i % 250 + 1, 4 * 2**20 + i * 64 * 1024))
    f.write("write -P 0xee 100M 6M\nwrite -P 0xdd 120M 6M\n")
PY
args=()
while read -r line; do args+=(-c "$line"); done <"$T/cmds"
qemu-io -f vpc "${args[@]}" "$T/d.vhd" >/dev/null
qemu-img convert -f vpc -O raw "$T/d.vhd" "$T/d.raw"
printf '%s' "$AZURITE_KEY" >"$T/key"

start_testserver --key "$AZURITE_KEY" --sas-sig freshsig --require-md5 --trickle-ms 2
az_mkcontainer "$TS_URL" soak
UP=("$VHDUP" upload --progress=json --merge-gap 0 -c 16 --retries 12 --stall-timeout 2
  --account-key-file "$T/key")
field() { tail -n 1 "$1" | python3 -c 'import json,sys; print(json.load(sys.stdin)[sys.argv[1]])' "$2"; }
same() { cmp -n $((128 * M)) "$T/d.raw" "$TS_STORE/devstoreaccount1/soak/$1.data" || fail "$1: blob differs"; }

for seed in $SEEDS; do
  ts_reset_stats
  ts_faults "seed:$seed,rate:$RATE,mix:503+503n+500+500i+reset+trickle+stall"
  t0=$(date +%s)
  rc=0
  "${UP[@]}" "$T/d.vhd" "$TS_URL/soak/s$seed.vhd" >"$T/s$seed.json" 2>"$T/s$seed.err" || rc=$?
  [ "$rc" -eq 0 ] || fail "seed $seed: exit $rc: $(tail -n 3 "$T/s$seed.err")"
  same "s$seed.vhd"
  python3 - "$(ts_stats)" "$(tail -n 1 "$T/s$seed.json")" "$seed" <<'PY' || fail "seed $seed: rules broken"
import json, sys
s, d, seed = json.loads(sys.argv[1]), json.loads(sys.argv[2]), sys.argv[3]
assert s["put_pages"] >= 1000, s
assert s["max_body"] <= 4 * 2**20, s
assert s["md5_missing"] == 0, s
assert s["faults_injected"] > 0, s
assert 0 < d["retries"] <= 12 * d["requests"], d
print(f"seed {seed}: {s['put_pages']} Put Pages, {s['faults_injected']} faults, "
      f"{d['retries']} retries reported, max body {s['max_body']}")
PY
  pass "seed $seed: identical after $(field "$T/s$seed.json" retries) retries in $(($(date +%s) - t0)) s"
done

# Non-retryable answers stop at once, with the code, nothing retried.
for code in 400 404 409 412; do
  ts_reset_stats
  ts_faults "$code:1"
  rc=0
  "${UP[@]}" "$T/d.vhd" "$TS_URL/soak/n$code.vhd" >"$T/n$code.json" 2>"$T/n$code.err" || rc=$?
  [ "$rc" -ne 0 ] || fail "$code: the upload succeeded"
  grep -q "HTTP $code" "$T/n$code.err" || fail "$code: no code in the message: $(cat "$T/n$code.err")"
  [ "$(field "$T/n$code.json" retries)" -eq 0 ] || fail "$code: retried"
  pass "HTTP $code stops the job, exit $rc, no retry: $(tail -n 1 "$T/n$code.err" | head -c 150)"
done

# A credential that expires mid-run, then --resume with a fresh one.
ts_reset_stats
ts_faults "403after:300"
rc=0
"${UP[@]}" "$T/d.vhd" "$TS_URL/soak/exp.vhd" >"$T/exp.json" 2>"$T/exp.err" || rc=$?
[ "$rc" -eq 4 ] || fail "403 mid-run: exit $rc, not 4: $(tail -n 2 "$T/exp.err")"
grep -q -- "--resume" "$T/exp.err" || fail "403 mid-run: no resume hint: $(cat "$T/exp.err")"
first=$(ts_stat put_page_bytes)
ts_faults none
ts_reset_stats
"$VHDUP" upload --progress=json --merge-gap 0 -c 16 --resume "$T/d.vhd" \
  "$TS_URL/soak/exp.vhd?sv=2021-08-06&sig=freshsig" >"$T/exp2.json" 2>"$T/exp2.err" ||
  fail "resume with a SAS failed: $(tail -n 3 "$T/exp2.err")"
same exp.vhd
resumed=$(field "$T/exp2.json" bytes_resumed)
[ "$resumed" -gt 0 ] || fail "the resume sent everything again"
pass "403 after 300 writes: exit 4, resumable; --resume with a SAS finished identically ($resumed bytes kept)"
