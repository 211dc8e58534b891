#!/usr/bin/env bash
# Seed 004's ping-pong (examples/python/ping_pong_service.py) on the service kind: a Python
# client sends "ping" 100 times, then "end"; a Python server, in another process, answers.
# The client starts first and waits for the server. Uses the venv scripts/demo.sh made
# (build/demo-venv, with ./bindings/python installed), or makes one.
set -euo pipefail
cd "$(dirname "$0")/.."
py=build/demo-venv/bin/python
if [ ! -x "$py" ]; then
  python3 -m venv build/demo-venv
  build/demo-venv/bin/pip install -q ./bindings/python
fi
name="demo-pingpong-$$"
echo "== Python ping-pong on a service (seed 004): 100 rounds, then \"end\""
"$py" examples/python/ping_pong_service.py client "$name" > build/demo-pingpong-client.txt &
client=$!
"$py" examples/python/ping_pong_service.py server "$name" > build/demo-pingpong-server.txt
wait "$client"
head -4 build/demo-pingpong-client.txt; echo "..."; tail -2 build/demo-pingpong-client.txt
head -2 build/demo-pingpong-server.txt; echo "..."; tail -1 build/demo-pingpong-server.txt
