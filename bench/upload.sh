#!/usr/bin/env bash
# vhdup upload, end to end, on loopback: the reference disk (2 GiB dynamic
# VHD, 197 MiB of non-zero data) to Azurite and to vhdup-testserver --sink;
# peak RSS against virtual size and connection count; per-request MD5 on/off
# next to the single-core MD5 and CRC64 rates; the --merge-gap break-even;
# parallel curl PUTs as the ceiling. Every run records wall time, bytes sent
# (the --progress=json "done" line), requests, retries, payload MB/s
# (10^6 bytes of bytes_sent per wall second), peak RSS and CPU seconds
# (GNU time); a configuration run REPS times reports its median-wall run.
#
# usage: bench/upload.sh [BUILD_DIR]   (default: $VHDUP_BUILD_DIR or build)
# env:   BENCH_OUT=DIR   results.csv, results.md and per-run logs (default: a
#                        new temporary folder, kept and named at the end)
#        REPS=3  AZ_REPS=1  CONNS="1 4 16 64"  RSS_CONNS="4 256"
#        GAPS="0 4K 16K 64K 256K"  AZ_GAPS="0 64K 256K"  CURL_REQUESTS=64
#        HASH_SECONDS=2  SECTIONS="1 2 3 4 curl" (which parts to run)
#        SKIP_AZURITE=1   VERIFY=0 (no byte-for-byte check of one blob)
#        RUN_TIMEOUT=180  (seconds; a run still going then is killed and
#                         reported as TIMEOUT: a hang is a result, not a stall)
#        VHDUP_BENCH_CACHE=~/.cache/vhdup/bench   (the disks, made once)
# Needs in BUILD_DIR: vhdup, test/vhdup-testserver, test/bench_hashrate;
# qemu-img/qemu-io, python3, curl, GNU time; Azurite from scripts/setup.sh.
# Everything it starts is stopped by PID at exit (test/e2e/lib.sh).
# shellcheck source-path=SCRIPTDIR/..
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
build=$(cd "${1:-${VHDUP_BUILD_DIR:-$root/build}}" && pwd)
export VHDUP_SOURCE_DIR=$root VHDUP_BUILD_DIR=$build VHDUP=$build/vhdup VHDUP_TOOLS_DIR=$build/test
hashrate=$build/test/bench_hashrate
for f in "$VHDUP" "$VHDUP_TOOLS_DIR/vhdup-testserver" "$hashrate"; do
  [ -x "$f" ] || { echo "bench: no $f (cmake --build $build)" >&2; exit 2; }
done
[ -x /usr/bin/time ] || { echo "bench: needs GNU time at /usr/bin/time" >&2; exit 2; }

# lib.sh: $T (removed at exit), _pids (killed by PID at exit), start_azurite.
# shellcheck source=test/e2e/lib.sh
source "$root/test/e2e/lib.sh"
# shellcheck source=bench/lib.sh
source "$root/bench/lib.sh"
# shellcheck source=test/e2e/lib_server.sh
source "$root/test/e2e/lib_server.sh"
# shellcheck source=test/e2e/lib_azure.sh
source "$root/test/e2e/lib_azure.sh"

REPS=${REPS:-3}
AZ_REPS=${AZ_REPS:-1}
CONNS=${CONNS:-1 4 16 64}
RSS_CONNS=${RSS_CONNS:-4 256}
GAPS=${GAPS:-0 4K 16K 64K 256K}
AZ_GAPS=${AZ_GAPS:-0 64K 256K}
CURL_REQUESTS=${CURL_REQUESTS:-64}
HASH_SECONDS=${HASH_SECONDS:-2}
VERIFY=${VERIFY:-1}
RUN_TIMEOUT=${RUN_TIMEOUT:-180}
SECTIONS=" ${SECTIONS:-1 2 3 4 curl} "
want() { [[ $SECTIONS == *" $1 "* ]]; }
cache=${VHDUP_BENCH_CACHE:-${VHDUP_CACHE:-$HOME/.cache/vhdup}/bench}
if [ -n "${BENCH_OUT:-}" ]; then
  out=$BENCH_OUT
else
  out=$(mktemp -d "${TMPDIR:-/tmp}/vhdup-bench-upload.XXXXXX")
fi
mkdir -p "$out/runs" "$cache"
out=$(cd "$out" && pwd)
csv=$out/results.csv
M=$((1024 * 1024))
note() { echo "bench: $*" >&2; }

# ---------------------------------------------------------------- disks
# nonzero_bytes RAW: bytes in the non-zero 512-byte sectors of RAW (sparse:
# only its data extents are read).
nonzero_bytes() {
  python3 - "$1" <<'PY'
import os, sys
path = sys.argv[1]
size = os.path.getsize(path)
n = 0
with open(path, 'rb') as f:
    fd = f.fileno()
    pos = 0
    while pos < size:
        try:
            pos = os.lseek(fd, pos, os.SEEK_DATA)
        except OSError:
            break
        end = os.lseek(fd, pos, os.SEEK_HOLE)
        pos -= pos % 512
        f.seek(pos)
        while pos < end:
            chunk = f.read(min(1 << 20, end - pos + (-(end - pos)) % 512))
            if not chunk:
                break
            for i in range(0, len(chunk), 512):
                if chunk[i:i + 512].count(0) != len(chunk[i:i + 512]):
                    n += 512
            pos += len(chunk)
print(n)
PY
}

make_ref_qemu() {
  "$root/bench/make-disk.sh" "$1/ref.vhd" 2G
  qemu-img convert -f vpc -O raw "$1/ref.vhd" "$1/ref.raw"
}
refdir=$cache/reference-qemu
note "reference disk: bench/make-disk.sh into $refdir (once)"
cached "$refdir" make_ref_qemu "$refdir"
ref=$refdir/ref.vhd ref_raw=$refdir/ref.raw
ref_from="bench/make-disk.sh (qemu-io patterns)"
[ -s "$refdir/nonzero" ] || nonzero_bytes "$ref_raw" >"$refdir/nonzero"
ref_nz=$(cat "$refdir/nonzero")
for v in 1G 1T; do
  cached "$cache/scatter-$v" "$root/bench/make-disk.sh" --layout scatter "$cache/scatter-$v/disk.vhd" "$v"
done
scatter_nz=$(((96 * 2 * M) + (256 + 1) * 4096))
cached "$cache/gaps-1G" "$root/bench/make-disk.sh" --layout gaps "$cache/gaps-1G/disk.vhd" 1G
cached "$cache/sweep-dense-1G" make_dense "$cache/sweep-dense-1G" 1024
dense=$cache/sweep-dense-1G/dense.vhd dense_nz=$((1024 * M))
gaps=$cache/gaps-1G/disk.vhd gaps_nz=$(((5 * 1024 + 1) * 4096))

# ---------------------------------------------------------------- servers
note "starting vhdup-testserver --sink, --sink --sink-no-md5${SKIP_AZURITE:+ (Azurite skipped)}"
start_testserver --sink --sas-sig testsig
SINK_PORT=$TS_PORT SINK_URL=$TS_URL SINK_PID=$TS_PID
start_testserver --sink --sink-no-md5 --sas-sig testsig
NOMD5_PORT=$TS_PORT NOMD5_URL=$TS_URL NOMD5_PID=$TS_PID
# srv_cpu PID: the server's user + system CPU seconds so far.
clk_tck=$(getconf CLK_TCK)
srv_cpu() { awk -v t="$clk_tck" '{ printf "%.2f", ($14 + $15) / t }' "/proc/$1/stat"; }
for u in "$SINK_URL" "$NOMD5_URL"; do
  curl -sS -o /dev/null -X PUT -H 'Content-Length: 0' "$u/bench?restype=container&sig=testsig"
done
if ! want 1 && ! want 4; then
  SKIP_AZURITE=1
fi
if [ -z "${SKIP_AZURITE:-}" ]; then
  if [ -x "$VHDUP_AZURITE_BIN" ]; then
    start_azurite
    az_mkcontainer "$AZURITE_URL" bench
  else
    note "no Azurite at $VHDUP_AZURITE_BIN (scripts/setup.sh): Azurite rows skipped"
    SKIP_AZURITE=1
  fi
fi

# ---------------------------------------------------------------- one run
echo "section,target,label,connections,merge_gap,options,reps,wall_s,wall_min_s,wall_max_s,bytes_sent,server_bytes,requests,retries,payload_MBps,peak_rss_MiB,cpu_s,nonzero_bytes,sent_ratio,status,server_cpu_s" >"$csv"
nrun=0

# upload SECTION TARGET LABEL CONNS GAP SRC NONZERO [VHDUP OPTIONS...]:
# TARGET is azurite, sink (MD5 checked) or sink-no-md5; REPS runs (AZ_REPS
# for Azurite), each into a new blob; appends the median-wall run to the CSV.
upload() {
  local section=$1 target=$2 label=$3 conns=$4 gap=$5 src=$6 nz=$7
  shift 7
  local opts=("$@") reps=$REPS r blob url port="" spid="" rc rows=$T/rows c0=0
  [ "$target" = azurite ] && reps=$AZ_REPS
  : >"$rows"
  for ((r = 0; r < reps; r++)); do
    nrun=$((nrun + 1))
    blob=run$nrun.vhd
    local log=$out/runs/$nrun
    local envs=()
    case "$target" in
    azurite) url=$AZURITE_URL/bench/$blob envs=(AZURE_STORAGE_CONNECTION_STRING="$AZURITE_CONN") ;;
    sink) url="$SINK_URL/bench/$blob?sv=2021-08-06&sig=testsig" port=$SINK_PORT spid=$SINK_PID ;;
    sink-no-md5) url="$NOMD5_URL/bench/$blob?sv=2021-08-06&sig=testsig" port=$NOMD5_PORT spid=$NOMD5_PID ;;
    esac
    [ -n "$port" ] && curl -sS -o /dev/null -X POST "http://127.0.0.1:$port/_control/reset-stats"
    echo "vhdup upload --progress=json -c $conns --merge-gap $gap ${opts[*]} $src $target/$blob" >"$log.cmd"
    rc=0
    [ -n "$spid" ] && c0=$(srv_cpu "$spid")
    # timeout: SIGTERM, then SIGKILL 5 s later (a busy loop may never see
    # the TERM). GNU time reports its child's and so vhdup's peak RSS.
    env "${envs[@]}" /usr/bin/time -f '%e %U %S %M' -o "$log.time" \
      timeout -k 5 "$RUN_TIMEOUT" "$VHDUP" upload --progress=json -c "$conns" --merge-gap "$gap" "${opts[@]}" "$src" "$url" \
      >"$log.json" 2>"$log.err" || rc=$?
    local e u s m srv="" scpu=-
    [ -n "$spid" ] && scpu=$(echo "$(srv_cpu "$spid") - $c0" | bc -l)
    read -r e u s m < <(tail -n 1 "$log.time")
    [ -n "$port" ] && srv=$(curl -sS "http://127.0.0.1:$port/_control/stats" |
      python3 -c 'import json,sys; print(json.load(sys.stdin)["put_page_bytes"])')
    local done_line
    done_line=$(python3 - "$log.json" "$rc" <<'PY'
import json, sys
d = {}
for line in open(sys.argv[1]):
    if line.startswith('{"event":"done"'):
        d = json.loads(line)
st = d.get("status", "none")
if sys.argv[2] in ("124", "137"):
    st = "TIMEOUT(rc=%s)" % sys.argv[2]
elif st != "ok" or sys.argv[2] != "0":
    st = "FAIL(rc=%s,%s)" % (sys.argv[2], d.get("error_code") or st)
print(d.get("bytes_sent", 0), d.get("requests", 0), d.get("retries", 0), st)
PY
)
    echo "$e $(echo "$u + $s" | bc -l) $m $done_line ${srv:--} $scpu" >>"$rows"
    if [ "$rc" -ne 0 ]; then
      note "FAILED ($rc): $(cat "$log.cmd"): $(tail -n 3 "$log.err")"
    fi
    if [ "$target" = azurite ]; then
      if [ "$rc" -eq 0 ] && [ "$VERIFY" = 1 ] && [ -z "${verified:-}" ] && [ "$src" = "$ref" ]; then
        verify_blob "bench/$blob" "$log.json"
      fi
      az_req DELETE "$AZURITE_URL" "bench/$blob" >/dev/null || true
    fi
  done
  # The median by wall time (the lower middle for an even count).
  python3 - "$rows" "$section" "$target" "$label" "$conns" "$gap" "${opts[*]:-}" "$nz" >>"$csv" <<'PY'
import sys
rows_path, section, target, label, conns, gap, opts, nz = sys.argv[1:]
rows = [l.split() for l in open(rows_path) if l.strip()]
walls = [float(r[0]) for r in rows]
rows.sort(key=lambda r: float(r[0]))
e, cpu, rss, sent, req, retr, st, srv, scpu = rows[(len(rows) - 1) // 2]
bad = [r[6] for r in rows if r[6] != "ok"]
if bad:
    st = bad[0]
e, sent, nz = float(e), int(sent), int(nz)
ratio = "%.4f" % ((sent - 512) / nz) if nz else ""
mbps = sent / 1e6 / e if e > 0 else 0
print(",".join(str(x) for x in [section, target, '"%s"' % label, conns, gap, '"%s"' % opts,
      len(rows), "%.2f" % e, "%.2f" % min(walls), "%.2f" % max(walls), sent, srv, req, retr,
      "%.1f" % mbps, "%.1f" % (int(rss) / 1024), "%.2f" % float(cpu), nz, ratio, st,
      "" if scpu == "-" else "%.2f" % float(scpu)]))
PY
  note "$(tail -n 1 "$csv")"
}

# verify_blob BLOB JSON: the blob on Azurite is the expanded reference disk
# plus a 512-byte footer, and its MD5 is the disk MD5 vhdup reported; read
# back with lib_azure.sh's own signer (independent of vhdup's code).
verify_blob() {
  local got=$T/verify.blob want_md5
  verified=1
  az_get "$AZURITE_URL" "$1" "$got"
  local vsize
  vsize=$(stat -c %s "$ref_raw")
  want_md5=$(python3 -c 'import json,sys; print([json.loads(l) for l in open(sys.argv[1]) if l.startswith("{\"event\":\"done\"")][-1]["disk_md5"])' "$2")
  if [ "$(stat -c %s "$got")" -ne $((vsize + 512)) ]; then
    verify_result="FAIL: blob is $(stat -c %s "$got") bytes, want $((vsize + 512))"
  elif ! cmp -s -n "$vsize" "$ref_raw" "$got"; then
    verify_result="FAIL: blob differs from the expanded disk: $(cmp -n "$vsize" "$ref_raw" "$got" | head -1)"
  elif [ -n "$want_md5" ] && [ "$(md5sum <"$got" | cut -d' ' -f1)" != "$want_md5" ]; then
    verify_result="FAIL: md5sum of the blob is not the disk MD5 $want_md5"
  else
    verify_result="ok: the blob read back is the expanded disk + footer"
    [ -n "$want_md5" ] && verify_result="$verify_result; its md5sum is vhdup's disk MD5 $want_md5"
  fi
  note "verify: $verify_result"
  rm -f "$got"
}
verify_result="not run"

# ---------------------------------------------------------------- hashes
note "single-core hash rates (${HASH_SECONDS}s each)"
hash_line=$("$hashrate" "$HASH_SECONDS")
md5_rate=$(sed -n 's/^md5 MB\/s=\([^ ]*\).*/\1/p' <<<"$hash_line")
md5x_rate=$(sed -n 's/^md5x MB\/s=\([^ ]*\).*/\1/p' <<<"$hash_line")
md5x_lanes=$(sed -n 's/^md5x .* lanes=\([0-9]*\).*/\1/p' <<<"$hash_line")
crc_rate=$(sed -n 's/^crc64 MB\/s=\([^ ]*\).*/\1/p' <<<"$hash_line")
ossl_rate=$(openssl speed -evp md5 -bytes 4194304 -seconds "$(printf '%.0f' "$HASH_SECONDS" | sed 's/^0$/1/')" 2>/dev/null |
  awk '$1 == "md5" { sub(/k$/, "", $2); printf "%.1f", $2 / 1000 }' || true)

t_start=$(date +%s)
load_before=$(cut -d' ' -f1-3 /proc/loadavg)

# ---------------------------------------------------------------- 1. conns
# The whole-disk MD5 (the blob's Content-MD5) hashes the full virtual size,
# zeros included, on one thread; it would hide the transfer, so runs are
# without it unless a row says "disk MD5 on". Builds before --disk-md5 had
# it on by default (--no-disk-md5 turned it off).
if "$VHDUP" upload --help 2>&1 | grep -q -- --no-disk-md5; then
  dmd5_on=() dmd5_off=(--no-disk-md5)
else
  dmd5_on=(--disk-md5) dmd5_off=()
fi
if want 1; then
for n in $CONNS; do
  upload 1 sink "ref, disk MD5 off" "$n" 64K "$ref" "$ref_nz" "${dmd5_off[@]}"
done
upload 1 sink "ref, disk MD5 on" 16 64K "$ref" "$ref_nz" "${dmd5_on[@]}"
fi
if want 1 && [ -z "${SKIP_AZURITE:-}" ]; then
  upload 1 azurite "ref, disk MD5 on" 16 64K "$ref" "$ref_nz" "${dmd5_on[@]}"
  for n in $CONNS; do
    upload 1 azurite "ref, disk MD5 off" "$n" 64K "$ref" "$ref_nz" "${dmd5_off[@]}"
  done
fi

# ---------------------------------------------------------------- 2. memory
# Disk MD5 off: with it on, the 1 TiB disk would hash 1 TiB of zeros.
want 2 && for v in 1G 1T; do
  for n in $RSS_CONNS; do
    upload 2 sink-no-md5 "scatter 197 MiB in $v virtual" "$n" 64K "$cache/scatter-$v/disk.vhd" "$scatter_nz" "${dmd5_off[@]}"
  done
done

# ---------------------------------------------------------------- 3. md5
if want 3; then
upload 3 sink-no-md5 "Content-MD5 per request (default), disk MD5 off" 16 64K "$ref" "$ref_nz" "${dmd5_off[@]}"
upload 3 sink-no-md5 "--no-md5" 16 64K "$ref" "$ref_nz" "${dmd5_off[@]}" --no-md5
upload 3 sink-no-md5 "--crc64" 16 64K "$ref" "$ref_nz" "${dmd5_off[@]}" --crc64
upload 3 sink-no-md5 "Content-MD5 + disk MD5" 16 64K "$ref" "$ref_nz" "${dmd5_on[@]}"
upload 3 sink-no-md5 "--no-md5, disk MD5 on" 16 64K "$ref" "$ref_nz" "${dmd5_on[@]}" --no-md5
# Dense data, where every byte is hashed: the MD5 target.
upload 3 sink-no-md5 "dense 1 GiB, Content-MD5" 16 64K "$dense" "$dense_nz" "${dmd5_off[@]}"
upload 3 sink-no-md5 "dense 1 GiB, --no-md5" 16 64K "$dense" "$dense_nz" "${dmd5_off[@]}" --no-md5
fi

# ---------------------------------------------------------------- 4. gap
# The reference disk's data has no zero gaps under 252 KiB (its runs are
# random bytes; its islands are 256 KiB apart), so it only shows the 256K
# step; the gaps disk has 1024 gaps each of 1, 4, 16, 64 and 256 KiB.
# Azurite (one Node.js thread) stands in for a server whose requests cost.
if want 4; then
for g in $GAPS; do
  upload 4 sink "ref" 16 "$g" "$ref" "$ref_nz" "${dmd5_off[@]}"
done
for g in $GAPS; do
  upload 4 sink "gaps" 16 "$g" "$gaps" "$gaps_nz" "${dmd5_off[@]}"
done
fi
if want 4 && [ -z "${SKIP_AZURITE:-}" ]; then
  for g in $AZ_GAPS; do
    upload 4 azurite "ref" 16 "$g" "$ref" "$ref_nz" "${dmd5_off[@]}"
  done
  for g in $AZ_GAPS; do
    upload 4 azurite "gaps" 16 "$g" "$gaps" "$gaps_nz" "${dmd5_off[@]}"
  done
fi

# ---------------------------------------------------------------- curl
# bench/engine.sh's ceiling: CURL_REQUESTS Put Pages of 4 MiB through
# curl --parallel-max 16 to the sink (no MD5), same server as section 3.
if want curl; then
note "curl ceiling: $CURL_REQUESTS x 4 MiB at 16 connections"
size=$((4 * M))
python3 -c 'import sys; n=int(sys.argv[1]); sys.stdout.buffer.write(bytes((i*131+7)&255 for i in range(n)))' \
  "$size" >"$T/piece"
curl -sS -o /dev/null -X PUT -H 'Content-Length: 0' -H 'x-ms-blob-type: PageBlob' \
  -H "x-ms-blob-content-length: $((CURL_REQUESTS * size))" "$NOMD5_URL/bench/curl.vhd?sig=testsig"
: >"$T/curl.cfg"
for ((i = 0; i < CURL_REQUESTS; i++)); do
  off=$((i * size))
  # "next" resets per-URL options, so every group repeats them.
  printf 'next\nurl = "%s/bench/curl.vhd?comp=page&sig=testsig"\nupload-file = "%s"\noutput = "/dev/null"\nheader = "x-ms-range: bytes=%d-%d"\nheader = "x-ms-page-write: update"\nheader = "Expect:"\nsilent\nshow-error\nwrite-out = "%%{http_code}\\n"\n' \
    "$NOMD5_URL" "$T/piece" "$off" $((off + size - 1)) >>"$T/curl.cfg"
done
sed -i '1d' "$T/curl.cfg" # no "next" before the first URL
: >"$T/rows"
for ((r = 0; r < REPS; r++)); do
  /usr/bin/time -f '%e %U %S %M' -o "$T/curl.time" \
    curl -sS --parallel --parallel-immediate --parallel-max 16 -K "$T/curl.cfg" \
    >"$T/codes" 2>"$T/curl.err" || true
  read -r e u s m < <(tail -n 1 "$T/curl.time")
  ok=$(grep -c '^201$' "$T/codes" || true)
  st=ok
  [ "$ok" -eq "$CURL_REQUESTS" ] || st="FAIL($((CURL_REQUESTS - ok))-not-201)"
  echo "$e $(echo "$u + $s" | bc -l) $m $((CURL_REQUESTS * size)) $CURL_REQUESTS 0 $st $((ok * size))" >>"$T/rows"
done
python3 - "$T/rows" "$CURL_REQUESTS" >>"$csv" <<'PY'
import sys
rows = sorted((l.split() for l in open(sys.argv[1]) if l.strip()), key=lambda r: float(r[0]))
walls = [float(r[0]) for r in rows]
e, cpu, rss, sent, req, retr, st, srv = rows[(len(rows) - 1) // 2]
e = float(e)
print(",".join(str(x) for x in ["curl", "sink-no-md5", '"curl --parallel-max 16, %s x 4 MiB"' % sys.argv[2],
      16, "-", '""', len(rows), "%.2f" % e, "%.2f" % min(walls), "%.2f" % max(walls), sent, srv, req, "-",
      "%.1f" % (int(sent) / 1e6 / e), "%.1f" % (int(rss) / 1024), "%.2f" % float(cpu), "", "", st, ""]))
PY
note "$(tail -n 1 "$csv")"
fi

# ---------------------------------------------------------------- report
elapsed=$(($(date +%s) - t_start))
load_after=$(cut -d' ' -f1-3 /proc/loadavg)
python3 - "$csv" >"$out/results.md" <<PY
import csv, sys
rows = list(csv.DictReader(open(sys.argv[1])))
def table(section, cols, title, keep=lambda r: True):
    rs = [r for r in rows if r["section"] == section and keep(r)]
    if not rs:
        return
    print("### " + title)
    print()
    print("| " + " | ".join(h for h, _ in cols) + " |")
    print("|" + "|".join("---" for _ in cols) + "|")
    for r in rs:
        print("| " + " | ".join(f(r) for _, f in cols) + " |")
    print()
c = lambda k: (lambda r: r[k])
wall = lambda r: r["wall_s"] if r["wall_min_s"] == r["wall_max_s"] else "%s (%s–%s)" % (r["wall_s"], r["wall_min_s"], r["wall_max_s"])
mb = lambda r: "%.1f" % (int(r["bytes_sent"]) / 1e6)
srv = lambda r: "" if r["server_bytes"] in ("", "-") else ("=" if r["server_bytes"] == r["bytes_sent"] else "**%s**" % r["server_bytes"])
common = [("wall s", wall), ("MB sent", mb), ("server saw", srv), ("requests", c("requests")),
          ("retries", c("retries")), ("MB/s", c("payload_MBps")), ("RSS MiB", c("peak_rss_MiB")),
          ("CPU s", c("cpu_s")), ("server CPU s", c("server_cpu_s")), ("status", c("status"))]
print("vhdup upload bench: $(date -u '+%Y-%m-%d %H:%M UTC'), $(git -C "$root" rev-parse --short HEAD 2>/dev/null || echo '?')"
      " ($(git -C "$root" status --porcelain -- src include 2>/dev/null | grep -q . && echo 'src has local changes' || echo 'clean src')),"
      " $(nproc) CPUs, load $load_before before / $load_after after, ${elapsed}s; REPS=$REPS (Azurite $AZ_REPS):"
      " median wall (min–max)")
print()
print("Reference disk: $ref_from, 2 GiB dynamic, $ref_nz non-zero bytes (512-byte sectors)."
      " MB = 10^6 bytes; MB/s = bytes sent / wall; 'server saw' = the sink's count of Put Page bytes"
      " ('=' when it matches vhdup's bytes_sent).")
print()
print("Hash rates, one core, 4 MiB buffers: MD5 one message at a time (mbedTLS) $md5_rate MB/s, MD5 as vhdup hashes (${md5x_lanes:-1} messages side by side) ${md5x_rate:-n/a} MB/s, CRC64 (vhdup) $crc_rate MB/s,"
      " MD5 (openssl speed -evp md5) ${ossl_rate:-n/a} MB/s.")
print()
print("Read-back check of one Azurite blob: $verify_result")
print()
table("1", [("target", c("target")), ("run", c("label")), ("conns", c("connections"))] + common
      + [("sent / non-zero", c("sent_ratio"))], "1. Reference disk vs connections (merge gap 64K)")
table("2", [("disk", c("label")), ("conns", c("connections"))] + common, "2. Peak RSS vs virtual size and connections (sink, disk MD5 off, --memory 64M)")
r2 = [float(r["peak_rss_MiB"]) for r in rows if r["section"] == "2"]
if r2:
    print("RSS spread: max/min = %.3f (target <= 1.10); max %.1f MiB (target < 96 MiB = 32 + 64 pool)" % (max(r2) / min(r2), max(r2)))
    print()
table("3", [("checksums", c("label"))] + common, "3. Per-request checksum on/off (sink --sink-no-md5, 16 conns)")
d3 = {r["label"]: r for r in rows if r["section"] == "3" and r["label"].startswith("dense")}
on, off = d3.get("dense 1 GiB, Content-MD5"), d3.get("dense 1 GiB, --no-md5")
if on and off and "$md5_rate" and on["server_cpu_s"]:
    rate, cores = float("$md5_rate"), $(nproc)
    xrate = float("${md5x_rate:-$md5_rate}")  # what vhdup hashes at: ${md5x_lanes:-1} messages side by side
    v_on, v_off = float(on["payload_MBps"]), float(off["payload_MBps"])
    lit = min(v_off, rate * cores)
    hash_s = int(on["bytes_sent"]) / 1e6 / xrate
    rest = float(on["cpu_s"]) - hash_s + float(on["server_cpu_s"])
    left = cores - rest / float(on["wall_s"])
    print("MD5 target, dense 1 GiB at 16 connections: with MD5 %.1f MB/s, without %.1f MB/s; one core hashes %.1f MB/s one message at a time,"
          " %.1f MB/s as vhdup does it (${md5x_lanes:-1} messages side by side)." % (v_on, v_off, rate, xrate))
    print()
    print("- As written: %.0f%% of min(%.1f, %.1f x %d cores = %.1f) (target >= 90%%); of min(%.1f, vhdup's rate x %d = %.1f): %.0f%%."
          % (100 * v_on / lit, v_off, rate, cores, rate * cores, v_off, cores, xrate * cores, 100 * v_on / min(v_off, xrate * cores)))
    print("- What hashing added: %.2f CPU s to vhdup (%s with, %s without); hashing %s MB alone is %.2f s at the measured rate."
          % (float(on["cpu_s"]) - float(off["cpu_s"]), on["cpu_s"], off["cpu_s"], int(on["bytes_sent"]) // 10**6, hash_s))
    print("- The cores the thread pool can use: %d minus what everything else needs while it runs (vhdup's own sending %.2f s"
          " + the sink %s s, over %s s) = %.2f cores; x %.1f MB/s = %.1f MB/s; with MD5 reached %.0f%% of that (target >= 90%%)."
          % (cores, float(on["cpu_s"]) - hash_s, on["server_cpu_s"], on["wall_s"], left, xrate, left * xrate,
             100 * v_on / min(v_off, left * xrate)))
    print()
table("4", [("target", c("target")), ("disk", c("label")), ("merge gap", c("merge_gap"))] + common
      + [("sent / non-zero", c("sent_ratio"))],
      "4. Merge gap (16 conns, disk MD5 off; sink = strict, MD5 checked; gaps = 20 MiB in 4 KiB islands, gaps of 1-256 KiB)")
table("curl", [("run", c("label"))] + common, "Ceiling: plain curl to the same sink (4 MiB bodies, no MD5)")
PY
cat "$out/results.md"
note "results: $out/results.csv, $out/results.md, per-run logs in $out/runs"
