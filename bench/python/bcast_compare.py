#!/usr/bin/env python3
"""Issue 10: shm_channel broadcast channels (kind 2) against ZeroMQ PUB/SUB (pyzmq), from
Python, in the same run, with 1 and 4 subscriber processes.

    python bench/python/bcast_compare.py [--quick] [--reps N] [--json FILE]

The shm_channel side calls the C library through the binding's cffi declarations
(shm_channel._lib: shm_channel_open_broadcast, shm_channel_write, shm_channel_recv), so both
sides pay Python's per-call cost alike. The publisher is this process (pinned to the first
allowed CPU), the subscribers are forked processes (pinned to the second).

Cases, 64-byte messages, each message numbered in its first 8 bytes and checked:
  publish   the publisher publishes N messages as fast as it can; msgs/s of the publisher's
            loop. Neither transport makes the publisher wait: a ZeroMQ PUB drops at its
            high-water mark (set to the shm_channel depth, 1024), silently; a shm_channel
            subscriber that is lapped skips to the oldest message held and is told how many it
            missed. Each subscriber reports how many it received (delivered / published).
  latency   the publisher publishes a CLOCK_MONOTONIC stamp every 200 us; each subscriber
            blocks (zmq recv / shm_channel_recv with the default spin, then the futex) and
            records now - stamp: one-way latency, median and 99th percentile over all
            subscribers. A latest-value reader's latency is the same path.
Each case runs --reps times, interleaved (zmq, shm, zmq, shm, ...); the table gives medians
and the ratio (above 1 = shm_channel better: rates shm/zmq, CPU time and latency zmq/shm) as
the median of per-round ratios. The publish case also gives the publisher process's CPU time
per message (zmq's includes its I/O thread, which does the sending) and shm_channel's wake
system calls per message.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import os
import statistics
import struct
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]
sys.path.insert(0, str(REPO / "bindings" / "python" / "src"))

import zmq  # noqa: E402

from shm_channel._lib import ffi, lib  # noqa: E402

SIZE = 64
DEPTH = 1024
PUBLISHER, SUBSCRIBER, CREATE = 4, 5, 1
EPIPE, EAGAIN = 32, 11


def cpus() -> list[int]:
    c = sorted(os.sched_getaffinity(0))
    return c if len(c) >= 2 else c * 2


def pin(cpu: int) -> None:
    os.sched_setaffinity(0, {cpu})


def check(rc: int, what: str) -> None:
    if rc != 0:
        raise OSError(-rc, f"{what}: {ffi.string(lib.shm_channel_strerror(rc)).decode()}")


# ---- subscribers (child processes) --------------------------------------------------------


def zmq_sub(addr: str, mode: str, ready, out) -> None:
    pin(cpus()[1])
    ctx = zmq.Context()
    s = ctx.socket(zmq.SUB)
    s.setsockopt(zmq.RCVHWM, DEPTH)
    s.setsockopt(zmq.SUBSCRIBE, b"")
    s.connect(addr)
    got, lat, last = 0, [], 0
    while True:  # the publisher sends hellos (seq 0) until every subscriber has one
        m = s.recv()
        if struct.unpack_from("<q", m)[0] == 0:
            break
    ready.put(1)
    while True:
        m = s.recv()
        seq, t = struct.unpack_from("<qQ", m)
        if seq == -1:
            break
        if seq == 0:
            continue
        if seq <= last:
            raise SystemExit(f"zmq: message {seq} after {last}")
        last = seq
        got += 1
        if mode == "latency":
            lat.append(time.monotonic_ns() - t)
    out.put((got, lat))
    s.close(0)
    ctx.term()


def shm_sub(name: bytes, mode: str, ready, out) -> None:
    pin(cpus()[1])
    pp = ffi.new("shm_channel_t **")
    check(lib.shm_channel_open_broadcast(pp, name, SUBSCRIBER, 0, ffi.NULL, 0), "subscribe")
    ch = pp[0]
    buf = ffi.new("char[]", SIZE)
    ln = ffi.new("uint64_t *")
    missed = ffi.new("uint64_t *")
    ready.put(1)
    got, lat, last, lost = 0, [], 0, 0
    while True:
        rc = lib.shm_channel_recv(ch, buf, SIZE, ln, missed, -1)
        if rc == -EPIPE:
            break
        check(rc, "recv")
        seq, t = struct.unpack_from("<qQ", ffi.buffer(buf, 16))
        lost += missed[0]
        if seq != last + 1 + missed[0]:
            raise SystemExit(f"shm_channel: message {seq} after {last} (+{missed[0]} missed)")
        last = seq
        got += 1
        if mode == "latency":
            lat.append(time.monotonic_ns() - t)
    lib.shm_channel_close(ch)
    out.put((got, lat))


# ---- publishers (this process) -------------------------------------------------------------


def run_zmq(n_subs: int, count: int, mode: str, period_ns: int) -> dict:
    addr = f"ipc:///tmp/bcastcmp-{os.getpid()}-{time.monotonic_ns()}"
    ctx = zmq.Context()
    p = ctx.socket(zmq.PUB)
    p.setsockopt(zmq.SNDHWM, DEPTH)
    p.bind(addr)
    ready, out = mp.Queue(), mp.Queue()
    procs = [mp.Process(target=zmq_sub, args=(addr, mode, ready, out)) for _ in range(n_subs)]
    for pr in procs:
        pr.start()
    hello = struct.pack("<qQ", 0, 0).ljust(SIZE, b"\0")
    joined = 0
    while joined < n_subs:  # the slow-joiner problem: say hello until all have heard it
        p.send(hello)
        time.sleep(0.001)
        while not ready.empty():
            ready.get()
            joined += 1
    msg = bytearray(SIZE)
    c0 = time.process_time_ns()
    t0 = time.perf_counter_ns()
    for i in range(1, count + 1):
        struct.pack_into("<qQ", msg, 0, i, time.monotonic_ns())
        p.send(msg)
        if period_ns:
            end = time.monotonic_ns() + period_ns
            while time.monotonic_ns() < end:
                pass
    t1 = time.perf_counter_ns()
    c1 = time.process_time_ns()
    res = []
    end_msg = struct.pack("<qQ", -1, 0).ljust(SIZE, b"\0")
    while len(res) < n_subs:  # the end marker may be dropped too: repeat it
        p.send(end_msg)
        time.sleep(0.002)
        while not out.empty():
            res.append(out.get())
    for pr in procs:
        pr.join()
    p.close(0)
    ctx.term()
    return summarize(count, t1 - t0, res, c1 - c0, None)


def run_shm(n_subs: int, count: int, mode: str, period_ns: int) -> dict:
    name = f"bcastcmp-{os.getpid()}-{time.monotonic_ns()}".encode()
    cfg = ffi.new("shm_channel_broadcast_config_t *")
    cfg.max_payload = SIZE
    cfg.depth = DEPTH
    cfg.max_subscribers = 8
    pp = ffi.new("shm_channel_t **")
    check(lib.shm_channel_open_broadcast(pp, name, PUBLISHER, CREATE, cfg, 0o600), "publish")
    ch = pp[0]
    ready, out = mp.Queue(), mp.Queue()
    procs = [mp.Process(target=shm_sub, args=(name, mode, ready, out)) for _ in range(n_subs)]
    for pr in procs:
        pr.start()
    for _ in range(n_subs):
        ready.get()
    msg = ffi.new("char[]", SIZE)
    mv = ffi.buffer(msg)
    c0 = time.process_time_ns()
    t0 = time.perf_counter_ns()
    for i in range(1, count + 1):
        struct.pack_into("<qQ", mv, 0, i, time.monotonic_ns())
        rc = lib.shm_channel_write(ch, msg, SIZE, 0)
        if rc:
            check(rc, "write")
        if period_ns:
            end = time.monotonic_ns() + period_ns
            while time.monotonic_ns() < end:
                pass
    t1 = time.perf_counter_ns()
    c1 = time.process_time_ns()
    st = ffi.new("shm_channel_stat_t *")
    check(lib.shm_channel_stat(ch, st), "stat")
    lib.shm_channel_close(ch)  # end-of-stream
    res = [out.get() for _ in range(n_subs)]
    for pr in procs:
        pr.join()
    return summarize(count, t1 - t0, res, c1 - c0, st.producer_wakes)


def summarize(count: int, ns: int, res: list, cpu_ns: int, wakes) -> dict:
    lat = sorted(x for _, l in res for x in l)
    return {
        "rate": count / (ns / 1e9),
        "cpu_ns_per_msg": cpu_ns / count,  # the publisher process's CPU time (all threads)
        "wakes_per_msg": None if wakes is None else wakes / count,
        "delivered": [g / count for g, _ in res],
        "lat_med_us": lat[len(lat) // 2] / 1e3 if lat else None,
        "lat_p99_us": lat[int(len(lat) * 0.99)] / 1e3 if lat else None,
    }


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--reps", type=int, default=0)
    ap.add_argument("--json")
    a = ap.parse_args()
    reps = a.reps or (3 if a.quick else 5)
    n_pub = 50_000 if a.quick else 200_000
    n_lat = 1000 if a.quick else 5000
    mp.set_start_method("fork")
    pin(cpus()[0])
    rows, raw = [], {}
    for mode, count, period in (("publish", n_pub, 0), ("latency", n_lat, 200_000)):
        for subs in (1, 4):
            z, s = [], []
            for _ in range(reps):
                z.append(run_zmq(subs, count, mode, period))
                s.append(run_shm(subs, count, mode, period))
            raw[f"{mode}_{subs}"] = {"zmq": z, "shm_channel": s}
            if mode == "publish":
                ratio = statistics.median(b["rate"] / c["rate"] for b, c in zip(s, z))
                rows.append((f"publish 64 B, {subs} sub", "msgs/s",
                             statistics.median(c["rate"] for c in z),
                             statistics.median(b["rate"] for b in s), ratio,
                             min(min(c["delivered"]) for c in z),
                             min(min(b["delivered"]) for b in s)))
                ratio = statistics.median(c["cpu_ns_per_msg"] / b["cpu_ns_per_msg"]
                                          for b, c in zip(s, z))
                rows.append((f"publish 64 B, {subs} sub", "CPU ns/msg",
                             statistics.median(c["cpu_ns_per_msg"] for c in z),
                             statistics.median(b["cpu_ns_per_msg"] for b in s), ratio,
                             None, statistics.median(b["wakes_per_msg"] for b in s)))
            else:
                ratio = statistics.median(c["lat_med_us"] / b["lat_med_us"] for b, c in zip(s, z))
                rows.append((f"one-way latency, {subs} sub", "us median",
                             statistics.median(c["lat_med_us"] for c in z),
                             statistics.median(b["lat_med_us"] for b in s), ratio,
                             statistics.median(c["lat_p99_us"] for c in z),
                             statistics.median(b["lat_p99_us"] for b in s)))
    print(f"Python: shm_channel broadcast vs ZeroMQ PUB/SUB (pyzmq {zmq.__version__}, "
          f"libzmq {zmq.zmq_version()}), {reps} rounds, load {os.getloadavg()[0]:.2f}")
    print(f"{'case':30s} {'unit':10s} {'zmq':>10s} {'shm_channel':>12s} {'ratio':>7s}   extra")
    for name, unit, zv, sv, r, ze, se in rows:
        if unit == "CPU ns/msg":
            extra = f"publisher process CPU (zmq: with its I/O thread); shm wake calls/msg {se:.3f}"
        elif unit == "msgs/s":
            extra = f"min delivered: zmq {ze:.3f}, shm {se:.3f} (shm reports the rest as missed)"
        else:
            extra = f"p99: zmq {ze:.1f} us, shm {se:.1f} us"
        print(f"{name:30s} {unit:10s} {zv:10.4g} {sv:12.4g} {r:6.2f}x   {extra}")
    if a.json:
        Path(a.json).write_text(json.dumps({"rows": rows, "raw": raw}, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
