#!/usr/bin/env bash
# Bridge suite: two "machines" on one host (two bridge processes, two SHM_CHANNEL_DIR folders,
# Zenoh over 127.0.0.1), a C producer on one side and a Python consumer on the other.
# Builds the library (CMake), the C interop peer and the bridge (cargo, release, target dir
# outside the clone: zenoh is built once and cached there; see below), then runs test_bridge.py.
#
#   tests/bridge/run.sh                    default run (bounded: 10^6 stream messages, 4000 topic)
#   SHM_BRIDGE_SOAK=1 tests/bridge/run.sh  10^7 messages per stream, 10^5 per topic
#   SHM_BRIDGE_NETNS=1 tests/bridge/run.sh also the service test with the two bridges in two
#                                          network namespaces joined by a veth pair (root)
#   tests/bridge/run.sh test_topics ...    only the tests named
#
# Tests: test_stream_and_frames (streams, kills), test_topics, test_services, test_reconnect
# (stat/top counters), test_netns_services.
#
# Environment: SHM_BRIDGE_TARGET (cargo build dir; default $HOME/.cache/shm_channel/bridge-target),
# SHM_BRIDGE_VENV (venv with the Python binding; default build-interop/venv if present).
set -euo pipefail
cd "$(dirname "$0")/../.."
root=$PWD
build=$root/build-bridge
mkdir -p "$build"
if [ -x "$HOME/.cargo/bin/cargo" ] && ! command -v cargo >/dev/null 2>&1; then
  export PATH="$HOME/.cargo/bin:$PATH"
fi
gen=(); command -v ninja >/dev/null && gen=(-G Ninja)
if [ ! -f "$build/lib/CMakeCache.txt" ]; then
  cmake -S "$root" -B "$build/lib" "${gen[@]}" -DCMAKE_BUILD_TYPE=Release -DSHM_CHANNEL_TESTS=OFF \
    -DSHM_CHANNEL_BENCH=OFF -DSHM_CHANNEL_EXAMPLES=OFF >/dev/null
fi
cmake --build "$build/lib" --target shm_channel shm_channel_cli -- -j2 >/dev/null
"${CC:-cc}" -std=c11 -O2 -Wall -Wextra -Werror -I c/include tests/interop/peers/peer.c \
  -L "$build/lib" -lshm_channel -Wl,-rpath,"$build/lib" -o "$build/peer-c"
for p in bcast_peer svc_peer; do
  "${CC:-cc}" -std=c11 -O2 -Wall -Wextra -Werror -I c/include tests/interop/peers/$p.c \
    -L "$build/lib" -lshm_channel -Wl,-rpath,"$build/lib" -o "$build/${p/_/-}-c"
done
# Cargo's intermediate build (zenoh: built once) goes to a folder outside the clone, shared by
# every clone (build.build-dir, cargo >= 1.91: there each clone's own crates are kept apart by
# their path, and rebuilt when their sources are newer); the binary this run executes goes to
# the clone's own build-bridge/cargo, so that two clones never run each other's bridge. An
# older cargo ignores the build dir and builds everything in build-bridge/cargo.
export CARGO_BUILD_BUILD_DIR=${SHM_BRIDGE_TARGET:-$HOME/.cache/shm_channel/bridge-target}
export CARGO_TARGET_DIR=$build/cargo
t=$SECONDS
CARGO_BUILD_JOBS=${CARGO_BUILD_JOBS:-2} cargo build --release --quiet \
  --manifest-path bindings/rust/shm-channel-bridge/Cargo.toml
echo "bridge: cargo build $((SECONDS - t)) s (build dir $CARGO_BUILD_BUILD_DIR)"
venv=${SHM_BRIDGE_VENV:-}
if [ -z "$venv" ]; then
  if [ -x build-interop/venv/bin/python ]; then venv=build-interop/venv; else venv=$build/venv; fi
fi
if [ ! -x "$venv/bin/python" ]; then
  "${PYTHON:-python3}" -m venv "$venv"
fi
"$venv/bin/python" -m pip install --quiet --disable-pip-version-check ./bindings/python
export SHM_BRIDGE_BIN=$CARGO_TARGET_DIR/release/shm-channel-bridge
export SHM_BRIDGE_PEER_C=$build/peer-c SHM_BRIDGE_BCAST_C=$build/bcast-peer-c SHM_BRIDGE_SVC_C=$build/svc-peer-c
export SHM_BRIDGE_CLI=$build/lib/shm_channel
export SHM_CHANNEL_LIBRARY=$build/lib/libshm_channel.so.1
exec timeout -k 10 "${SHM_BRIDGE_TIMEOUT:-600}" "$venv/bin/python" tests/bridge/test_bridge.py "$@"
