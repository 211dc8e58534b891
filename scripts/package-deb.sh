#!/usr/bin/env bash
# Build the Debian packages of the C library with CPack:
#   libshm-channel1     the shared library, soname libshm_channel.so.1
#   libshm-channel-dev  header, libshm_channel.so link, static library, pkg-config, CMake package
#   shm-channel-tools   the shm_channel CLI and its man page
#
#   scripts/package-deb.sh [OUTDIR]     (default: build-packages/deb)
#
# Builds RelWithDebInfo (-O2 -g) in build-pkg/, installed under /usr; CPack strips the binaries
# it packs, and the unstripped build-pkg/libshm_channel.so.1 is what scripts/abi-check.sh reads.
set -euo pipefail
cd "$(dirname "$0")/.."
out=$(realpath -m "${1:-build-packages/deb}")
build=${SHM_CHANNEL_PKG_BUILD:-build-pkg}
cmake -S . -B "$build" -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo -DCMAKE_INSTALL_PREFIX=/usr \
  -DSHM_CHANNEL_TESTS=OFF -DSHM_CHANNEL_BENCH=OFF -DSHM_CHANNEL_EXAMPLES=OFF >/dev/null
cmake --build "$build" -- -j2 >/dev/null
rm -rf "$out" && mkdir -p "$out"
(cd "$build" && cpack -G DEB -B "$out" >/dev/null)
rm -rf "$out/_CPack_Packages"
ls -l "$out"/*.deb
