#!/usr/bin/env bash
# Two builds of vhdup side by side, interleaved, in one run: for a change
# that must not slow anything down (a refactor), or one that should speed
# something up. Each pair runs A then B (then B then A on the next rep, so
# neither always goes first) on the same disk, target and options.
#
#   bench/ab.sh BUILD_A BUILD_B        (each a cmake build folder)
#
# Targets: the loopback sink (vhdup-testserver --sink-no-md5 of BUILD_B,
# also with MD5 checked: --sink) and Azurite. Disks: bench/make-disk.sh's
# reference layout (2 GiB, 197 MiB of data) and 1 GiB of random data (256
# MiB on Azurite), at 16 connections and auto. Prints one line per case:
# medians of REPS (default 5) wall seconds for A and B and the ratio B/A,
# with each side's range; the CSV goes to $BENCH_OUT/ab.csv when set.
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
A=$(cd "${1:?usage: ab.sh BUILD_A BUILD_B}" && pwd)/vhdup
B=$(cd "${2:?usage: ab.sh BUILD_A BUILD_B}" && pwd)/vhdup
export VHDUP_SOURCE_DIR=$root VHDUP_BUILD_DIR=$(dirname "$B") VHDUP_TOOLS_DIR=$(dirname "$B")/test
for f in "$A" "$B" "$VHDUP_TOOLS_DIR/vhdup-testserver"; do
  [ -x "$f" ] || { echo "ab: no $f" >&2; exit 2; }
done
# shellcheck source=test/e2e/lib.sh
source "$root/test/e2e/lib.sh"
# shellcheck source=bench/lib.sh
source "$root/bench/lib.sh"
# shellcheck source=test/e2e/lib_server.sh
source "$root/test/e2e/lib_server.sh"
# shellcheck source=test/e2e/lib_azure.sh
source "$root/test/e2e/lib_azure.sh"

REPS=${REPS:-5}
CONNS=${CONNS:-16 auto}
cache=${VHDUP_BENCH_CACHE:-${VHDUP_CACHE:-$HOME/.cache/vhdup}/bench}
mkdir -p "$cache"
make_ref() { "$root/bench/make-disk.sh" "$1/ref.vhd" 2G; }
cached "$cache/ab-ref" make_ref "$cache/ab-ref"
cached "$cache/sweep-dense-1G" make_dense "$cache/sweep-dense-1G" 1024
cached "$cache/ab-dense-256M" make_dense "$cache/ab-dense-256M" 256
ref=$cache/ab-ref/ref.vhd

start_testserver --sink --sink-no-md5 --sas-sig testsig
NOMD5=$TS_URL
start_testserver --sink --sas-sig testsig
MD5=$TS_URL
start_azurite
csv=${BENCH_OUT:+$BENCH_OUT/ab.csv}
csv=${csv:-$T/ab.csv}
echo "target,disk,conns,reps,a_median_s,b_median_s,b_over_a,a_min,a_max,b_min,b_max" >"$csv"

# one BIN TARGET DISK CONNS: one upload into a new blob (named by the clock:
# it runs in a subshell, so no counter survives it); prints wall seconds.
one() {
  local bin=$1 target=$2 disk=$3 conns=$4 url envs=() n
  n=$(date +%s%N)
  case "$target" in
  sink-no-md5) url="$NOMD5/abtest/b$n.vhd?sv=2021-08-06&sig=testsig" ;;
  sink) url="$MD5/abtest/b$n.vhd?sv=2021-08-06&sig=testsig" ;;
  azurite) url=$AZURITE_URL/abtest/b$n.vhd envs=(AZURE_STORAGE_CONNECTION_STRING="$AZURITE_CONN") ;;
  esac
  local t0 t1
  t0=$(date +%s.%N)
  env "${envs[@]}" "$bin" upload -q -c "$conns" --create-container "$disk" "$url" >/dev/null 2>"$T/err" ||
    fail "$bin upload $disk $target -c $conns: $(cat "$T/err")"
  t1=$(date +%s.%N)
  [ "$target" = azurite ] && { az_req DELETE "$AZURITE_URL" "abtest/b$n.vhd" >/dev/null || true; }
  echo "$t1 - $t0" | bc -l
}

case_ab() {
  local target=$1 disk=$2 label=$3 conns=$4 r a=() b=()
  for ((r = 0; r < REPS; r++)); do
    if ((r % 2 == 0)); then
      a+=("$(one "$A" "$target" "$disk" "$conns")")
      b+=("$(one "$B" "$target" "$disk" "$conns")")
    else
      b+=("$(one "$B" "$target" "$disk" "$conns")")
      a+=("$(one "$A" "$target" "$disk" "$conns")")
    fi
  done
  python3 - "$target" "$label" "$conns" "$REPS" "${a[*]}" "${b[*]}" <<'PY' | tee -a "$csv"
import statistics, sys
t, d, c, reps, a, b = sys.argv[1:]
a = [float(x) for x in a.split()]
b = [float(x) for x in b.split()]
ma, mb = statistics.median(a), statistics.median(b)
print(f"{t},{d},{c},{reps},{ma:.3f},{mb:.3f},{mb / ma:.3f},{min(a):.3f},{max(a):.3f},{min(b):.3f},{max(b):.3f}")
PY
}

for c in $CONNS; do
  case_ab sink-no-md5 "$ref" ref "$c"
  case_ab sink-no-md5 "$cache/sweep-dense-1G/dense.vhd" dense-1G "$c"
  case_ab sink "$cache/sweep-dense-1G/dense.vhd" dense-1G "$c"
  case_ab azurite "$ref" ref "$c"
  case_ab azurite "$cache/ab-dense-256M/dense.vhd" dense-256M "$c"
done
echo "ab: $csv" >&2
