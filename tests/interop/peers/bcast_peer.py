#!/usr/bin/env python3
"""Broadcast interop participant, Python side, over shm_channel.Publisher / Subscriber.

The contract (commands, options, messages, output) is shared with bcast_peer.c and the Rust
bin bcast_peer (tests/interop/README.md, "Broadcast channels")::

    bcast_peer publish   --name N --count C [--depth D=64] [--max-payload M=4096] [--type T=bytes]
                         [--seed S=1] [--wait-subs K] [--rate HZ] [--hang-at I] [--start I=0]
    bcast_peer subscribe --name N [--count C] [--type T=bytes] [--seed S=1]
                         [--mode block|poll|latest] [--zero-copy] [--start-after FILE]
                         [--slow-us U] [--progress FILE] [--expect-end EPIPE|EOWNERDEAD]
                         [--timeout-s 60] [--depth D=64] [--max-payload M=4096]

Typed topics go through the typed API (the value is decoded, then encoded back to check its
wire bytes). Message i is numbered on the topic i + 1 (a publisher taking over continues with
--start); the subscriber knows a message's number from its own position (next_seq - 1).
"""

from __future__ import annotations

import json
import os
import struct
import sys
import time
import zlib

import shm_channel as sc
from shm_channel._topic import codec_for_tag

USAGE = """usage: bcast_peer.py publish --name N --count C [--depth D] [--max-payload M] [--type T]
                 [--seed S] [--wait-subs K] [--rate HZ] [--hang-at I] [--start I]
       bcast_peer.py subscribe --name N [--count C] [--type T] [--seed S]
                 [--mode block|poll|latest] [--zero-copy] [--start-after FILE] [--slow-us U]
                 [--progress FILE] [--expect-end EPIPE|EOWNERDEAD] [--timeout-s S]
                 [--depth D] [--max-payload M]
       types: bytes str f64 i64 bool struct:<3d ndarray:|u1:4x8x3"""
TYPES = ("bytes", "str", "f64", "i64", "bool", "struct:<3d", "ndarray:|u1:4x8x3")
M64 = (1 << 64) - 1


def usage(msg: str) -> None:
    sys.stderr.write(f"bcast_peer.py: {msg}\n{USAGE}\n")
    sys.exit(2)


def splitmix64(x: int) -> int:
    z = (x + 0x9E3779B97F4A7C15) & M64
    z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & M64
    z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & M64
    return z ^ (z >> 31)


def expected(kind: str, seed: int, max_payload: int, i: int) -> bytes:
    """The wire bytes of message i (tests/interop/README.md)."""
    if kind == "bytes":
        h = splitmix64(seed ^ i)
        n = h % (max_payload - 16 + 1)
        hb = h.to_bytes(8, "little")
        body = bytes((hb[k % 8] ^ k) & 0xFF for k in range(n))
        return struct.pack("<QII", i, n, zlib.crc32(body)) + body
    if kind == "str":
        return f"msg-{i}".encode()
    if kind == "f64":
        return struct.pack("<d", i * 0.5)
    if kind == "i64":
        return struct.pack("<q", i - (1 << 40))
    if kind == "bool":
        return bytes([i & 1])
    if kind == "struct:<3d":
        return struct.pack("<3d", i, 2 * i, -float(i))  # -0.0 for i = 0, as C and Rust
    return bytes((i + k) & 0xFF for k in range(4 * 8 * 3))  # ndarray:|u1:4x8x3


def parse(argv: list[str]) -> dict:
    if not argv or argv[0] not in ("publish", "subscribe"):
        usage("the command is publish or subscribe")
    o: dict = {
        "cmd": argv[0],
        "name": None,
        "count": None,
        "depth": 64,
        "max_payload": 4096,
        "type": "bytes",
        "seed": 1,
        "wait_subs": 0,
        "rate": 0.0,
        "hang_at": None,
        "start": 0,
        "mode": "block",
        "zero_copy": False,
        "start_after": None,
        "slow_us": 0,
        "progress": None,
        "expect_end": None,
        "timeout_s": 60.0,
    }
    pub = argv[0] == "publish"
    ints = {"--count", "--depth", "--max-payload", "--seed"}
    ints |= {"--wait-subs", "--hang-at", "--start"} if pub else {"--slow-us"}
    floats = {"--rate"} if pub else {"--timeout-s"}
    strs = {"--name", "--type"} | (set() if pub else {"--mode", "--start-after", "--progress"})
    strs |= set() if pub else {"--expect-end"}
    args = argv[1:]
    k = 0
    while k < len(args):
        a = args[k]
        if a == "--zero-copy" and not pub:
            o["zero_copy"] = True
            k += 1
            continue
        if a not in ints | floats | strs:
            usage(f"unknown option: {a}")
        if k + 1 >= len(args) or args[k + 1].startswith("--"):
            usage(f"option without a value: {a}")
        v = args[k + 1]
        key = a[2:].replace("-", "_")
        if a in ints:
            if not v.isdigit():
                usage(f"{a}: {v}")
            o[key] = int(v)
        elif a in floats:
            try:
                o[key] = float(v)
            except ValueError:
                usage(f"{a}: {v}")
            if not 0 <= o[key] < 1e12:
                usage(f"{a}: {v}")
        else:
            o[key] = v
        k += 2
    if not o["name"]:
        usage("--name is required")
    if pub and o["count"] is None:
        usage("publish needs --count")
    if o["type"] not in TYPES:
        usage(f"unknown type: {o['type']}")
    if o["mode"] not in ("block", "poll", "latest"):
        usage("--mode is block, poll or latest")
    if o["expect_end"] not in (None, "EPIPE", "EOWNERDEAD"):
        usage("--expect-end is EPIPE or EOWNERDEAD")
    if not 2 <= o["depth"] <= 1 << 24:
        usage("--depth is 2 to 2^24")
    if not 16 <= o["max_payload"] <= 1 << 31:
        usage("--max-payload is 16 to 2^31")
    if not pub and o["timeout_s"] <= 0:
        usage("--timeout-s must be positive")
    return o


def emit(result: dict) -> int:
    print(json.dumps({"lang": "py", **result}), flush=True)
    return 0 if result["ok"] else 1


def publish(o: dict) -> int:
    codec = codec_for_tag(o["type"])
    published = 0
    try:
        pub = sc.Publisher(o["name"], codec, depth=o["depth"], max_payload=o["max_payload"])
    except OSError as e:
        return emit({"role": "publisher", "published": 0, "ok": False, "error": f"open: {e}"})
    if o["wait_subs"]:
        try:
            pub.wait_for_subscribers(o["wait_subs"], timeout=60)
        except TimeoutError as e:
            return emit({"role": "publisher", "published": 0, "ok": False, "error": str(e)})
    t0 = time.monotonic()
    for i in range(o["start"], o["start"] + o["count"]):
        if o["hang_at"] is not None and i == o["hang_at"]:
            while True:
                time.sleep(3600)  # until the harness's SIGKILL
        if o["rate"]:
            due = t0 + published / o["rate"]
            now = time.monotonic()
            if due > now:
                time.sleep(due - now)
        wire = expected(o["type"], o["seed"], o["max_payload"], i)
        try:
            pub.publish(codec.decode(wire) if codec.tag != "bytes" else wire)
        except OSError as e:
            return emit(
                {"role": "publisher", "published": published, "ok": False, "error": f"{i}: {e}"}
            )
        published += 1
    pub.close()  # end-of-stream
    return emit({"role": "publisher", "published": published, "ok": True})


class Tally:
    def __init__(self, o: dict) -> None:
        self.o = o
        self.delivered = 0
        self.missed = 0
        self.first: int | None = None
        self.last: int | None = None
        self.error = ""
        self.progress = None
        if o["progress"]:
            self.progress = os.open(o["progress"], os.O_RDWR | os.O_CREAT, 0o600)

    def fail(self, msg: str) -> None:
        if not self.error:
            self.error = msg

    def message(self, wire: bytes, missed: int, seq: int) -> None:
        """Check one delivered message: its bytes, its missed count, its number `seq`."""
        o = self.o
        i = seq - 1
        want = expected(o["type"], o["seed"], o["max_payload"], i)
        if wire != want:
            self.fail(f"message {i}: content differs ({len(wire)} bytes, expected {len(want)})")
        if self.last is not None:
            if i <= self.last:
                self.fail(f"message {i} after {self.last}: not increasing")
            elif i - self.last - 1 != missed:
                self.fail(
                    f"message {i} after {self.last}: reported {missed} missed, "
                    f"the gap is {i - self.last - 1}"
                )
        if self.first is None:
            self.first = i
        self.last = i
        self.delivered += 1
        self.missed += missed
        self.put_progress()

    def skipped(self, n: int) -> None:
        """n messages counted missed without a delivery (a view overwritten while held)."""
        self.missed += n
        if self.last is not None:
            self.last += n

    def put_progress(self) -> None:
        if self.progress is not None:
            last = 0 if self.last is None else self.last + 1
            os.pwrite(self.progress, struct.pack("<QQQ", self.delivered, last, self.missed), 0)


def _wire(codec: object, value: object) -> bytes:
    return bytes(memoryview(codec.encode(value)).cast("B"))  # type: ignore[attr-defined]


def read_next(o: dict, sub: sc.Subscriber, t: Tally, deadline: float) -> str:
    codec = codec_for_tag(o["type"])
    poll = o["mode"] == "poll"
    while True:
        if o["count"] is not None and t.delivered >= o["count"]:
            return "count"
        left = deadline - time.monotonic()
        if left <= 0:
            t.fail("timed out")
            return "timeout"
        try:
            if o["zero_copy"]:
                try:
                    with sub.peek(timeout=0 if poll else left) as (view, missed):
                        wire = bytes(memoryview(view).cast("B"))
                except sc.MessageOverwritten:
                    t.skipped(missed + 1)  # the skip before it, and itself
                    continue
            else:
                value, missed = sub.recv(timeout=0 if poll else left)
                wire = _wire(codec, value)
        except BlockingIOError:
            time.sleep(0)
            continue
        except TimeoutError:
            continue
        except sc.EndOfStream:
            return "EPIPE"
        except sc.PeerDied:
            return "EOWNERDEAD"
        t.message(wire, missed, sub.subscriber_stat().next_seq - 1)
        if o["slow_us"]:
            time.sleep(o["slow_us"] / 1e6)


def read_latest(o: dict, sub: sc.Subscriber, t: Tally, deadline: float) -> str:
    codec = codec_for_tag(o["type"])
    current: bytes | None = None
    ending: str | None = None
    while True:
        if o["count"] is not None and t.delivered >= o["count"]:
            return "count"
        if time.monotonic() > deadline:
            t.fail("timed out")
            return "timeout"
        got = None
        try:
            if o["zero_copy"]:
                try:
                    with sub.peek_latest() as (view, is_new):
                        wire = bytes(memoryview(view).cast("B"))
                        missed = sub.subscriber_stat().last_missed if is_new else 0
                    got = (wire, is_new, missed)
                except sc.MessageOverwritten:
                    if is_new:
                        t.skipped(missed + 1)
            else:
                value, is_new = sub.latest()
                missed = sub.subscriber_stat().last_missed if is_new else 0
                got = (_wire(codec, value), is_new, missed)
        except BlockingIOError:
            got = None
        fresh = False
        if got is not None:
            wire, is_new, missed = got
            if not is_new and missed:
                t.fail(f"a value that is not new reports {missed} missed")
            if is_new:
                seq = sub.subscriber_stat().next_seq - 1
                t.message(wire, missed, seq)
                current = wire
                fresh = True
                if o["slow_us"]:
                    time.sleep(o["slow_us"] / 1e6)
            elif wire != current:
                t.fail("a value that is not new differs from the last new one")
        if fresh:
            ending = None
            continue
        if ending:
            return ending
        st = sub.stat()
        if st.producer_state == 2:
            ending = "EPIPE"  # one more look for a last value first
        elif st.producer_state == 1 and not st.producer_alive:
            ending = "EOWNERDEAD"
        else:
            time.sleep(50e-6)


def subscribe(o: dict) -> int:
    t = Tally(o)
    end = "error"
    missed_total = None
    try:
        sub = sc.Subscriber(
            o["name"],
            codec_for_tag(o["type"]),
            depth=o["depth"],
            max_payload=o["max_payload"],
        )
    except OSError as e:
        t.fail(f"open: {e}")
        sub = None
    if sub is not None:
        deadline = time.monotonic() + o["timeout_s"]
        if o["start_after"]:
            while not os.path.exists(o["start_after"]):
                if time.monotonic() > deadline:
                    t.fail(f"{o['start_after']} never appeared")
                    break
                time.sleep(0.001)
        if not t.error:
            try:
                if o["mode"] == "latest":
                    end = read_latest(o, sub, t, deadline)
                else:
                    end = read_next(o, sub, t, deadline)
            except Exception as e:  # noqa: BLE001  (reported in the result line)
                t.fail(f"read: {type(e).__name__}: {e}")
        st = sub.subscriber_stat()
        missed_total = st.missed
        if (st.delivered, st.missed) != (t.delivered, t.missed):
            t.fail(
                f"the handle counts {st.delivered} delivered and {st.missed} missed, the peer "
                f"{t.delivered} and {t.missed}"
            )
        sub.close()
    if not t.error and o["expect_end"] and end != o["expect_end"]:
        t.fail(f"ended with {end}, expected {o['expect_end']}")
    return emit(
        {
            "role": "subscriber",
            "delivered": t.delivered,
            "missed": t.missed,
            "first": t.first,
            "last": t.last,
            "end": end,
            "missed_total": missed_total,
            "ok": not t.error,
            "error": t.error,
        }
    )


def main() -> int:
    o = parse(sys.argv[1:])
    return publish(o) if o["cmd"] == "publish" else subscribe(o)


if __name__ == "__main__":
    sys.exit(main())
