#!/usr/bin/env bash
# Cross-language interop suite: C, Python and Rust processes over one libshm_channel.so.
# Makes or reuses a virtual environment, installs ./bindings/python, pytest and numpy into it,
# and runs pytest on tests/interop (whose session fixture builds the library, the C peer and
# the Rust peer once). Prints the result matrix at the end; exits non-zero on any failure.
#
#   tests/interop/run.sh                      default suite (a few minutes on 2 cores)
#   SHM_INTEROP_SOAK=1 tests/interop/run.sh   soak: >= 100 M messages per pair, past 2^32 bytes
#   tests/interop/run.sh -k "matrix and block" -x    extra arguments go to pytest
#
# Environment: SHM_INTEROP_VENV (venv to use; default build-interop/venv), SHM_INTEROP_COUNT
# (messages per pair in the 3x3 blocking matrix), PYTHON (interpreter that makes the venv).
set -euo pipefail
cd "$(dirname "$0")/../.."
root=$PWD
build=$root/build-interop
venv=${SHM_INTEROP_VENV:-$build/venv}
mkdir -p "$build"

if [ ! -x "$venv/bin/python" ]; then
  echo "interop: creating $venv"
  "${PYTHON:-python3}" -m venv "$venv"
fi
py=$venv/bin/python
echo "interop: installing ./bindings/python, pytest, numpy into $venv"
# A local directory is always rebuilt and reinstalled, so the venv has the current binding.
"$py" -m pip install --quiet --disable-pip-version-check pytest numpy ./bindings/python

if [ -x "$HOME/.cargo/bin/cargo" ] && ! command -v cargo >/dev/null 2>&1; then
  export PATH="$HOME/.cargo/bin:$PATH"
fi

args=(-p no:cacheprovider -q -rfE)
[ -n "${SHM_INTEROP_SOAK:-}" ] && [ "${SHM_INTEROP_SOAK}" != 0 ] && args+=(--soak)
cd "$root/tests/interop"
exec "$py" -m pytest "${args[@]}" "$@" .
