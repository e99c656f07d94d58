#!/usr/bin/env bash
# A user uploads their disks to a storage account (a real Azurite here) with
# `vhdup upload`, each with a different way of giving the credential, and
# gets page blobs that are exactly their disks as fixed VHDs: a qemu-img
# dynamic disk with scattered data (islands of one sector, data in the very
# last sector), a qemu-img fixed disk, a raw .img, a differencing chain from
# our generator, a disk whose size is not a whole MiB (rounded up by default,
# with a notice; exact with --no-resize). Every blob is downloaded with an
# independent signer and compared byte for byte with qemu-img's raw
# conversion (or the generator's raw), followed by a valid fixed footer. The
# whole-disk MD5 (--disk-md5) in the summary / JSON is the md5sum of the blob and is the
# blob's Content-MD5 property; what was sent is about the disk's non-zero
# data, not its size.
source "$(dirname "$0")/lib.sh"
source "$(dirname "$0")/lib_azure.sh"
MKVHD="$VHDUP_SOURCE_DIR/test/tools/mkvhd.py"
CHECK_FOOTER="$VHDUP_SOURCE_DIR/test/tools/check_footer.py"
M=$((1024 * 1024))

start_azurite
az_mkcontainer "$AZURITE_URL" vhds

# nonzero_bytes FILE [LIMIT]: bytes in the non-zero 512-byte sectors of FILE
# (its first LIMIT bytes), reading only its data extents.
nonzero_bytes() {
  python3 - "$1" "${2:-}" <<'PY'
import os, sys
path, limit = sys.argv[1], sys.argv[2]
size = os.path.getsize(path)
if limit:
    size = min(size, int(limit))
n = 0
zero = bytes(512)
with open(path, 'rb') as f:
    fd = f.fileno()
    pos = 0
    while pos < size:
        try:
            pos = os.lseek(fd, pos, os.SEEK_DATA)
        except OSError:
            break
        if pos >= size:
            break
        end = min(os.lseek(fd, pos, os.SEEK_HOLE), size)
        pos -= pos % 512
        f.seek(pos)
        while pos < end:
            chunk = f.read(min(1 << 20, end - pos + 511 - (end - pos + 511) % 512))
            if not chunk:
                break
            for i in range(0, len(chunk), 512):
                if chunk[i:i + 512].rstrip(b'\0'):
                    n += 512
            pos += len(chunk)
print(n)
PY
}

# done_field JSONFILE NAME: a field of the last ("done") JSON line.
done_field() {
  tail -n 1 "$1" | python3 -c 'import json,sys; print(json.load(sys.stdin)[sys.argv[1]])' "$2"
}

# check_blob NAME BLOB RAW VSIZE: downloads BLOB and checks that it is VSIZE
# bytes holding RAW (zero-padded up to VSIZE) followed by a valid fixed
# footer for VSIZE; leaves the download in $T/NAME.blob.
check_blob() {
  local name=$1 blob=$2 raw=$3 vsize=$4 got="$T/$1.blob" rawsize
  az_get "$AZURITE_URL" "$blob" "$got"
  [ "$(stat -c %s "$got")" -eq $((vsize + 512)) ] ||
    fail "$name: blob is $(stat -c %s "$got") bytes, expected $vsize + 512"
  rawsize=$(stat -c %s "$raw")
  [ "$rawsize" -le "$vsize" ] || fail "$name: raw $rawsize larger than the virtual size $vsize"
  cmp -n "$rawsize" "$raw" "$got" || fail "$name: blob differs from the expected raw"
  if [ "$rawsize" -lt "$vsize" ]; then
    cmp -n $((vsize - rawsize)) -i "0:$rawsize" /dev/zero "$got" ||
      fail "$name: the rounded-up tail is not zeros"
  fi
  python3 "$CHECK_FOOTER" "$got" "$vsize" || fail "$name: bad footer"
}

# check_md5 NAME BLOB MD5HEX: the blob's MD5 is MD5HEX, and its Content-MD5
# property (base64) says the same.
check_md5() {
  local name=$1 blob=$2 want=$3 got prop
  got=$(md5sum "$T/$name.blob" | cut -d' ' -f1)
  [ "$got" = "$want" ] || fail "$name: vhdup's disk MD5 $want, md5sum of the blob $got"
  local st
  st=$(az_status "$AZURITE_URL" "$blob")
  [ "$st" = 200 ] || fail "$name: HEAD $blob: HTTP $st"
  prop=$(az_header Content-MD5)
  [ -n "$prop" ] || fail "$name: the blob has no Content-MD5 property"
  [ "$(printf '%s' "$prop" | base64 -d | od -An -tx1 -v | tr -d ' \n')" = "$want" ] ||
    fail "$name: the blob's Content-MD5 $prop is not $want"
}

# check_sent NAME SENT RAW: bytes sent <= 1.005 x non-zero bytes + 512.
# Uploads checked this way use --merge-gap 0: by design zero gaps up to 64 KiB
# between data are sent inside one write (default --merge-gap 64K), which on
# these scattered test disks is 1-3% of the data, over the 0.5% bound.
check_sent() {
  local name=$1 sent=$2 nz
  nz=$(nonzero_bytes "$3")
  python3 -c 'import sys; s,n=int(sys.argv[1]),int(sys.argv[2]); sys.exit(0 if s <= n*1.005+512 else 1)' "$sent" "$nz" ||
    fail "$name: sent $sent bytes for $nz non-zero bytes (+512 footer)"
  echo "$name: sent $sent bytes for $nz non-zero bytes"
}

# ---------------------------------------------------------------- 1. dynamic
# A qemu-img dynamic disk (exact size), scattered data written with qemu-io:
# single-sector islands, runs across block boundaries, explicit zeros in an
# allocated block, the very last sector. Credential: the environment's
# connection string. Progress as JSON.
qemu-img create -q -f vpc -o subformat=dynamic,force_size=on "$T/dyn.vhd" 96M
qemu-io -f vpc \
  -c 'write -P 0xab 0 4k' \
  -c 'write -P 0x01 1m 512' \
  -c "write -P 0x02 $((2 * M + 512 * 7)) 512" \
  -c "write -P 0xcd $((3 * M + 512)) $((5 * M))" \
  -c "write -P 0x11 $((20 * M)) $((2 * M))" \
  -c "write -z $((20 * M + 4096)) 64k" \
  -c "write -P 0x33 $((47 * M - 1024)) 1536" \
  -c "write -P 0x44 $((90 * M + 4608)) 512" \
  -c "write -P 0xef $((96 * M - 512)) 512" "$T/dyn.vhd" >/dev/null
qemu-img convert -f vpc -O raw "$T/dyn.vhd" "$T/dyn.raw"
AZURE_STORAGE_CONNECTION_STRING="$AZURITE_CONN" \
  "$VHDUP" upload --disk-md5 --progress=json --merge-gap 0 "$T/dyn.vhd" "$AZURITE_URL/vhds/dyn.vhd" >"$T/dyn.json" 2>"$T/dyn.err" ||
  fail "dynamic: upload exited $?: $(cat "$T/dyn.err")"
[ "$(done_field "$T/dyn.json" status)" = ok ] || fail "dynamic: $(tail -n 1 "$T/dyn.json")"
check_blob dyn vhds/dyn.vhd "$T/dyn.raw" $((96 * M))
check_md5 dyn vhds/dyn.vhd "$(done_field "$T/dyn.json" disk_md5)"
check_sent dyn "$(done_field "$T/dyn.json" bytes_sent)" "$T/dyn.raw"
pass "qemu-img dynamic disk with scattered data: identical, MD5 property, only data sent"

# ---------------------------------------------------------------- 2. fixed
# A qemu-img fixed disk; --connection-string with CONTAINER/BLOB as DEST;
# the human summary's "disk MD5".
qemu-img create -q -f vpc -o subformat=fixed,force_size=on "$T/fixed.vhd" 20M
qemu-io -f vpc -c 'write -P 0x77 4k 8k' -c "write -P 0x78 $((20 * M - 4096)) 4k" \
  -c "write -P 0x79 $((9 * M)) 1m" "$T/fixed.vhd" >/dev/null
qemu-img convert -f vpc -O raw "$T/fixed.vhd" "$T/fixed.raw"
env -u AZURE_STORAGE_CONNECTION_STRING "$VHDUP" upload --disk-md5 --connection-string "$AZURITE_CONN" \
  "$T/fixed.vhd" vhds/fixed.vhd >"$T/fixed.out" 2>"$T/fixed.err" ||
  fail "fixed: upload exited $?: $(cat "$T/fixed.err")"
md5=$(sed -n 's/^ *disk MD5 *\([0-9a-f]\{32\}\)$/\1/p' "$T/fixed.out")
[ -n "$md5" ] || fail "fixed: no disk MD5 in the summary: $(cat "$T/fixed.out")"
check_blob fixed vhds/fixed.vhd "$T/fixed.raw" $((20 * M))
check_md5 fixed vhds/fixed.vhd "$md5"
pass "qemu-img fixed disk via --connection-string and CONTAINER/BLOB"

# ---------------------------------------------------------------- 3. raw
# A raw .img (sparse, islands of data) with --account-key-file.
python3 - "$T/disk.img" <<'PY'
import sys, random
r = random.Random(7)
size = 40 * 2**20
with open(sys.argv[1], 'wb') as f:
    f.truncate(size)
    for i in range(40):
        n = r.choice([512, 1024, 4096, 65536, 300 * 1024])
        off = r.randrange(0, size - n) // 512 * 512
        f.seek(off)
        f.write(r.randbytes(n).replace(b'\0', b'\1'))
    f.seek(size - 512)
    f.write(b'\x5a' * 512)
PY
printf '%s\n' "$AZURITE_KEY" >"$T/key"
env -u AZURE_STORAGE_CONNECTION_STRING "$VHDUP" upload --disk-md5 --progress=json --merge-gap 0 --account-key-file "$T/key" \
  "$T/disk.img" "$AZURITE_URL/vhds/raw.vhd" >"$T/raw.json" 2>"$T/raw.err" ||
  fail "raw: upload exited $?: $(cat "$T/raw.err")"
check_blob raw vhds/raw.vhd "$T/disk.img" $((40 * M))
check_md5 raw vhds/raw.vhd "$(done_field "$T/raw.json" disk_md5)"
check_sent raw "$(done_field "$T/raw.json" bytes_sent)" "$T/disk.img"
pass "raw .img via --account-key-file"

# ---------------------------------------------------------------- 4. chain
# The generator's three-layer differencing chain (parents found through the
# locators), and a chain of 4 KiB blocks under 2 MiB blocks from a spec.
python3 "$MKVHD" cases "$T/cases" >/dev/null
AZURE_STORAGE_CONNECTION_STRING="$AZURITE_CONN" \
  "$VHDUP" upload --disk-md5 --progress=json "$T/cases/chain_top.vhd" "$AZURITE_URL/vhds/chain.vhd" \
  >"$T/chain.json" 2>"$T/chain.err" || fail "chain: upload exited $?: $(cat "$T/chain.err")"
vs=$(stat -c %s "$T/cases/chain_top.vhd.raw")
check_blob chain vhds/chain.vhd "$T/cases/chain_top.vhd.raw" $(((vs + M - 1) / M * M))
check_md5 chain vhds/chain.vhd "$(done_field "$T/chain.json" disk_md5)"
# (No bytes-sent bound here: its sector-interleaved bitmaps make 512-byte
# gaps that are sent merged by design; with --merge-gap 0 it is 3600 writes,
# 17 s on Azurite. The mixed-block-size chain below is checked instead.)
mkdir "$T/spec"
cat >"$T/spec/s.json" <<JSON
{"path": "$T/spec/top.vhd", "kind": "differencing", "size": 6291456,
 "blocks": [{"index": 2, "bitmap": [[0, 3], [4000, 96]]}, {"index": 0, "bitmap": "odd", "zero_every": 4}],
 "parent": {"path": "$T/spec/base.vhd", "kind": "dynamic", "size": 6291456, "block_size": 4096,
            "blocks": [{"index": 1535, "bitmap": "full"}, {"index": 5}, {"index": 1030, "bitmap": "last"},
                       {"index": 1}]}}
JSON
python3 "$MKVHD" spec "$T/spec/s.json"
AZURE_STORAGE_CONNECTION_STRING="$AZURITE_CONN" \
  "$VHDUP" upload --disk-md5 --progress=json --merge-gap 0 "$T/spec/top.vhd" "$AZURITE_URL/vhds/spec.vhd" \
  >"$T/spec.json" 2>"$T/spec.err" || fail "spec chain: upload exited $?: $(cat "$T/spec.err")"
check_blob spec vhds/spec.vhd "$T/spec/top.vhd.raw" 6291456
check_md5 spec vhds/spec.vhd "$(done_field "$T/spec.json" disk_md5)"
check_sent spec "$(done_field "$T/spec.json" bytes_sent)" "$T/spec/top.vhd.raw"
pass "differencing chains (locators; mixed block sizes)"

# ---------------------------------------------------------------- 5. size
# 5 MiB + 1536 bytes: rounded up to 6 MiB by default, with a notice; kept
# exact with --no-resize.
tail_raw="$T/cases/tail.vhd.raw"
[ "$(stat -c %s "$tail_raw")" -eq $((5 * M + 1536)) ] || fail "generator's tail case changed size"
AZURE_STORAGE_CONNECTION_STRING="$AZURITE_CONN" \
  "$VHDUP" upload --disk-md5 "$T/cases/tail.vhd" "$AZURITE_URL/vhds/tail.vhd" >"$T/tail.out" 2>"$T/tail.err" ||
  fail "tail: upload exited $?: $(cat "$T/tail.err")"
grep -q "not a whole number of MiB; rounding up to $((6 * M))" "$T/tail.err" ||
  fail "tail: no rounding notice on stderr: $(cat "$T/tail.err")"
check_blob tail vhds/tail.vhd "$tail_raw" $((6 * M))
md5=$(sed -n 's/^ *disk MD5 *\([0-9a-f]\{32\}\)$/\1/p' "$T/tail.out")
check_md5 tail vhds/tail.vhd "$md5"
AZURE_STORAGE_CONNECTION_STRING="$AZURITE_CONN" \
  "$VHDUP" upload --disk-md5 --no-resize --progress=json "$T/cases/tail.vhd" "$AZURITE_URL/vhds/tail-exact.vhd" \
  >"$T/tailx.json" 2>"$T/tailx.err" || fail "tail --no-resize: upload exited $?: $(cat "$T/tailx.err")"
check_blob tailx vhds/tail-exact.vhd "$tail_raw" $((5 * M + 1536))
check_md5 tailx vhds/tail-exact.vhd "$(done_field "$T/tailx.json" disk_md5)"
[ "$(done_field "$T/tailx.json" blob_size)" -eq $((5 * M + 2048)) ] || fail "tail --no-resize: blob_size"
pass "size not a whole MiB: rounded up with a notice; --no-resize exact"
