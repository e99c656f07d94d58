# shellcheck shell=bash
# Helpers for tests that use vhdup-testserver (sourced after lib.sh, not run).
# The server is built at $VHDUP_TOOLS_DIR/vhdup-testserver.

VHDUP_TESTSERVER=${VHDUP_TESTSERVER:-$VHDUP_TOOLS_DIR/vhdup-testserver}

# start_testserver [ARGS...]: starts the server on a kernel-chosen loopback
# port (--port 0 --port-file, so no free-port race) with --store $T/ts-store
# unless ARGS give --store; sets TS_PORT, TS_URL
# (http://127.0.0.1:PORT/devstoreaccount1), TS_STORE, TS_PID and TS_LOG; the
# server is stopped by PID at exit. Calling it again starts another one.
start_testserver() {
  [ -x "$VHDUP_TESTSERVER" ] || fail "vhdup-testserver not built at $VHDUP_TESTSERVER"
  local n=${#_pids[@]} args=("$@") has_store=0 a
  for a in "${args[@]}"; do [ "$a" = --store ] && has_store=1; done
  TS_STORE=$T/ts-store.$n
  if [ "$has_store" -eq 0 ]; then
    mkdir -p "$TS_STORE"
    args+=(--store "$TS_STORE")
  fi
  local pf=$T/ts-port.$n
  TS_LOG=$T/ts-log.$n
  rm -f "$pf"
  "$VHDUP_TESTSERVER" --port 0 --port-file "$pf" "${args[@]}" 2>"$TS_LOG" &
  TS_PID=$!
  _pids+=("$TS_PID")
  local i
  for ((i = 0; i < 100; i++)); do
    [ -s "$pf" ] && break
    kill -0 "$TS_PID" 2>/dev/null || fail "vhdup-testserver exited: $(cat "$TS_LOG")"
    sleep 0.05
  done
  [ -s "$pf" ] || fail "vhdup-testserver wrote no port file in 5s"
  TS_PORT=$(cat "$pf")
  TS_URL=http://127.0.0.1:$TS_PORT/devstoreaccount1
  export TS_PORT TS_URL TS_STORE
}

# ts_stats: prints the stats JSON of the last started server.
ts_stats() {
  curl -sS --max-time 10 "http://127.0.0.1:$TS_PORT/_control/stats"
}

# ts_stat NAME: prints one top-level number from the stats JSON.
ts_stat() {
  ts_stats | python3 -c 'import json,sys; print(json.load(sys.stdin)[sys.argv[1]])' "$1"
}

# ts_faults SPEC: replaces the fault plan of the last started server.
ts_faults() {
  curl -sS --max-time 10 -o /dev/null -w '%{http_code}' --data-binary "$1" \
    "http://127.0.0.1:$TS_PORT/_control/faults" | grep -q '^204$' || fail "ts_faults '$1' refused"
}

# ts_reset_stats: zeroes the counters of the last started server.
ts_reset_stats() {
  curl -sS --max-time 10 -o /dev/null -X POST "http://127.0.0.1:$TS_PORT/_control/reset-stats"
}

# stop_testserver: SIGTERM to the last started server; fails unless it exits 0
# (it checks uv_loop_close() == 0 on the way out).
stop_testserver() {
  kill -TERM "$TS_PID"
  local rc=0
  wait "$TS_PID" || rc=$?
  [ "$rc" -eq 0 ] || fail "vhdup-testserver exited $rc: $(tail -5 "$TS_LOG")"
}
