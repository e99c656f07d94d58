#!/usr/bin/env bash
# An emulated WAN path to a vhdup-testserver --sink, for bench/sweep.sh:
# two network namespaces joined by a veth pair, addressed only inside the
# benchmarking range 198.18.0.0/15 (client 198.18.0.1/30, server
# 198.18.0.2/30), a tbf rate limit on the client's egress towards the server,
# and bench_delay_proxy beside the server adding RTT/2 each way:
#
#   [ns CLIENT: vhdup, curl] --veth, tbf RATE--> [ns SERVER: proxy 198.18.0.2:P
#                                                  --(RTT/2 each way)--> sink 127.0.0.1]
#
# The delay is applied per request by the proxy, not by the kernel: TCP
# itself sees a short path, so the window growth a real long-RTT TCP path
# needs is not emulated, only the request/response latency and the rate.
#
# Sourced (after test/e2e/lib.sh and lib_server.sh) it provides:
#   wan_up RATE RTT_MS [MTU]  e.g. wan_up 1gbit 20 (MTU: the veth's, default
#                        1500); sets WAN_MODE (netns, or
#                        loopback when namespaces are not permitted: proxy
#                        delay only, NO rate limit), WAN_URL (the account URL
#                        through the proxy), WAN_EXEC (the prefix that runs a
#                        command beside vhdup), WAN_SEXEC (beside the sink),
#                        WAN_SINK_PORT (in the server namespace), WAN_DIR
#                        (sink.log, proxy.log)
#   wan_down             stops what wan_up started (by PID) and deletes its
#                        namespaces (and so the veth pair); also run at exit.
# Run as a command (as root), it brings a path up, sends 256 MiB through it
# with curl, prints the rate and the RTT seen, and tears it down:
#   bench/wan.sh [RATE [RTT_MS [BUILD_DIR [MTU]]]]   (default 1gbit 20 build 1500)
# shellcheck shell=bash

WAN_PIDS=()
WAN_NS=()

wan_down() {
  local pid ns
  for pid in "${WAN_PIDS[@]}"; do kill "$pid" 2>/dev/null || true; done
  for pid in "${WAN_PIDS[@]}"; do wait "$pid" 2>/dev/null || true; done
  WAN_PIDS=()
  for ns in "${WAN_NS[@]}"; do ip netns del "$ns" 2>/dev/null || true; done
  WAN_NS=()
}

# _wan_wait_file FILE PID: waits up to 5 s for FILE written by PID.
_wan_wait_file() {
  local i
  for ((i = 0; i < 100; i++)); do
    [ -s "$1" ] && return 0
    kill -0 "$2" 2>/dev/null || return 1
    sleep 0.05
  done
  return 1
}

wan_up() {
  local rate=$1 rtt=$2 mtu=${3:-1500} tag=$$ proxy=${VHDUP_BUILD_DIR:?}/test/bench_delay_proxy
  local server=${VHDUP_TOOLS_DIR:-$VHDUP_BUILD_DIR/test}/vhdup-testserver
  local nsc=vhdup-wan-c$tag nss=vhdup-wan-s$tag vc=vwc$tag vs=vws$tag
  local delay=$((rtt / 2)) dir
  dir=$(mktemp -d "${T:-/tmp}/wan.XXXXXX")
  # shellcheck disable=SC2034 # for the caller
  WAN_DIR=$dir
  [ -x "$proxy" ] || { echo "wan: no $proxy (build target bench_delay_proxy)" >&2; return 1; }
  wan_down
  if ip netns add "$nsc" 2>"$dir/netns.err"; then
    WAN_NS+=("$nsc")
    ip netns add "$nss"
    WAN_NS+=("$nss")
    # Both ends are made inside the namespaces: nothing appears in the host's.
    ip link add "$vc" netns "$nsc" type veth peer name "$vs" netns "$nss"
    ip -n "$nsc" link set lo up
    ip -n "$nss" link set lo up
    ip -n "$nsc" addr add 198.18.0.1/30 dev "$vc"
    ip -n "$nss" addr add 198.18.0.2/30 dev "$vs"
    ip -n "$nsc" link set "$vc" mtu "$mtu"
    ip -n "$nss" link set "$vs" mtu "$mtu"
    ip -n "$nsc" link set "$vc" up
    ip -n "$nss" link set "$vs" up
    # burst: 4 ms at the rate (>= 64 KiB, so a GSO segment always fits);
    # latency 10 ms of queue before tbf drops.
    local bps burst
    bps=$(python3 -c 'import re,sys; m=re.match(r"([0-9.]+)([kmg]?)bit$", sys.argv[1]); print(int(float(m.group(1))*{"":1,"k":1e3,"m":1e6,"g":1e9}[m.group(2)]/8))' "$rate")
    burst=$((bps / 250 > 65536 ? bps / 250 : 65536))
    ip netns exec "$nsc" tc qdisc add dev "$vc" root tbf rate "$rate" burst "$burst" latency 10ms
    WAN_MODE=netns
    WAN_EXEC=(ip netns exec "$nsc")
    WAN_SEXEC=(ip netns exec "$nss")
    WAN_HOST=198.18.0.2
    WAN_LINK_MBPS=$(python3 -c "print('%.1f' % ($bps / 1e6))")
  else
    echo "wan: ip netns add not permitted here ($(cat "$dir/netns.err")): falling back to loopback + proxy delay, NO rate limit" >&2
    WAN_MODE=loopback
    WAN_EXEC=()
    WAN_SEXEC=()
    WAN_HOST=127.0.0.1
    WAN_LINK_MBPS=
  fi
  "${WAN_SEXEC[@]}" "$server" --port 0 --port-file "$dir/sink.port" --sink --sas-sig testsig \
    --store "$dir" 2>"$dir/sink.log" &
  WAN_PIDS+=($!)
  _wan_wait_file "$dir/sink.port" "$!" || { echo "wan: sink did not start: $(cat "$dir/sink.log")" >&2; return 1; }
  WAN_SINK_PORT=$(cat "$dir/sink.port")
  "${WAN_SEXEC[@]}" "$proxy" --listen "$WAN_HOST:0" --connect "127.0.0.1:$WAN_SINK_PORT" \
    --delay-ms "$delay" --max-queue-mib 16 --port-file "$dir/proxy.port" 2>"$dir/proxy.log" &
  WAN_PIDS+=($!)
  _wan_wait_file "$dir/proxy.port" "$!" || { echo "wan: proxy did not start: $(cat "$dir/proxy.log")" >&2; return 1; }
  WAN_URL=http://$WAN_HOST:$(cat "$dir/proxy.port")/devstoreaccount1
}

if [ "${BASH_SOURCE[0]}" = "$0" ]; then
  set -euo pipefail
  root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
  VHDUP_BUILD_DIR=$(cd "${3:-${VHDUP_BUILD_DIR:-$root/build}}" && pwd)
  VHDUP_TOOLS_DIR=$VHDUP_BUILD_DIR/test
  T=$(mktemp -d "${TMPDIR:-/tmp}/vhdup-wan.XXXXXX")
  trap 'wan_down; rm -rf "$T"' EXIT
  trap 'exit 130' INT TERM
  wan_up "${1:-1gbit}" "${2:-20}" "${4:-1500}"
  "${WAN_EXEC[@]}" curl -sS -o /dev/null -X PUT -H 'Content-Length: 0' "$WAN_URL/wan?restype=container&sig=testsig"
  "${WAN_EXEC[@]}" curl -sS -o /dev/null -w 'empty request through the path: %{time_total} s\n' \
    "$WAN_URL/wan?restype=container&comp=list&sig=testsig"
  head -c $((4 << 20)) /dev/urandom >"$T/piece"
  size=$((4 << 20)) n=64
  "${WAN_EXEC[@]}" curl -sS -o /dev/null -X PUT -H 'Content-Length: 0' -H 'x-ms-blob-type: PageBlob' \
    -H "x-ms-blob-content-length: $((n * size))" "$WAN_URL/wan/t.vhd?sig=testsig"
  start=$(date +%s.%N)
  for ((i = 0; i < n; i++)); do
    printf 'url = "%s/wan/t.vhd?comp=page&sig=testsig"\nupload-file = "%s"\noutput = "/dev/null"\nheader = "x-ms-range: bytes=%d-%d"\nheader = "x-ms-page-write: update"\nheader = "Expect:"\nnext\n' \
      "$WAN_URL" "$T/piece" $((i * size)) $(((i + 1) * size - 1))
  done | sed '$d' >"$T/cfg"
  "${WAN_EXEC[@]}" curl -sS --no-progress-meter --parallel --parallel-max 16 -K "$T/cfg" >/dev/null
  end=$(date +%s.%N)
  echo "mode $WAN_MODE, MTU ${4:-1500}, link ${WAN_LINK_MBPS:-unlimited} MB/s: 256 MiB with 16 curl connections at $(echo "$n * $size / 1000000 / ($end - $start)" | bc -l | cut -c1-6) MB/s"
fi
