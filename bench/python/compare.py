#!/usr/bin/env python3
"""Issue 6, the Python side: shm_channel's Python binding against the usual Python choices,
measured in the same run, with the methodology of bench/ (bench/README.md).

    python bench/python/compare.py [--quick] [--reps N] [--time S] [--sizes 64,4096]
                                   [--no-idle] [--json FILE]

Every case moves messages between two processes pinned to two CPUs (the consumer is this
process, the producer a forked child). A first short run calibrates the message count so
that a run lasts about --time seconds; then the cases of one size run --reps times,
interleaved (run 1 of every case, then run 2, ...), so that a noisy moment hits all alike.
The consumer times the messages that follow a warm-up. Every message carries a stamp in its
first byte (message i of a pool of P distinct messages carries i mod P) and the consumer
checks it, and the count, in every case: no transport can look fast by losing messages.

Throughput, for each message size (64 B to 6,220,800 B):
  mp_pipe      multiprocessing.Pipe(duplex=False): send_bytes / recv_bytes      (baseline)
  mp_queue     multiprocessing.Queue(maxsize=10000): put / get                  (baseline)
  py_ring      a pure-Python SPSC ring in multiprocessing.shared_memory: records
               [u64 length][payload padded to 8] split at the wrap, 64-bit positions on
               separate cache lines read and written through a memoryview cast to 'Q'
               (one aligned 8-byte store each), busy-polling                    (baseline)
  zmq_ipc      pyzmq PUSH/PULL over ipc://, send / recv (default copy=True); high-water
               marks set so that about the ring's bytes are queued              (baseline)
  py_single    shm_channel Producer.write / Consumer.read, one call per message
  py_batch     write_many / read_many (256 per call, read_many fills at most 64 KiB);
               sizes up to 4 KiB; checked per batch (first and last stamp, the count)
  py_iter      write_many (as py_batch) / ``for msg in consumer`` (batch peek: the loop
               holds up to 256 messages, released as it takes the next batch); sizes up to
               4 KiB; every message checked
  py_zerocopy  Producer.reserve (fill the memoryview) / Consumer.peek (look in place)
Ring (and shared-memory ring) capacity as bench/: 4 MiB, or the smallest power of two whose
largest payload holds the message (16 MiB for 1080p frames).

Issue 14's Python goals, each as the median over runs of its same-run ratio (run i of a
case against run i of multiprocessing.Pipe, or of write/read for reserve/peek), printed
at the end with the CPU model and the load: write/read >= 3x Pipe, write_many/read_many and
iteration >= 20x Pipe, reserve/peek >= 1x write/read (64 B, as --sizes 64 measures them).

Round trip, 64 B, one message in flight, ping here and pong in the child, each round trip
timed with perf_counter_ns: mp_pipe (duplex Pipe), zmq_ipc (PAIR), py_ring (two rings),
py_spin (two shm_channel channels, write/read, default spin).

Idle waiting (--no-idle skips it): CPU time used over 2 s by a C consumer blocked in
shm_channel_read on an empty channel, a C producer blocked in shm_channel_write on a full
ring (bench/python/c_peer.c), and a Python consumer blocked in Consumer.read(), measured
from /proc/PID/schedstat (ns) or /proc/PID/stat (clock ticks), as a percentage of one CPU.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import multiprocessing
import os
import platform
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from multiprocessing import shared_memory
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

MIB = 1 << 20
SIZES = (64, 1024, 4096, 65536, 1 << 20, 6_220_800)
BATCH = 256
RTT_SIZE = 64
RUN_LIMIT = 20.0  # seconds: a run that takes longer failed (a dead peer, a lost message)
CTX = multiprocessing.get_context("fork")
_names = iter(range(1 << 30))
CPUS: list[int] = []


def capacity_for(size: int) -> int:
    """As bench/main.c: 4 MiB, or the smallest power of two whose largest payload holds it."""
    need = 1
    while need < 2 * (size + 8):
        need <<= 1
    return max(need, 4 * MIB)


def fresh(what: str) -> str:
    return f"pycmp-{os.getpid()}-{next(_names)}-{what}"


def pin(side: int) -> None:
    if len(CPUS) == 2:
        try:
            os.sched_setaffinity(0, {CPUS[side]})
        except OSError:
            pass


def pool_of(size: int) -> list[bytes]:
    """P distinct messages of `size` bytes, message k starting with byte k."""
    p = max(2, min(BATCH, (64 * MIB) // max(size, 1)))
    body = b"\xab" * (size - 1)
    return [bytes([k]) + body for k in range(p)]


class BadMessage(RuntimeError):
    pass


class RunTimeout(RuntimeError):
    pass


def _on_alarm(signum: int, frame: Any) -> None:
    raise RunTimeout("a run took too long (watchdog): the peer died or a message was lost")


def watchdog(seconds: float) -> None:
    """Interrupt this run (RunTimeout, from the blocked call) after `seconds`; 0 cancels."""
    signal.signal(signal.SIGALRM, _on_alarm)
    signal.setitimer(signal.ITIMER_REAL, seconds)


def _bad(i: int, got: Any) -> BadMessage:
    return BadMessage(f"message {i} is wrong (stamp {got})")


# ---- the pure-Python shared-memory ring (baseline) ----------------------------------------

RING_HDR = 128  # write position at byte 0, read position at byte 64


class PyRing:
    """Minimal SPSC ring over multiprocessing.shared_memory, pure Python (see module doc)."""

    def __init__(self, shm: shared_memory.SharedMemory, cap: int) -> None:
        buf = shm.buf
        self.idx = buf[:RING_HDR].cast("Q")  # [0] write position, [8] read position
        self.data = buf[RING_HDR : RING_HDR + cap]
        self.dq = self.data.cast("Q")
        self.cap = cap
        self.mask = cap - 1
        self.pos = 0
        self.peer = 0

    def send(self, msg: bytes) -> None:
        n = len(msg)
        need = 8 + ((n + 7) & ~7)
        cap, idx = self.cap, self.idx
        pos = self.pos
        while pos + need - self.peer > cap:
            self.peer = idx[8]
        off = pos & self.mask
        self.dq[off >> 3] = n
        off = (off + 8) & self.mask
        room = cap - off
        if n <= room:
            self.data[off : off + n] = msg
        else:
            mv = memoryview(msg)
            self.data[off:cap] = mv[:room]
            self.data[0 : n - room] = mv[room:]
        self.pos = pos + need
        idx[0] = self.pos

    def recv(self) -> bytes:
        pos, idx = self.pos, self.idx
        while pos == self.peer:
            self.peer = idx[0]
        off = pos & self.mask
        n = self.dq[off >> 3]
        off = (off + 8) & self.mask
        room = self.cap - off
        if n <= room:
            msg = bytes(self.data[off : off + n])
        else:
            msg = bytes(self.data[off : self.cap]) + bytes(self.data[0 : n - room])
        self.pos = pos + 8 + ((n + 7) & ~7)
        idx[8] = self.pos
        return msg

    def release(self) -> None:
        self.idx.release()
        self.dq.release()
        self.data.release()


def new_ring_shm(cap: int) -> shared_memory.SharedMemory:
    shm = shared_memory.SharedMemory(create=True, size=RING_HDR + cap)
    shm.buf[: RING_HDR + cap] = bytes(RING_HDR + cap)  # fault the pages in now
    return shm


# ---- throughput: producers (in the child) ---------------------------------------------------


def _produce(kind: str, target: Any, pool: list[bytes], total: int, size: int, cap: int) -> None:
    pin(1)
    p = len(pool)
    if kind == "mp_pipe":
        send = target.send_bytes
        for i in range(total):
            send(pool[i % p])
        send(b"")
    elif kind == "mp_queue":
        put = target.put
        for i in range(total):
            put(pool[i % p])
        put(None)
        target.close()
        target.join_thread()
    elif kind == "py_ring":
        ring = PyRing(target, cap)
        for i in range(total):
            ring.send(pool[i % p])
        ring.release()
    elif kind == "zmq_ipc":
        import zmq

        zctx = zmq.Context()
        s = zctx.socket(zmq.PUSH)
        s.setsockopt(zmq.SNDHWM, zmq_hwm(size, cap))
        s.connect(target)
        send = s.send
        for i in range(total):
            send(pool[i % p])
        s.close(linger=-1)
        zctx.term()
    else:
        import shm_channel

        with shm_channel.Producer(target, cap) as pr:
            if kind == "py_single":
                write = pr.write
                for i in range(total):
                    write(pool[i % p])
            elif kind in ("py_batch", "py_iter"):
                # Lists made once: batches start at multiples of BATCH, and p divides BATCH.
                chunks = [pool[k % p] for k in range(BATCH)]
                i = 0
                while i < total:
                    n = min(BATCH, total - i)
                    pr.write_many(chunks if n == BATCH else chunks[:n])
                    i += n
            else:  # py_zerocopy
                reserve = pr.reserve
                for i in range(total):
                    with reserve(size) as view:
                        view[:] = pool[i % p]


def zmq_hwm(size: int, cap: int) -> int:
    return max(2, min(1000, cap // max(size, 1)))


# ---- throughput: consumers (here) -----------------------------------------------------------


def tp_run(kind: str, size: int, count: int) -> float:
    """One run: msgs/s over `count` messages after a warm-up."""
    cap = capacity_for(size)
    pool = pool_of(size)
    p = len(pool)
    warm = min(2 * cap // (size + 8), max(8, count // 5))
    total = warm + count
    cleanup: Callable[[], None] = lambda: None
    recv: Callable[[], Any]
    if kind == "mp_pipe":
        rx, tx = CTX.Pipe(duplex=False)
        target: Any = tx
        recv = rx.recv_bytes
    elif kind == "mp_queue":
        q = CTX.Queue(maxsize=10000)
        target = q
        recv = q.get
    elif kind == "py_ring":
        shm = new_ring_shm(cap)
        target = shm
        ring = PyRing(shm, cap)
        recv = ring.recv

        def cleanup() -> None:
            ring.release()
            shm.close()
            shm.unlink()
    elif kind == "zmq_ipc":
        # The PULL socket is made after the fork (below): a child forked from a process that
        # holds a zmq context inherits its descriptors. The PUSH side retries its connect.
        addr = f"ipc://{tempfile.gettempdir()}/{fresh('zmq')}.ipc"
        target = addr
    else:
        import shm_channel

        name = fresh("tp")
        ch = shm_channel.Consumer(name, cap, exclusive=True)
        target = name

        def cleanup() -> None:
            ch.close()
            try:
                shm_channel.unlink(name, force=True)
            except OSError:
                pass

    proc = CTX.Process(target=_produce, args=(kind, target, pool, total, size, cap))
    proc.start()
    if kind == "mp_pipe":
        tx.close()  # the child's end: its exit is then EOF here, not a hang
    elif kind == "zmq_ipc":
        import zmq

        zctx = zmq.Context()
        s = zctx.socket(zmq.PULL)
        s.setsockopt(zmq.RCVHWM, zmq_hwm(size, cap))
        s.bind(addr)
        recv = s.recv

        def cleanup() -> None:
            s.close(linger=0)
            zctx.term()
            with contextlib.suppress(OSError):
                os.unlink(addr[len("ipc://") :])

    watchdog(RUN_LIMIT)
    try:
        if kind == "py_batch":
            # Checked per batch (its first and last stamps, and the count): a lost, repeated
            # or reordered message shifts every stamp after it.
            read_many = ch.read_many
            i = 0
            base = -1
            t0 = time.perf_counter()
            while i < total:
                if base < 0 and i >= warm:
                    base = i
                    t0 = time.perf_counter()
                got = read_many(BATCH)
                n = len(got)
                if got[0][0] != i % p or got[-1][0] != (i + n - 1) % p:
                    raise _bad(i, got[0][0])
                i += n
            dt = time.perf_counter() - t0
            n = total - base
            if i != total:
                raise BadMessage(f"{i} messages, not {total}")
        elif kind == "py_iter":
            k = 0
            i = 0
            t0 = time.perf_counter()
            for m in ch:
                if m[0] != k:
                    raise _bad(i, m[0])
                i += 1
                if i == warm:
                    t0 = time.perf_counter()
                if i == total:
                    break
                k += 1
                if k == p:
                    k = 0
            dt = time.perf_counter() - t0
            n = count
            if i != total:
                raise BadMessage(f"{i} messages, not {total}")
        elif kind == "py_zerocopy":
            peek = ch.peek
            for i in range(warm):
                with peek() as v:
                    if v[0] != i % p:
                        raise _bad(i, v[0])
            t0 = time.perf_counter()
            k = warm % p
            for i in range(warm, total):
                with peek() as v:
                    if v[0] != k:
                        raise _bad(i, v[0])
                k += 1
                if k == p:
                    k = 0
            dt = time.perf_counter() - t0
            n = count
        else:
            if kind == "py_single":
                recv = ch.read
            for i in range(warm):
                m = recv()
                if m[0] != i % p:
                    raise _bad(i, m[0])
            t0 = time.perf_counter()
            k = warm % p
            for i in range(warm, total):
                m = recv()
                if m[0] != k:
                    raise _bad(i, m[0])
                k += 1
                if k == p:
                    k = 0
            dt = time.perf_counter() - t0
            n = count
            if len(m) != size:
                raise BadMessage(f"last message has {len(m)} bytes, not {size}")
            if kind == "mp_pipe" and recv() != b"":
                raise BadMessage("pipe: more messages than sent")
            if kind == "mp_queue" and recv() is not None:
                raise BadMessage("queue: more messages than sent")
        proc.join(60)
        if proc.exitcode != 0:
            raise RuntimeError(f"{kind} producer failed ({proc.exitcode})")
    finally:
        watchdog(0)
        if proc.is_alive():
            proc.kill()
            proc.join()
        cleanup()
    return n / dt


# ---- round trips ----------------------------------------------------------------------------


def _pong(kind: str, a: Any, b: Any, total: int) -> None:
    pin(1)
    if kind == "mp_pipe":
        for _ in range(total):
            a.send_bytes(a.recv_bytes())
    elif kind == "zmq_ipc":
        import zmq

        zctx = zmq.Context()
        s = zctx.socket(zmq.PAIR)
        s.connect(a)
        for _ in range(total):
            s.send(s.recv())
        s.close(linger=-1)
        zctx.term()
    elif kind == "py_ring":
        cap = 4 * MIB
        rin, rout = PyRing(a, cap), PyRing(b, cap)
        for _ in range(total):
            rout.send(rin.recv())
        rin.release()
        rout.release()
    else:
        import shm_channel

        with shm_channel.Consumer(a, 4 * MIB) as rx, shm_channel.Producer(b, 4 * MIB) as tx:
            read, write = rx.read, tx.write
            for _ in range(total):
                write(read())


def rtt_run(kind: str, count: int) -> list[float]:
    """One run: [median, p99, p99.9, max, mean] of `count` round trips in ns."""
    warm = min(1000, count // 10) + 10
    total = warm + count
    pool = pool_of(RTT_SIZE)
    p = len(pool)
    cleanup: Callable[[], None] = lambda: None
    if kind == "mp_pipe":
        mine, theirs = CTX.Pipe(duplex=True)
        args: tuple[Any, Any] = (theirs, None)
        send, recv = mine.send_bytes, mine.recv_bytes
    elif kind == "zmq_ipc":
        addr = f"ipc://{tempfile.gettempdir()}/{fresh('zmq')}.ipc"  # bound after the fork
        args = (addr, None)
    elif kind == "py_ring":
        sa, sb = new_ring_shm(4 * MIB), new_ring_shm(4 * MIB)
        ra, rb = PyRing(sa, 4 * MIB), PyRing(sb, 4 * MIB)
        args = (sa, sb)
        send, recv = ra.send, rb.recv

        def cleanup() -> None:
            ra.release()
            rb.release()
            for s_ in (sa, sb):
                s_.close()
                s_.unlink()
    else:
        import shm_channel

        na, nb = fresh("ping"), fresh("pong")
        tx = shm_channel.Producer(na, 4 * MIB, exclusive=True)
        rx = shm_channel.Consumer(nb, 4 * MIB, exclusive=True)
        args = (na, nb)
        send, recv = tx.write, rx.read

        def cleanup() -> None:
            tx.close()
            rx.close()
            for n_ in (na, nb):
                try:
                    shm_channel.unlink(n_, force=True)
                except OSError:
                    pass

    proc = CTX.Process(target=_pong, args=(kind, args[0], args[1], total))
    proc.start()
    if kind == "mp_pipe":
        theirs.close()
    elif kind == "zmq_ipc":
        import zmq

        zctx = zmq.Context()
        s = zctx.socket(zmq.PAIR)
        s.bind(addr)
        send, recv = s.send, s.recv

        def cleanup() -> None:
            s.close(linger=0)
            zctx.term()
            with contextlib.suppress(OSError):
                os.unlink(addr[len("ipc://") :])

    watchdog(RUN_LIMIT)
    samples = [0] * count
    clock = time.perf_counter_ns
    try:
        for i in range(total):
            msg = pool[i % p]
            t0 = clock()
            send(msg)
            back = recv()
            t1 = clock()
            if back[0] != i % p:
                raise _bad(i, back[0])
            if i >= warm:
                samples[i - warm] = t1 - t0
        proc.join(60)
        if proc.exitcode != 0:
            raise RuntimeError(f"{kind} pong failed ({proc.exitcode})")
    finally:
        watchdog(0)
        if proc.is_alive():
            proc.kill()
            proc.join()
        cleanup()
    mean = sum(samples) / count
    samples.sort()

    def pct(q: float) -> float:
        k = -(-int(q * count * 1000) // 1000)  # nearest rank, as bench/main.c
        return float(samples[max(k, 1) - 1])

    return [pct(0.5), pct(0.99), pct(0.999), float(samples[-1]), mean]


# ---- idle waiting -----------------------------------------------------------------------------


def cpu_ns(pid: int) -> int:
    """CPU time used so far by `pid` (all its threads), in ns."""
    try:
        with open(f"/proc/{pid}/schedstat") as f:
            return int(f.read().split()[0])
    except (OSError, ValueError, IndexError):
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
        ticks = int(fields[11]) + int(fields[12])  # utime, stime
        return ticks * 1_000_000_000 // os.sysconf("SC_CLK_TCK")


def idle_cpu(seconds: float) -> list[dict[str, Any]]:
    """CPU% of processes blocked in shm_channel waits (see the module doc)."""
    import bench  # bench/python/bench.py: builds c_peer against the package's library
    import shm_channel

    out: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory() as tmp:
        exe = bench.build_c_peer(Path(tmp))
        names = [fresh("idle-c"), fresh("idle-p"), fresh("idle-py")]
        procs: list[tuple[str, str, subprocess.Popen[bytes]]] = []
        if exe is not None:
            procs.append(("c_consumer_blocked", "C consumer blocked in read (empty ring)",
                          subprocess.Popen([str(exe), "consume", names[0], str(64 * 1024), "read"])))  # fmt: skip
            procs.append(("c_producer_blocked", "C producer blocked in write (full ring)",
                          subprocess.Popen([str(exe), "produce", names[1], str(10**12), "64",
                                            str(64 * 1024), "single"])))  # fmt: skip
        code = "import shm_channel, sys; c = shm_channel.Consumer(sys.argv[1], 65536); c.read()"
        procs.append(("py_consumer_blocked", "Python consumer blocked in Consumer.read()",
                      subprocess.Popen([sys.executable, "-c", code, names[2]])))  # fmt: skip
        try:
            time.sleep(0.5)  # past start-up and the spin phase: every one is asleep now
            t0 = time.monotonic()
            c0 = {pid: cpu_ns(pid) for pid in (p.pid for _, _, p in procs)}
            time.sleep(seconds)
            c1 = {pid: cpu_ns(pid) for pid in (p.pid for _, _, p in procs)}
            wall = time.monotonic() - t0
            for pid_id, label, p in procs:
                if p.poll() is not None:
                    out.append({"id": pid_id, "label": label, "error": f"exited {p.returncode}"})
                    continue
                used = (c1[p.pid] - c0[p.pid]) / 1e9
                out.append({"id": pid_id, "label": label, "seconds": wall,
                            "cpu_seconds": used, "cpu_percent": 100 * used / wall})  # fmt: skip
        finally:
            for _, _, p in procs:
                if p.poll() is None:
                    p.send_signal(signal.SIGKILL)
                p.wait()
            for n in names:
                try:
                    shm_channel.unlink(n, force=True)
                except OSError:
                    pass
    return out


# ---- driver -----------------------------------------------------------------------------------

TP_CASES = [
    ("mp_pipe", "multiprocessing.Pipe", "baseline"),
    ("mp_queue", "multiprocessing.Queue", "baseline"),
    ("py_ring", "shared_memory pure-Python ring", "baseline"),
    ("zmq_ipc", "pyzmq PUSH/PULL ipc://", "baseline"),
    ("py_single", "shm_channel write/read", "python"),
    ("py_batch", "shm_channel write_many/read_many", "python"),
    ("py_iter", "shm_channel write_many/for msg in c", "python"),
    ("py_zerocopy", "shm_channel reserve/peek", "python"),
]
# Issue 14's goals: (case, reference case, least ratio of same-run medians).
GOALS = [
    ("py_single", "mp_pipe", 3.0),
    ("py_batch", "mp_pipe", 20.0),
    ("py_iter", "mp_pipe", 20.0),
    ("py_zerocopy", "py_single", 1.0),
]
RTT_CASES = [
    ("mp_pipe", "multiprocessing.Pipe (duplex)", "baseline"),
    ("zmq_ipc", "pyzmq PAIR ipc://", "baseline"),
    ("py_ring", "shared_memory pure-Python rings", "baseline"),
    ("py_spin", "shm_channel write/read, spin", "python"),
]


def cpu_model() -> str:
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    return platform.processor() or "unknown CPU"


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--quick", action="store_true", help="3 runs of ~0.05 s per figure")
    ap.add_argument("--reps", type=int, help="runs per figure (default 5, quick 3)")
    ap.add_argument("--time", type=float, help="seconds per run (default 0.2, quick 0.05)")
    ap.add_argument("--sizes", help="comma-separated message sizes")
    ap.add_argument("--only", help="comma-separated case ids (baselines always run)")
    ap.add_argument("--no-idle", action="store_true", help="skip the idle-CPU measurement")
    ap.add_argument("--no-roundtrip", action="store_true")
    ap.add_argument("--no-throughput", action="store_true")
    ap.add_argument("--json", type=Path, help="write every run here")
    args = ap.parse_args()
    reps = args.reps or (3 if args.quick else 5)
    rep_s = args.time or (0.05 if args.quick else 0.2)
    sizes = [int(s) for s in args.sizes.split(",")] if args.sizes else list(SIZES)
    only = set(args.only.split(",")) if args.only else None

    import shm_channel

    try:
        import zmq

        zmq_ver = f"pyzmq {zmq.pyzmq_version()}, libzmq {zmq.zmq_version()}"
    except ImportError:
        zmq_ver = None
    allowed = sorted(os.sched_getaffinity(0))
    if len(allowed) >= 2:
        CPUS.extend(allowed[:2])
    pin(0)
    load_start = os.getloadavg()[0]
    t_start = time.monotonic()
    print(f"Python {platform.python_version()}, shm_channel {shm_channel.__version__}, "
          f"{zmq_ver or 'no pyzmq: zmq_ipc skipped'}; load average {load_start:.2f}", flush=True)  # fmt: skip
    results: list[dict[str, Any]] = []

    def wanted(kid: str, group: str) -> bool:
        if kid.startswith("zmq") and zmq_ver is None:
            return False
        return group == "baseline" or only is None or kid in only

    def measure(cases: list[dict[str, Any]], one: Callable[[dict[str, Any], int], list[float]],
                first: int) -> None:  # fmt: skip
        for c in cases:  # calibration
            try:
                st = one(c, first)
                if c["kind"] == "throughput":
                    c["count_per_run"] = int(min(max(st[0] * rep_s, 16), 5e7))
                else:
                    c["count_per_run"] = int(min(max(rep_s * 1e9 / st[4], 1000), 2e6))
            except Exception as e:
                c["error"] = f"{type(e).__name__}: {e}"
        for _ in range(reps):
            for c in cases:
                if c.get("error"):
                    continue
                try:
                    try:
                        st = one(c, c["count_per_run"])
                    except RunTimeout:
                        # Seen with pyzmq PUSH/PULL, rarely: the consumer waits for messages
                        # that never come. Counted, and the run is made again once.
                        c["timeouts"] = c.get("timeouts", 0) + 1
                        st = one(c, c["count_per_run"])
                except Exception as e:
                    c["error"] = f"{type(e).__name__}: {e}"
                    continue
                if c["kind"] == "throughput":
                    c["msgs_per_s"]["runs"].append(st[0])
                else:
                    for key, v in zip(("median", "p99", "p999", "max"), st):
                        c[key]["runs"].append(v)
            print(".", end="", flush=True, file=sys.stderr)
        print(file=sys.stderr)

    if not args.no_throughput:
        for size in sizes:
            print(f"python throughput {size} B ", end="", flush=True, file=sys.stderr)
            cases = [
                {"kind": "throughput", "id": kid, "label": label, "group": group, "size": size,
                 "capacity": capacity_for(size), "msgs_per_s": {"runs": []}, "error": None}
                for kid, label, group in TP_CASES
                if wanted(kid, group) and not (kid in ("py_batch", "py_iter") and size > 4096)
            ]  # fmt: skip
            first = int(max(16, min(20000, 16 * MIB // (size + 8))))
            measure(cases, lambda c, n: [tp_run(c["id"], c["size"], n)], first)
            results.extend(cases)
    if not args.no_roundtrip:
        print("python round trips ", end="", flush=True, file=sys.stderr)
        cases = [
            {"kind": "roundtrip", "id": kid, "label": label, "group": group, "size": RTT_SIZE,
             "median": {"runs": []}, "p99": {"runs": []}, "p999": {"runs": []},
             "max": {"runs": []}, "error": None}
            for kid, label, group in RTT_CASES
            if wanted(kid, group)
        ]  # fmt: skip
        measure(cases, lambda c, n: rtt_run(c["id"], n), 2000)
        results.extend(cases)
    idle: list[dict[str, Any]] = []
    if not args.no_idle:
        print("idle waiting (2 s)", file=sys.stderr, flush=True)
        idle = idle_cpu(1.0 if args.quick else 2.0)
    load_end = os.getloadavg()[0]

    med = statistics.median
    print(f"\nPython, two processes; median of {reps} runs [min-max]")
    for c in results:
        if c.get("error"):
            print(f"  {c['label']:<36} {c['size']:>9} B  FAILED: {c['error']}")
        elif c["kind"] == "throughput":
            r = c["msgs_per_s"]["runs"]
            print(f"  {c['label']:<36} {c['size']:>9} B  {med(r) / 1e6:9.3f} M msgs/s "
                  f"[{min(r) / 1e6:.3f}-{max(r) / 1e6:.3f}] {med(r) * c['size'] / 1e9:7.3f} GB/s")  # fmt: skip
        else:
            print(f"  {c['label']:<36} {c['size']:>9} B  rtt median {med(c['median']['runs']):7.0f} ns"
                  f", p99 {med(c['p99']['runs']):7.0f}, p99.9 {med(c['p999']['runs']):8.0f}"
                  f", max {med(c['max']['runs']):9.0f}")  # fmt: skip
    cpu = cpu_model()
    for size in sorted({c["size"] for c in results if c["kind"] == "throughput"}):
        by_id = {
            c["id"]: c["msgs_per_s"]["runs"]
            for c in results
            if c["kind"] == "throughput" and c["size"] == size and not c.get("error")
        }
        lines = []
        for kid, ref, goal in GOALS:
            if kid in by_id and ref in by_id and by_id[kid] and by_id[ref]:
                ratio = med([a / b for a, b in zip(by_id[kid], by_id[ref])])
                verdict = "met" if ratio >= goal else "MISSED"
                lines.append(
                    f"  {kid:<12} / {ref:<10} {ratio:6.2f}x  (goal >= {goal:g}x: {verdict})"
                )
        if lines:
            print(f"Issue 14 goals at {size} B, same-run ratios (median over runs); {cpu}; "
                  f"load average {load_start:.2f} -> {load_end:.2f}")  # fmt: skip
            print("\n".join(lines))
    for d in idle:
        if "error" in d:
            print(f"  idle: {d['label']}: {d['error']}")
        else:
            print(
                f"  idle: {d['label']}: {d['cpu_percent']:.3f} % of a CPU over {d['seconds']:.1f} s"
            )
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps({
            "format": "shm_channel_compare_python/1",
            "host": {"python": platform.python_version(), "pyzmq": zmq_ver,
                     "shm_channel": shm_channel.__version__,
                     "pinning": f"parent on CPU {CPUS[0]}, child on CPU {CPUS[1]}" if CPUS else "not pinned"},
            "params": {"runs": reps, "seconds_per_run": rep_s, "batch": BATCH},
            "load_average": {"start": load_start, "end": load_end},
            "wall_seconds": time.monotonic() - t_start,
            "results": results,
            "idle": idle,
        }, indent=1))  # fmt: skip
    return 1 if any(c.get("error") for c in results) else 0


if __name__ == "__main__":
    sys.exit(main())
