#!/usr/bin/env bash
# Throughput against connection count, on loopback and over an emulated WAN.
#
# ONE command (as root, for the WAN namespaces), from the repository root:
#
#   BENCH_OUT=bench/results bench/sweep.sh build-wan
#
# (about 24 minutes on 2 cores; bench/results/.gitignore keeps runs/ out of
# git; the build needs the targets vhdup, vhdup-testserver and
# bench_delay_proxy).
#
# For each connection count in CONNS, vhdup upload of two workloads:
#   ref    bench/make-disk.sh's reference-like 2 GiB dynamic VHD (197 MiB of
#          data: big runs plus 2000 4 KiB islands, so ~2050 requests)
#   dense  random data filling a dynamic VHD (1 GiB on loopback and over the
#          WAN paths, 256 MiB on Azurite), every request a full 4 MiB
#   dense-nomd5  (loopback only) the same with --no-md5, as the curl
#          ceiling sends no Content-MD5 either: separates the cost of the
#          per-request MD5 (computed by vhdup, checked by the sink) from the
#          engine's
# against these targets:
#   loopback       vhdup-testserver --sink-no-md5 on 127.0.0.1 (REPS runs,
#          median; see interleave below): it takes the bytes without
#          checking their Content-MD5 or x-ms-content-crc64, as Azure checks
#          them on its own cores; a checking sink would take one of this
#          machine's two cores from vhdup's hashing
#   azurite        Azurite on 127.0.0.1, AZ_CONNS only (Node.js, one thread;
#          AZ_REPS runs, median)
#   wan-1gbit-20ms, wan-800mbit-80ms   the sink behind bench/wan.sh: netns +
#          veth (198.18.0.0/15 only) + tbf rate, bench_delay_proxy RTT/2 each
#          way. A ref point whose requests alone would take longer than
#          WAN_MAX_PRED s (requests x RTT / connections) is skipped, and says so.
#   wan-1gbit-20ms-mtu9000, wan-800mbit-80ms-mtu9000   the same paths with
#          jumbo frames on the veth, dense only, at WAN_MTU_CONNS: framing
#          then costs 0.7% of the tbf rate instead of 4.4% (below)
# and, at the same parallelism against the same target, the plain-curl
# ceiling: curl --parallel-max N of 4 MiB Put Pages of the dense workload's
# bytes (its disk read by qemu-img and cut into 4 MiB files, each sent once:
# the same bytes from the page cache, as vhdup reads them).
# On loopback, the ceiling is also run in turn with vhdup's dense-nomd5 at
# curl's best count (CEILING_REPS pairs; ceiling.csv): the per-count ratios
# pair medians of 5 runs, which the shared machine moves by a tenth.
# CONNS may hold "auto": vhdup's own controller (--connections auto), whose
# choice (the limit it ended on, and the highest it tried) is reported and
# compared with the best fixed count on the same target and workload; then
# that count and auto run again in turn (DUEL_REPS pairs, WAN_DUEL_REPS over
# the WAN paths; duel.csv) and auto is judged against that: the best of nine
# medians is a lucky draw, biased upward.
# Over the WAN paths, "of TCP" compares with what TCP can carry through the
# tbf rate at the veth's MTU: tbf counts whole Ethernet frames, so at MTU
# 1500 a frame of 1514 bytes carries 1448 bytes of payload (20 IP + 32 TCP
# with timestamps): no sender's payload exceeds 95.6% of the tbf rate (a
# real 1 Gbit/s Ethernet, which also spends 20 bytes of preamble and gap per
# frame, allows 94.1%). At MTU 9000 a frame carries 8948 of 9014 bytes, 99.3%.
# On loopback the sink's own CPU time per run is read from /proc, so the
# report can say how fast 2 cores could go with MD5 on: the cores divided by
# the CPU each byte needs (vhdup without MD5, the sink, and hashing at the
# measured single-core rate of vhdup's MD5, which hashes up to 8 requests'
# bodies side by side: bench_hashrate's md5x line).
# Per point: payload MB/s (10^6 B of bytes_sent per wall second), virtual
# MB/s, requests/s, retries, CPU s per GiB sent, peak RSS (GNU time); and
# from vhdup's --progress=json lines (one a second) the steady MB/s (bytes
# completed between the first and the last progress line over the time
# between them: the transfer without start-up, blob creation and the
# serial footer at the end; dense workloads only) and the most requests
# seen in flight.
# Output in BENCH_OUT (default: a new temporary folder): sweep.csv, sweep.md,
# sweep.svg (bench/plot.py), machine.md (nproc, lscpu, kernel, date, load),
# runs/ (per-run logs; not for committing).
#
# env: CONNS="1 2 4 8 16 32 64 128 256 auto"  AZ_CONNS="1 4 16 64 auto"
#      WAN_PROFILES="1gbit:20 800mbit:80 1gbit:20:9000 800mbit:80:9000"
#        (RATE:RTT_MS[:MTU]; "" for none)  WAN_MTU_CONNS="8 16"
#      TARGETS="loopback azurite wan" REPS=5 (loopback) AZ_REPS=3 (WAN: 1)
#      WAN_MAX_PRED=60  RUN_TIMEOUT=180
#      VHDUP_BENCH_CACHE=~/.cache/vhdup/bench (the disks, made once)
# shellcheck source-path=SCRIPTDIR/..
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
build=$(cd "${1:-${VHDUP_BUILD_DIR:-$root/build}}" && pwd)
export VHDUP_SOURCE_DIR=$root VHDUP_BUILD_DIR=$build VHDUP=$build/vhdup VHDUP_TOOLS_DIR=$build/test
for f in "$VHDUP" "$VHDUP_TOOLS_DIR/vhdup-testserver" "$VHDUP_TOOLS_DIR/bench_delay_proxy" \
  "$VHDUP_TOOLS_DIR/bench_hashrate"; do
  [ -x "$f" ] || { echo "sweep: no $f (cmake --build $build)" >&2; exit 2; }
done
[ -x /usr/bin/time ] || { echo "sweep: needs GNU time at /usr/bin/time" >&2; exit 2; }

# shellcheck source=test/e2e/lib.sh
source "$root/test/e2e/lib.sh"
# shellcheck source=bench/lib.sh
source "$root/bench/lib.sh"
# shellcheck source=test/e2e/lib_server.sh
source "$root/test/e2e/lib_server.sh"
# shellcheck source=test/e2e/lib_azure.sh
source "$root/test/e2e/lib_azure.sh"
# shellcheck source=bench/wan.sh
source "$root/bench/wan.sh"
trap 'wan_down; _cleanup' EXIT
trap 'exit 130' INT TERM

CONNS=${CONNS:-1 2 4 8 16 32 64 128 256 auto}
AZ_CONNS=${AZ_CONNS:-1 4 16 64 auto}
WAN_PROFILES=${WAN_PROFILES-1gbit:20 800mbit:80 1gbit:20:9000 800mbit:80:9000}
WAN_MTU_CONNS=${WAN_MTU_CONNS:-8 16}
AZ_REPS=${AZ_REPS:-3}
TARGETS=" ${TARGETS:-loopback azurite wan} "
REPS=${REPS:-5}
WAN_MAX_PRED=${WAN_MAX_PRED:-60}
RUN_TIMEOUT=${RUN_TIMEOUT:-180}
DUEL_REPS=${DUEL_REPS:-5}
CEILING_REPS=${CEILING_REPS:-9}
WAN_DUEL_REPS=${WAN_DUEL_REPS:-3}
cache=${VHDUP_BENCH_CACHE:-${VHDUP_CACHE:-$HOME/.cache/vhdup}/bench}
out=${BENCH_OUT:-$(mktemp -d "${TMPDIR:-/tmp}/vhdup-sweep.XXXXXX")}
rm -rf "$out/runs"
mkdir -p "$out/runs" "$cache"
out=$(cd "$out" && pwd)
csv=$out/sweep.csv
M=$((1024 * 1024))
note() { echo "sweep: $(date -u +%T) $*" >&2; }
t_start=$(date +%s)
load_before=$(cut -d' ' -f1-3 /proc/loadavg)
# The commit when the sweep starts (the build should be of it; src changes
# made while it runs do not reach the binaries).
head=$(git -C "$root" rev-parse --short HEAD 2>/dev/null || echo '?')

# ---------------------------------------------------------------- disks
note "disks (made once into $cache)"
cached "$cache/sweep-ref-2G" "$root/bench/make-disk.sh" "$cache/sweep-ref-2G/ref.vhd" 2G
cached "$cache/sweep-dense-1G" make_dense "$cache/sweep-dense-1G" 1024
cached "$cache/sweep-dense-256M" make_dense "$cache/sweep-dense-256M" 256
cached "$cache/sweep-dense-1G-pieces" make_pieces "$cache/sweep-dense-1G-pieces" "$cache/sweep-dense-1G/dense.vhd"
cached "$cache/sweep-dense-256M-pieces" make_pieces "$cache/sweep-dense-256M-pieces" "$cache/sweep-dense-256M/dense.vhd"
disk_ref=$cache/sweep-ref-2G/ref.vhd
disk_dense_big=$cache/sweep-dense-1G/dense.vhd
disk_dense_small=$cache/sweep-dense-256M/dense.vhd
disk_dense_wan=$disk_dense_big
pieces_big=$cache/sweep-dense-1G-pieces
pieces_small=$cache/sweep-dense-256M-pieces

echo "target,workload,connections,reps,wall_s,bytes_sent,virtual_size,requests,retries,payload_MBps,virtual_MBps,req_per_s,cpu_s_per_GiB,peak_rss_MiB,link_MBps,status,steady_MBps,max_in_flight,auto_limit_end,auto_limit_max,sink_cpu_s_per_GiB" >"$csv"
duelcsv=$out/duel.csv
head -n 1 "$csv" >"$duelcsv"
ceilcsv=$out/ceiling.csv
head -n 1 "$csv" >"$ceilcsv"
nrun=0

# summarize TARGET WORKLOAD CONNS LINK ROWS: the median-wall row of ROWS
# ("wall cpu rss_kib bytes_sent virtual requests retries status steady
# in_flight limit_end limit_max sink_cpu" lines) as one CSV line.
summarize() {
  python3 - "$@" >>"$csv" <<'PY'
import sys
target, workload, conns, link, rows_path = sys.argv[1:]
rows = sorted((l.split() for l in open(rows_path) if l.strip()), key=lambda r: float(r[0]))
e, cpu, rss, sent, virt, req, retr, st, steady, inflight, lim_end, lim_max, sink = rows[(len(rows) - 1) // 2]
if not workload.startswith("dense"):
    steady = "-"  # ref's rate changes from the big runs to the islands: no steady state
bad = [r[7] for r in rows if r[7] != "ok"]
st = bad[0] if bad else st
e, cpu, sent, virt, req = float(e), float(cpu), int(sent), int(virt), int(req)
f = lambda x: "%.1f" % x
print(",".join([target, workload, conns, str(len(rows)), "%.2f" % e, str(sent), str(virt), str(req), retr,
    f(sent / 1e6 / e) if e else "0", f(virt / 1e6 / e) if e and virt else "", f(req / e) if e else "0",
    "%.2f" % (cpu / (sent / 2**30)) if sent else "", f(int(rss) / 1024), link, st,
    "" if steady == "-" else steady, "" if inflight == "-" else inflight,
    "" if conns != "auto" else lim_end, "" if conns != "auto" else lim_max,
    "%.2f" % (float(sink) / (sent / 2**30)) if sink != "-" and sent else ""]))
PY
  note "$(tail -n 1 "$csv")"
}

# A point's runs go to rows.TARGET.WORKLOAD.CONNS. Normally each run_*
# call makes one point and reports it; between `interleave` and `flush`,
# calls add runs to their points and flush reports them all. Loopback and
# Azurite go rep by rep, each rep a pass over every count and workload and
# curl, so a slow spell of the shared machine hits both sides of a ratio
# (vhdup and curl, auto and the fixed counts) rather than one point.
PENDING=()
DEFER=0
point_rows() { # TARGET WORKLOAD CONNS LINK: sets ROWS, registered if deferred
  ROWS=$T/rows.$1.$2.$3
  if [ "$DEFER" = 1 ]; then
    [ -e "$ROWS" ] || PENDING+=("$1 $2 $3 $4")
    touch "$ROWS"
  else
    : >"$ROWS"
  fi
}
point_done() { # TARGET WORKLOAD CONNS LINK
  [ "$DEFER" = 1 ] || summarize "$1" "$2" "$3" "$4" "$T/rows.$1.$2.$3"
}
interleave() { DEFER=1; }
flush() {
  local p t w n l
  DEFER=0
  for p in "${PENDING[@]}"; do
    read -r t w n l <<<"$p"
    summarize "$t" "$w" "$n" "$l" "$T/rows.$t.$w.$n"
    rm -f "$T/rows.$t.$w.$n"
  done
  PENDING=()
}

# run_vhdup TARGET WORKLOAD DISK CONNS REPS URL_BASE LINK [ENV...] -- [PREFIX...]:
# REPS uploads of DISK into new blobs under URL_BASE (a container URL, SAS
# appended for the sink), each through PREFIX (e.g. ip netns exec NS); a
# WORKLOAD ending in -nomd5 adds --no-md5.
run_vhdup() {
  local target=$1 workload=$2 disk=$3 conns=$4 reps=$5 base=$6 link=$7 r rc opts=()
  shift 7
  [[ $workload == *-nomd5 ]] && opts=(--no-md5)
  local envs=()
  while [ "$1" != -- ]; do envs+=("$1"); shift; done
  shift
  local prefix=("$@") rows
  point_rows "$target" "$workload" "$conns" "$link"
  rows=$ROWS
  for ((r = 0; r < reps; r++)); do
    nrun=$((nrun + 1))
    local log=$out/runs/$nrun url
    if [ "$target" = azurite ]; then url=$base/run$nrun.vhd; else url="$base/run$nrun.vhd?sv=2021-08-06&sig=testsig"; fi
    echo "$target $workload: vhdup upload --progress=json -c $conns --allow-http ${opts[*]} $disk $url" >"$log.cmd"
    rc=0
    local sink0
    sink0=$(sink_ticks)
    "${prefix[@]}" env "${envs[@]}" /usr/bin/time -f '%e %U %S %M' -o "$log.time" \
      timeout -k 5 "$RUN_TIMEOUT" "$VHDUP" upload --progress=json -c "$conns" --allow-http "${opts[@]}" "$disk" "$url" \
      >"$log.json" 2>"$log.err" || rc=$?
    local e u s m sink=-
    read -r e u s m < <(tail -n 1 "$log.time")
    [ "$sink0" = - ] || sink=$(echo "($(sink_ticks) - $sink0) / $(getconf CLK_TCK)" | bc -l)
    python3 - "$log.json" "$rc" "$e" "$(echo "$u + $s" | bc -l)" "$m" "$sink" >>"$rows" <<'PY'
import json, sys
path, rc, e, cpu, rss, sink = sys.argv[1:]
d = {}
prog = []
for line in open(path):
    if line.startswith('{"event":"done"'):
        d = json.loads(line)
    elif line.startswith('{"event":"progress"'):
        p = json.loads(line)
        if p.get("phase", "data") == "data":
            prog.append(p)
steady, inflight, lim_max = "-", "-", 0
if len(prog) >= 2 and prog[-1]["seconds"] - prog[0]["seconds"] >= 0.9:
    steady = "%.1f" % ((prog[-1]["bytes_sent"] - prog[0]["bytes_sent"]) / 1e6 /
                       (prog[-1]["seconds"] - prog[0]["seconds"]))
if prog:
    inflight = str(max(p.get("in_flight", 0) for p in prog))
    lim_max = max(p.get("connections_limit", 0) for p in prog)
lim_end = d.get("connections_limit", 0)
lim_max = max(lim_max, lim_end)
st = d.get("status", "none")
if rc in ("124", "137"):
    st = "TIMEOUT"
elif st != "ok" or rc != "0":
    st = "FAIL(rc=%s;%s)" % (rc, d.get("error_code") or st)
print(e, cpu, rss, d.get("bytes_sent", 0), d.get("virtual_size", 0), d.get("requests", 0), d.get("retries", 0), st, steady, inflight, lim_end, lim_max, sink)
PY
    [ "$rc" -eq 0 ] || note "FAILED ($rc): $(cat "$log.cmd"): $(tail -n 3 "$log.err")"
    if [ "$target" = azurite ]; then
      az_req DELETE "$AZURITE_URL" "bench/run$nrun.vhd" >/dev/null || true
    fi
  done
  point_done "$target" "$workload" "$conns" "$link"
}

# sink_ticks: the loopback sink's CPU time so far in clock ticks (user +
# system, from /proc/PID/stat), or - when no local sink runs (SINK_PID).
SINK_PID=
sink_ticks() {
  if [ -n "$SINK_PID" ] && [ -r "/proc/$SINK_PID/stat" ]; then
    # The name field may hold spaces: count from the closing parenthesis.
    sed 's/.*) //' "/proc/$SINK_PID/stat" | awk '{ print $12 + $13 }'
  else
    echo -
  fi
}

# skipped TARGET WORKLOAD CONNS LINK WHY: a CSV row for a point not run.
skipped() {
  echo "$1,$2,$3,0,,,,,,,,,,,$4,$5,,,,," >>"$csv"
  note "$(tail -n 1 "$csv")"
}

# run_curl TARGET CONNS REPS PIECES URL_BASE QUERY LINK [PREFIX...]: the
# ceiling, a Put Page of each 4 MiB file in the folder PIECES (make_pieces)
# at its place in one page blob, through curl --parallel-max CONNS; QUERY
# authorizes (sig=testsig, or a container SAS). curl does not retry: its
# "retries" column counts failed requests.
size=$((4 * M))
run_curl() {
  local target=$1 n=$2 reps=$3 pieces=$4 base=$5 query=$6 link=$7 r i nreq
  shift 7
  nreq=$(find "$pieces" -name 'p.*' | wc -l)
  local prefix=("$@") rows blob=curl$n.vhd
  point_rows "$target" curl "$n" "$link"
  rows=$ROWS
  "${prefix[@]}" curl -sS -o /dev/null -X PUT -H 'Content-Length: 0' -H 'x-ms-blob-type: PageBlob' \
    -H 'x-ms-version: 2021-08-06' -H "x-ms-blob-content-length: $((nreq * size))" "$base/$blob?$query"
  : >"$T/curl.cfg"
  for ((i = 0; i < nreq; i++)); do
    # "next" resets per-URL options, so every group repeats them.
    printf 'next\nurl = "%s/%s?comp=page&%s"\nupload-file = "%s"\noutput = "/dev/null"\nheader = "x-ms-range: bytes=%d-%d"\nheader = "x-ms-page-write: update"\nheader = "x-ms-version: 2021-08-06"\nheader = "Expect:"\nsilent\nshow-error\nwrite-out = "%%{http_code}\\n"\n' \
      "$base" "$blob" "$query" "$(printf '%s/p.%04d' "$pieces" "$i")" $((i * size)) $(((i + 1) * size - 1)) >>"$T/curl.cfg"
  done
  sed -i '1d' "$T/curl.cfg"
  for ((r = 0; r < reps; r++)); do
    "${prefix[@]}" /usr/bin/time -f '%e %U %S %M' -o "$T/curl.time" \
      curl -sS --parallel --parallel-immediate --parallel-max "$n" -K "$T/curl.cfg" \
      >"$T/codes" 2>"$T/curl.err" || true
    local e u s m ok st=ok
    read -r e u s m < <(tail -n 1 "$T/curl.time")
    ok=$(grep -c '^201$' "$T/codes" || true)
    if [ "$ok" -ne "$nreq" ]; then
      # The sink resets a connection now and then (a request that arrives
      # before its write callback for the previous response has run is
      # taken for pipelining); only the 201s count as bytes sent.
      st="partial($((nreq - ok))-of-$nreq-failed)"
      nrun=$((nrun + 1))
      cp "$T/codes" "$out/runs/$nrun.curl-codes"
      cp "$T/curl.err" "$out/runs/$nrun.curl-err"
      note "curl $target -c $n: $st: codes $(sort "$T/codes" | uniq -c | tr -s ' \n' ' '); $(head -c 300 "$T/curl.err")"
    fi
    echo "$e $(echo "$u + $s" | bc -l) $m $((ok * size)) 0 $ok $((nreq - ok)) $st - - 0 0 -" >>"$rows"
  done
  point_done "$target" curl "$n" "$link"
}

# duel TARGET WORKLOAD REPS DISK URL_BASE LINK [ENV...] -- [PREFIX...]:
# --connections auto against the best fixed count of TARGET and WORKLOAD so
# far, REPS pairs run in turn, into duel.csv. The best of nine medians is
# biased upward (of nine noisy points the luckiest wins), so auto is judged
# against that count measured again beside it, not against its lucky draw.
duel() {
  local target=$1 workload=$2 reps=$3 disk=$4 base=$5 link=$6 best r saved=$csv
  shift 6
  [[ " $CONNS " == *" auto "* ]] || return 0
  best=$(awk -F, -v t="$target" -v w="$workload" '$1 == t && $2 == w && $3 != "auto" && $16 == "ok" \
    && $10 + 0 > b { b = $10 + 0; n = $3 } END { print n }' "$csv")
  [ -n "$best" ] || return 0
  rm -f "$T/rows.$target.$workload.$best" "$T/rows.$target.$workload.auto"
  csv=$duelcsv
  interleave
  for ((r = 0; r < reps; r++)); do
    run_vhdup "$target" "$workload" "$disk" "$best" 1 "$base" "$link" "$@"
    run_vhdup "$target" "$workload" "$disk" auto 1 "$base" "$link" "$@"
  done
  flush
  csv=$saved
}

# ceiling_pairs REPS PIECES URL_BASE: vhdup's dense-nomd5 and the curl
# ceiling in turn, REPS pairs, at the count of curl's best loopback median,
# into ceiling.csv.
ceiling_pairs() {
  local reps=$1 pieces=$2 base=$3 best r saved=$csv
  best=$(awk -F, '$1 == "loopback" && $2 == "curl" && $16 == "ok" && $10 + 0 > b { b = $10 + 0; n = $3 } END { print n }' "$csv")
  [ -n "$best" ] || return 0
  rm -f "$T/rows.loopback.dense-nomd5.$best" "$T/rows.loopback.curl.$best"
  csv=$ceilcsv
  interleave
  for ((r = 0; r < reps; r++)); do
    run_vhdup loopback dense-nomd5 "$disk_dense_big" "$best" 1 "$base" "" --
    run_curl loopback "$best" 1 "$pieces" "$base" sig=testsig ""
  done
  flush
  csv=$saved
}

# ---------------------------------------------------------------- loopback
want() { [[ $TARGETS == *" $1 "* ]]; }
hashrates() {
  "$VHDUP_TOOLS_DIR/bench_hashrate" 2 >"$T/hashrate"
  sed -n 's/^md5 MB\/s=\([0-9.]*\).*/\1/p' "$T/hashrate" >>"$out/md5rate"
  sed -n 's/^md5x MB\/s=\([0-9.]*\).* lanes=\([0-9]*\).*/\1 \2/p' "$T/hashrate" >>"$out/md5xrate"
}
ref_requests=2100
if want loopback; then
  note "loopback: sink on 127.0.0.1 (MD5 not checked)"
  # Single-core MD5 rates, in the same run, before and after the points:
  # one message at a time, and vhdup's several at once.
  : >"$out/md5rate"
  : >"$out/md5xrate"
  hashrates
  start_testserver --sink-no-md5 --sas-sig testsig
  SINK_PID=$TS_PID
  curl -sS -o /dev/null -X PUT -H 'Content-Length: 0' "$TS_URL/bench?restype=container&sig=testsig"
  interleave
  for ((rep = 0; rep < REPS; rep++)); do
    for n in $CONNS; do
      run_vhdup loopback ref "$disk_ref" "$n" 1 "$TS_URL/bench" "" --
      run_vhdup loopback dense "$disk_dense_big" "$n" 1 "$TS_URL/bench" "" --
      run_vhdup loopback dense-nomd5 "$disk_dense_big" "$n" 1 "$TS_URL/bench" "" --
      [ "$n" = auto ] || run_curl loopback "$n" 1 "$pieces_big" "$TS_URL/bench" sig=testsig ""
    done
  done
  flush
  duel loopback ref "$DUEL_REPS" "$disk_ref" "$TS_URL/bench" "" --
  duel loopback dense "$DUEL_REPS" "$disk_dense_big" "$TS_URL/bench" "" --
  duel loopback dense-nomd5 "$DUEL_REPS" "$disk_dense_big" "$TS_URL/bench" "" --
  ceiling_pairs "$CEILING_REPS" "$pieces_big" "$TS_URL/bench"
  hashrates
  ref_requests=$(awk -F, '$1 == "loopback" && $2 == "ref" { print $8; exit }' "$csv")
  SINK_PID=
  stop_testserver
  cp "$TS_LOG" "$out/runs/loopback-sink.log"
fi

# ---------------------------------------------------------------- azurite
if want azurite; then
  if [ -x "$VHDUP_AZURITE_BIN" ]; then
    note "azurite on 127.0.0.1"
    start_azurite
    az_mkcontainer "$AZURITE_URL" bench
    sas=$(az_container_sas bench)
    interleave
    for ((rep = 0; rep < AZ_REPS; rep++)); do
      for n in $AZ_CONNS; do
        run_vhdup azurite ref "$disk_ref" "$n" 1 "$AZURITE_URL/bench" "" AZURE_STORAGE_CONNECTION_STRING="$AZURITE_CONN" --
        run_vhdup azurite dense "$disk_dense_small" "$n" 1 "$AZURITE_URL/bench" "" AZURE_STORAGE_CONNECTION_STRING="$AZURITE_CONN" --
        [ "$n" = auto ] && continue
        run_curl azurite "$n" 1 "$pieces_small" "$AZURITE_URL/bench" "$sas" ""
        az_req DELETE "$AZURITE_URL" "bench/curl$n.vhd" >/dev/null || true
      done
    done
    flush
    duel azurite ref "$DUEL_REPS" "$disk_ref" "$AZURITE_URL/bench" "" AZURE_STORAGE_CONNECTION_STRING="$AZURITE_CONN" --
    duel azurite dense "$DUEL_REPS" "$disk_dense_small" "$AZURITE_URL/bench" "" AZURE_STORAGE_CONNECTION_STRING="$AZURITE_CONN" --
  else
    note "no Azurite at $VHDUP_AZURITE_BIN (scripts/setup.sh): skipped"
  fi
fi

# ---------------------------------------------------------------- wan
wan_modes=""
if want wan; then
  for p in $WAN_PROFILES; do
    IFS=: read -r rate rtt mtu <<<"$p"
    wan_up "$rate" "$rtt" "$mtu"
    target=wan-$rate-${rtt}ms${mtu:+-mtu$mtu}
    [ "$WAN_MODE" = netns ] || target=$target-loopback-norate
    wan_modes="$wan_modes $target:$WAN_MODE"
    note "$target: $WAN_MODE, link ${WAN_LINK_MBPS:-unlimited} MB/s, proxy at $WAN_URL"
    "${WAN_EXEC[@]}" curl -sS -o /dev/null -X PUT -H 'Content-Length: 0' "$WAN_URL/bench?restype=container&sig=testsig"
    conns=$CONNS
    [ -z "$mtu" ] || conns=$WAN_MTU_CONNS
    for n in $conns; do
      # auto is judged by the time it would take at 64 connections.
      pred=$((ref_requests * rtt / 1000 / ${n/auto/64}))
      if [ -n "$mtu" ]; then
        : # the jumbo-frame paths are about the link rate: dense only
      elif [ "$pred" -gt "$WAN_MAX_PRED" ]; then
        skipped "$target" ref "$n" "${WAN_LINK_MBPS:-}" "skipped(~${pred}s:${ref_requests}req*${rtt}ms/${n})"
      else
        run_vhdup "$target" ref "$disk_ref" "$n" 1 "$WAN_URL/bench" "${WAN_LINK_MBPS:-}" -- "${WAN_EXEC[@]}"
      fi
      run_vhdup "$target" dense "$disk_dense_wan" "$n" 1 "$WAN_URL/bench" "${WAN_LINK_MBPS:-}" -- "${WAN_EXEC[@]}"
      [ "$n" = auto ] || run_curl "$target" "$n" 1 "$pieces_big" "$WAN_URL/bench" sig=testsig "${WAN_LINK_MBPS:-}" "${WAN_EXEC[@]}"
    done
    if [ -z "$mtu" ]; then
      duel "$target" ref "$WAN_DUEL_REPS" "$disk_ref" "$WAN_URL/bench" "${WAN_LINK_MBPS:-}" -- "${WAN_EXEC[@]}"
      duel "$target" dense "$WAN_DUEL_REPS" "$disk_dense_wan" "$WAN_URL/bench" "${WAN_LINK_MBPS:-}" -- "${WAN_EXEC[@]}"
    fi
    cp "$WAN_DIR/sink.log" "$out/runs/$target-sink.log"
    cp "$WAN_DIR/proxy.log" "$out/runs/$target-proxy.log"
    wan_down
  done
fi

# ---------------------------------------------------------------- report
elapsed=$(($(date +%s) - t_start))
load_after=$(cut -d' ' -f1-3 /proc/loadavg)
python3 - "$csv" "$duelcsv" "$ceilcsv" >"$out/sweep.md" <<PY
import csv, re, sys
rows = list(csv.DictReader(open(sys.argv[1])))
duel = list(csv.DictReader(open(sys.argv[2])))
ceil = {r["workload"]: r for r in csv.DictReader(open(sys.argv[3]))}
curl = {(r["target"], r["connections"]): r for r in rows if r["workload"] == "curl"}
print("# vhdup upload: throughput against connection count")
print()
print("$(date -u '+%Y-%m-%d %H:%M UTC'), vhdup $head"
      " ($(git -C "$root" status --porcelain -- src include 2>/dev/null | grep -q . && echo 'src has local changes' || echo 'clean src')),"
      " $(nproc) CPUs, load $load_before before / $load_after after, ${elapsed}s for the whole sweep"
      " (bench/sweep.sh). WAN paths:${wan_modes:- none}.")
print()
print("MB = 10^6 bytes. payload MB/s = bytes sent / wall; virtual MB/s = the disk's virtual size / wall;"
      " curl MB/s = the plain-curl ceiling at the same connection count against the same target"
      " (4 MiB Put Pages of the dense workload's bytes, each sent once); link = the tbf rate; of TCP = of the payload TCP can carry through it at the path's MTU (1500: 1448 of every 1514 bytes; 9000: 8948 of 9014); auto chose = the limit --connections auto ended on (the highest it tried). Wall = the whole vhdup process; steady = vhdup's own progress lines,"
      " first to last (blank when the run was under ~2 s); in flight = the most requests in flight seen."
      " ref = reference-like 2 GiB dynamic disk (197 MiB data, ~2050 requests);"
      " dense = random data filling the disk (1 GiB on loopback and over WAN, 256 MiB on Azurite);"
      " dense-nomd5 = dense with --no-md5 (no per-request Content-MD5, like the curl ceiling).")
print()
def tcp_share(target):
    """Payload per tbf-counted frame at the path's MTU (see the header)."""
    m = re.search(r"-mtu([0-9]+)\$", target)
    mtu = int(m.group(1)) if m else 1500
    return (mtu - 52) / (mtu + 14)
print("| target | workload | conns | payload MB/s | virtual MB/s | req/s | retries | CPU s/GiB | RSS MiB | curl MB/s | vhdup/curl | of link | of TCP | steady MB/s | steady of link | in flight | auto chose | status |")
print("|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|")
pct = lambda a, b: "%.0f%%" % (100 * float(a) / float(b)) if a and b and float(b) else ""
for r in rows:
    if r["workload"] == "curl":
        continue
    c = curl.get((r["target"], r["connections"]))
    cm = c["payload_MBps"] if c else ""
    tcp = "%.1f" % (float(r["link_MBps"]) * tcp_share(r["target"])) if r["link_MBps"] else ""
    chose = "%s (max %s)" % (r["auto_limit_end"], r["auto_limit_max"]) if r["auto_limit_end"] else ""
    print("| " + " | ".join([r["target"], r["workload"], r["connections"], r["payload_MBps"], r["virtual_MBps"],
          r["req_per_s"], r["retries"], r["cpu_s_per_GiB"], r["peak_rss_MiB"], cm, pct(r["payload_MBps"], cm),
          pct(r["payload_MBps"], r["link_MBps"]), pct(r["payload_MBps"], tcp),
          r["steady_MBps"], pct(r["steady_MBps"], r["link_MBps"]), r["max_in_flight"], chose, r["status"]]) + " |")
print()
print("## Targets")
print()
ok = lambda r: r["status"] == "ok" and r["payload_MBps"]
# The link targets judge the dense workload: ref's 2000 islands of 4 KiB are
# bound by round trips, not by the link (see its rows and auto's).
for t in sorted({r["target"] for r in rows if r["link_MBps"]}):
    for w in ("dense",):
        pts = [r for r in rows if r["target"] == t and r["workload"] == w and ok(r)
               and r["connections"] != "auto" and int(r["connections"]) <= 16]
        if not pts:
            continue
        best = max(pts, key=lambda r: float(r["payload_MBps"]))
        link = float(best["link_MBps"])
        v = float(best["payload_MBps"])
        TCP = tcp_share(t)
        line = ("- %s, %s: best at <= 16 connections %s MB/s (wall) with %s = %.1f%% of the %s MB/s link: %s; "
                "%.1f%% of what TCP carries through it (%.1f MB/s): %s (target >= 95%%)"
                % (t, w, best["payload_MBps"], best["connections"], 100 * v / link, best["link_MBps"],
                   "MET" if v >= 0.95 * link else "not met",
                   100 * v / (link * TCP), link * TCP, "MET" if v >= 0.95 * link * TCP else "not met"))
        sp = [r for r in pts if r["steady_MBps"]]
        if sp:
            sb = max(sp, key=lambda r: float(r["steady_MBps"]))
            sv = 100 * float(sb["steady_MBps"]) / float(sb["link_MBps"])
            line += "; steady %s MB/s with %s = %.1f%% of the link" % (sb["steady_MBps"], sb["connections"], sv)
        c = curl.get((t, best["connections"]))
        if c:
            line += "; curl at %s: %s MB/s = %.1f%% of the link" % (best["connections"], c["payload_MBps"], 100 * float(c["payload_MBps"]) / link)
        print(line)
for w in ("dense-nomd5",):
    pts = [r for r in rows if r["target"] == "loopback" and r["workload"] == w and ok(r)]
    for r in pts:
        c = curl.get(("loopback", r["connections"]))
        if c:
            r["ratio"] = float(r["payload_MBps"]) / float(c["payload_MBps"])
    pts = [r for r in pts if "ratio" in r]
    if pts:
        met = [r["connections"] for r in pts if r["ratio"] >= 0.9]
        print("- loopback, %s: vhdup/curl %s; >= 90%% of the curl ceiling at connections: %s"
              % (w, ", ".join("%s: %.0f%%" % (r["connections"], 100 * r["ratio"]) for r in pts), " ".join(met) or "none"))
        cs = sorted(float(c["payload_MBps"]) for (t, n), c in curl.items() if t == "loopback")
        vs = sorted(float(r["payload_MBps"]) for r in pts)
        print("  - over all counts: vhdup best %.0f MB/s, median %.0f; curl best %.0f, median %.0f; medians %.0f%%"
              % (vs[-1], vs[len(vs) // 2], cs[-1], cs[len(cs) // 2], 100 * vs[len(vs) // 2] / cs[len(cs) // 2]))
        v, c = ceil.get(w), ceil.get("curl")
        if v and c and ok(v) and c["payload_MBps"]:
            q = float(v["payload_MBps"]) / float(c["payload_MBps"])
            print("  - side by side (%s pairs in turn at %s connections, curl's best count): vhdup %s MB/s (%s CPU s/GiB), curl %s MB/s (%s): %.0f%%: %s (target >= 90%%)"
                  % (v["reps"], v["connections"], v["payload_MBps"], v["cpu_s_per_GiB"], c["payload_MBps"],
                     c["cpu_s_per_GiB"], 100 * q, "MET" if q >= 0.9 else "not met"))
try:
    md5 = [float(x) for x in open("$out/md5rate").read().split()]
    md5x = [l.split() for l in open("$out/md5xrate").read().splitlines() if l.strip()]
except OSError:
    md5, md5x = [], []
if md5:
    rate = sum(md5) / len(md5)
    # vhdup's own rate: several messages side by side (one at a time
    # without AVX2, where it is the same as rate).
    xrate = sum(float(x[0]) for x in md5x) / len(md5x) if md5x else rate
    lanes = md5x[0][1] if md5x else "1"
    cores = $(nproc)
    dense = {r["connections"]: r for r in rows if r["target"] == "loopback" and r["workload"] == "dense" and ok(r)}
    nomd5 = {r["connections"]: r for r in rows if r["target"] == "loopback" and r["workload"] == "dense-nomd5" and ok(r)}
    print("- loopback, MD5: one core hashes one message at a time at %s MB/s (mbedTLS; what openssl speed md5 counts), %d cores %.0f MB/s;"
          " vhdup hashes %s messages side by side at %s MB/s per core (measured before and after the loopback points)." % (
        " and ".join("%.0f" % x for x in md5), cores, cores * rate, lanes, " and ".join("%.0f" % float(x[0]) for x in md5x) or "n/a"))
    for n, r in dense.items():
        c = curl.get(("loopback", n))
        if not c:
            continue
        v = float(r["payload_MBps"])
        bound = min(float(c["payload_MBps"]), cores * rate)
        xbound = min(float(c["payload_MBps"]), cores * xrate)
        extra = float(r["cpu_s_per_GiB"]) - float(nomd5[n]["cpu_s_per_GiB"]) if n in nomd5 else float("nan")
        line = ("  - %s connections: %s MB/s with MD5 = %.0f%% of min(curl %s, %d x %.0f) = %.0f: %s (target >= 90%%);"
                " %.0f%% of min(curl, %d x vhdup's %.0f) = %.0f; MD5 added %.2f CPU s/GiB to vhdup, hashing alone is %.2f"
                % (n, r["payload_MBps"], 100 * v / bound, c["payload_MBps"], cores, rate, bound,
                   "MET" if v >= 0.9 * bound else "not met", 100 * v / xbound, cores, xrate, xbound,
                   extra, 2**30 / 1e6 / xrate))
        # What the cores allow once everything else is paid: vhdup's own
        # CPU without MD5 and the sink's, per GiB, plus hashing it.
        x = nomd5.get(n)
        if x and x["sink_cpu_s_per_GiB"]:
            need = float(x["cpu_s_per_GiB"]) + float(x["sink_cpu_s_per_GiB"]) + 2**30 / 1e6 / xrate
            cpu_bound = min(float(c["payload_MBps"]), cores * 2**30 / 1e6 / need)
            line += ("; CPU per GiB with MD5 at the least: %s vhdup + %s sink + %.2f hashing = %.2f s, so %d cores allow %.0f MB/s: %.0f%% of that"
                     % (x["cpu_s_per_GiB"], x["sink_cpu_s_per_GiB"], 2**30 / 1e6 / xrate, need, cores, cpu_bound,
                        100 * float(r["payload_MBps"]) / cpu_bound))
        print(line)
for t in sorted({r["target"] for r in rows}):
    for w in ("ref", "dense", "dense-nomd5"):
        a = [r for r in rows if r["target"] == t and r["workload"] == w and r["connections"] == "auto" and ok(r)]
        fixed = [r for r in rows if r["target"] == t and r["workload"] == w and r["connections"] != "auto" and ok(r)]
        if not a or not fixed:
            continue
        best = max(fixed, key=lambda r: float(r["payload_MBps"]))
        q = float(a[0]["payload_MBps"]) / float(best["payload_MBps"])
        print("- %s, %s: auto %s MB/s, ending at %s connections (highest tried %s); best fixed %s MB/s at %s: %.0f%% of it (of the best of the fixed medians, which luck inflates)"
              % (t, w, a[0]["payload_MBps"], a[0]["auto_limit_end"], a[0]["auto_limit_max"], best["payload_MBps"],
                 best["connections"], 100 * q))
        d = [r for r in duel if r["target"] == t and r["workload"] == w and ok(r)]
        da = [r for r in d if r["connections"] == "auto"]
        df = [r for r in d if r["connections"] != "auto"]
        if da and df:
            q = float(da[0]["payload_MBps"]) / float(df[0]["payload_MBps"])
            print("  - side by side (%s pairs in turn): auto %s MB/s (ending at %s, highest %s), %s connections %s MB/s: %.0f%% of it: %s (target >= 90%%)"
                  % (da[0]["reps"], da[0]["payload_MBps"], da[0]["auto_limit_end"], da[0]["auto_limit_max"],
                     df[0]["connections"], df[0]["payload_MBps"], 100 * q, "MET" if q >= 0.9 else "not met"))
print()
print("![MB/s against connections](sweep.svg)")
PY
python3 "$root/bench/plot.py" "$csv" "$out/sweep.svg"
{
  echo "# The machine of this sweep"
  echo
  echo "- date: $(date -u '+%Y-%m-%d %H:%M:%S UTC') (sweep took ${elapsed}s)"
  echo "- nproc: $(nproc)"
  echo "- kernel: $(uname -srvm)"
  echo "- load average (1, 5, 15 min): $load_before before, $load_after after (other work on the machine shares its cores)"
  echo "- memory: $(free -m | awk '/^Mem:/ { print $2 " MiB total, " $7 " MiB available" }')"
  echo "- vhdup: $head at the start (build $build, $(grep -m1 '^CMAKE_BUILD_TYPE:' "$build/CMakeCache.txt" 2>/dev/null | cut -d= -f2))"
  echo "- curl: $(curl --version | head -n 1)"
  echo "- WAN paths:${wan_modes:- none}"
  echo
  echo '```'
  echo '$ lscpu | head -n 20'
  lscpu | head -n 20
  echo '```'
} >"$out/machine.md"
cat "$out/sweep.md"
note "done in ${elapsed}s: $out/sweep.csv, $out/sweep.md, $out/sweep.svg, per-run logs in $out/runs"
