# Shared helpers for the end-to-end tests (sourced, not run).
# Environment from ctest: VHDUP (the CLI), VHDUP_SOURCE_DIR, VHDUP_BUILD_DIR,
# VHDUP_TOOLS_DIR (where test tools are built).
set -euo pipefail
: "${VHDUP_SOURCE_DIR:=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)}"
: "${VHDUP_BUILD_DIR:=$VHDUP_SOURCE_DIR/build}"
: "${VHDUP:=$VHDUP_BUILD_DIR/vhdup}"
: "${VHDUP_TOOLS_DIR:=$VHDUP_BUILD_DIR/test}"
# shellcheck source=../../scripts/env.sh
. "$VHDUP_SOURCE_DIR/scripts/env.sh"

T=$(mktemp -d "${TMPDIR:-/tmp}/vhdup-e2e.XXXXXX")
_pids=()
_cleanup() {
  local pid
  for pid in "${_pids[@]}"; do kill "$pid" 2>/dev/null || true; done
  for pid in "${_pids[@]}"; do wait "$pid" 2>/dev/null || true; done
  rm -rf "$T"
}
trap _cleanup EXIT

fail() {
  echo "FAIL: $*" >&2
  exit 1
}

# Under VHDUP_VALGRIND=DIR (scripts/valgrind.sh sets it), every run of vhdup
# and of our programs that embed libvhdup goes through valgrind's memcheck:
# an invalid access or a definite leak makes the run exit 99 and leaves its
# report in DIR/NAME.PID.log, which scripts/valgrind.sh lists afterwards.
# vg_wrap BINARY prints the path to run instead of BINARY.
vg_wrap() {
  local bin=$1
  if [ -z "${VHDUP_VALGRIND:-}" ]; then
    echo "$bin"
    return
  fi
  local name w
  name=$(basename "$bin")
  w="$T/vg-$name"
  mkdir -p "$VHDUP_VALGRIND"
  cat >"$w" <<EOF
#!/bin/sh
exec valgrind -q --error-exitcode=99 --leak-check=full --errors-for-leak-kinds=definite \\
  --log-file="$VHDUP_VALGRIND/$name.%p.log" "$bin" "\$@"
EOF
  chmod +x "$w"
  echo "$w"
}
VHDUP=$(vg_wrap "$VHDUP")
export VHDUP
# SLOW: how many times longer a run of vhdup takes here than natively (time
# limits in the tests are multiplied by it).
SLOW=1
[ -z "${VHDUP_VALGRIND:-}" ] || SLOW=20
pass() { echo "ok: $*"; }

# free_port: prints a loopback TCP port nobody listens on right now.
free_port() {
  python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1]); s.close()'
}

# wait_port PORT [SECONDS]: waits until something accepts on 127.0.0.1:PORT.
wait_port() {
  local port=$1 secs=${2:-60} i
  for ((i = 0; i < secs * 10; i++)); do
    if (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then return 0; fi
    sleep 0.1
  done
  fail "nothing listening on port $port after ${secs}s"
}

# start_azurite: starts the pinned Azurite on a free loopback port, sets
# AZURITE_PORT, AZURITE_URL (http://127.0.0.1:PORT/devstoreaccount1) and
# AZURITE_CONN (a connection string); stopped by PID at exit.
AZURITE_ACCOUNT=devstoreaccount1
AZURITE_KEY='Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw=='
start_azurite() {
  [ -x "$VHDUP_AZURITE_BIN" ] || fail "Azurite not installed at $VHDUP_AZURITE_BIN (run scripts/setup.sh)"
  AZURITE_PORT=$(free_port)
  mkdir -p "$T/azurite"
  "$VHDUP_AZURITE_BIN" --blobHost 127.0.0.1 --blobPort "$AZURITE_PORT" --location "$T/azurite" \
    --silent --skipApiVersionCheck >"$T/azurite.log" 2>&1 &
  _pids+=($!)
  wait_port "$AZURITE_PORT" 60
  AZURITE_URL="http://127.0.0.1:$AZURITE_PORT/$AZURITE_ACCOUNT"
  AZURITE_CONN="DefaultEndpointsProtocol=http;AccountName=$AZURITE_ACCOUNT;AccountKey=$AZURITE_KEY;BlobEndpoint=$AZURITE_URL;"
  export AZURITE_PORT AZURITE_URL AZURITE_CONN
}

# expect_fail CODE PATTERN -- CMD...: runs CMD, which must exit with CODE and
# print PATTERN (an extended regex) on stderr.
expect_fail() {
  local code=$1 pattern=$2
  shift 3
  local rc=0
  "$@" >"$T/out" 2>"$T/err" || rc=$?
  [ "$rc" -eq "$code" ] || fail "$* exited $rc, expected $code; stderr: $(cat "$T/err")"
  grep -Eq -- "$pattern" "$T/err" || fail "$*: stderr lacks /$pattern/: $(cat "$T/err")"
}
