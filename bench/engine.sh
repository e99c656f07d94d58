#!/usr/bin/env bash
# The HTTP engine alone against vhdup-testserver --sink, and plain curl
# uploading the same bytes in parallel as the ceiling, at several connection
# counts, in the same run against the same server.
#
# usage: bench/engine.sh [BUILD_DIR]   (default: $VHDUP_BUILD_DIR or build)
# env:   CONNS="1 4 16 64 256"  SIZE=4194304  MIN_REQUESTS=256
# Needs the targets bench_engine and vhdup-testserver built in BUILD_DIR.
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
build=${1:-${VHDUP_BUILD_DIR:-$root/build}}
engine=$build/test/bench_engine
server=$build/test/vhdup-testserver
conns=${CONNS:-1 4 16 64 256}
size=${SIZE:-4194304}
min_requests=${MIN_REQUESTS:-256}
[ -x "$engine" ] || { echo "no $engine (build target bench_engine)" >&2; exit 1; }
[ -x "$server" ] || { echo "no $server (build target vhdup-testserver)" >&2; exit 1; }

T=$(mktemp -d "${TMPDIR:-/tmp}/vhdup-bench.XXXXXX")
server_pid=
cleanup() {
  if [ -n "$server_pid" ]; then
    kill "$server_pid" 2>/dev/null || true
    wait "$server_pid" 2>/dev/null || true
  fi
  [ -n "${KEEP:-}" ] || rm -rf "$T"
}
trap cleanup EXIT

"$server" --port 0 --port-file "$T/port" --sink --sas-sig testsig 2>"$T/server.log" &
server_pid=$!
for _ in $(seq 100); do [ -s "$T/port" ] && break; sleep 0.05; done
[ -s "$T/port" ] || { echo "server did not start: $(cat "$T/server.log")" >&2; exit 1; }
base=http://127.0.0.1:$(cat "$T/port")/devstoreaccount1

# The same bytes the engine sends: a 4 MiB non-zero piece, from a file for curl.
python3 -c 'import sys; n=int(sys.argv[1]); sys.stdout.buffer.write(bytes((i*131+7)&255 for i in range(n)))' \
  "$size" >"$T/piece"

curl -sS -o /dev/null -X PUT -H 'Content-Length: 0' "$base/bench?restype=container&sig=testsig"

# run_curl N R: R uploads through curl --parallel --parallel-max N; prints
# elapsed seconds, CPU seconds, peak RSS (KiB) and how many got 201.
run_curl() {
  local n=$1 r=$2 i blob=curl$1.vhd slots=256
  curl -sS -o /dev/null -X PUT -H 'Content-Length: 0' -H 'x-ms-blob-type: PageBlob' \
    -H "x-ms-blob-content-length: $((slots * size))" "$base/bench/$blob?sig=testsig"
  : >"$T/curl.cfg"
  for ((i = 0; i < r; i++)); do
    local off=$(((i % slots) * size))
    # "next" resets per-URL options, so every group repeats them.
    printf 'next\nurl = "%s/bench/%s?comp=page&sig=testsig"\nupload-file = "%s"\noutput = "/dev/null"\nheader = "x-ms-range: bytes=%d-%d"\nheader = "x-ms-page-write: update"\nheader = "Expect:"\nsilent\nshow-error\nwrite-out = "%%{http_code}\\n"\n' \
      "$base" "$blob" "$T/piece" "$off" $((off + size - 1)) >>"$T/curl.cfg"
  done
  sed -i '1d' "$T/curl.cfg" # no "next" before the first URL
  /usr/bin/time -f '%e %U %S %M' -o "$T/time" \
    curl -sS --parallel --parallel-immediate --parallel-max "$n" -K "$T/curl.cfg" \
    >"$T/codes" 2>"$T/curl.err" || true
  read -r e u s m < <(tail -n 1 "$T/time") # "Command exited with ..." may come first
  echo "$e $(echo "$u + $s" | bc -l) $m $(grep -c '^201$' "$T/codes" || true)"
}

printf '%-6s %-7s %-9s %9s %8s %9s %8s %6s %7s\n' conns tool requests MiB/s req/s cpu_s/GiB rss_MiB conns retried
for n in $conns; do
  r=$((4 * n > min_requests ? 4 * n : min_requests))
  line=$("$engine" --url "$base" --conns "$n" --requests "$r" --size "$size" 2>"$T/engine.err")
  get() { sed -n "s|.* $1=\([^ ]*\).*|\1|p" <<<"$line"; }
  printf '%-6s %-7s %-9s %9s %8s %9s %8s %6s %7s\n' "$n" engine "$r" "$(get MiB/s)" "$(get req/s)" \
    "$(get cpu_s/GiB)" "$(get peak_rss_MiB)" "$(get connections_opened)" "$(get retried)"
  read -r e cpu m ok < <(run_curl "$n" "$r")
  gib=$(echo "$r * $size / 1073741824" | bc -l)
  printf '%-6s %-7s %-9s %9.1f %8.1f %9.3f %8.1f %6s %7s\n' "$n" curl "$r" \
    "$(echo "$r * $size / 1048576 / $e" | bc -l)" "$(echo "$r / $e" | bc -l)" \
    "$(echo "$cpu / $gib" | bc -l)" "$(echo "$m / 1024" | bc -l)" - "$((r - ok))fail"
done
