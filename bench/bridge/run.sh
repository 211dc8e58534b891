#!/usr/bin/env bash
# Bridged stream throughput over loopback, against Zenoh alone and a ZeroMQ PUSH/PULL pair,
# same run, same message size. Needs tests/bridge/run.sh to have built the binaries (or run it
# first). Prints one line per transport and the ratios.
#   bench/bridge/run.sh [COUNT] [SIZE]      default 200000 messages of 64 bytes
set -euo pipefail
cd "$(dirname "$0")/../.."
root=$PWD
n=${1:-200000}; size=${2:-64}
bin=${SHM_BRIDGE_TARGET:-$HOME/.cache/shm_channel/bridge-target}/release/shm-channel-bridge
peer=$root/build-bridge/peer-c
[ -x "$bin" ] && [ -x "$peer" ] || { echo "build first: tests/bridge/run.sh"; exit 2; }
tmp=$(mktemp -d); a=/dev/shm/shm-bbench-$$-A; b=/dev/shm/shm-bbench-$$-B; mkdir -p "$a" "$b"
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; rm -rf "$tmp" "$a" "$b"; }
trap cleanup EXIT
port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
gen=(--capacity 1048576 --fixed-size "$size" --count "$n" --deadline 300)

# 1. bridged: C producer (A) -> export bridge -> Zenoh -> import bridge -> C consumer (B)
p=$(port)
SHM_CHANNEL_DIR=$b "$peer" consume --name s "${gen[@]}" >"$tmp/cons.json" & cons=$!
SHM_CHANNEL_DIR=$a "$peer" produce --name s "${gen[@]}" >/dev/null & prod=$!
while [ ! -e "$a/s" ] || [ ! -e "$b/s" ]; do sleep 0.05; done
SHM_CHANNEL_DIR=$b "$bin" --listen "tcp/127.0.0.1:$p" --import s --state-dir "$tmp" 2>"$tmp/b.log" & pids+=($!)
SHM_CHANNEL_DIR=$a "$bin" --connect "tcp/127.0.0.1:$p" --export s --state-dir "$tmp" 2>"$tmp/a.log" & pids+=($!)
wait $cons $prod
bridged=$(python3 -c 'import json,sys; print(round(json.loads(open(sys.argv[1]).read().splitlines()[-1])["msgs_per_s"]))' "$tmp/cons.json")

# 2. Zenoh alone: a plain publisher and subscriber (same zenoh build, same config)
p=$(port)
"$bin" zbench sub --listen "tcp/127.0.0.1:$p" --count "$n" --size "$size" >"$tmp/z.json" & zs=$!
"$bin" zbench pub --connect "tcp/127.0.0.1:$p" --count "$n" --size "$size" & zp=$!
wait $zs $zp
zenoh=$(python3 -c 'import json,sys; print(round(json.load(open(sys.argv[1]))["msgs_per_s"]))' "$tmp/z.json")

# 3. ZeroMQ PUSH/PULL over tcp loopback (pyzmq), if some python here has it
zmq=skipped
for py in ${SHM_BRIDGE_ZMQ_PY:-} build-bench-all/venv/bin/python /work/main/build-bench-all/venv/bin/python python3; do
  if [ -x "$(command -v "$py" 2>/dev/null || echo "$py")" ] && "$py" -c 'import zmq' 2>/dev/null; then
    zmq=$("$py" bench/bridge/zmq_pair.py "$n" "$size"); break
  fi
done
echo "stream throughput, $n messages of $size B over 127.0.0.1 ($(lscpu | sed -n 's/^Model name: *//p'))"
echo "  shm_channel bridged (C -> shm -> bridge -> Zenoh -> bridge -> shm -> C): $bridged msg/s"
echo "  Zenoh alone (pub -> sub, same process count as one hop):              $zenoh msg/s"
echo "  ZeroMQ PUSH/PULL (pyzmq):                                               $zmq msg/s"
python3 -c "
b,z,q=$bridged,$zenoh,'$zmq'
print('  ratio bridged/zenoh = %.2f' % (b/z))
if q!='skipped': print('  ratio bridged/zmq = %.2f' % (b/float(q)))"
