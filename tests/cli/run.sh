#!/usr/bin/env bash
# The CLI tests: the shm_channel program driven as real processes (pytest, tests/cli/).
# Builds the program in build-ctest (scripts/test-c.sh's plain build, reused when present)
# or build-cli-tests, then runs pytest with SHM_CHANNEL_CLI pointing at it.
#   tests/cli/run.sh [pytest args...]
set -euo pipefail
cd "$(dirname "$0")/../.."
build=build-ctest
if [ ! -f "$build/build.ninja" ]; then
  build=build-cli-tests
  [ -f "$build/build.ninja" ] ||
    cmake -S . -B "$build" -G Ninja -DSHM_CHANNEL_TESTS=OFF -DSHM_CHANNEL_BENCH=OFF \
      -DSHM_CHANNEL_EXAMPLES=OFF >/dev/null
fi
ninja -C "$build" shm_channel shm_channel_cli >/dev/null
# A service server for the service tests, when the header has the service calls (issue 12).
svc_echo=
if grep -q SHM_CHANNEL_SERVICE_MAX_CLIENTS c/include/shm_channel.h; then
  svc_echo=$PWD/$build/cli_svc_echo
  cc -std=c11 -Wall -Wextra -Werror -Ic/include tests/cli/svc_echo.c -L"$build" -lshm_channel \
    -Wl,-rpath,"$PWD/$build" -o "$svc_echo"
fi
python=${PYTHON:-python3}
if ! "$python" -c "import pytest" 2>/dev/null; then
  venv=build-cli-tests/venv
  [ -x "$venv/bin/python" ] || "$python" -m venv "$venv"
  "$venv/bin/python" -m pip install --quiet --disable-pip-version-check pytest
  python=$venv/bin/python
fi
cd tests/cli
SHM_CHANNEL_CLI_SVC_ECHO=$svc_echo SHM_CHANNEL_CLI="$OLDPWD/$build/shm_channel" exec "$python" -m pytest -p no:cacheprovider -q \
  -rfE "$@" .
