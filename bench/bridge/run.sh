#!/usr/bin/env bash
# Bridged stream throughput over loopback, against Zenoh alone and a ZeroMQ PUSH/PULL pair,
# same run, same message size; and the round trip of a bridged service call against a Zenoh
# query alone and the same service on one machine. Needs tests/bridge/run.sh to have built the
# binaries (or run it first). Prints one line per transport and the ratios.
#   bench/bridge/run.sh [COUNT] [SIZE] [CALLS]   default 200000 messages of 64 bytes, 5000 calls
set -euo pipefail
cd "$(dirname "$0")/../.."
root=$PWD
n=${1:-200000}; size=${2:-64}; calls=${3:-5000}
bin=${SHM_BRIDGE_TARGET:-$HOME/.cache/shm_channel/bridge-target}/release/shm-channel-bridge
peer=$root/build-bridge/peer-c
svc=$root/build-bridge/svc-peer-c
[ -x "$bin" ] && [ -x "$peer" ] && [ -x "$svc" ] || { echo "build first: tests/bridge/run.sh"; exit 2; }
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

# 4. round trip: a C client (B) -> import bridge -> Zenoh query -> export bridge -> C server (A),
#    one request at a time (svc_peer: requests and answers of 20..64 bytes, checked), against
#    a Zenoh query alone (64 bytes each way) and the same client on A's machine (no bridge).
a2=/dev/shm/shm-bbench-$$-A2; b2=/dev/shm/shm-bbench-$$-B2; mkdir -p "$a2" "$b2"
trap 'cleanup; rm -rf "$a2" "$b2"' EXIT
sv=(--max-size 64 --deadline 300)
SHM_CHANNEL_DIR=$a2 "$svc" serve --name rt --expect 2 "${sv[@]}" >/dev/null & srv=$!
while [ ! -e "$a2/rt" ]; do sleep 0.05; done
p=$(port)
SHM_CHANNEL_DIR=$b2 "$bin" --listen "tcp/127.0.0.1:$p" --import-service rt 2>"$tmp/b2.log" & pids+=($!)
SHM_CHANNEL_DIR=$a2 "$bin" --connect "tcp/127.0.0.1:$p" --export-service rt 2>"$tmp/a2.log" & pids+=($!)
while [ ! -e "$b2/rt" ]; do sleep 0.05; done
SHM_CHANNEL_DIR=$b2 "$svc" request --name rt --id 1 --count "$calls" "${sv[@]}" >"$tmp/rt-bridged.json"
SHM_CHANNEL_DIR=$a2 "$svc" request --name rt --id 2 --count "$calls" "${sv[@]}" >"$tmp/rt-local.json"
wait $srv
p=$(port)
"$bin" zbench qserve --listen "tcp/127.0.0.1:$p" --count "$((calls + 1))" --size 64 >/dev/null & zq=$!
"$bin" zbench query --connect "tcp/127.0.0.1:$p" --count "$((calls + 1))" --size 64 >"$tmp/rt-zenoh.json"
wait $zq
python3 - "$tmp" "$calls" <<'PY'
import json, sys
t, n = sys.argv[1], int(sys.argv[2])
last = lambda f: json.loads(open("%s/%s" % (t, f)).read().splitlines()[-1])
b, l, z = last("rt-bridged.json"), last("rt-local.json"), last("rt-zenoh.json")
assert b["ok"] and l["ok"], (b, l)
rb, rl, rz = 1e6 / b["rps"], 1e6 / l["rps"], z["rtt_us"]
print("service round trip, %d calls one at a time, 20..64 B each way" % n)
print("  shm_channel service bridged (client B -> bridges -> server A): %8.1f us" % rb)
print("  Zenoh query alone (get -> queryable -> reply, 64 B):          %8.1f us" % rz)
print("  shm_channel service on one machine (no bridge):               %8.1f us" % rl)
print("  ratio bridged/zenoh = %.2f, bridged/local = %.0f" % (rb / rz, rb / rl))
PY
