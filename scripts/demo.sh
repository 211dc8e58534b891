#!/usr/bin/env bash
# The demo: a C producer streams 1080p RGB frames (6,220,800 B) through shared memory to
# consumers in separate processes, each checking order and printing throughput.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/deps.sh all
cmake -S . -B build -G Ninja -DCMAKE_BUILD_TYPE=Release -DSHM_CHANNEL_TESTS=OFF -DSHM_CHANNEL_BENCH=OFF >/dev/null
cmake --build build --target demo_producer demo_consumer shm_channel_cli >/dev/null
name="demo-$$"
cap=$((16 << 20))   # the recommended ring for 1080p frames: the smallest whose largest message holds one (README, Performance)

echo "== C producer -> C consumer: 600 frames of 1920x1080x3 bytes"
build/demo_consumer "$name" "$cap" &   # the consumer starts first: either side may
consumer=$!
build/demo_producer "$name" 600 6220800 "$cap"
wait "$consumer"

echo "== C producer -> Python consumer: 600 frames as numpy arrays (views of the ring, no copy)"
if [ ! -x build/demo-venv/bin/python ]; then
  python3 -m venv build/demo-venv
fi
build/demo-venv/bin/pip install -q ./bindings/python numpy
build/demo-venv/bin/python examples/python/frame_consumer.py "$name-py" --capacity "$cap" &
consumer=$!
build/demo_producer "$name-py" 600 6220800 "$cap"
wait "$consumer"

echo "== C producer -> Rust consumer: 600 frames of 1920x1080x3 bytes"
(cd bindings/rust && cargo build --release --quiet --example consumer)
bindings/rust/target/release/examples/consumer "$name-rs" "$cap" &
consumer=$!
build/demo_producer "$name-rs" 600 6220800 "$cap"
wait "$consumer"

echo "== C producer -> C consumer: 5,000,000 messages of 64 bytes"
build/demo_consumer "$name-small" "$cap" &
consumer=$!
build/demo_producer "$name-small" 5000000 64 "$cap"
wait "$consumer"

# Topics (publish/subscribe): a 1 kHz sensor topic across languages, seed 000's example.
scripts/demo-topic.sh

# Services: seed 004's ping-pong in Python (request/response).
scripts/demo-service.sh

echo "== done; finished channels remove their segments:"
build/shm_channel ls
