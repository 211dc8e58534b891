#!/usr/bin/env bash
# Build and install the Python package into a fresh virtual environment, then run ruff and
# the pytest suite against that installed copy (never the source tree), with the library
# bundled in the wheel (no $SHM_CHANNEL_LIBRARY, no LD_LIBRARY_PATH).
#
#   bindings/python/run-tests.sh [pytest args...]
#
# Environment: PYTHON (default python3), SHM_CHANNEL_VENV (default: a new temporary
# directory, removed afterwards). Needs a C compiler, CMake >= 3.16 and PyPI access
# (scikit-build-core, cffi, pytest, numpy, ruff). Exits non-zero on any failure.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
repo="$(cd "$here/../.." && pwd)"
python="${PYTHON:-python3}"
if [[ -n "${SHM_CHANNEL_VENV:-}" ]]; then
    venv="$SHM_CHANNEL_VENV"
    rm -rf "$venv"
else
    venv="$(mktemp -d "${TMPDIR:-/tmp}/shm-channel-venv.XXXXXX")"
    trap 'rm -rf "$venv"' EXIT
fi

echo "== fresh virtual environment in $venv"
"$python" -m venv "$venv"
"$venv/bin/python" -m pip install --quiet --upgrade pip
echo "== pip install bindings/python (builds libshm_channel with scikit-build-core)"
"$venv/bin/python" -m pip install --quiet "$here"
"$venv/bin/python" -m pip install --quiet pytest numpy ruff

echo "== ruff (the package and its tests; examples/python and bench/python/bench.py)"
(cd "$here" && "$venv/bin/ruff" check . && "$venv/bin/ruff" format --check .)
(cd "$repo" && "$venv/bin/ruff" check --config "$here/pyproject.toml" examples/python bench/python/bench.py bench/python/latency.py &&
    "$venv/bin/ruff" format --config "$here/pyproject.toml" --check examples/python bench/python/bench.py bench/python/latency.py)

echo "== pytest against the installed package"
cd "$here"
env -u SHM_CHANNEL_LIBRARY -u LD_LIBRARY_PATH SHM_CHANNEL_TEST_INSTALLED=1 \
    "$venv/bin/pytest" -p no:cacheprovider -q "$@" tests
