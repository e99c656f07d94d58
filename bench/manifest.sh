#!/usr/bin/env bash
# 20 small dynamic disks: one `vhdup run` manifest vs 20 sequential
# `vhdup upload` runs, same data, to our strict server in sink mode on
# loopback. Prints the two wall times and their ratio. Cleans up after
# itself (servers stopped by PID, files in a temp dir).
#   bench/manifest.sh            (VHDUP=path/to/vhdup, N=20, CONNS=16)
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
export VHDUP_SOURCE_DIR=$root
VHDUP=${VHDUP:-$root/build/vhdup}
VHDUP_TOOLS_DIR=${VHDUP_TOOLS_DIR:-$root/build/test}
N=${N:-20}
CONNS=${CONNS:-16}
source "$root/test/e2e/lib.sh"
source "$root/test/e2e/lib_azure.sh"
source "$root/test/e2e/lib_server.sh"

start_testserver --sink --key "$AZURITE_KEY" --sas-sig benchsig
az_mkcontainer "$TS_URL" bench
SAS="sv=2021-08-06&sig=benchsig"
for i in $(seq 1 "$N"); do
  qemu-img create -q -f vpc -o subformat=dynamic,force_size=on "$T/d$i.vhd" 256M
  qemu-io -f vpc -c "write -P 0x$((i % 9 + 1))1 0 6M" -c "write -P 0x22 100M 2M" \
    -c "write -P 0x33 200M 64k" "$T/d$i.vhd" >/dev/null
done
{
  echo "version: 1"
  echo "defaults: { connections: $CONNS, memory: 64M, overwrite: true }"
  echo "credentials:"
  echo "  sink: { sas: \"$SAS\", endpoint: \"$TS_URL\" }"
  echo "uploads:"
  for i in $(seq 1 "$N"); do
    echo "  - { source: d$i.vhd, container: bench, blob: m$i.vhd, credential: sink }"
  done
} >"$T/m.yaml"

now() { date +%s.%N; }
t0=$(now)
(cd "$T" && "$VHDUP" run m.yaml --quiet 2>/dev/null)
t1=$(now)
for i in $(seq 1 "$N"); do
  "$VHDUP" upload --quiet -c "$CONNS" "$T/d$i.vhd" "$TS_URL/bench/s$i.vhd?$SAS"
done
t2=$(now)
python3 - "$t0" "$t1" "$t2" "$N" <<'PY'
import sys
t0, t1, t2, n = float(sys.argv[1]), float(sys.argv[2]), float(sys.argv[3]), int(sys.argv[4])
m, s = t1 - t0, t2 - t1
print(f"| {n} disks, 8.06 MiB of data each | wall time |")
print("|---|---|")
print(f"| one manifest (vhdup run) | {m:.2f} s |")
print(f"| {n} sequential vhdup upload | {s:.2f} s |")
print(f"| ratio sequential / manifest | {s / m:.2f}x |")
PY
