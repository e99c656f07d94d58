#!/usr/bin/env bash
# Runs the whole test suite under valgrind (memcheck): the unit tests and the
# HTTP engine's test directly, then every end-to-end test with each run of
# vhdup (and of our programs embedding libvhdup) wrapped in valgrind through
# VHDUP_VALGRIND (test/e2e/lib.sh). Any invalid access or definite leak fails.
# Uses an existing build ($VHDUP_BUILD_DIR, default build/).
#   VALGRIND_E2E=0   only the unit tests and the engine's test
#   VALGRIND_JOBS=N  e2e tests run in parallel (default: nproc)
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
build=${VHDUP_BUILD_DIR:-$root/build}
export VHDUP_ECHO_SERVER=$root/test/net/echo_server.py
export VHDUP_TESTSERVER=$build/test/vhdup-testserver
failed=0
for t in "$build"/test/test_*; do
  [ -x "$t" ] || continue
  name=$(basename "$t")
  log=$(mktemp)
  if valgrind -q --error-exitcode=99 --leak-check=full --errors-for-leak-kinds=definite \
    "$t" >"$log" 2>&1; then
    echo "valgrind: $name clean"
  else
    echo "valgrind: $name FAILED"
    tail -n 40 "$log"
    failed=$((failed + 1))
  fi
  rm -f "$log"
done

if [ "${VALGRIND_E2E:-1}" != 0 ]; then
  logs=$(mktemp -d "${TMPDIR:-/tmp}/vhdup-valgrind.XXXXXX")
  echo "valgrind: end-to-end tests, reports in $logs"
  rc=0
  (cd "$build" && VHDUP_VALGRIND=$logs ctest -L e2e --output-on-failure \
    -j "${VALGRIND_JOBS:-$(nproc)}") || rc=$?
  runs=$(find "$logs" -name '*.log' | wc -l)
  dirty=$(find "$logs" -name '*.log' -size +0)
  if [ -n "$dirty" ]; then
    for f in $dirty; do
      echo "valgrind: report in $(basename "$f"):"
      head -n 60 "$f"
    done
    failed=$((failed + 1))
  fi
  if [ "$rc" -ne 0 ]; then
    echo "valgrind: end-to-end tests FAILED under valgrind"
    failed=$((failed + 1))
  else
    echo "valgrind: $runs runs of vhdup and embedding programs in the e2e tests, $(echo "$dirty" | grep -c . || true) with a report"
  fi
  [ "$failed" -ne 0 ] || rm -rf "$logs"
fi
[ "$failed" -eq 0 ]
