#!/usr/bin/env python3
"""Python publish/subscribe (broadcast channels) against seed 000's published figures and
pyzmq PUB/SUB, measured in the same run.

    python bench/python/pubsub_bench.py [--quick] [--repeat N] [--json FILE]

Seed 000 (shm_pub_sub) states "hundreds of thousands of messages per second" and "several
microseconds" of latency for its Python API, without a method. Here, with 8-byte float
values between two processes (the subscriber is this process, the publisher a child):

- publish: ``pub.publish(x)`` calls per second (seed 000's API, shm_channel.pubsub), one
  subscriber attached;
- subscribe: ``sub.subscribe()`` calls per second (newest value and is_new);
- stream: a child publishes as fast as it can into a topic of depth 1024, this process reads
  in order with ``Subscriber.recv``: messages delivered per second, and how many the faster
  publisher lapped (missed; the publisher never waits, unlike ZeroMQ with no high-water mark,
  which queues everything);
- latency: ping-pong over two topics with blocking ``recv`` (spin then futex), one way = half
  the round trip, median and 99th percentile;
- pyzmq PUB/SUB over ipc://, the same stream and ping-pong, in the same run.

The machine may be shared: each figure is the best of --repeat rounds, and ratios compare
runs of the same round.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import os
import statistics
import sys
import tempfile
import time

SEED_THROUGHPUT = 100_000  # "hundreds of thousands of messages/second": at least this
SEED_LATENCY_US = 10.0  # "several microseconds": at most this


def _topic(tag: str) -> str:
    return f"bench-pubsub-{os.getpid()}-{tag}"


# ---- shm_channel -------------------------------------------------------------------------


def shm_publish_rate(n: int) -> float:
    import shm_channel.pubsub as shm_pub_sub

    name = _topic("pub")
    pub = shm_pub_sub.Publisher(name, 0.0, 8)
    sub = shm_pub_sub.Subscriber(name, 0.0)
    publish = pub.publish
    t = time.perf_counter()
    for i in range(n):
        publish(i * 0.5)
    rate = n / (time.perf_counter() - t)
    assert sub.subscribe() == ((n - 1) * 0.5, True)
    sub.close()
    pub.close()
    return rate


def shm_subscribe_rate(n: int) -> float:
    import shm_channel.pubsub as shm_pub_sub

    name = _topic("sub")
    pub = shm_pub_sub.Publisher(name, 0.0, 8)
    sub = shm_pub_sub.Subscriber(name, 0.0)
    pub.publish(1.0)
    subscribe = sub.subscribe
    t = time.perf_counter()
    for _ in range(n):
        subscribe()
    rate = n / (time.perf_counter() - t)
    sub.close()
    pub.close()
    return rate


def _shm_stream_child(name: str, n: int, ready: object) -> None:
    import shm_channel as sc

    with sc.Publisher(name, float, depth=1024) as pub:
        pub.wait_for_subscribers(1, timeout=60)
        publish = pub.publish
        for i in range(n):
            publish(float(i))


def shm_stream(n: int) -> tuple[float, int]:
    import shm_channel as sc

    name = _topic("stream")
    with sc.Subscriber(name, float, depth=1024) as sub:
        child = mp.get_context("fork").Process(target=_shm_stream_child, args=(name, n, None))
        child.start()
        got = missed = 0
        value, m = sub.recv(timeout=60)
        t = time.perf_counter()
        got, missed = 1, m
        for _value, m in sub:
            got += 1
            missed += m
        elapsed = time.perf_counter() - t
        child.join(60)
    assert _value == n - 1
    return (got - 1) / elapsed, missed  # messages delivered per second


def _shm_pong(ping: str, pong: str, n: int) -> None:
    import shm_channel as sc

    with sc.Subscriber(ping, float, depth=8) as rx, sc.Publisher(pong, float, depth=8) as tx:
        for _ in range(n):
            v, _m = rx.recv(timeout=60)
            tx.publish(v)


def shm_latency(n: int) -> list[float]:
    import shm_channel as sc

    ping, pong = _topic("ping"), _topic("pong")
    out = []
    with sc.Publisher(ping, float, depth=8) as tx, sc.Subscriber(pong, float, depth=8) as rx:
        child = mp.get_context("fork").Process(target=_shm_pong, args=(ping, pong, n))
        child.start()
        tx.wait_for_subscribers(1, timeout=60)
        while rx.broadcast_stat().subscribers < 1 or not _has_publisher(rx):
            time.sleep(0.001)
        for _ in range(n):
            t = time.perf_counter()
            tx.publish(t)
            rx.recv(timeout=60)
            out.append((time.perf_counter() - t) / 2 * 1e6)
        child.join(60)
    return out


def _has_publisher(sub: object) -> bool:
    return bool(sub.stat().producer_alive)  # type: ignore[attr-defined]


# ---- pyzmq ---------------------------------------------------------------------------------


def _zmq_stream_child(addr: str, n: int) -> None:
    import struct

    import zmq

    ctx = zmq.Context()
    s = ctx.socket(zmq.PUB)
    s.setsockopt(zmq.SNDHWM, 0)
    s.bind(addr)
    time.sleep(0.3)  # PUB/SUB has no way to know the subscriber joined ("slow joiner")
    pack = struct.Struct("<d").pack
    send = s.send
    for i in range(n):
        send(pack(float(i)))
    send(b"")
    s.close(linger=-1)
    ctx.term()


def zmq_stream(n: int, tmp: str) -> float:
    import zmq

    addr = f"ipc://{tmp}/stream"
    ctx = zmq.Context()
    s = ctx.socket(zmq.SUB)
    s.setsockopt(zmq.RCVHWM, 0)
    s.setsockopt(zmq.SUBSCRIBE, b"")
    child = mp.get_context("fork").Process(target=_zmq_stream_child, args=(addr, n))
    child.start()
    s.connect(addr)
    recv = s.recv
    recv()
    t = time.perf_counter()
    got = 1
    while recv():
        got += 1
    elapsed = time.perf_counter() - t
    child.join(60)
    s.close()
    ctx.term()
    return got / elapsed


def _zmq_pong(a: str, b: str, n: int) -> None:
    import zmq

    ctx = zmq.Context()
    rx = ctx.socket(zmq.SUB)
    rx.setsockopt(zmq.SUBSCRIBE, b"")
    rx.connect(a)
    tx = ctx.socket(zmq.PUB)
    tx.bind(b)
    while True:  # until the pinger's first message arrives, answer its probes
        m = rx.recv()
        tx.send(m)
        if m != b"probe":
            break
    for _ in range(n - 1):
        tx.send(rx.recv())
    rx.close()
    tx.close(linger=-1)
    ctx.term()


def zmq_latency(n: int, tmp: str) -> list[float]:
    import zmq

    a, b = f"ipc://{tmp}/ping", f"ipc://{tmp}/pong"
    ctx = zmq.Context()
    tx = ctx.socket(zmq.PUB)
    tx.bind(a)
    rx = ctx.socket(zmq.SUB)
    rx.setsockopt(zmq.SUBSCRIBE, b"")
    child = mp.get_context("fork").Process(target=_zmq_pong, args=(a, b, n))
    child.start()
    rx.connect(b)
    poller = zmq.Poller()
    poller.register(rx, zmq.POLLIN)
    while True:  # both subscriptions are up once a probe makes the round trip
        tx.send(b"probe")
        if poller.poll(20):
            rx.recv()
            break
    while poller.poll(50):
        rx.recv()
    out = []
    for _ in range(n):
        t = time.perf_counter()
        tx.send(b"12345678")
        rx.recv()
        out.append((time.perf_counter() - t) / 2 * 1e6)
    child.join(60)
    tx.close()
    rx.close()
    ctx.term()
    return out


# ---- main --------------------------------------------------------------------------------


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--quick", action="store_true", help="short runs")
    ap.add_argument("--repeat", type=int, default=0, help="rounds (default 3, quick 2)")
    ap.add_argument("--json", help="write the results here")
    args = ap.parse_args()
    rounds = args.repeat or (2 if args.quick else 3)
    n_rate = 200_000 if args.quick else 1_000_000
    n_stream = 200_000 if args.quick else 1_000_000
    n_lat = 5_000 if args.quick else 20_000
    try:
        import zmq  # noqa: F401

        have_zmq = True
    except ImportError:
        have_zmq = False
        print("pyzmq is not installed: its rows are left out", file=sys.stderr)
    res: dict[str, list] = {
        k: []
        for k in (
            "publish",
            "subscribe",
            "stream",
            "missed",
            "lat_p50",
            "lat_p99",
            "zmq_stream",
            "zmq_p50",
            "zmq_p99",
        )
    }
    with tempfile.TemporaryDirectory() as tmp:
        for _ in range(rounds):
            res["publish"].append(shm_publish_rate(n_rate))
            res["subscribe"].append(shm_subscribe_rate(n_rate))
            rate, missed = shm_stream(n_stream)
            res["stream"].append(rate)
            res["missed"].append(missed)
            lat = sorted(shm_latency(n_lat))
            res["lat_p50"].append(lat[len(lat) // 2])
            res["lat_p99"].append(lat[len(lat) * 99 // 100])
            if have_zmq:
                res["zmq_stream"].append(zmq_stream(n_stream, tmp))
                zl = sorted(zmq_latency(n_lat, tmp))
                res["zmq_p50"].append(zl[len(zl) // 2])
                res["zmq_p99"].append(zl[len(zl) * 99 // 100])
    best = {
        k: (max(v) if k in ("publish", "subscribe", "stream", "zmq_stream") else min(v))
        for k, v in res.items()
        if v
    }

    def ratio(a: str, b: str) -> float:
        return statistics.median(x / y for x, y in zip(res[a], res[b]))

    print(f"Python publish/subscribe, {rounds} rounds, 8-byte float values; best of rounds")
    print(
        f"  publish()   (seed 000 API)     {best['publish']:>12,.0f} msg/s  "
        f"seed 000 claims >= {SEED_THROUGHPUT:,}: {best['publish'] / SEED_THROUGHPUT:.1f}x"
    )
    print(f"  subscribe() (seed 000 API)     {best['subscribe']:>12,.0f} calls/s")
    print(
        f"  stream, process to process     {best['stream']:>12,.0f} msg/s  "
        f"(missed {best['missed']}, depth 1024)"
    )
    print(
        f"  latency one way p50 / p99      {best['lat_p50']:>9.1f} / {best['lat_p99']:.1f} us "
        f" seed 000 claims 'several us' (<= {SEED_LATENCY_US:g})"
    )
    if have_zmq:
        print(
            f"  pyzmq PUB/SUB stream (ipc)     {best['zmq_stream']:>12,.0f} msg/s  "
            f"shm_channel/pyzmq {ratio('stream', 'zmq_stream'):.1f}x (same-round median)"
        )
        print(
            f"  pyzmq latency p50 / p99        {best['zmq_p50']:>9.1f} / {best['zmq_p99']:.1f} us "
            f" pyzmq/shm_channel {ratio('zmq_p50', 'lat_p50'):.1f}x"
        )
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"rounds": res, "best": best}, f, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
