#!/usr/bin/env bash
# A program with a libuv loop of its own embeds vhdup (test/embed/
# embed_upload.c): while one engine uploads two disks into Azurite on that
# loop, the program's echo server answers a client on loopback and its 10 ms
# timer keeps firing on time (worst lateness under LATE_MAX_MS; the figure is
# printed), and the blobs come out identical to the disks (qemu-img's raw
# conversion + a fixed footer, read back with our own signer). Then the same
# program closes the jobs, the engine, the server and the timer in the middle
# of the uploads, from the timer's callback: exit 0 with uv_loop_close() == 0,
# and the interrupted blobs have no footer (they never look complete). Under
# the ASan build, no sanitizer report either.
source "$(dirname "$0")/lib.sh"
source "$(dirname "$0")/lib_azure.sh"
CHECK_FOOTER="$VHDUP_SOURCE_DIR/test/tools/check_footer.py"
EMBED="$VHDUP_TOOLS_DIR/embed_upload"
M=$((1024 * 1024))
LATE_MAX_MS=${LATE_MAX_MS:-300}
[ -x "$EMBED" ] || fail "embed_upload not built at $EMBED"
EMBED=$(vg_wrap "$EMBED")
# Under valgrind everything runs 20-50 times slower: lateness is not measured.
[ -n "${VHDUP_VALGRIND:-}" ] && LATE_MAX_MS=100000
unset AZURE_STORAGE_CONNECTION_STRING AZURE_STORAGE_ACCOUNT AZURE_STORAGE_KEY AZURE_STORAGE_SAS_TOKEN

start_azurite
az_mkcontainer "$AZURITE_URL" vhds

# mkdisk FILE SUBFORMAT SIZE_MIB DATA_MIB SEED: a qemu-img VHD holding
# DATA_MIB MiB of data in 1 MiB pieces, each with its own byte pattern,
# spread over the disk (the last MiB included); and FILE.raw, its raw image.
mkdisk() {
  local file=$1 sub=$2 size=$3 data=$4 seed=$5 cmds=() k off
  qemu-img create -q -f vpc -o "subformat=$sub,force_size=on" "$file" "${size}M"
  for ((k = 0; k < data; k++)); do
    off=$(((k * size / data) * M))
    [ "$k" -eq $((data - 1)) ] && off=$(((size - 1) * M))
    cmds+=(-c "write -P $(((k * 37 + seed) % 255 + 1)) $off 1m")
  done
  qemu-io -f vpc "${cmds[@]}" "$file" >/dev/null
  qemu-img convert -f vpc -O raw "$file" "$file.raw"
}
mkdisk "$T/one.vhd" dynamic 160 80 3
mkdisk "$T/two.vhd" fixed 128 64 101

# sanitizer_clean ERRFILE: no ASan/LSan/UBSan report.
sanitizer_clean() {
  if grep -Eq 'ERROR: (AddressSanitizer|LeakSanitizer)|runtime error:' "$1"; then
    fail "sanitizer report: $(head -40 "$1")"
  fi
}

# check_blob BLOB RAW: the blob is RAW followed by a valid fixed footer.
check_blob() {
  local got="$T/got.blob" size
  size=$(stat -c %s "$2")
  az_get "$AZURITE_URL" "$1" "$got"
  [ "$(stat -c %s "$got")" -eq $((size + 512)) ] ||
    fail "$1: $(stat -c %s "$got") bytes, expected $size + 512"
  cmp -n "$size" "$2" "$got" || fail "$1: differs from the disk"
  python3 "$CHECK_FOOTER" "$got" "$size" || fail "$1: bad footer"
  rm -f "$got"
}

# wait_listening OUT: the port embed_upload's echo server listens on.
wait_listening() {
  local i port
  for ((i = 0; i < 300; i++)); do
    port=$(sed -n 's/^listening 127\.0\.0\.1:\([0-9]*\)$/\1/p' "$1")
    if [ -n "$port" ]; then
      echo "$port"
      return 0
    fi
    sleep 0.05
  done
  fail "embed_upload never said where it listens: $(cat "$1")"
}

# ---------------------------------------------------------------- complete
AZURE_STORAGE_CONNECTION_STRING="$AZURITE_CONN" "$EMBED" --wait-clients 1 \
  "$T/one.vhd" "$AZURITE_URL/vhds/one.vhd" "$T/two.vhd" "$AZURITE_URL/vhds/two.vhd" \
  >"$T/run.out" 2>"$T/run.err" &
pid=$!
_pids+=("$pid")
port=$(wait_listening "$T/run.out")
# A client talks to the echo server while the uploads run: eight messages,
# 40 ms apart, each answered exactly.
python3 - "$port" >"$T/echo.out" 2>&1 <<'PY' || fail "echo client: $(cat "$T/echo.out")"
import socket, sys, time
s = socket.create_connection(("127.0.0.1", int(sys.argv[1])), timeout=10)
for i in range(8):
    msg = ("message %d from the driver\n" % i).encode() * (i + 1)
    s.sendall(msg)
    got = b""
    while len(got) < len(msg):
        chunk = s.recv(65536)
        if not chunk:
            sys.exit("connection closed after %d of %d bytes" % (len(got), len(msg)))
        got += chunk
    if got != msg:
        sys.exit("message %d: echoed %r" % (i, got[:80]))
    time.sleep(0.04)
s.close()
print("echoed 8 messages")
PY
rc=0
wait "$pid" || rc=$?
sanitizer_clean "$T/run.err"
[ "$rc" -eq 0 ] || fail "embed_upload exited $rc: $(cat "$T/run.err") $(tail -5 "$T/run.out")"
grep -q '^disk1: done' "$T/run.out" || fail "disk1 not done: $(cat "$T/run.out")"
grep -q '^disk2: done' "$T/run.out" || fail "disk2 not done: $(cat "$T/run.out")"
grep -q '^progress ' "$T/run.out" || fail "no progress reported: $(cat "$T/run.out")"
grep -q '^closed: 2 jobs, engine yes, loop closed$' "$T/run.out" ||
  fail "not everything closed: $(cat "$T/run.out")"
while_up=$(sed -n 's/^echo: .* \([0-9]*\) while uploading$/\1/p' "$T/run.out")
[ "${while_up:-0}" -gt 0 ] || fail "no echo while the uploads ran: $(cat "$T/run.out")"
late=$(sed -n 's/^timer: worst lateness \([0-9]*\) ms.*/\1/p' "$T/run.out")
[ -n "$late" ] || fail "no timer line: $(cat "$T/run.out")"
grep -E '^(disk[12]: done|timer:|echo:)' "$T/run.out"
[ "$late" -lt "$LATE_MAX_MS" ] || fail "the loop was held: the 10 ms timer fired $late ms late"
pass "two uploads on the application's loop: echo answered while uploading, timer at worst $late ms late"
check_blob vhds/one.vhd "$T/one.vhd.raw"
check_blob vhds/two.vhd "$T/two.vhd.raw"
pass "both blobs are the disks, byte for byte, with a fixed footer"

# ---------------------------------------------------------------- midway
AZURE_STORAGE_CONNECTION_STRING="$AZURITE_CONN" "$EMBED" --close-midway \
  "$T/one.vhd" "$AZURITE_URL/vhds/mid1.vhd" "$T/two.vhd" "$AZURITE_URL/vhds/mid2.vhd" \
  >"$T/mid.out" 2>"$T/mid.err" &
pid=$!
_pids+=("$pid")
rc=0
wait "$pid" || rc=$?
sanitizer_clean "$T/mid.err"
[ "$rc" -eq 0 ] || fail "embed_upload --close-midway exited $rc: $(cat "$T/mid.err") $(cat "$T/mid.out")"
grep -q '^midway: closed while uploading$' "$T/mid.out" || fail "not closed midway: $(cat "$T/mid.out")"
grep -q '^closed: 2 jobs, engine yes, loop closed$' "$T/mid.out" ||
  fail "not everything closed: $(cat "$T/mid.out")"
grep -q '^disk1: VHDUP_ECANCELED' "$T/mid.out" || fail "disk1 not canceled: $(cat "$T/mid.out")"
grep -q '^disk2: VHDUP_ECANCELED' "$T/mid.out" || fail "disk2 not canceled: $(cat "$T/mid.out")"
grep -E '^closing midway' "$T/mid.out"
for b in mid1 mid2; do
  st=$(az_status "$AZURITE_URL" "vhds/$b.vhd")
  if [ "$st" = 200 ]; then
    az_get "$AZURITE_URL" "vhds/$b.vhd" "$T/mid.blob"
    if python3 "$CHECK_FOOTER" "$T/mid.blob" 2>/dev/null; then
      fail "$b: closed midway, yet the blob has its footer"
    fi
    rm -f "$T/mid.blob"
  fi
done
pass "closed midway from the timer's callback: jobs canceled, uv_loop_close() == 0, no footer written"
