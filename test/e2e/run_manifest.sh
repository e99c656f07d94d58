#!/usr/bin/env bash
# Many disks from one manifest: eight uploads across two endpoints (a real
# Azurite with a Shared Key credential read from a file, and our strict
# server with a SAS credential read from the environment), two containers
# each, run concurrently on one engine. One entry's source is missing and
# one uses a wrong key: those two fail alone, with clear messages, while the
# other six succeed and are read back byte for byte. The exit code says
# something failed; the JSON report says what. Then the budget: with
# `connections: 8` the strict server never sees more than 8 requests at
# once, across all disks. And --dry-run touches no network.
source "$(dirname "$0")/lib.sh"
source "$(dirname "$0")/lib_azure.sh"
source "$(dirname "$0")/lib_server.sh"
M=$((1024 * 1024))

start_azurite
start_testserver --key "$AZURITE_KEY" --sas-sig manifestsig --require-md5
az_mkcontainer "$AZURITE_URL" alpha-vhds
az_mkcontainer "$AZURITE_URL" beta-vhds
az_mkcontainer "$TS_URL" gamma-vhds
az_mkcontainer "$TS_URL" delta-vhds

mkdir -p "$T/images" "$T/secrets"
for i in 1 2 3 4 5 6 7; do
  qemu-img create -q -f vpc -o subformat=dynamic,force_size=on "$T/images/d$i.vhd" $((16 + i))M
  qemu-io -f vpc -c "write -P 0x$i$i $((i * 512)) $((i * 300))k" \
    -c "write -P 0x5$i $(((8 + i) * M)) 1M" "$T/images/d$i.vhd" >/dev/null
  qemu-img convert -f vpc -O raw "$T/images/d$i.vhd" "$T/images/d$i.raw"
done
printf '%s\n' "$AZURITE_KEY" >"$T/secrets/azurite.key"
printf '%s\n' "bm90IHRoZSByaWdodCBrZXkgYXQgYWxsLCBub3QgZXZlbiBjbG9zZQ==" >"$T/secrets/wrong.key"
export RUN_TEST_SAS="sv=2021-08-06&sp=rcw&sig=manifestsig"

cat >"$T/disks.yaml" <<YAML
version: 1
defaults:
  connections: 8
  per_blob_connections: 4
  memory: 32M
  verify: ranges
credentials:
  azurite:
    account: devstoreaccount1
    key: { file: secrets/azurite.key }
    endpoint: $AZURITE_URL
  strict:
    sas: { env: RUN_TEST_SAS }
    endpoint: $TS_URL
  wrongkey:
    account: devstoreaccount1
    key: { file: secrets/wrong.key }
    endpoint: $AZURITE_URL
uploads:
  - { source: images/d1.vhd, container: alpha-vhds, blob: d1.vhd, credential: azurite }
  - { source: images/d2.vhd, container: alpha-vhds, blob: d2.vhd, credential: azurite }
  - { source: images/d3.vhd, container: beta-vhds, blob: d3.vhd, credential: azurite }
  - { source: images/d4.vhd, container: gamma-vhds, blob: d4.vhd, credential: strict }
  - { source: images/d5.vhd, container: gamma-vhds, blob: d5.vhd, credential: strict }
  - source: images/d6.vhd
    container: delta-vhds
    blob: sub/d6.vhd
    credential: strict
    verify: content
  - { source: images/missing.vhd, container: beta-vhds, blob: missing.vhd, credential: azurite }
  - { source: images/d7.vhd, container: beta-vhds, blob: d7.vhd, credential: wrongkey }
YAML

rc=0
(cd "$T" && "$VHDUP" run disks.yaml --report report.json) >"$T/out" 2>"$T/err" || rc=$?
cat "$T/out"
[ "$rc" -ne 0 ] || fail "run exited 0 although two uploads failed"
line=$(grep -n "missing.vhd" "$T/disks.yaml" | cut -d: -f1)
grep -q "disks.yaml:$line:5: warning: source '.*missing.vhd' not found" "$T/err" ||
  fail "missing source not reported up front with file:line:col: $(cat "$T/err")"
grep -qE "d7.vhd: .*(AuthenticationFailed|AuthorizationFailure)" "$T/err" ||
  fail "wrong key: no clear message: $(cat "$T/err")"
grep -q "bm90IHRoZSByaWdodCBrZXkg" "$T/out" "$T/err" && fail "a key was printed"
grep -q "manifestsig" "$T/out" "$T/err" && fail "a SAS signature was printed"

# The six good ones, byte for byte, with a fixed footer.
check_blob() { # NAME FILE
  local i=$1 got=$2 size
  size=$(stat -c %s "$T/images/d$i.raw")
  [ "$(stat -c %s "$got")" -eq $((size + 512)) ] || fail "d$i: blob size $(stat -c %s "$got")"
  cmp -n "$size" "$T/images/d$i.raw" "$got" || fail "d$i: blob differs from the disk"
  python3 "$VHDUP_SOURCE_DIR/test/tools/check_footer.py" "$got" "$size" || fail "d$i: bad footer"
}
az_get "$AZURITE_URL" alpha-vhds/d1.vhd "$T/b1"
az_get "$AZURITE_URL" alpha-vhds/d2.vhd "$T/b2"
az_get "$AZURITE_URL" beta-vhds/d3.vhd "$T/b3"
for i in 1 2 3; do check_blob $i "$T/b$i"; done
check_blob 4 "$TS_STORE/devstoreaccount1/gamma-vhds/d4.vhd.data"
check_blob 5 "$TS_STORE/devstoreaccount1/gamma-vhds/d5.vhd.data"
check_blob 6 "$TS_STORE/devstoreaccount1/delta-vhds/sub/d6.vhd.data"
[ "$(az_status "$AZURITE_URL" beta-vhds/d7.vhd)" = 404 ] || fail "the wrong-key upload created a blob"
pass "six uploads identical, two failed alone (missing source, wrong key), exit $rc"

python3 - "$T/report.json" <<'PY' || fail "report: $(cat "$T/report.json")"
import json, sys
r = json.load(open(sys.argv[1]))
assert r["disks"] == 8 and r["failed"] == 2, r
res = {u["source"].rsplit("/", 1)[1]: u for u in r["uploads"]}
for n in ("d1.vhd", "d2.vhd", "d3.vhd", "d4.vhd", "d5.vhd", "d6.vhd"):
    assert res[n]["result"] == "ok" and res[n]["bytes_sent"] > 0, res[n]
assert res["missing.vhd"]["result"] == "failed" and "missing.vhd" in res["missing.vhd"]["error"], res["missing.vhd"]
assert res["d7.vhd"]["result"] == "failed" and res["d7.vhd"]["error_code"] == "VHDUP_EAUTH", res["d7.vhd"]
PY
pass "report JSON: 8 disks, 2 failed, codes and messages"

# The budget: many disks at connections 8 to the strict server, counted there.
ts_reset_stats
{
  echo "version: 1"
  echo "defaults: { connections: 8, per_blob_connections: 8, memory: 64M, merge_gap: 0 }"
  echo "credentials:"
  echo "  strict: { sas: { env: RUN_TEST_SAS }, endpoint: \"$TS_URL\" }"
  echo "uploads:"
  for i in 1 2 3 4 5 6 7; do
    echo "  - { source: images/d$i.vhd, container: gamma-vhds, blob: budget/d$i.vhd, credential: strict }"
  done
} >"$T/budget.yaml"
(cd "$T" && "$VHDUP" run budget.yaml --quiet) || fail "budget run failed"
max=$(ts_stat max_inflight)
[ "$max" -le 8 ] || fail "the server saw $max requests at once with connections: 8"
[ "$max" -ge 2 ] || fail "the server never saw two requests at once ($max): no concurrency"
pass "connections: 8 across 7 disks: at most $max requests at once on the server"

# --dry-run: the plan, and nothing on the network.
ts_reset_stats
(cd "$T" && "$VHDUP" run budget.yaml --dry-run) >"$T/dry.out" 2>&1 || fail "dry run failed: $(cat "$T/dry.out")"
grep -q "would be sent" "$T/dry.out" || fail "dry run printed no plan: $(cat "$T/dry.out")"
[ "$(ts_stat requests)" -eq 0 ] || fail "dry run sent $(ts_stat requests) requests"
pass "dry run: $(grep 'would be sent' "$T/dry.out")"
