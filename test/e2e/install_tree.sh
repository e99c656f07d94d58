#!/usr/bin/env bash
# Someone embeds vhdup in their own program: they install it
# (`cmake --install BUILD --prefix PREFIX`) and build a small program outside
# the vhdup tree against the installed files alone, once with pkg-config
# (shared, and static with Libs.private) and once with find_package(vhdup)
# (vhdup::vhdup and vhdup::vhdup_static). Each program makes an engine on its
# own loop, prints the version and an error message, closes the engine and
# checks uv_loop_close() == 0. The shared library exports the public API only.
source "$(dirname "$0")/lib.sh"
SRC="$VHDUP_SOURCE_DIR/test/install"
CACHE="$VHDUP_BUILD_DIR/CMakeCache.txt"
[ -f "$CACHE" ] || fail "no CMakeCache.txt in $VHDUP_BUILD_DIR"

# The build's compiler, and its sanitizers: an instrumented libvhdup needs an
# instrumented program (the ASan runtime must come first).
CC=$(sed -n 's/^CMAKE_C_COMPILER:[A-Z]*=//p' "$CACHE")
[ -n "$CC" ] || CC=cc
SAN=()
if grep -q '^VHDUP_SANITIZE:BOOL=ON' "$CACHE"; then
  SAN=(-fsanitize=address,undefined)
fi

P="$T/prefix"
cmake --install "$VHDUP_BUILD_DIR" --prefix "$P" >"$T/install.log" 2>&1 ||
  fail "cmake --install: $(cat "$T/install.log")"
pc=$(find "$P" -name vhdup.pc -path '*/pkgconfig/*')
[ -n "$pc" ] || fail "no vhdup.pc installed: $(cat "$T/install.log")"
PCDIR=$(dirname "$pc")
LIBDIR=$(dirname "$PCDIR")
for f in "$P/bin/vhdup" "$P/include/vhdup.h" "$P/include/vhdup_errno.h" "$LIBDIR/libvhdup.a" \
  "$LIBDIR/libvhdup.so" "$LIBDIR/cmake/vhdup/vhdupConfig.cmake" \
  "$LIBDIR/cmake/vhdup/vhdupConfigVersion.cmake" "$LIBDIR/cmake/vhdup/vhdupTargets.cmake"; do
  [ -e "$f" ] || fail "not installed: ${f#"$P/"}"
done
"$P/bin/vhdup" --version >/dev/null 2>&1 || "$P/bin/vhdup" --help >/dev/null ||
  fail "the installed CLI does not run"
pass "installed: CLI, headers, libvhdup.a, libvhdup.so, vhdup.pc, CMake package"

# Only the public API leaves the shared library (-fvisibility=hidden).
nm -D --defined-only "$LIBDIR/libvhdup.so" | awk 'NF == 3 { print $3 }' >"$T/exports"
grep -q '^vhdup_engine_new$' "$T/exports" || fail "libvhdup.so does not export vhdup_engine_new"
if grep -v -e '^vhdup_[a-z]' -e '^_' "$T/exports" >"$T/stray" || grep -q '^vhdup__' "$T/exports"; then
  fail "libvhdup.so exports internal symbols: $(grep -v '^vhdup_[a-z]' "$T/exports" | head)"
fi
pass "libvhdup.so exports $(wc -l <"$T/exports") symbols, all public"

# check_output NAME OUT: what the program printed.
check_output() {
  grep -qx "vhdup $VHDUP_VERSION" "$2" || fail "$1: no version line: $(cat "$2")"
  grep -qx 'VHDUP_EFORMAT: not a valid disk image' "$2" || fail "$1: no error line: $(cat "$2")"
}
# uses_installed_so NAME PROGRAM: PROGRAM loads libvhdup.so from the prefix.
uses_installed_so() {
  LD_LIBRARY_PATH=$LIBDIR ldd "$2" >"$T/ldd"
  grep -q "libvhdup\.so.* => $LIBDIR/" "$T/ldd" ||
    fail "$1: not linked with the installed libvhdup.so: $(grep vhdup "$T/ldd")"
}
VHDUP_VERSION=$(PKG_CONFIG_PATH=$PCDIR pkg-config --modversion vhdup)

# ------------------------------------------------------------- pkg-config
mkdir "$T/pc"
cp "$SRC/main.c" "$T/pc/"
read -ra cflags <<<"$(PKG_CONFIG_PATH=$PCDIR pkg-config --cflags vhdup)"
read -ra libs <<<"$(PKG_CONFIG_PATH=$PCDIR pkg-config --libs vhdup)"
"$CC" -Wall -Wextra -Werror "${SAN[@]}" "${cflags[@]}" -o "$T/pc/check" "$T/pc/main.c" \
  "${libs[@]}" 2>"$T/pc/err" || fail "pkg-config shared build: $(cat "$T/pc/err")"
uses_installed_so "pkg-config shared" "$T/pc/check"
LD_LIBRARY_PATH=$LIBDIR "$T/pc/check" >"$T/pc/out" 2>&1 || fail "pkg-config shared: $(cat "$T/pc/out")"
check_output "pkg-config shared" "$T/pc/out"
pass "pkg-config --cflags --libs vhdup: builds against the shared library and runs"

# Static: libvhdup.a named explicitly (-lvhdup would take the .so), then what
# vhdup.pc's Requires.private and Libs.private say it needs. (Not
# `pkg-config --static`: that wants libcurl's own static dependencies, whose
# -dev packages Debian does not pull in; libcurl itself stays shared here.)
read -ra privreq <<<"$(PKG_CONFIG_PATH=$PCDIR pkg-config --print-requires-private vhdup | tr '\n' ' ')"
read -ra privlibs <<<"$(sed -n 's/^Libs\.private: *//p' "$pc")"
read -ra slibs <<<"$(PKG_CONFIG_PATH=$PCDIR pkg-config --libs vhdup "${privreq[@]}")"
"$CC" -Wall -Wextra -Werror "${SAN[@]}" "${cflags[@]}" -o "$T/pc/check_static" "$T/pc/main.c" \
  "${slibs[@]/#-lvhdup/-l:libvhdup.a}" "${privlibs[@]}" 2>"$T/pc/err" ||
  fail "pkg-config static build: $(cat "$T/pc/err")"
ldd "$T/pc/check_static" >"$T/ldd"
if grep -q libvhdup "$T/ldd"; then fail "static build still needs libvhdup.so"; fi
"$T/pc/check_static" >"$T/pc/out_static" 2>&1 || fail "pkg-config static: $(cat "$T/pc/out_static")"
check_output "pkg-config static" "$T/pc/out_static"
pass "pkg-config, static: libvhdup.a with Requires.private and Libs.private builds and runs"

# ------------------------------------------------------------- find_package
cmake -S "$SRC" -B "$T/cm" -DCMAKE_PREFIX_PATH="$P" -DCMAKE_C_COMPILER="$CC" \
  -DCMAKE_C_FLAGS="-Wall -Wextra -Werror ${SAN[*]}" >"$T/cm.log" 2>&1 ||
  fail "find_package(vhdup): configure failed: $(cat "$T/cm.log")"
cmake --build "$T/cm" >>"$T/cm.log" 2>&1 || fail "find_package(vhdup): build failed: $(cat "$T/cm.log")"
uses_installed_so "vhdup::vhdup" "$T/cm/install_check"
LD_LIBRARY_PATH=$LIBDIR "$T/cm/install_check" >"$T/cm/out" 2>&1 || fail "vhdup::vhdup: $(cat "$T/cm/out")"
check_output "vhdup::vhdup" "$T/cm/out"
"$T/cm/install_check_static" >"$T/cm/out_static" 2>&1 ||
  fail "vhdup::vhdup_static: $(cat "$T/cm/out_static")"
check_output "vhdup::vhdup_static" "$T/cm/out_static"
pass "find_package(vhdup): vhdup::vhdup and vhdup::vhdup_static build and run"
