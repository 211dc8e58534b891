#!/usr/bin/env bash
# Installs the three Debian packages (scripts/package-deb.sh) with dpkg into a scratch root,
# then builds and runs downstream programs against what the packages installed: with
# pkg-config, with CMake's find_package, and statically; and runs the packaged CLI.
#
#   tests/packaging/test-deb.sh DEBDIR
set -euo pipefail
repo=$(cd "$(dirname "$0")/../.." && pwd)
debs=$(realpath "$1")
work=$(mktemp -d "${TMPDIR:-/tmp}/shm-channel-deb.XXXXXX")
trap 'rm -rf "$work"' EXIT
root=$work/root
fail() { echo "deb: FAILED: $*" >&2; exit 1; }

echo "--- deb: dpkg -i into the scratch root $root"
mkdir -p "$root/var/lib/dpkg/info" "$root/var/lib/dpkg/updates"
touch "$root/var/lib/dpkg/status"
# --force-depends: libc6 is on the machine, not in the scratch root's database.
# --force-script-chrootless: the scratch root has no shell; the scripts honour DPKG_ROOT.
dpkg --root="$root" --force-not-root --force-depends --force-script-chrootless \
  -i "$debs"/libshm-channel1_*.deb "$debs"/libshm-channel-dev_*.deb "$debs"/shm-channel-tools_*.deb \
  >"$work/dpkg.log" 2>&1 || { cat "$work/dpkg.log"; fail "dpkg -i"; }
for p in libshm-channel1 libshm-channel-dev shm-channel-tools; do
  dpkg-query --admindir="$root/var/lib/dpkg" -W -f='${Status}\n' "$p" | grep -q "install ok installed" ||
    fail "$p not installed"
done
usr=$root/usr
for f in lib/libshm_channel.so.1 lib/libshm_channel.so lib/libshm_channel.a include/shm_channel.h \
         lib/pkgconfig/shm_channel.pc lib/cmake/shm_channel/shm_channelConfig.cmake bin/shm_channel \
         share/man/man1/shm_channel.1 share/doc/libshm-channel1/LICENSE-MIT \
         share/doc/libshm-channel1/LICENSE-APACHE; do
  [ -e "$usr/$f" ] || fail "not installed: /usr/$f"
done
soname=$(readelf -d "$usr/lib/libshm_channel.so.1" | sed -n 's/.*Library soname: \[\(.*\)\]/\1/p')
[ "$soname" = libshm_channel.so.1 ] || fail "soname is '$soname'"
dpkg-deb -f "$debs"/libshm-channel1_*.deb Depends | grep -q 'libc6 (>=' || fail "runtime: no libc6 dependency"
dpkg-deb -e "$debs"/libshm-channel1_*.deb "$work/ctl"
grep -q '^libshm_channel 1 libshm-channel1 ' "$work/ctl/shlibs" || fail "runtime: no shlibs entry"
ldconfig -p -C "$root/etc/ld.so.cache" | grep -q 'libshm_channel.so.1 ' || fail "postinst: no ldconfig"
echo "files, soname, dependencies, shlibs and ld.so cache: ok"

export LD_LIBRARY_PATH=$usr/lib
main=$repo/c/install_test/main.c
echo "--- deb: downstream program with pkg-config"
flags=$(PKG_CONFIG_PATH=$usr/lib/pkgconfig pkg-config --cflags --libs shm_channel)
# shellcheck disable=SC2086  # word splitting of the flags is intended
cc -std=c11 -Wall -Werror "$main" $flags -o "$work/pc_main"
readelf -d "$work/pc_main" | grep -q 'NEEDED.*\[libshm_channel.so.1\]' || fail "pc_main: no NEEDED soname"
"$work/pc_main"

echo "--- deb: downstream program with CMake find_package(shm_channel)"
cmake -S "$repo/c/install_test" -B "$work/cmake" -G Ninja -DCMAKE_PREFIX_PATH="$usr" >/dev/null
cmake --build "$work/cmake" >/dev/null
"$work/cmake/uses_package"

echo "--- deb: downstream program linked statically (libshm_channel.a)"
cc -std=c11 -Wall -Werror -I"$usr/include" "$main" "$usr/lib/libshm_channel.a" -o "$work/static_main"
! readelf -d "$work/static_main" | grep -q 'libshm_channel' || fail "static_main needs the .so"
"$work/static_main"

echo "--- deb: the packaged CLI and its man page"
"$usr/bin/shm_channel" version
mkdir -p "$work/chans"
SHM_CHANNEL_DIR=$work/chans "$usr/bin/shm_channel" ls | grep -q '^NAME' || fail "shm_channel ls"
grep -q '^\.TH SHM_CHANNEL 1' "$usr/share/man/man1/shm_channel.1" || fail "man page"
if command -v man >/dev/null; then
  man -l "$usr/share/man/man1/shm_channel.1" 2>/dev/null | grep -q 'shm_channel ls' || fail "man -l"
fi
echo "deb: ok"
