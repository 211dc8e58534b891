#!/usr/bin/env python3
"""Throughput of the Python binding, next to multiprocessing.Pipe and multiprocessing.Queue
measured in the same run.

    python bench/python/bench.py [--quick] [--repeat N] [--json FILE]

Needs the shm_channel package (pip install ./bindings/python), numpy, and a C compiler for
the C end (bench/python/c_peer.c, built into a temporary directory against the library the
package loaded). Every case moves messages between two processes (the consumer is this
process; the producer a child) and is timed by the consumer from its first message to the
end of the stream. The cases run in --repeat rounds; the table gives each case's best rate
and, for the ratios, the median over the rounds of the ratio between runs of the same round
(the machine may be shared: runs close in time are the fairest comparison).

Cases: 64 B and 4 KiB messages, C->Python and Python->Python, one call per message
(write/read) and batch calls (write_many/read_many; the C producer uses
shm_channel_write_batch); multiprocessing.Pipe (send_bytes/recv_bytes) and Queue (put/get).
Then a stream of 1080p RGB frames (6,220,800 bytes) from a C producer, read by a C consumer
and by Python into numpy: copied into an array (read_into, one copy) and viewed in place
(peek_array, no copy).

Targets (issue 3): single-call 64 B at least 3x Pipe, batch at least 10x Pipe, the numpy frame
stream at least 0.8x C.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import multiprocessing
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from functools import partial
from multiprocessing.connection import Connection
from multiprocessing.queues import Queue
from pathlib import Path
from subprocess import Popen

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]
FRAME_SHAPE = (1080, 1920, 3)
FRAME = FRAME_SHAPE[0] * FRAME_SHAPE[1] * FRAME_SHAPE[2]
SMALL_CAP = 4 << 20
FRAME_CAP = 32 << 20
BATCH = 256
_names = iter(range(1 << 30))
Result = tuple[int, int, float]  # messages, bytes, seconds


def fresh_name() -> str:
    """A channel name no other run uses."""
    return f"py-bench-{os.getpid()}-{next(_names)}"


# ---- producers, run in a child process -------------------------------------------------


def py_produce(name: str, count: int, size: int, cap: int, mode: str) -> None:
    """Python producer: write() per message, or write_many() of 256 at a time."""
    import shm_channel

    msg = b"\xab" * size
    with shm_channel.Producer(name, cap) as p:
        if mode == "batch":
            chunk = [msg] * BATCH
            for _ in range(count // BATCH):
                p.write_many(chunk)
            if count % BATCH:
                p.write_many(chunk[: count % BATCH])
        else:
            write = p.write
            for _ in range(count):
                write(msg)


def pipe_produce(conn: Connection, count: int, size: int) -> None:
    """multiprocessing.Pipe producer: send_bytes per message, then an empty one."""
    msg = b"\xab" * size
    send = conn.send_bytes
    for _ in range(count):
        send(msg)
    send(b"")  # end


def queue_produce(queue: Queue, count: int, size: int) -> None:
    """multiprocessing.Queue producer: put per message, then None."""
    msg = b"\xab" * size
    put = queue.put
    for _ in range(count):
        put(msg)
    put(None)  # end


# ---- consumers, in this process ----------------------------------------------------------


def start_py_producer(name: str, count: int, size: int, cap: int, mode: str) -> Popen:
    """py_produce() in a fresh interpreter."""
    code = (
        f"import sys; sys.path.insert(0, {str(HERE)!r}); import bench; "
        f"bench.py_produce({name!r}, {count}, {size}, {cap}, {mode!r})"
    )
    return subprocess.Popen([sys.executable, "-c", code])


def consume_py(name: str, cap: int, mode: str, start: Callable[[], Popen]) -> Result:
    """Open the consumer, start the producer, and read until end-of-stream: read()
    (single), read_many() (batch), read_into() or peek_array() (frames).
    """
    import shm_channel

    n = nbytes = 0
    t0 = 0.0
    with shm_channel.Consumer(name, cap) as c:
        child = start()
        try:
            if mode == "single":
                read = c.read
                first = read(timeout=30)
                t0 = time.perf_counter()
                n, nbytes = 1, len(first)
                size = len(first)
                try:
                    while True:
                        read()
                        n += 1
                except shm_channel.EndOfStream:
                    pass
                nbytes = n * size
            elif mode == "batch":
                read_many = c.read_many
                got = read_many(4096, timeout=30)
                t0 = time.perf_counter()
                n = len(got)
                size = len(got[0])
                try:
                    while True:
                        n += len(read_many(4096))
                except shm_channel.EndOfStream:
                    pass
                nbytes = n * size
            else:
                import numpy as np

                if mode == "read_into":
                    frame = np.empty(FRAME_SHAPE, np.uint8)
                    seqs = frame.reshape(-1)[:8].view("<u8")
                    c.read_into(frame, timeout=30)
                    t0 = time.perf_counter()
                    n = 1
                    try:
                        while True:
                            c.read_into(frame)
                            assert seqs[0] == n
                            n += 1
                    except shm_channel.EndOfStream:
                        pass
                else:  # peek_array
                    with c.peek_array(np.uint8, FRAME_SHAPE, timeout=30):
                        t0 = time.perf_counter()
                    n = 1
                    try:
                        while True:
                            with c.peek_array(np.uint8, FRAME_SHAPE) as view:
                                assert view.reshape(-1)[:8].view("<u8")[0] == n
                            n += 1
                    except shm_channel.EndOfStream:
                        pass
                nbytes = n * FRAME
            dt = time.perf_counter() - t0
        finally:
            if child.wait(120) != 0:
                raise RuntimeError(f"producer failed: {child.args}")
    return n, nbytes, dt


def run_pipe(count: int, size: int) -> Result:
    """multiprocessing.Pipe between this process and a forked producer."""
    ctx = multiprocessing.get_context("fork")
    recv_end, send_end = ctx.Pipe(duplex=False)
    proc = ctx.Process(target=pipe_produce, args=(send_end, count, size))
    proc.start()
    recv = recv_end.recv_bytes
    recv()
    t0 = time.perf_counter()
    n = 1
    while recv():
        n += 1
    dt = time.perf_counter() - t0
    proc.join()
    return n, n * size, dt


def run_queue(count: int, size: int) -> Result:
    """multiprocessing.Queue between this process and a forked producer."""
    ctx = multiprocessing.get_context("fork")
    queue = ctx.Queue(maxsize=10000)
    proc = ctx.Process(target=queue_produce, args=(queue, count, size))
    proc.start()
    get = queue.get
    get()
    t0 = time.perf_counter()
    n = 1
    while get() is not None:
        n += 1
    dt = time.perf_counter() - t0
    proc.join()
    return n, n * size, dt


def build_c_peer(tmp: Path) -> Path | None:
    """Compile c_peer.c against the library the package loaded; None without a compiler."""
    import shm_channel

    cc = shutil.which("cc") or shutil.which("gcc")
    lib = Path(shm_channel.library_path)
    if cc is None or not lib.is_absolute():
        print(f"(no C compiler, or the library has no path: {lib}); C cases skipped")
        return None
    exe = tmp / "c_peer"
    include = REPO / "c" / "include"
    src = HERE / "c_peer.c"
    rpath = f"-Wl,-rpath,{lib.parent}"
    subprocess.run(
        [cc, "-O2", "-std=c11", f"-I{include}", str(src), str(lib), rpath, "-o", str(exe)],
        check=True,
    )
    return exe


def start_c_producer(exe: Path, name: str, count: int, size: int, cap: int, mode: str) -> Popen:
    """The C producer in a child process."""
    return subprocess.Popen([str(exe), "produce", name, str(count), str(size), str(cap), mode])


def case_python(exe: Path | None, size: int, count: int, cap: int, mode: str) -> Result:
    """Python consumer (this process) of a Python producer, or of the C one if `exe`."""
    name = fresh_name()
    how = "batch" if mode == "batch" else "single"
    if exe is None:
        return consume_py(name, cap, mode, lambda: start_py_producer(name, count, size, cap, how))
    return consume_py(name, cap, mode, lambda: start_c_producer(exe, name, count, size, cap, how))


def case_c_to_c(exe: Path, count: int, size: int, cap: int, mode: str) -> Result:
    """C producer and C consumer (reads or peeks), timed by the consumer."""
    name = fresh_name()
    cmd = [str(exe), "consume", name, str(cap), mode]
    cons = subprocess.Popen(cmd, stdout=subprocess.PIPE, text=True)
    time.sleep(0.05)
    prod = start_c_producer(exe, name, count, size, cap, "single")
    out, _ = cons.communicate(timeout=120)
    if prod.wait(120) or cons.returncode:
        raise RuntimeError("C peers failed")
    n, nbytes, dt, _ = out.split()
    return int(n), int(nbytes), float(dt)


def run_case(case: Callable[[], Result]) -> Result:
    """One run of `case`; channels it left behind are removed."""
    import shm_channel

    result = case()
    for entry in os.listdir(shm_channel.channel_dir()):
        if entry.startswith(f"py-bench-{os.getpid()}-"):
            with contextlib.suppress(OSError):
                shm_channel.unlink(entry, force=True)
    return result


def main() -> int:
    """Run every case and print the tables."""
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--quick", action="store_true", help="fewer messages (a smoke test)")
    ap.add_argument("--repeat", type=int, default=3, help="rounds (every case once per round)")
    ap.add_argument("--json", type=Path, help="also write the results here")
    args = ap.parse_args()
    scale = 0.1 if args.quick else 1.0

    import shm_channel

    print(f"shm_channel {shm_channel.__version__}, library {shm_channel.library_path}")
    load = os.getloadavg()[0]
    print(f"Python {sys.version.split()[0]}, {os.cpu_count()} CPUs, load average {load:.1f}")
    cases: list[tuple[str, Callable[[], Result]]] = []
    tmp = tempfile.TemporaryDirectory()
    exe = build_c_peer(Path(tmp.name))
    for size in (64, 4096):
        k = (1.0 if size == 64 else 0.5) * scale
        cases.append((f"{size} mp.Pipe", partial(run_pipe, int(200_000 * k), size)))
        for mode, count in (("single", int(300_000 * k)), ("batch", int(3_000_000 * k))):
            cases.append(
                (f"{size} py->py {mode}", partial(case_python, None, size, count, SMALL_CAP, mode))
            )
            if exe:
                cases.append(
                    (
                        f"{size} c->py {mode}",
                        partial(case_python, exe, size, count, SMALL_CAP, mode),
                    )
                )
        cases.append((f"{size} mp.Queue", partial(run_queue, int(100_000 * k), size)))
    if exe:
        n = max(20, int(300 * scale))
        for mode, cmode in (("read_into", "read"), ("peek_array", "peek")):
            cases.append((f"frames c->c {cmode}",
                          partial(case_c_to_c, exe, n, FRAME, FRAME_CAP, cmode)))  # fmt: skip
            cases.append((f"frames c->py {mode}",
                          partial(case_python, exe, FRAME, n, FRAME_CAP, mode)))  # fmt: skip

    # Rounds: every case once per round, so that each ratio compares runs made close in time
    # (the median ratio over the rounds is reported, next to the best rate).
    rates: dict[str, list[float]] = {key: [] for key, _ in cases}
    bytes_per_msg: dict[str, float] = {}
    for _ in range(args.repeat):
        for key, case in cases:
            n_msgs, nbytes, dt = run_case(case)
            rates[key].append(n_msgs / dt)
            bytes_per_msg[key] = nbytes / n_msgs
    tmp.cleanup()

    def ratio(key: str, base: str) -> float:
        return statistics.median(a / b for a, b in zip(rates[key], rates[base]))

    print(f"load average {os.getloadavg()[0]:.1f} at the end (the machine may be shared)\n")
    print(f"best of {args.repeat} rounds; ratios: median over the rounds of same-round ratios\n")
    print("| case | messages/s | MB/s | vs Pipe | vs Queue |")
    print("|---|---:|---:|---:|---:|")
    for size in (64, 4096):
        for case in ("py->py single", "c->py single", "py->py batch", "c->py batch", "mp.Pipe",
                     "mp.Queue"):  # fmt: skip
            key = f"{size} {case}"
            if key in rates:
                best = max(rates[key])
                print(f"| {size} B {case} | {best / 1e6:.3f} M "
                      f"| {best * bytes_per_msg[key] / 1e6:.0f} "
                      f"| {ratio(key, f'{size} mp.Pipe'):.1f}x "
                      f"| {ratio(key, f'{size} mp.Queue'):.1f}x |")  # fmt: skip
    if "frames c->c read" in rates:
        print("\n| 6,220,800-byte frames | frames/s | GB/s | vs C |")
        print("|---|---:|---:|---:|")
        for c_key, py_key in (("frames c->c read", "frames c->py read_into"),
                              ("frames c->c peek", "frames c->py peek_array")):  # fmt: skip
            for key in (c_key, py_key):
                best = max(rates[key])
                print(f"| {key} | {best:.0f} | {best * FRAME / 1e9:.2f} "
                      f"| {ratio(key, c_key):.2f}x |")  # fmt: skip
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps({"rates": rates, "bytes_per_msg": bytes_per_msg}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
