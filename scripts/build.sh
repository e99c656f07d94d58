#!/usr/bin/env bash
# Configures and builds into build/ (or $VHDUP_BUILD_DIR). Extra arguments go
# to cmake's configure step, e.g. -DVHDUP_SANITIZE=ON.
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
build=${VHDUP_BUILD_DIR:-$root/build}
werror=OFF
[ -n "${CI:-}" ] && werror=ON
cmake -S "$root" -B "$build" -DVHDUP_WERROR=$werror "$@" >/dev/null
cmake --build "$build" -j "$(nproc)"
