# Shared by the bench scripts (sourced after test/e2e/lib.sh, which gives
# `fail`): the disk cache.

# cached DIR CMD...: runs CMD once to fill the cache folder DIR (marked
# complete only when CMD succeeds, so a half-made disk is never used).
cached() {
  local dir=$1
  shift
  [ -e "$dir/.complete" ] && return 0
  rm -rf "$dir"
  mkdir -p "$dir"
  "$@" >"$dir/make.log" 2>&1 || { cat "$dir/make.log" >&2; fail "could not make $dir"; }
  touch "$dir/.complete"
}

# make_dense DIR MIB: MIB MiB of random bytes as DIR/dense.vhd, a dynamic
# VHD of that size (every 4 MiB request full, nothing to skip).
make_dense() {
  head -c $(($2 * 1024 * 1024)) /dev/urandom >"$1/dense.raw"
  qemu-img convert -f raw -O vpc -o subformat=dynamic,force_size=on "$1/dense.raw" "$1/dense.vhd"
  rm -f "$1/dense.raw"
}

# make_pieces DIR DISK: DISK's contents (qemu-img's reading of it) as DIR/p.0000,
# DIR/p.0001, ... of 4 MiB each: what the plain-curl ceiling uploads, so it
# sends the same bytes as vhdup does, each read from the page cache once.
# The ceiling puts piece i at i * 4 MiB, so the size must be a multiple.
make_pieces() {
  qemu-img convert -O raw "$2" "$1/disk.raw"
  local size
  size=$(stat -c %s "$1/disk.raw")
  [ $((size % (4 * 1024 * 1024))) -eq 0 ] || { echo "$2: $size bytes, not a multiple of 4 MiB" >&2; return 1; }
  split -b 4M -a 4 -d "$1/disk.raw" "$1/p."
  rm -f "$1/disk.raw"
}
