#!/usr/bin/env python3
"""64-byte request/response round trips from Python (issue 12), three ways, in one run:

- ``shm_channel``: a :class:`shm_channel.Server` answering :class:`shm_channel.Client` s
  (one call each side, blocking: spin, then futex);
- ``pipe``: ``multiprocessing.Pipe`` ping-pong, one pipe per client, the server waiting on
  all of them with ``multiprocessing.connection.wait``;
- ``sysv_poll``: seed 004's approach (``sysv_ipc`` shared memory polled with
  ``time.sleep(1e-6)``), one 65-byte segment per client (a flag byte, then the payload),
  the server polling every segment in turn.

    python bench/python/service_rtt.py [--quick] [--clients 1,8,64] [--json FILE]

The server is this process; the clients run in min(N, 8) child processes of N/8 threads
each. Each client makes round trips for a fixed time after a common start; the table gives
all clients' round trips per second and the median time per round trip (over batches of 16,
so that a client descheduled on a loaded machine does not decide it), each the best of
--repeat interleaved rounds, and the ratios of shm_channel to the two others (same run, same
machine). Needs sysv_ipc (PyPI).
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import platform
import statistics
import subprocess
import threading
import time
from multiprocessing.connection import Connection, wait
from typing import Any

import shm_channel as sc

PAYLOAD = 64
MECHS = ("shm_channel", "pipe", "sysv_poll")
CTX = multiprocessing.get_context("fork")


def cpu_model() -> str:
    """The CPU's model name, as lscpu prints it."""
    try:
        out = subprocess.run(["lscpu"], capture_output=True, text=True, check=True).stdout
        for line in out.splitlines():
            if line.startswith("Model name:"):
                return line.split(":", 1)[1].strip()
    except (OSError, subprocess.CalledProcessError):
        pass
    return platform.processor() or "unknown"


# ---- clients (in the children) -----------------------------------------------------------


def client_loop(call: Any, go: Any, seconds: float) -> tuple[int, float, list[float]]:
    """Round trips of 64 bytes through call() for `seconds` after `go`: (count, elapsed,
    the time of each batch of 16 round trips).
    """
    msg = bytes(range(PAYLOAD))
    go.wait()
    n = 0
    batches = []
    start = last = time.perf_counter()
    end = start + seconds
    while True:
        for _ in range(16):
            if call(msg) != msg:
                raise AssertionError("wrong answer")
        n += 16
        now = time.perf_counter()
        batches.append(now - last)
        last = now
        if now >= end:
            return n, now - start, batches


def child(mech: str, handles: list[Any], go: Any, seconds: float, out: Any) -> None:
    """One client process: a thread per handle (a shm_channel name, a Connection or a
    sysv_ipc segment).
    """
    results: list[tuple[int, float, list[float]]] = []

    def run(h: Any) -> None:
        if mech == "shm_channel":
            cli = sc.Client(h)
            cli.wait_server(30)
            results.append(client_loop(lambda m: cli.request(m, 30), go, seconds))
            cli.close()
        elif mech == "pipe":

            def call(m: bytes) -> bytes:
                h.send_bytes(m)
                return h.recv_bytes()

            results.append(client_loop(call, go, seconds))
            h.close()
        else:

            def call(m: bytes) -> bytes:  # seed 004: write, then poll with sleep(1e-6)
                h.write(m, 1)
                h.write(b"\x01", 0)
                while h.read(1, 0) != b"\x02":
                    time.sleep(1e-6)
                return h.read(PAYLOAD, 1)

            results.append(client_loop(call, go, seconds))
            h.write(b"\x03", 0)  # done

    threads = [threading.Thread(target=run, args=(h,)) for h in handles]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    out.put(results)


# ---- servers (this process) --------------------------------------------------------------


def serve_shm(srv: sc.Server, finished: Any, n: int) -> None:
    """Echo every request until all `n` clients finished."""
    while True:
        try:
            req = srv.receive(0.05)
        except TimeoutError:
            if finished.value >= n:
                return
            continue
        req.respond(req.data)


def serve_pipe(conns: list[Connection]) -> None:
    """Echo on every pipe until each is closed by its client."""
    live = list(conns)
    while live:
        for c in wait(live):
            try:
                c.send_bytes(c.recv_bytes())  # type: ignore[union-attr]
            except EOFError:
                live.remove(c)  # type: ignore[arg-type]


def serve_sysv(segs: list[Any]) -> None:
    """Seed 004's server, for many segments: poll each, sleep(1e-6) when none was ready."""
    live = list(segs)
    while live:
        busy = False
        for m in list(live):
            flag = m.read(1, 0)
            if flag == b"\x01":
                m.write(m.read(PAYLOAD, 1), 1)
                m.write(b"\x02", 0)
                busy = True
            elif flag == b"\x03":
                live.remove(m)
        if not busy:
            time.sleep(1e-6)


def run_case(mech: str, n: int, seconds: float) -> dict[str, Any]:
    """One mechanism with `n` clients: this process serves, children call."""
    procs = min(n, 8)
    per = n // procs
    go = CTX.Event()
    out = CTX.Queue()
    finished = CTX.Value("i", 0)
    name = f"bench-svc-{os.getpid()}-{mech}-{n}"
    srv = None
    segs: list[Any] = []
    conns: list[Connection] = []
    groups: list[list[Any]] = []
    if mech == "shm_channel":
        srv = sc.Server(name, max_request=PAYLOAD, max_response=PAYLOAD, max_clients=max(n, 1))
        groups = [[name] * per for _ in range(procs)]
    elif mech == "pipe":
        for _ in range(procs):
            pairs = [CTX.Pipe() for _ in range(per)]
            conns += [a for a, _ in pairs]
            groups.append([b for _, b in pairs])
    else:
        import sysv_ipc

        for _ in range(procs):
            g = [
                sysv_ipc.SharedMemory(None, sysv_ipc.IPC_CREX, size=1 + PAYLOAD) for _ in range(per)
            ]
            for m in g:
                m.write(b"\x00", 0)
            segs += g
            groups.append(g)
    children = [
        CTX.Process(target=child, args=(mech, g, go, seconds, out), daemon=True) for g in groups
    ]
    for c in children:
        c.start()
    if mech == "pipe":
        for g in groups:  # the children have their ends
            for b in g:
                b.close()
    results: list[tuple[int, float, list[float]]] = []
    go.set()
    try:
        if srv is not None:
            collector = threading.Thread(
                target=lambda: [results.extend(out.get()) for _ in children]
            )
            collector.start()

            def watch() -> None:
                collector.join()
                finished.value = n

            threading.Thread(target=watch, daemon=True).start()
            serve_shm(srv, finished, n)
            collector.join()
        elif mech == "pipe":
            serve_pipe(conns)
            for _ in children:
                results += out.get()
        else:
            serve_sysv(segs)
            for _ in children:
                results += out.get()
    finally:
        for c in children:
            c.join(30)
        if srv is not None:
            srv.close()
        for m in segs:
            m.detach()
            m.remove()
    total = sum(r[0] for r in results)
    elapsed = max(r[1] for r in results)
    # The median batch, not the mean: on a loaded machine a client may be descheduled for
    # a whole time slice, which says nothing about the mechanism.
    per_rt = statistics.median(b / 16 for r in results for b in r[2])
    return {
        "mech": mech,
        "clients": n,
        "round_trips": total,
        "rt_per_s": total / elapsed,
        "us_per_rt": per_rt * 1e6,
    }


def main() -> None:
    """Every case, then the table and the ratios."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="0.3 s per case instead of 1 s")
    ap.add_argument("--clients", default="1,8,64", help="comma-separated client counts")
    ap.add_argument("--repeat", type=int, default=3, help="rounds over every case (best kept)")
    ap.add_argument("--json", help="write the results here")
    args = ap.parse_args()
    seconds = 0.3 if args.quick else 1.0
    counts = [int(x) for x in args.clients.split(",")]
    cpu = cpu_model()
    with open("/proc/loadavg") as f:
        load = f.read().split()[0]
    print(f"64 B round trips, Python; CPU: {cpu}; {os.cpu_count()} CPUs; load {load}")
    rows = []
    for n in counts:
        best: dict[str, dict[str, Any]] = {}
        for _ in range(args.repeat):  # interleaved: each round runs every mechanism
            for mech in MECHS:
                r = run_case(mech, n, seconds)
                b = best.setdefault(mech, r)
                b["rt_per_s"] = max(b["rt_per_s"], r["rt_per_s"])
                b["us_per_rt"] = min(b["us_per_rt"], r["us_per_rt"])
        rows += best.values()
    print(f"best of {args.repeat} interleaved rounds; us/round trip: median over 16-trip batches")
    print(f"{'clients':>7} {'mechanism':<12} {'round trips/s':>14} {'us/round trip':>14}")
    for r in rows:
        print(f"{r['clients']:>7} {r['mech']:<12} {r['rt_per_s']:>14,.0f} {r['us_per_rt']:>14.1f}")
    ratios = {}
    for n in counts:
        by = {r["mech"]: r for r in rows if r["clients"] == n}
        for other in ("pipe", "sysv_poll"):
            ratios[f"{n}:{other}"] = by["shm_channel"]["rt_per_s"] / by[other]["rt_per_s"]
        print(
            f"{n} client(s): shm_channel = {ratios[f'{n}:pipe']:.2f}x multiprocessing.Pipe, "
            f"{ratios[f'{n}:sysv_poll']:.2f}x sysv_ipc polling (round trips/s); median "
            f"round trip {by['shm_channel']['us_per_rt']:.1f} vs {by['pipe']['us_per_rt']:.1f} "
            f"vs {by['sysv_poll']['us_per_rt']:.1f} us"
        )
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"cpu": cpu, "load": load, "rows": rows, "ratios": ratios}, f, indent=1)


if __name__ == "__main__":
    main()
