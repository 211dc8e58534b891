#!/usr/bin/env bash
# The manylinux wheel works with no C compiler in reach: runs bindings/python/run-tests.sh
# (a fresh virtual environment, ruff, the whole pytest suite against the installed package)
# with SHM_CHANNEL_WHEEL set to the wheel, a PATH without cc/gcc/clang, CC=false, and pip
# allowed binary wheels only. Also checks the wheel's tag and the sdist's contents.
#
#   tests/packaging/test-python.sh PYDISTDIR      (scripts/package-python.sh's output)
set -euo pipefail
repo=$(cd "$(dirname "$0")/../.." && pwd)
dist=$(realpath "$1")
fail() { echo "python: FAILED: $*" >&2; exit 1; }
shopt -s nullglob
wheels=("$dist"/shm_channel-*-py3-none-manylinux_*_x86_64.whl)
sdists=("$dist"/shm_channel-*.tar.gz)
[ ${#wheels[@]} = 1 ] || fail "want one py3-none-manylinux_*_x86_64 wheel in $dist"
[ ${#sdists[@]} = 1 ] || fail "want one sdist in $dist"
wheel=${wheels[0]}

python=$(python3 -c 'import sys; print(sys.executable)')
work=$(mktemp -d "${TMPDIR:-/tmp}/shm-channel-wheel.XXXXXX")
trap 'rm -rf "$work"' EXIT

echo "--- python: the wheel's contents and the sdist's"
unzip -Z1 "$wheel" > "$work/wheel.txt"
grep -qx 'shm_channel/libshm_channel.so.1' "$work/wheel.txt" || fail "no bundled library"
grep -qx 'shm_channel/bin/shm_channel' "$work/wheel.txt" || fail "no bundled CLI (docs/cli.md)"
grep -q 'dist-info/licenses/LICENSE-APACHE$' "$work/wheel.txt" || fail "no license in the wheel"
! grep -q '\.cpython-.*\.so$' "$work/wheel.txt" || fail "a CPython extension in the wheel"
unzip -p "$wheel" '*.dist-info/METADATA' | grep -qx 'License-Expression: MIT OR Apache-2.0' ||
  fail "no License-Expression"
tar -tzf "${sdists[0]}" > "$work/sdist.txt"
for f in vendor/CMakeLists.txt vendor/c/src/channel.c vendor/c/include/shm_channel.h \
         pyproject.toml src/shm_channel/_lib.py LICENSE-MIT; do
  grep -q "^shm_channel-[^/]*/$f\$" "$work/sdist.txt" || fail "sdist without $f"
done
echo "ok: $(basename "$wheel"), $(basename "${sdists[0]}")"

echo "--- python: a PATH with no C compiler"
mkdir -p "$work/bin"
IFS=: read -ra dirs <<< "$PATH"
for d in "${dirs[@]}"; do
  [ -d "$d" ] || continue
  for exe in "$d"/*; do
    name=${exe##*/}
    case "$name" in
      cc|c89|c99|gcc|gcc-*|*-gcc|*-gcc-*|clang|clang-*|*-clang|tcc|c++|g++|g++-*|*-g++*|clang++*) continue ;;
    esac
    [ -x "$exe" ] && [ ! -e "$work/bin/$name" ] && ln -s "$exe" "$work/bin/$name"
  done
done
for c in cc gcc clang; do
  ! PATH=$work/bin command -v "$c" >/dev/null || fail "$c still on PATH"
done
echo "ok: no cc, gcc or clang on PATH; CC=false"

echo "--- python: bindings/python/run-tests.sh against the wheel"
env PATH="$work/bin" CC=false PIP_ONLY_BINARY=:all: PYTHON="$python" SHM_CHANNEL_WHEEL="$wheel" \
  "$repo/bindings/python/run-tests.sh"
