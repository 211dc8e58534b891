#!/usr/bin/env bash
# The topic demo (broadcast channels, publish/subscribe; called by scripts/demo.sh):
#  1. a publisher of sensor readings (f64) at 1 kHz for 3 s, with subscribers in C, Python
#     (the Pythonic API and the interop peer) and Rust (the topic_sensor example, sampling the
#     newest reading), each reporting what it received and missed;
#  2. seed 000's temperature example run as written (examples/python/pubsub: only the import
#     line differs): its publisher at 10 Hz, its two subscriber threads.
# Run alone: scripts/demo-topic.sh (it builds what it needs into build/).
set -euo pipefail
cd "$(dirname "$0")/.."
if [ ! -f build/CMakeCache.txt ]; then
  cmake -S . -B build -G Ninja -DCMAKE_BUILD_TYPE=Release -DSHM_CHANNEL_TESTS=OFF -DSHM_CHANNEL_BENCH=OFF >/dev/null
fi
cmake --build build --target shm_channel shm_channel_cli >/dev/null
cc -std=c11 -O2 -Wall -Wextra -Werror -I c/include tests/interop/peers/bcast_peer.c -L build \
  -lshm_channel -Wl,-rpath,"$PWD/build" -o build/bcast-peer-c
if [ ! -x build/demo-venv/bin/python ]; then
  python3 -m venv build/demo-venv
fi
if ! build/demo-venv/bin/python -c "import shm_channel.pubsub, numpy" 2>/dev/null; then
  build/demo-venv/bin/pip install -q ./bindings/python numpy
fi
py=build/demo-venv/bin/python
# Every process uses the library just built (the Python binding loads this file first).
export SHM_CHANNEL_LIBRARY="$PWD/build/libshm_channel.so.1"
name="sensors-$$"
rust=bindings/rust/target/release/examples/topic_sensor
have_rust=0
(cd bindings/rust && cargo build --release --quiet --example topic_sensor) && have_rust=1

echo "== topic $name: readings (f64) at 1 kHz for 3 s; subscribers in C, Python and Rust"
pids=()
build/bcast-peer-c subscribe --name "$name" --type f64 --expect-end EPIPE | sed 's/^/   C subscriber:       /' &
pids+=($!)
$py tests/interop/peers/bcast_peer.py subscribe --name "$name" --type f64 --zero-copy \
  --expect-end EPIPE | sed 's/^/   Python (zero-copy): /' &
pids+=($!)
$py - "$name" <<'PY' &
import sys, shm_channel
with shm_channel.Subscriber(sys.argv[1], float, depth=64, max_payload=4096) as sub:
    n = missed = 0
    for value, m in sub:               # every reading in order, with what was skipped before it
        n, missed = n + 1, missed + m
        if n % 1000 == 0:
            print(f"   Python subscriber:  {n} readings, last {value:.1f}, missed {missed}", flush=True)
    print(f"   Python subscriber:  end of stream after {n} readings, {missed} missed")
PY
pids+=($!)
subs=3
if [ "$have_rust" = 1 ]; then
  # seed 000's way: sample the newest reading 5 times a second, printing the new ones
  "$rust" "$name" --type f64 --latest 5 | sed 's/^/   Rust subscriber:    /' &
  pids+=($!)
  subs=4
else
  echo "   (no Rust subscriber: the topic_sensor example did not build)"
fi
$py tests/interop/peers/bcast_peer.py publish --name "$name" --type f64 --count 3000 \
  --rate 1000 --wait-subs "$subs" | sed 's/^/   Python publisher:   /'
for p in "${pids[@]}"; do wait "$p"; done

echo "== seed 000's temperature example, as written: a publisher at 10 Hz, two subscriber threads"
$py examples/python/pubsub/multi_subscriber.py > >(awk 'NR % 20 == 1') &  # every 20th line
subscriber=$!
$py examples/python/pubsub/temperature_publisher.py | awk 'NR % 20 == 1'  # every 20th line
kill "$subscriber"
wait "$subscriber" 2>/dev/null || true
# The example's subscribers loop forever and were killed, so no one closed the finished topic
# (the last closer removes it): remove it as an operator would (refused if still in use).
if [ -x build/shm_channel ]; then build/shm_channel rm temperature_sensor || true; fi
