#!/usr/bin/env bash
# Builds the libFuzzer targets with clang, ASan and UBSan, and runs each for
# FUZZ_SECONDS (default 60) starting from its committed corpus (copied, so
# the repository is not changed). A crash, leak or timeout fails; the input
# is kept in the artifact folder it prints, to become a regression input.
#   scripts/fuzz.sh [TARGET...]     (targets: vhd vhdx connstr azure_xml manifest)
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
build=${VHDUP_FUZZ_BUILD_DIR:-$root/build-fuzz}
secs=${FUZZ_SECONDS:-60}
cmake -S "$root" -B "$build" -DCMAKE_C_COMPILER=clang -DVHDUP_FUZZ=ON -DVHDUP_SANITIZE=ON \
  -DCMAKE_BUILD_TYPE=Debug >/dev/null
targets=("$@")
[ ${#targets[@]} -gt 0 ] || targets=(vhd vhdx connstr azure_xml manifest)
for t in "${targets[@]}"; do
  cmake --build "$build" -j "$(nproc)" --target "fuzz_$t" >/dev/null
done
work=$(mktemp -d "${TMPDIR:-/tmp}/vhdup-fuzz.XXXXXX")
for t in "${targets[@]}"; do
  mkdir -p "$work/$t/corpus" "$work/$t/artifacts"
  cp -r "$root/test/fuzz/corpus/$t/." "$work/$t/corpus/"
  echo "== fuzz_$t for ${secs}s =="
  if ! ASAN_OPTIONS=detect_leaks=1 UBSAN_OPTIONS=halt_on_error=1:print_stacktrace=1 \
    "$build/test/fuzz_$t" -max_total_time="$secs" -timeout=10 -rss_limit_mb=2048 \
    -artifact_prefix="$work/$t/artifacts/" -print_final_stats=1 "$work/$t/corpus" \
    >"$work/$t/log" 2>&1; then
    tail -n 60 "$work/$t/log"
    echo "fuzz_$t failed; reproducer(s) in $work/$t/artifacts"
    exit 1
  fi
  grep -E "^stat::number_of_executed_units|^stat::peak_rss_mb|cov: [0-9]+" "$work/$t/log" | tail -3
done
rm -rf "$work"
