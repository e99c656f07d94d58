#!/usr/bin/env bash
# vhdup expand's cost follows the data, not the virtual size: the same
# ~100 MiB (50 runs of 2 MiB, spread evenly) in a 1 TiB and in a 1 GiB
# dynamic VHD made with qemu-img + qemu-io; for each, the median wall time
# of RUNS expansions (fsync of the output included), what the output takes
# on disk (du) and the peak RSS. Writes only into a temporary folder.
#   bench/expand.sh            VHDUP=path/to/vhdup RUNS=3 BENCH_DIR=dir (kept)
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
VHDUP=${VHDUP:-$root/build/vhdup}
RUNS=${RUNS:-3}
[ -x "$VHDUP" ] || { echo "bench: no vhdup at $VHDUP (scripts/build.sh, or set VHDUP)" >&2; exit 2; }
if [ -n "${BENCH_DIR:-}" ]; then
  dir=$BENCH_DIR
  mkdir -p "$dir"
else
  dir=$(mktemp -d "${TMPDIR:-/tmp}/vhdup-bench.XXXXXX")
  trap 'rm -rf "$dir"' EXIT
fi
M=$((1024 * 1024))

# make_disk FILE VSIZE: 50 x 2 MiB of data at evenly spaced offsets.
make_disk() {
  local file=$1 vsize=$2 i args=()
  local step=$(((vsize / 50) / (2 * M) * (2 * M)))
  rm -f "$file"
  qemu-img create -q -f vpc -o subformat=dynamic,force_size=on "$file" "$vsize"
  for ((i = 0; i < 50; i++)); do
    args+=(-c "write -P $((i % 250 + 1)) $((i * step)) 2M")
  done
  qemu-io -f vpc "${args[@]}" "$file" >/dev/null
}

# peak_rss_kib CMD...: runs CMD, prints its peak RSS in KiB.
peak_rss_kib() {
  if [ -x /usr/bin/time ]; then
    /usr/bin/time -f '%M' -o "$dir/rss" "$@" >/dev/null
    tail -n 1 "$dir/rss"
  else
    # Without GNU time: sample VmHWM from /proc while it runs.
    "$@" >/dev/null &
    local pid=$! hwm=0 v
    while kill -0 "$pid" 2>/dev/null; do
      v=$(awk '/VmHWM/ {print $2}' "/proc/$pid/status" 2>/dev/null || true)
      [ -n "$v" ] && [ "$v" -gt "$hwm" ] && hwm=$v
      sleep 0.01
    done
    wait "$pid"
    echo "$hwm"
  fi
}

run_one() {
  local label=$1 vsize=$2 disk="$dir/$1.vhd" out="$dir/$1.fixed.vhd" times=() t0 t1 i
  make_disk "$disk" "$vsize"
  for ((i = 0; i < RUNS; i++)); do
    rm -f "$out"
    t0=$(date +%s.%N)
    "$VHDUP" expand --quiet "$disk" "$out"
    t1=$(date +%s.%N)
    times+=("$(echo "$t1 - $t0" | bc -l 2>/dev/null || python3 -c "print($t1 - $t0)")")
  done
  local median
  median=$(printf '%s\n' "${times[@]}" | sort -g | awk '{a[NR]=$1} END {printf "%.3f", a[int((NR+1)/2)]}')
  local written=$(($(du -k "$out" | cut -f1) * 1024))
  local rss
  rss=$(peak_rss_kib "$VHDUP" expand --quiet --force "$disk" "$out")
  printf '%-14s %16d %12d %10s %14d %10s\n' "$label" "$vsize" "$(stat -c %s "$disk")" "$median" \
    "$written" "$rss"
}

echo "vhdup expand: $(${VHDUP} --version), $RUNS runs each, median wall time; $(nproc) CPUs"
printf '%-14s %16s %12s %10s %14s %10s\n' disk virtual_bytes vhd_bytes wall_s written_du_B peak_rss_KiB
run_one "1TiB-dynamic" $((1024 * 1024 * M))
run_one "1GiB-dynamic" $((1024 * M))
