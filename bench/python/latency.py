#!/usr/bin/env python3
"""Latencies of the Python binding that the tests only bound loosely (issue 18): tests run
on loaded machines and establish states, so the tight numbers are measured here.

    python bench/python/latency.py [--rounds N] [--json FILE]

Cases, each repeated --rounds times (median and worst reported, against a target):

- close_stop: close() from another thread while a read() is blocked, until that read raises
  ChannelClosedError (a blocking call is made of C waits of at most 0.1 s; the read blocked
  just before, so nearly a whole one). Target 0.15 s.
- ctrl_c: SIGINT to a process blocked in read(), until it exits through KeyboardInterrupt.
  Target 0.5 s (including the interpreter's exit).
- gil_gap: the longest pause of a thread spinning in Python while another thread is blocked
  in read() for 0.5 s (a GIL held in C would show as pauses of a whole 0.1 s wait).
  Target 0.075 s.
- write_ns, read_ns: one write() and one read() of 64 bytes, in one process, best round
  (the cost per call of the binding; no target, to compare runs).

Exits 1 if a median misses its target.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import signal
import statistics
import subprocess
import sys
import threading
import time

import shm_channel as sc

TARGETS = {"close_stop": 0.15, "ctrl_c": 0.5, "gil_gap": 0.075}
CHILD = """
import sys, shm_channel
c = shm_channel.Consumer(sys.argv[1], 4096)
print("ready", flush=True)
try:
    c.read()
except KeyboardInterrupt:
    sys.exit(3)
"""
_names = iter(range(1 << 30))


def fresh_name() -> str:
    """A channel name no other run uses."""
    return f"py-latency-{os.getpid()}-{next(_names)}"


def wait_asleep(name: str, role: str, before: int) -> None:
    """Until `role` sleeps on the futex more often than `before` (it is blocked)."""
    while getattr(sc.stat(name), f"{role}_sleeps") <= before:
        time.sleep(0.001)


def close_stop() -> float:
    """Seconds from close() in this thread to the blocked read raising in another."""
    name = fresh_name()
    c = sc.Consumer(name, 4096)
    c.set_spin(0)
    raised: list[float] = []

    def reader() -> None:
        try:
            c.read()
        except sc.ChannelClosedError:
            raised.append(time.perf_counter())

    t = threading.Thread(target=reader)
    t.start()
    wait_asleep(name, "consumer", 0)
    t0 = time.perf_counter()
    c.close()
    t.join()
    with contextlib.suppress(FileNotFoundError):
        sc.unlink(name, force=True)
    return raised[0] - t0


def ctrl_c() -> float:
    """Seconds from SIGINT to the exit of a process blocked in read()."""
    name = fresh_name()
    child = subprocess.Popen([sys.executable, "-c", CHILD, name], stdout=subprocess.PIPE, text=True)
    assert child.stdout is not None
    assert child.stdout.readline().strip() == "ready"
    wait_asleep(name, "consumer", 0)
    t0 = time.perf_counter()
    child.send_signal(signal.SIGINT)
    rc = child.wait()
    dt = time.perf_counter() - t0
    assert rc == 3, rc
    with contextlib.suppress(FileNotFoundError):
        sc.unlink(name, force=True)
    return dt


def gil_gap() -> float:
    """The longest pause of this thread while another is blocked in read() for 0.5 s."""
    name = fresh_name()
    with sc.Producer(name, 4096), sc.Consumer(name, 4096) as c:
        c.set_spin(0)

        def reader() -> None:
            with contextlib.suppress(TimeoutError):
                c.read(timeout=0.5)

        t = threading.Thread(target=reader)
        t.start()
        last = time.perf_counter()
        gap = 0.0
        while t.is_alive():
            now = time.perf_counter()
            gap = max(gap, now - last)
            last = now
    return gap


def per_call(n: int = 100_000) -> tuple[float, float]:
    """(ns per write(), ns per read()) of 64-byte messages, one process."""
    name = fresh_name()
    with sc.Producer(name, 1 << 23) as p, sc.Consumer(name, 1 << 23) as c:
        w, r, m = p.write, c.read, b"x" * 64
        t0 = time.perf_counter_ns()
        for _ in range(n):
            w(m)
        t1 = time.perf_counter_ns()
        for _ in range(n):
            r()
        t2 = time.perf_counter_ns()
    return (t1 - t0) / n, (t2 - t1) / n


def main() -> int:
    """Run every case; 1 if a median misses its target."""
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--rounds", type=int, default=10, help="repetitions of each case (10)")
    ap.add_argument("--json", help="also write the results to this file")
    args = ap.parse_args()
    if args.rounds < 1:
        ap.error("--rounds must be at least 1")
    results: dict[str, dict[str, float]] = {}
    for case in (close_stop, ctrl_c, gil_gap):
        runs = [case() for _ in range(args.rounds)]
        results[case.__name__] = {"median": statistics.median(runs), "worst": max(runs)}
    calls = [per_call() for _ in range(args.rounds)]
    results["write_ns"] = {"best": min(w for w, _ in calls)}
    results["read_ns"] = {"best": min(r for _, r in calls)}
    failed = False
    for case, res in results.items():
        target = TARGETS.get(case)
        verdict = ""
        if target is not None:
            ok = res["median"] <= target
            failed |= not ok
            verdict = f"  target {target} s: {'ok' if ok else 'MISSED'}"
        print(f"{case:11} " + "  ".join(f"{k} {v:.4g}" for k, v in res.items()) + verdict)
    if args.json:
        with open(args.json, "w") as f:
            json.dump(results, f, indent=2)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
