#!/usr/bin/env bash
# Runs the unit tests and the HTTP engine's test under valgrind (memcheck):
# any invalid access or definite leak fails. Uses an existing build
# ($VHDUP_BUILD_DIR, default build/).
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
[ "$failed" -eq 0 ]
