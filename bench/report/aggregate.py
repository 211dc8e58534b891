#!/usr/bin/env python3
"""Aggregate the parts of the issue-6 comparison into one report.

    aggregate.py RESULTS_DIR [--quick] [--build-seconds N]

Reads RESULTS_DIR/c.json (shm_channel_bench --json), rust.json (bench/rust), python.json
(bench/python/compare.py) and meta.json (bench/report/runpart.py), whichever exist; prints
the targets and the main tables; writes RESULTS_DIR/REPORT.md, throughput.png and
latency.png. Every figure is the median of its runs, with the spread (max/min of the runs);
every ratio is taken against a baseline measured in the same run of run.sh.

A figure is flagged noisy when its runs, or its baseline's, spread more than 1.3x, when the
load average was above 0.5 before the run started, or when other processes used more than
0.5 CPU while its part ran (runpart.py's foreign_cpu).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import shutil
import statistics
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

SPREAD_LIMIT = 1.3
LOAD_LIMIT = 0.5
FOREIGN_LIMIT = 0.5
IDLE_LIMIT = 1.0  # % of one CPU counted as "near zero"
SIZES = (64, 1024, 4096, 65536, 1048576, 6220800)
REPO = Path(__file__).resolve().parents[2]


# ---- data ------------------------------------------------------------------------------------


@dataclass
class Stat:
    runs: list[float]

    @property
    def ok(self) -> bool:
        return bool(self.runs)

    @property
    def med(self) -> float:
        return statistics.median(self.runs) if self.runs else float("nan")

    @property
    def lo(self) -> float:
        return min(self.runs) if self.runs else float("nan")

    @property
    def hi(self) -> float:
        return max(self.runs) if self.runs else float("nan")

    @property
    def spread(self) -> float:
        return self.hi / self.lo if self.runs and self.lo > 0 else float("nan")


@dataclass
class Fig:
    part: str  # c, rust, python
    kind: str  # tp, rtt
    id: str
    label: str
    group: str
    size: int
    v: Stat  # msgs/s (tp) or per-run median ns (rtt)
    p99: Stat = field(default_factory=lambda: Stat([]))
    p999: Stat = field(default_factory=lambda: Stat([]))
    max: Stat = field(default_factory=lambda: Stat([]))
    error: str | None = None

    @property
    def gbps(self) -> float:
        return self.v.med * self.size / 1e9


class Data:
    def __init__(self, out: Path) -> None:
        self.out = out
        self.figs: list[Fig] = []
        self.raw: dict[str, Any] = {}
        self.meta: list[dict[str, Any]] = []
        self.idle: list[dict[str, Any]] = []
        for part in ("c", "rust", "python"):
            p = out / f"{part}.json"
            if p.exists():
                try:
                    self.raw[part] = json.loads(p.read_text())
                except json.JSONDecodeError as e:
                    print(f"aggregate: {p}: {e}", file=sys.stderr)
                    continue
                self._load(part, self.raw[part])
        if (out / "meta.json").exists():
            self.meta = json.loads((out / "meta.json").read_text())
        self.load_start = self.load_measure = None
        if (out / "loadavg-start.txt").exists():
            self.load_start = float((out / "loadavg-start.txt").read_text().split()[0])
        if (out / "loadavg-measure.txt").exists():
            self.load_measure = float((out / "loadavg-measure.txt").read_text().split()[0])
        self.idle = self.raw.get("python", {}).get("idle", [])

    def _load(self, part: str, js: dict[str, Any]) -> None:
        for r in js.get("results", []):
            rtt = r["kind"] == "roundtrip"

            def runs(key: str, r: dict[str, Any] = r) -> Stat:
                v = r.get(key)
                return Stat([float(x) for x in v["runs"]] if isinstance(v, dict) else [])

            f = Fig(
                part=part,
                kind="rtt" if rtt else "tp",
                id=r["id"],
                label=r.get("label", r["id"]),
                group=r.get("group", ""),
                size=int(r.get("size", 64)),
                v=runs("median") if rtt else runs("msgs_per_s"),
                error=r.get("error"),
            )
            if rtt:
                f.p99, f.p999, f.max = runs("p99"), runs("p999"), runs("max")
            self.figs.append(f)

    def text(self, name: str) -> str:
        """A text file of the run (bench/callgrind.sh's output, ...), or ""."""
        p = self.out / name
        return p.read_text() if p.exists() else ""

    def get(self, part: str, kind: str, fid: str, size: int = 64) -> Fig | None:
        for f in self.figs:
            if f.part == part and f.kind == kind and f.id == fid and f.size == size:
                return f if f.v.ok else None
        return None

    def part_meta(self, part: str) -> dict[str, Any]:
        for m in self.meta:
            if m["part"] == part:
                return m
        return {}

    def part_noisy(self, part: str) -> list[str]:
        why = []
        if self.load_start is not None and self.load_start > LOAD_LIMIT:
            why.append(f"load average {self.load_start:.2f} before the run")
        fc = self.part_meta(part).get("foreign_cpu")
        if fc is not None and fc > FOREIGN_LIMIT:
            why.append(f"other processes used {fc:.2f} CPUs during the {part} part")
        return why


def noisy(d: Data, *figs: Fig | None) -> list[str]:
    why: list[str] = []
    for f in figs:
        if f is None:
            continue
        if f.v.spread > SPREAD_LIMIT:
            why.append(f"{f.part} {f.id} {size_str(f.size)}: runs spread {f.v.spread:.2f}x")
        for w in d.part_noisy(f.part):
            if w not in why:
                why.append(w)
    return why


# ---- formatting ------------------------------------------------------------------------------


def size_str(n: int) -> str:
    if n == 6220800:
        return "6,220,800 B"
    if n >= 1 << 20 and n % (1 << 20) == 0:
        return f"{n >> 20} MiB"
    if n >= 1024 and n % 1024 == 0:
        return f"{n >> 10} KiB"
    return f"{n} B"


def si(v: float) -> str:
    if v != v:
        return "-"
    for unit, k in (("G", 1e9), ("M", 1e6), ("k", 1e3)):
        if abs(v) >= k:
            x = v / k
            return f"{x:.3g}{unit}" if x < 100 else f"{x:.0f}{unit}"
    return f"{v:.3g}"


def ns(v: float) -> str:
    if v != v:
        return "-"
    if v >= 1e6:
        return f"{v / 1e6:.2f} ms"
    if v >= 1e4:
        return f"{v / 1e3:.1f} µs"
    return f"{v:.0f} ns"


def rx(v: float | None) -> str:
    return "-" if v is None or v != v else f"{v:.2f}x"


def rng(s: Stat, fmt: Any = si) -> str:
    if not s.ok:
        return "-"
    return f"{fmt(s.med)} [{fmt(s.lo)}–{fmt(s.hi)}]"


def ratio(a: Fig | None, b: Fig | None) -> float | None:
    if a is None or b is None or not b.v.med:
        return None
    return a.v.med / b.v.med


def md_table(head: list[str], rows: list[list[str]], align: str | None = None) -> str:
    align = align or "l" + "r" * (len(head) - 1)
    sep = ["---:" if a == "r" else "---" for a in align]
    out = ["| " + " | ".join(head) + " |", "| " + " | ".join(sep) + " |"]
    out += ["| " + " | ".join(r) + " |" for r in rows]
    return "\n".join(out)


def text_table(head: list[str], rows: list[list[str]]) -> str:
    w = [max(len(str(x)) for x in col) for col in zip(head, *rows)]
    lines = ["  ".join(str(x).ljust(w[i]) for i, x in enumerate(head))]
    lines.append("  ".join("-" * n for n in w))
    lines += ["  ".join(str(x).ljust(w[i]) for i, x in enumerate(r)) for r in rows]
    return "\n".join(lines)


# ---- goals (issue 14) and other figures ------------------------------------------------------

FRAME = 6220800
WAKE_TEST = "c/tests/test_wake_handshake.c"


def paired(a: Fig | None, b: Fig | None) -> tuple[float, float, float] | None:
    """Median [min, max] over rounds of a's run / b's run of the same round: the parts
    interleave their cases run by run, so run i of every case of one size ran in round i."""
    if a is None or b is None:
        return None
    rs = [x / y for x, y in zip(a.v.runs, b.v.runs) if y]
    return (statistics.median(rs), min(rs), max(rs)) if rs else None


def rust_pair(d: Data, a: str, b: str, size: int) -> dict[str, Any] | None:
    """One entry of rust.json's `pairs` (shm-channel-compare: a/b per round, one program)."""
    for p in d.raw.get("rust", {}).get("pairs", []):
        if p.get("a") == a and p.get("b") == b and int(p.get("size", 0)) == size and p.get("ratios"):
            return p
    return None


def counters(d: Data, kind: str, fid: str, size: int = 64) -> dict[str, int] | None:
    """The wait counters shm_channel_bench --json gives a stream case (summed over its runs)."""
    for r in d.raw.get("c", {}).get("results", []):
        if r.get("id") == fid and r.get("kind") == kind and int(r.get("size", 64)) == size:
            return r.get("counters")
    return None


def callgrind_c(text: str) -> tuple[float, float] | None:
    """(shm_channel write+read, minimal ring) instructions per pair, from bench/callgrind.sh."""
    ours = re.search(r"^shm_channel_write \+ shm_channel_read\s+([\d.]+)", text, re.M)
    ring = re.search(r"^minimal ring\b.*?\s([\d.]+)\s*$", text, re.M)
    return (float(ours.group(1)), float(ring.group(1))) if ours and ring else None


def callgrind_rust(text: str) -> dict[str, tuple[float, float]]:
    """{path: (Rust, C) instructions per message}, from bench/rust/callgrind.sh."""
    out = {}
    for m in re.finditer(r"^(copy|zerocopy|batch)\s+([\d.]+)\s+([\d.]+)\b", text, re.M):
        out[m.group(1)] = (float(m.group(2)), float(m.group(3)))
    return out


@dataclass
class Target:
    key: str
    what: str
    value: str
    baseline: str
    ratio: float | None
    limit: float | None
    higher_is_better: bool
    why_noisy: list[str]
    overlap: bool = False  # cross-part: the two figures' run ranges overlap
    lohi: tuple[float, float] | None = None  # min-max of the per-round ratios
    info: bool = False  # context, not one of issue 14's goals
    status: str | None = None  # a verdict that is not a ratio against a limit
    note: str = ""  # goal rows: what limits it, from this run's figures (shown when missed)
    ratio_str: str | None = None

    @property
    def met(self) -> bool | None:
        if self.status is not None:
            return None if self.status.startswith(("n/a", "see", "not")) else \
                not self.status.startswith("**missed")  # fmt: skip
        if self.ratio is None or self.limit is None:
            return None
        return self.ratio >= self.limit if self.higher_is_better else self.ratio <= self.limit

    @property
    def limit_str(self) -> str:
        if self.limit is None:
            return "-"
        if self.key == "wake":
            return f"< {self.limit:g} a message"
        return f"{'≥' if self.higher_is_better else '≤'} {self.limit:g}" + \
            (" %" if self.key == "idle" else "x")  # fmt: skip

    @property
    def ratio_text(self) -> str:
        if self.ratio_str is not None:
            return self.ratio_str
        if self.ratio is None:
            return "-"
        if self.key == "idle":
            return f"{self.ratio:.3f} %"
        r = f"{self.ratio:.2f}x"
        return r + (f" [{self.lohi[0]:.2f}–{self.lohi[1]:.2f}]" if self.lohi else "")

    @property
    def verdict(self) -> str:
        if self.status is not None:
            return self.status
        m = self.met
        if self.info:
            if self.limit is None:
                return "(info)" if self.ratio is not None else "n/a"
            return "n/a" if m is None else "(info: would meet)" if m else "(info: short)"
        v = "n/a" if m is None else "met" if m else "**missed**"
        return v + (" (run ranges overlap)" if self.overlap and m is False else "")


def per_ns(f: Fig | None) -> str:
    return f"{1e9 / f.v.med:.0f} ns" if f and f.v.med else "?"


def rx3(p: tuple[float, float, float] | None) -> str:
    return "(not measured)" if p is None else f"{p[0]:.2f}x [{p[1]:.2f}–{p[2]:.2f}]"


def note_c64(d: Data) -> str:
    c = lambda fid: d.get("c", "tp", fid)  # noqa: E731
    spsc, copy, fen, batch = c("spsc_ring"), c("shm_copy"), c("spsc_fenced"), c("shm_batch")
    s = (f"Per 64 B message the minimal ring took {per_ns(spsc)} and write/read {per_ns(copy)} "
         "in this run. ")  # fmt: skip
    cg = callgrind_c(d.text("c-callgrind.txt"))
    if cg:
        s += (f"Instructions per write+read pair (callgrind, one process, exact whatever the "
              f"load; c-callgrind.txt of this run): {cg[0]:.0f} against the ring's {cg[1]:.0f} "
              f"({cg[0] / cg[1]:.2f}x). ")  # fmt: skip
    else:
        s += "(No instruction counts in this run: bench/callgrind.sh needs valgrind.) "
    if fen and spsc:
        s += (f"The ring with a seq_cst fence after each position store took {per_ns(fen)} "
              f"({rx3(paired(fen, spsc))} the ring's rate). ")  # fmt: skip
    s += ("Both touch the same cache lines per message; what write/read adds is instructions: "
          "the entry checks, the record header's validation (the segment is untrusted), the "
          "header counters, the wake check, the call through the PLT (bench/README.md, \"Where "
          "the time goes\"). ")  # fmt: skip
    if batch and spsc:
        s += f"The batch calls amortise them: shm_batch {rx3(paired(batch, spsc))} the ring. "
    return s + "Under load the two-process ratio swings with which side keeps up: read it with the instruction counts."


def note_rtt(d: Data) -> str:
    c = lambda fid: d.get("c", "rtt", fid)  # noqa: E731
    cl, ring, hdr, spin = c("cacheline"), c("spsc_ring"), c("spsc_hdr"), c("shm_spin")
    return ("A round trip through a ring is two hand-offs of two cache lines each (the position "
            "the receiver polls, then the record) where the bare floor moves one line per "
            f"hand-off. In this run the minimal ring measured {rx3(paired(ring, cl))} the floor "
            f"and ours {rx3(paired(spin, ring))} the ring's round trip; the prototype that polls "
            f"the record header instead (spsc_hdr) measured {rx3(paired(hdr, cl))} the floor: "
            "the layout change proposed in bench/README.md (\"Proposal\"). On a loaded machine a "
            "preempted spinner sets the median.")  # fmt: skip


def note_py(d: Data, fid: str) -> str:
    p = lambda x: d.get("python", "tp", x)  # noqa: E731
    a, pipe, ring = p(fid), p("mp_pipe"), p("py_ring")
    s = (f"Per 64 B message in this run: {per_ns(a)} against multiprocessing.Pipe's "
         f"{per_ns(pipe)} and the pure-Python shared-memory ring's {per_ns(ring)}. ")  # fmt: skip
    if fid == "py_single":
        s += ("Each write() and read() is a cffi ABI-mode call (through libffi) wrapped in "
              "Python, and read() makes a new bytes object per message; Pipe's send_bytes/"
              "recv_bytes are C methods with one system call each. The batch calls and "
              "iteration are the way past it.")  # fmt: skip
    else:
        s += ("Python runs once a batch (one cffi call), then each message costs its bytes "
              "object and the bench loop's own check of every message (as it does for Pipe).")  # fmt: skip
    return s


def note_rust(d: Data, a: str, b: str, path: str) -> str:
    p = rust_pair(d, a, b, 64)
    s = ""
    if p and p.get("producer_cpu_ratios"):
        cr = p["producer_cpu_ratios"]
        s += (f"The producing thread's CPU time per message, C's over Rust's, per round: "
              f"{statistics.median(cr):.2f}x [{min(cr):.2f}–{max(cr):.2f}]. ")  # fmt: skip
    cg = callgrind_rust(d.text("rust-callgrind.txt")).get(path)
    if cg:
        s += (f"Instructions per message (callgrind, rust-callgrind.txt of this run): Rust "
              f"{cg[0]:.0f}, C {cg[1]:.0f}")  # fmt: skip
        s += (": the same work, so the gap is not in the binding's instructions."
              if cg[0] <= cg[1] * 1.05 else f": Rust executes {cg[0] / cg[1]:.2f}x C's.")  # fmt: skip
    else:
        s += "(No instruction counts in this run: bench/rust/callgrind.sh needs valgrind.)"
    return s + " The Rust vs C section below has every pair with its spread."


def note_frames(d: Data) -> str:
    g = lambda fid: d.get("rust", "tp", fid, FRAME)  # noqa: E731
    ours, ice, mem = g("rs_zerocopy_poll"), g("ice_pubsub"), g("memcpy")
    slept = g("rs_zerocopy")
    gb = lambda f: f"{f.gbps:.2f} GB/s" if f else "?"  # noqa: E731
    cap = next((r.get("capacity") for r in d.raw.get("rust", {}).get("results", [])
                if r.get("id") == "rs_zerocopy" and r.get("size") == FRAME), None)  # fmt: skip
    return (f"1080p in this run: ours {gb(ours)}, iceoryx2 {gb(ice)}, the L3-resident copy "
            f"{gb(mem)} (ours {rx3(paired(ours, mem))} of it, iceoryx2 "
            f"{rx3(paired(ice, mem))}); ring {size_str(int(cap)) if cap else '?'}. Both write "
            "every byte once, check in place and busy-poll for the next frame (iceoryx2's "
            "subscriber loop never sleeps; ours with a spin longer than a frame). With the "
            f"library's default 20 us spin ours sleeps between frames: {gb(slept)} "
            f"({rx3(paired(slept, ice))} iceoryx2's), the producer paying a wake call into a "
            "sleeping CPU per frame (bench/README.md, 1080p).")  # fmt: skip


def goals(d: Data) -> list[Target]:
    """One row per goal of issue 14, in its order."""
    t: list[Target] = []
    c = lambda fid, kind="tp": d.get("c", kind, fid)  # noqa: E731

    def row(key: str, what: str, a: Fig | None, b: Fig | None, limit: float, hib: bool,
            fmt: Any, note: str = "") -> None:  # fmt: skip
        p = paired(a, b)
        t.append(Target(key, what, fmt(a) if a else "-", fmt(b) if b else "-",
                        p[0] if p else None, limit, hib, noisy(d, a, b),
                        lohi=(p[1], p[2]) if p else None, note=note))  # fmt: skip

    rate = lambda f: f"{si(f.v.med)} msg/s"  # noqa: E731
    lat = lambda f: ns(f.v.med)  # noqa: E731
    row("c64", "C 64 B write/read vs the minimal SPSC ring", c("shm_copy"), c("spsc_ring"), 1.0,
        True, rate, note_c64(d))  # fmt: skip
    row("rtt_cl", "C 64 B spinning round trip vs the bare cache-line round trip",
        c("shm_spin", "rtt"), c("cacheline", "rtt"), 1.6, False, lat, note_rtt(d))  # fmt: skip
    t.append(wake_goal(d))
    p = lambda fid: d.get("python", "tp", fid)  # noqa: E731
    for key, fid, what, limit in (
        ("py1", "py_single", "Python 64 B single call (write/read) vs multiprocessing.Pipe", 3.0),
        ("pyiter", "py_iter", "Python 64 B iteration (`for msg in consumer`) vs multiprocessing.Pipe", 20.0),
        ("pyb", "py_batch", "Python 64 B batch calls (write_many/read_many) vs multiprocessing.Pipe", 20.0),
    ):  # fmt: skip
        row(key, what, p(fid), p("mp_pipe"), limit, True, rate, note_py(d, fid))
    for a, b, path, what in (("rs_copy", "c_copy", "copy", "write/read"),
                             ("rs_zerocopy", "c_zerocopy", "zerocopy", "reserve/peek"),
                             ("rs_batch", "c_batch", "batch", "write_batch/read_batch")):  # fmt: skip
        t.append(pair_goal(d, "rust", f"Rust vs C 64 B {what}, paired in one program", a, b, 64,
                           0.95, note_rust(d, a, b, path)))  # fmt: skip
    t.append(pair_goal(d, "frames", "1080p frames, Rust zero-copy vs iceoryx2 (same run, both busy-polling)",
                       "rs_zerocopy_poll", "ice_pubsub", FRAME, 1.0, note_frames(d)))  # fmt: skip
    t.append(pair_goal(d, "frames_l3", "1080p frames, Rust zero-copy vs the L3-resident copy (info: the fixed floor)",
                       "rs_zerocopy_poll", "memcpy", FRAME, None, ""))  # fmt: skip
    t.append(pair_goal(d, "frames_sleep", "1080p frames, Rust zero-copy with the default spin (sleeps between frames) vs iceoryx2 (info)",
                       "rs_zerocopy", "ice_pubsub", FRAME, None, ""))  # fmt: skip
    t += kind_goals(d)
    return t


def pair_goal(d: Data, key: str, what: str, a: str, b: str, size: int, limit: float | None,
              note: str) -> Target:  # fmt: skip
    fa, fb = d.get("rust", "tp", a, size), d.get("rust", "tp", b, size)
    val = (lambda f: f"{f.gbps:.2f} GB/s") if size >= 1 << 20 else (lambda f: f"{si(f.v.med)} msg/s")
    p = rust_pair(d, a, b, size)
    why = noisy(d, fa, fb)
    if p and min(p["ratios"]) > 0 and max(p["ratios"]) / min(p["ratios"]) > SPREAD_LIMIT:
        why.append(f"rust {a}/{b} {size_str(size)}: per-round ratios spread "
                   f"{max(p['ratios']) / min(p['ratios']):.2f}x")  # fmt: skip
    return Target(key, what, val(fa) if fa else "-", val(fb) if fb else "-",
                  float(p["median"]) if p else None, limit, True, why,
                  lohi=(float(p["min"]), float(p["max"])) if p else None, note=note,
                  info=limit is None)  # fmt: skip


def wake_goal(d: Data) -> Target:
    """No lost wake-up, no wake system call while nobody sleeps: from the C part's wait
    counters (shm_channel_bench --json `counters`). Lost: shm_block's round trips, each a
    sleep and a wake, all completed (a lost wake-up hangs the run: no timeout in its calls).
    Blind wakes: in the spinning cases a wake call on every publish would make about one per
    message; the guarantee leaves only those that follow a sleeper's announcement."""
    what = "Wake guarantee: no lost wake-up; no wake system call while nobody sleeps"
    blk = [r for r in d.raw.get("c", {}).get("results", []) if r.get("id") == "shm_block"]
    bc = counters(d, "roundtrip", "shm_block")
    spin = [x for x in (counters(d, "throughput", "shm_copy"), counters(d, "roundtrip", "shm_spin")) if x]
    if not blk or bc is None or not spin:
        return Target("wake", what, "not measured (no C part, or no counters)", "-", None, None, True, [],
                      status=f"not measured by this run: asserted by the suite ({WAKE_TEST})")  # fmt: skip
    err = blk[0].get("error")
    sleeps_b = bc["consumer_sleeps"] + bc["producer_sleeps"]
    wakes = sum(x["producer_wakes"] + x["consumer_wakes"] for x in spin)
    sleeps = sum(x["producer_sleeps"] + x["consumer_sleeps"] for x in spin)
    msgs = sum(x["messages"] for x in spin)
    per = wakes / msgs if msgs else float("nan")
    value = (f"blocking round trips: {bc['messages']} measured, {sleeps_b} sleeps, "
             f"{'FAILED: ' + err if err else '0 lost'}; spinning (shm_copy, shm_spin): "
             f"{wakes} wake calls for {sleeps} sleeps in {msgs} messages")  # fmt: skip
    blind_ok = per == per and per < 0.01
    status = "**missed**" if err or not blind_ok or sleeps_b == 0 else "met"
    note = ("" if status == "met" else
            (f"The blocking round trip failed ({err}): a lost wake-up hangs it until the "
             "watchdog. " if err else "") +
            (f"Spinning cases made {per:.3f} wake calls per message: a wake call without a "
             "sleeper announced would make about one per message. " if not blind_ok else "") +
            ("No blocking round trip slept. " if sleeps_b == 0 else "") +
            f"The stress test {WAKE_TEST} counts lost wake-ups over every handshake pairing.")  # fmt: skip
    return Target("wake", what, value, "wake calls per message, spinning", per, 0.01, False, [],
                  status=status + f" (and {WAKE_TEST}: 0 lost, asserted by the suite)", note=note,
                  ratio_str="-" if per != per else f"{per:.4f}")  # fmt: skip


def kind_goals(d: Data) -> list[Target]:
    """One line per new kind: where its figures are (the "Every kind" section)."""
    out = []
    res = d.raw.get("c", {}).get("results", [])
    for prefix, name in (("bcast_", "broadcast (kind 2)"), ("svc_", "service (kind 4)"),
                         ("compat_", "compat (seed 002's layout)")):  # fmt: skip
        rs = [r for r in res if str(r.get("id", "")).startswith(prefix)]
        failed = sum(1 for r in rs if r.get("error"))
        if not rs:
            status = "**not run**" if res else "not measured (no C part)"
        else:
            status = f"see \"Every kind\" ({len(rs)} figures" + (f", {failed} failed)" if failed else ")")
        out.append(Target("kind", f"Every new kind in the report: {name}", f"{len(rs)} figures", "its own same-run baseline",
                          None, None, True, [], status=status, ratio_str="(below)"))  # fmt: skip
    return out


def other_figures(d: Data) -> list[Target]:
    """Rows of earlier issues (6, 10) that are not issue 14's goals: context."""
    t: list[Target] = []
    c = lambda fid, size=64, kind="tp": d.get("c", kind, fid, size)  # noqa: E731

    def row(what: str, a: Fig | None, b: Fig | None, limit: float | None, hib: bool, fmt: Any,
            key: str = "info") -> None:  # fmt: skip
        p = paired(a, b) if a and b and a.part == b.part else None
        r = p[0] if p else ratio(a, b)
        t.append(Target(key, what, fmt(a) if a else "-", fmt(b) if b else "-", r, limit, hib,
                        noisy(d, a, b), lohi=(p[1], p[2]) if p else None, info=True))  # fmt: skip

    rate = lambda f: f"{si(f.v.med)} msg/s"  # noqa: E731
    gbs = lambda f: f"{f.gbps:.2f} GB/s"  # noqa: E731
    lat = lambda f: ns(f.v.med)  # noqa: E731
    half = lambda f: ns(f.v.med / 2)  # noqa: E731
    row("C 64 B write/read, membarrier handshake vs fence handshake (the fence's price)",
        c("shm_copy"), c("shm_copy_fenced"), 1.0, True, rate)  # fmt: skip
    row("C 64 B *_batch (32 a call) vs the minimal ring", c("shm_batch"), c("spsc_ring"), 1.0, True, rate)
    row("C 64 B reserve/peek vs the minimal ring", c("shm_zerocopy"), c("spsc_ring"), 1.0, True, rate)
    for size in (65536, 1048576, FRAME):
        row(f"C zero-copy {size_str(size)} vs memcpy (L3-resident)", c("shm_zerocopy", size),
            c("memcpy", size), 0.8, True, gbs)  # fmt: skip
    row("C 64 B round trip, minimal ring vs bare cache line", c("spsc_ring", kind="rtt"),
        c("cacheline", kind="rtt"), 1.6, False, lat)  # fmt: skip
    row("C 64 B round trip, header-polled ring prototype vs bare cache line",
        c("spsc_hdr", kind="rtt"), c("cacheline", kind="rtt"), 1.6, False, lat)  # fmt: skip
    r = lambda fid, size=64, kind="tp": d.get("rust", kind, fid, size)  # noqa: E731
    row("64 B one-way latency (RTT/2), Rust spin vs iceoryx2 pub/sub", r("rs_spin", kind="rtt"),
        r("ice_rtt", kind="rtt"), 0.8, False, half)  # fmt: skip
    for a, b, what in (("c_zerocopy", "ice_pubsub", "1080p, C zero-copy (in the Rust program) vs iceoryx2"),
                       ("ice_pubsub", "memcpy", "1080p, iceoryx2 vs the L3-resident copy")):  # fmt: skip
        t.append(pair_goal(d, "info", what, a, b, FRAME, None, ""))
    for size in (4096, 1048576):
        row(f"Rust vs C write/read {size_str(size)} (two programs, minutes apart: not paired)",
            r("rs_copy", size), c("shm_copy", size), 0.95, True, rate)  # fmt: skip
    p = lambda fid: d.get("python", "tp", fid)  # noqa: E731
    row("Python 64 B reserve/peek vs write/read", p("py_zerocopy"), p("py_single"), 1.0, True, rate)
    for i in d.idle:
        if "cpu_percent" in i:
            t.append(Target("idle", f"Idle waiting: {i['label']}", f"{i['cpu_percent']:.3f} % CPU",
                            f"over {i['seconds']:.1f} s", i["cpu_percent"], IDLE_LIMIT, False, [],
                            info=True))  # fmt: skip
    return t


def targets(d: Data) -> list[Target]:
    """Issue 14's goals, then the other figures (info)."""
    return goals(d) + other_figures(d)

KIND_PREFIXES = ("bcast_", "svc_", "compat_")


def other_kinds(d: Data) -> list[list[str]]:
    """One row per broadcast, service and compat case of the C part (issue 14: every kind in the
    report, with the same discipline: a same-run baseline and its ratio)."""
    rows = []
    for r in d.raw.get("c", {}).get("results", []):
        if not str(r.get("id", "")).startswith(KIND_PREFIXES):
            continue
        rtt = r.get("kind") == "roundtrip"
        med = (r.get("median") if rtt else r.get("msgs_per_s")) or {}
        val = med.get("median") if isinstance(med, dict) else None
        if r.get("error") or val is None:
            rows.append([r.get("label", r["id"]), size_str(int(r.get("size", 64))),
                         f"FAILED: {r.get('error')}", r.get("baseline") or "-", "-"])  # fmt: skip
            continue
        ratio_v = r.get("ratio")
        rows.append([r.get("label", r["id"]), size_str(int(r.get("size", 64))),
                     ns(val) if rtt else f"{si(val)} msg/s", r.get("baseline") or "-",
                     "-" if ratio_v is None else f"{ratio_v:.2f}x"])  # fmt: skip
    rows += bcast_publish_rows(d)
    return rows


def bcast_publish_rows(d: Data) -> list[list[str]]:
    """Issue 10's publish cost: each bcast_pubN (and bcast_pubNspin, subscribers that never
    sleep) against bcast_pub0 and against the bare seqlock broadcast with as many readers
    (bcast_floor_pubN, the hardware's share), ratios of medians of the publisher's rate (above
    1: faster than the reference; 1 is the Must)."""
    rows: list[list[str]] = []
    c = lambda fid: d.get("c", "tp", fid, 64)  # noqa: E731
    zero = c("bcast_pub0")
    for n in (1, 8, 64):
        f = c(f"bcast_floor_pub{n}")
        for case in (f"bcast_pub{n}", f"bcast_pub{n}spin"):  # keeping up; never sleeping
            a = c(case)
            for ref, name in ((zero, "bcast_pub0"), (f, f"bcast_floor_pub{n}")):
                r = ratio(a, ref)
                if a is not None and r is not None:
                    rows.append([f"{case} vs {name}", "64 B", f"{si(a.v.med)} msg/s", name,
                                 f"{r:.2f}x"])  # fmt: skip
    return rows


def observations(d: Data) -> list[str]:
    """A few sentences computed from the figures, beyond the targets."""
    o: list[str] = []
    sizes = [s for s in SIZES if s >= 65536]
    best = [(s, ratio(d.get("rust", "tp", "rs_zerocopy", s), d.get("rust", "tp", "ice_pubsub", s)))
            for s in SIZES]  # fmt: skip
    best = [(s, r) for s, r in best if r is not None]
    if best:
        o.append("Rust zero-copy against iceoryx2 pub/sub (both write the payload once, read in "
                 "place): " + ", ".join(f"{size_str(s)} {r:.2f}x" for s, r in best) + ".")  # fmt: skip
    zc = [(s, ratio(d.get("c", "tp", "shm_zerocopy", s), d.get("c", "tp", "shm_copy", s))) for s in sizes]
    zc = [(s, r) for s, r in zc if r is not None]
    if zc:
        o.append("C zero-copy against C copy (write/read copies twice): "
                 + ", ".join(f"{size_str(s)} {r:.2f}x" for s, r in zc) + ".")  # fmt: skip
    pz, ps = d.get("python", "tp", "py_zerocopy", 64), d.get("python", "tp", "py_single", 64)
    if pz and ps:
        o.append(f"Python reserve/peek costs {1e6 / pz.v.med:.1f} µs per 64 B message against "
                 f"{1e6 / ps.v.med:.1f} µs for write/read: each zero-copy call builds a cffi view "
                 "with a finalizer, a fixed cost that only large messages hide (reserve/peek against "
                 "write/read: "
                 + ", ".join(f"{size_str(s)} {r:.2f}x" for s in (65536, 1048576, 6220800)
                             if (r := ratio(d.get('python', 'tp', 'py_zerocopy', s),
                                            d.get('python', 'tp', 'py_single', s))) is not None)
                 + ").")  # fmt: skip
    pr = d.get("python", "tp", "py_ring", 64)
    if pr and ps:
        o.append(f"The pure-Python shared-memory ring moves 64 B messages at {ratio(pr, ps):.2f}x "
                 "shm_channel's single calls (no cffi call, no checks, no wake-ups, busy-polling); "
                 "it is what cpp_py_shmbuf-style code does, without its safety.")  # fmt: skip
    for r in d.raw.get("python", {}).get("results", []):
        if r.get("timeouts"):
            o.append(f"Python {r['label']} {size_str(r['size'])}: {r['timeouts']} run(s) hung "
                     "(the consumer waited for messages that never came) and were made again.")  # fmt: skip
    for part, fid in (("c", "pipe"), ("c", "unix")):
        a, b = d.get("c", "tp", "shm_copy", 64), d.get(part, "tp", fid, 64)
        if a and b:
            o.append(f"C 64 B write/read against a {('pipe' if fid == 'pipe' else 'Unix socket')} "
                     f"between the same two processes: {ratio(a, b):.1f}x ({si(b.v.med)} msg/s).")  # fmt: skip
    return o


# ---- report ----------------------------------------------------------------------------------


def sh(cmd: list[str]) -> str:
    try:
        return subprocess.run(cmd, capture_output=True, text=True, timeout=10).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return ""


def cache_line_rtt(d: Data) -> str:
    """The bare cache-line round trip between the two CPUs of the C part (bench/README.md)."""
    f = d.get("c", "rtt", "cacheline")
    if not f or not f.v.ok:
        return "not measured"
    return f"{ns(f.v.med)} median [{ns(f.v.lo)}–{ns(f.v.hi)}] (C part, 2 lines)"


def machine(d: Data) -> list[tuple[str, str]]:
    cpu = "unknown"
    flags = ""
    with open("/proc/cpuinfo") as f:
        for line in f:
            if line.startswith("model name") and cpu == "unknown":
                cpu = line.split(":", 1)[1].strip()
            if line.startswith("flags") and not flags:
                flags = line
    mem = ""
    with open("/proc/meminfo") as f:
        for line in f:
            if line.startswith("MemTotal"):
                mem = f"{int(line.split()[1]) / 1024 / 1024:.0f} GiB"
    virt = sh(["systemd-detect-virt"]) if shutil.which("systemd-detect-virt") else ""
    if not virt:
        virt = "a virtual machine (hypervisor flag)" if " hypervisor" in flags else "not detected"
    gov = Path("/sys/devices/system/cpu/cpu0/cpufreq/scaling_governor")
    rows = [
        ("CPU", f"{cpu}, {os.cpu_count()} CPUs online"),
        ("cache-line round trip", cache_line_rtt(d)),
        ("memory", mem),
        ("kernel", f"{platform.system()} {platform.release()} {platform.machine()}"),
        ("virtualisation", virt),
        ("frequency governor", gov.read_text().strip() if gov.exists() else "not exposed"),
        ("C compiler", (sh(["cc", "--version"]).splitlines() or ["?"])[0]),
        ("Rust", sh(["rustc", "--version"]) or "?"),
        ("Python", platform.python_version()),
    ]
    lock = REPO / "bench/rust/Cargo.lock"
    if lock.exists():
        m = re.search(r'name = "iceoryx2"\nversion = "([^"]+)"', lock.read_text())
        if m:
            rows.append(("iceoryx2", m.group(1)))
    py = d.raw.get("python", {}).get("host", {})
    if py.get("pyzmq"):
        rows.append(("ZeroMQ", py["pyzmq"]))
    c = d.raw.get("c", {})
    if c:
        rows.append(("shm_channel", c.get("library_version", "?")))
        rows.append(("pinning", c.get("host", {}).get("pinning", "?")))
    return rows


def tp_rows(d: Data, part: str, size: int, base_id: str, extra: tuple[str, str, str] | None,
            md: bool) -> list[list[str]]:  # fmt: skip
    """Rows for one part and size: path, msgs/s [min-max], GB/s, spread, vs base, vs extra."""
    rows = []
    base = d.get(part, "tp", base_id, size)
    for f in d.figs:
        if f.part != part or f.kind != "tp" or f.size != size:
            continue
        if not f.v.ok:
            rows.append([f.label, f"FAILED: {f.error}", "", "", "", "", ""])
            continue
        ex = "-"
        if extra:
            ex_part, ex_id_map, _ = extra
            target_id = ex_id_map if ex_id_map != "*same*" else {"rs_copy": "shm_copy",
                                                                 "rs_zerocopy": "shm_zerocopy"}.get(f.id, "")  # fmt: skip
            ex = rx(ratio(f, d.get(ex_part, "tp", target_id, size))) if target_id else "-"
        flag = " ⚠" if noisy(d, f) else ""
        rows.append([
            f.label, rng(f.v), f"{f.gbps:.3g}", f"{f.v.spread:.2f}x{flag}",
            rx(ratio(f, base)) if f.id != base_id else "(baseline)", ex,
        ])  # fmt: skip
    return rows


def cpu_model() -> str:
    with open("/proc/cpuinfo") as f:
        for line in f:
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    return platform.processor() or "unknown"


def headline(d: Data) -> list[str]:
    """The report's first lines: the CPU, the cache-line round trip, the load."""
    cpu = d.raw.get("c", {}).get("host", {}).get("cpu") or d.raw.get("rust", {}).get("host", {}).get("cpu") \
        or cpu_model()  # fmt: skip
    load = "not recorded"
    if d.load_start is not None:
        load = f"{d.load_start:.2f} (1 min) before the run"
        if d.load_measure is not None:
            load += f", {d.load_measure:.2f} once the builds were done"
        fc = [m["foreign_cpu"] for m in d.meta if m.get("foreign_cpu") is not None]
        if fc:
            load += f"; other processes used up to {max(fc):.2f} CPUs during a part"
        busy = d.load_start > LOAD_LIMIT or any(x > FOREIGN_LIMIT for x in fc)
        load += " (**loaded**: ratios are same-run, absolute figures are not the machine's)" if busy else " (idle)"
    fam = {}
    with open("/proc/cpuinfo") as f:
        for line in f:
            k, _, v = line.partition(":")
            if k.strip() in ("cpu family", "model", "cache size") and k.strip() not in fam:
                fam[k.strip()] = v.strip()
    if cpu == cpu_model() and fam:  # the model name alone can be bare ("AMD EPYC" in a guest)
        cpu += f" (family {fam.get('cpu family', '?')}, model {fam.get('model', '?')}, cache {fam.get('cache size', '?')})"
    return [f"- **CPU**: {cpu}, {os.cpu_count()} CPUs online",
            f"- **Cache-line round trip** (this run): {cache_line_rtt(d)}",
            f"- **Load**: {load}"]


def goal_rows(ts: list[Target]) -> list[list[str]]:
    return [[t.what, t.value, t.baseline, t.ratio_text, t.limit_str,
             t.verdict + (" ⚠" if t.why_noisy else "")] for t in ts]  # fmt: skip


# What limits a missed goal, in one sentence for README.md's Performance section; {} fields
# are this run's figures (limit_fill), the link is where the details are.
LIMITS = {
    "c64": "instructions, not cache lines: {c_ins} per write+read pair (callgrind) "
           "([details](bench/README.md#where-the-time-goes-issue-14))",
    "rtt_cl": "every hand-off moves two lines (the polled position, then the record) where the "
              "floor moves one; the minimal ring itself measures {ring_rtt} the floor "
              "([proposal](bench/README.md#proposal-not-adopted-the-receiver-polls-the-record-header))",
    "wake": "see the stress test `c/tests/test_wake_handshake.c`",
    "py1": "a cffi ABI-mode call per message and a new bytes object: {py_single} a message "
           "([details](docs/perf/REPORT.md))",
    "pyiter": "one bytes object per message: {py_iter} a message "
              "([details](docs/perf/REPORT.md))",
    "pyb": "one bytes object per message: {py_batch} a message ([details](docs/perf/REPORT.md))",
    "rust": "not instructions ({rs_ins}, callgrind): producer CPU per message, C's over Rust's, "
            "{rs_cpu} ([details](bench/README.md#rust-vs-c-and-1080p-frames-vs-iceoryx2-issue-14-benchrust))",
    "frames": "moving the frame between cores, for both: against the L3-resident copy of the "
              "same size, ours {fr_ours}, iceoryx2 {fr_ice} in this run "
              "([details](docs/perf/REPORT.md))",
}


def limit_fill(d: Data, t: Target) -> dict[str, str]:
    cg = callgrind_c(d.text("c-callgrind.txt"))
    cl = d.get("c", "rtt", "cacheline")
    f = {"c_ins": f"{cg[0]:.0f} against the ring's {cg[1]:.0f}" if cg else "(not counted)",
         "ring_rtt": rx3(paired(d.get("c", "rtt", "spsc_ring"), cl)).split(" ")[0]}  # fmt: skip
    for fid in ("py_single", "py_iter", "py_batch"):
        f[fid] = per_ns(d.get("python", "tp", fid))
    path = ("zerocopy" if "reserve/peek" in t.what else "batch" if "batch" in t.what else "copy")
    rc = callgrind_rust(d.text("rust-callgrind.txt")).get(path)
    f["rs_ins"] = f"Rust {rc[0]:.0f}, C {rc[1]:.0f} a message" if rc else "not counted"
    p = rust_pair(d, *{"copy": ("rs_copy", "c_copy"), "zerocopy": ("rs_zerocopy", "c_zerocopy"),
                       "batch": ("rs_batch", "c_batch")}[path], 64)  # fmt: skip
    cr = (p or {}).get("producer_cpu_ratios") or []
    f["rs_cpu"] = f"{statistics.median(cr):.2f}x" if cr else "not measured"
    g = lambda fid: d.get("rust", "tp", fid, FRAME)  # noqa: E731
    f["fr_ours"] = rx3(paired(g("rs_zerocopy_poll"), g("memcpy")))
    f["fr_ice"] = rx3(paired(g("ice_pubsub"), g("memcpy")))
    return f


def readme_table(d: Data, ts: list[Target], started: str) -> str:
    """README.md's Performance table: a row per goal, this run's figure, met or not, what
    limits it (bench/run.sh writes it to bench/results/README-perf.md)."""
    head = [x.split(": ", 1)[1] for x in headline(d)]
    rows = []
    for t in ts:
        if t.info and not t.key.startswith("frames"):
            continue
        fig = t.ratio_text if t.key != "wake" else t.value
        if t.key == "kind":
            fig = t.status or "-"
        elif t.ratio is not None and t.key != "wake":
            fig += f" ({t.value} vs {t.baseline})"
        met = {True: "met", False: "**missed**", None: "-"}[t.met] if not t.info else "(info)"
        if t.key == "kind":
            met = "in the report" if "figures" in (t.status or "") else "-"
        lim = LIMITS.get(t.key, "") if t.met is False else ""
        rows.append([t.what, fig + (" ⚠" if t.why_noisy else ""), met,
                     lim.format(**limit_fill(d, t)) if lim else "-"])  # fmt: skip
    return (f"Run of {started[:16].replace('T', ' ')} UTC; CPU {head[0]}; cache-line round trip "
            f"{head[1]}; load {head[2]}.\n\n"
            + md_table(["goal (issue 14)", "figure (same-run ratio [min–max])", "met", "what limits it"],
                       rows, "llll") + "\n")  # fmt: skip


def write_report(d: Data, out: Path, args: argparse.Namespace, ts: list[Target]) -> str:
    L: list[str] = []
    started = d.raw.get("c", {}).get("started") or time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    L.append("# shm_channel: issue 14's goals, and the whole comparison\n")
    L += headline(d)
    L.append("")
    L.append(f"Run of `bench/run.sh{' --quick' if args.quick else ''}` started {started}. "
             "Every figure is the median of its runs [min–max]; every ratio is against a "
             "baseline measured in the same run; a goal's ratio is the median [min–max] over "
             "rounds of the ratio within each round (the parts interleave their cases run by "
             "run). ⚠ marks a noisy figure: runs (or per-round ratios) spread more than "
             f"{SPREAD_LIMIT}x (max/min), load average above {LOAD_LIMIT} before the run, or "
             f"other processes using more than {FOREIGN_LIMIT} CPU during the part.\n")  # fmt: skip
    goal_ts = [t for t in ts if not t.info or t.key.startswith("frames")]
    info_ts = [t for t in ts if t not in goal_ts]
    L.append("## Issue 14's goals (same-run ratios)\n")
    L.append(md_table(["goal", "ours", "baseline", "ratio", "goal", "verdict"], goal_rows(goal_ts),
                      "llllll"))  # fmt: skip
    for t in goal_ts:
        if t.met is False and t.note:
            L.append(f"\n*{t.what}: missed.* {t.note}")
    noisy_t = [t for t in goal_ts if t.why_noisy]
    if noisy_t:
        L.append("\nNoisy: " + "; ".join(sorted({w for t in noisy_t for w in t.why_noisy})) + ".")
    for part in ("c", "rust", "python"):
        if part not in d.raw:
            why = "did not run"
            if part == "rust" and (out / "rust-build.log").exists():
                why = "did not build (see rust-build.log)"
            L.append(f"\n**The {part} part {why}: its figures and goals are missing.**")
    L.append("\n## Other figures (info: earlier issues' targets and context)\n")
    L.append(md_table(["figure", "ours", "baseline", "ratio", "reference", "verdict"],
                      goal_rows(info_ts), "llllll"))  # fmt: skip
    L.append("")
    L.append("## Machine\n")
    L.append(md_table(["", ""], [[a, b] for a, b in machine(d)], "ll"))
    L.append("")
    L.append("## Run conditions\n")
    rows = []
    for m in d.meta:
        rows.append([m["part"], f"{m['wall_seconds']:.0f} s", str(m["exit_status"]),
                     f"{m['load_before']:.2f} → {m['load_after']:.2f}",
                     f"{m['foreign_cpu']:.2f}" + (" ⚠" if m["foreign_cpu"] > FOREIGN_LIMIT else ""),
                     f"{m['own_cpu']:.2f}"])  # fmt: skip
    if d.load_start is not None:
        after_build = ("" if d.load_measure is None else
                       f" ({d.load_measure:.2f} once the builds were done)")
        L.append(f"Load average before the run: {d.load_start:.2f}"
                 f"{' ⚠' if d.load_start > LOAD_LIMIT else ''}{after_build}. "
                 "The load average during a part "
                 "counts the benchmark's own two busy processes, so the part's `other CPU` column "
                 "(busy CPU time from /proc/stat less the part's own, per second) is what tells "
                 "whether something else ran.\n")  # fmt: skip
    if args.build_seconds is not None:
        L.append(f"Build and setup: {args.build_seconds} s.\n")
    L.append(md_table(["part", "wall", "exit", "load avg (1 min)", "other CPU", "own CPU"], rows))
    L.append("")
    kinds = other_kinds(d)
    if kinds:
        L.append("\n## Every kind, against its own same-run baseline\n")
        L.append("Broadcast (kind 2), service (kind 4) and compat (seed 002's layout) cases of the C "
                 "part, each with the baseline `shm_channel_bench` pairs it with (bench/README.md): "
                 "the ratio is the median over runs of this run / the baseline's run of the same "
                 "round (throughput: above 1 is faster; round trips: below 1 is faster).\n")  # fmt: skip
        L.append(md_table(["case", "size", "median", "baseline", "ratio"], kinds, "llrlr"))
    obs = observations(d)
    if obs:
        L.append("\n## Observations\n")
        L += [f"- {o}" for o in obs]
    L.append("\n![throughput](throughput.png)\n")

    L.append("## Throughput\n")
    L.append("Two processes, producer → consumer, one message per call unless stated; GB = 10⁹ "
             "bytes of payload. `spread` is max/min of the runs.\n")  # fmt: skip
    specs = [
        ("c", "C (shm_channel_bench)", "spsc_ring", "vs spsc_ring", ("c", "memcpy", "vs memcpy")),
        ("rust", "Rust (bench/rust)", "ice_pubsub", "vs iceoryx2", ("c", "*same*", "vs C same path")),
        ("python", "Python (bench/python/compare.py)", "mp_pipe", "vs mp.Pipe", ("python", "zmq_ipc", "vs pyzmq")),
    ]  # fmt: skip
    for part, title, base_id, base_h, extra in specs:
        if part not in d.raw:
            continue
        L.append(f"### {title}\n")
        rows = []
        for size in SIZES:
            rs = tp_rows(d, part, size, base_id, extra, True)
            if rs:
                rows.append([f"**{size_str(size)}**", "", "", "", "", ""])
                rows += rs
        L.append(md_table(["path", "msgs/s", "GB/s", "spread", base_h, extra[2]], rows))
        L.append("")

    L.append("## Round trip, 64 B\n")
    L.append("Ping → pong → ping, one message in flight, each round trip timed on its own; for "
             "each percentile the median over runs [min–max]. `max` is the median of the runs' "
             "largest sample (a single preemption sets it).\n")  # fmt: skip
    cl = d.get("c", "rtt", "cacheline")
    rows = []
    for f in d.figs:
        if f.kind != "rtt":
            continue
        if not f.v.ok:
            rows.append([f.part, f.label, f"FAILED: {f.error}", "", "", "", "", ""])
            continue
        flag = " ⚠" if noisy(d, f) else ""
        rows.append([f.part, f.label, rng(f.v, ns), rng(f.p99, ns), rng(f.p999, ns),
                     ns(f.max.med) if f.max.ok else "-", f"{f.v.spread:.2f}x{flag}", rx(ratio(f, cl))])  # fmt: skip
    L.append(md_table(["part", "path", "median", "p99", "p99.9", "max", "spread", "vs cache line"],
                      rows, "llrrrrrr"))  # fmt: skip
    L.append("\n![latency](latency.png)\n")

    if d.idle:
        L.append("## CPU while idle-waiting\n")
        L.append("Each process blocks for the whole window with nothing to read (or no room to "
                 "write); CPU time from /proc/PID/schedstat. Spin phase 20 µs, then futex sleeps.\n")  # fmt: skip
        rows = [[i["label"], f"{i['cpu_percent']:.3f} %" if "cpu_percent" in i else i.get("error", "?"),
                 f"{i.get('cpu_seconds', 0) * 1e3:.2f} ms in {i.get('seconds', 0):.1f} s"] for i in d.idle]  # fmt: skip
        L.append(md_table(["process", "CPU", "CPU time"], rows, "lrr"))
        L.append("")

    L.append("## How it was measured\n")
    L.append(
        "- **C** (`shm_channel_bench`, bench/README.md): two processes made with fork, pinned to "
        "two CPUs; calibration, then interleaved runs; baselines in the same program: a minimal "
        "SPSC ring (the brief's), memcpy in one process, a bare cache line bouncing between the "
        "two CPUs, a pipe and a Unix stream socket (bench/c_ipc_baselines.c).\n"
        "- **Rust** (bench/rust): the shm-channel crate and iceoryx2 publish-subscribe "
        "(`[u8]` slices, lossless: no safe overflow, `RetryUntilDelivered`), each between two "
        "processes pinned as above, timed by the consumer after a warm-up; round trips as "
        "iceoryx2's own benchmark does them (busy-polling `receive`, samples loaned ahead).\n"
        "- **Python** (bench/python/compare.py): Python to Python, a forked producer and this "
        "process as consumer, pinned; multiprocessing.Pipe, multiprocessing.Queue, a pure-Python "
        "ring in multiprocessing.shared_memory and pyzmq over ipc:// as baselines.\n"
        "- Every message is numbered (or stamped) and checked by the receiver, in the baselines too.\n"
        "- Capacity: 4 MiB rings up to 1 MiB messages, 32 MiB for 6,220,800 B frames; the "
        "baselines that have a buffer get the same.\n"
        "- Rust and C, and Python and C, run minutes apart: their cross ratios are not paired "
        "run by run, unlike the ratios within a part."
    )
    text = "\n".join(L) + "\n"
    (out / "REPORT.md").write_text(text)
    (out / "README-perf.md").write_text(readme_table(d, ts, started))
    return text


# ---- plots -----------------------------------------------------------------------------------


def plots(d: Data, out: Path) -> None:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        print("aggregate: matplotlib missing, no plots", file=sys.stderr)
        return
    panels = [
        ("c", "C", ["memcpy", "spsc_ring", "spsc_fenced", "pipe", "unix", "shm_copy", "shm_zerocopy",
                    "shm_batch"]),
        ("rust", "Rust", ["ice_pubsub", "rs_copy", "rs_zerocopy"]),
        ("python", "Python", ["mp_pipe", "mp_queue", "py_ring", "zmq_ipc", "py_single", "py_batch", "py_zerocopy"]),
    ]  # fmt: skip
    panels = [p for p in panels if p[0] in d.raw]
    if panels:
        fig, axes = plt.subplots(1, len(panels), figsize=(6 * len(panels), 4.8), sharey=True)
        if len(panels) == 1:
            axes = [axes]
        memcpy = [(f.size, f.gbps) for f in d.figs if f.part == "c" and f.id == "memcpy" and f.v.ok]
        for ax, (part, title, ids) in zip(axes, panels):
            for fid in ids:
                pts = sorted((f.size, f.gbps, f.v.lo * f.size / 1e9, f.v.hi * f.size / 1e9, f.label)
                             for f in d.figs if f.part == part and f.kind == "tp" and f.id == fid and f.v.ok)  # fmt: skip
                if not pts:
                    continue
                xs = [p[0] for p in pts]
                ys = [p[1] for p in pts]
                base = d.get(part, "tp", fid, pts[0][0])
                ours = (base.group if base else "") in ("shm_channel", "rust", "python")
                line = ax.plot(xs, ys, marker="o", lw=2.2 if ours else 1.2,
                               ls="-" if ours else "--", label=pts[0][4])[0]  # fmt: skip
                ax.fill_between(xs, [p[2] for p in pts], [p[3] for p in pts], alpha=0.15,
                                color=line.get_color())  # fmt: skip
            if part != "c" and memcpy:
                ms = sorted(memcpy)
                ax.plot([m[0] for m in ms], [m[1] for m in ms], color="grey", ls=":", lw=1,
                        label="memcpy (C part)")  # fmt: skip
            ax.set_xscale("log")
            ax.set_yscale("log")
            ax.set_xticks(list(SIZES))
            ax.set_xticklabels(["64", "1K", "4K", "64K", "1M", "6.2M"])
            ax.set_xlabel("message size (bytes)")
            ax.set_title(title)
            ax.grid(True, which="both", alpha=0.3)
            ax.legend(fontsize=7, loc="lower right")
        axes[0].set_ylabel("GB/s of payload (median; band: min–max)")
        fig.suptitle("Throughput between two processes, by message size")
        fig.tight_layout()
        fig.savefig(out / "throughput.png", dpi=110)
        plt.close(fig)
    rtt = [f for f in d.figs if f.kind == "rtt" and f.v.ok]
    if rtt:
        order = {"c": 0, "rust": 1, "python": 2}
        rtt.sort(key=lambda f: (order[f.part], f.v.med))
        fig, ax = plt.subplots(figsize=(10, 0.38 * len(rtt) + 1.6))
        ys = range(len(rtt))
        h = 0.2
        for k, (name, get) in enumerate((("median", lambda f: f.v), ("p99", lambda f: f.p99),
                                         ("p99.9", lambda f: f.p999), ("max", lambda f: f.max))):  # fmt: skip
            vals = [get(f).med if get(f).ok else 0 for f in rtt]
            ax.barh([y + (k - 1.5) * h for y in ys], vals, height=h, label=name)
        ax.set_yticks(list(ys))
        ax.set_yticklabels([f"{f.part}: {f.label}" for f in rtt], fontsize=8)
        ax.invert_yaxis()
        ax.set_xscale("log")
        ax.set_xlabel("64 B round trip (ns, log scale; median over runs of each percentile)")
        ax.grid(True, axis="x", which="both", alpha=0.3)
        ax.legend(fontsize=8, loc="lower right")
        ax.set_title("Round-trip latency percentiles")
        fig.tight_layout()
        fig.savefig(out / "latency.png", dpi=110)
        plt.close(fig)


# ---- main ------------------------------------------------------------------------------------


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("results", type=Path)
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--build-seconds", type=int)
    args = ap.parse_args()
    d = Data(args.results)
    if not d.figs:
        print("aggregate: no results", file=sys.stderr)
        return 1
    ts = targets(d)
    write_report(d, args.results, args, ts)
    plots(d, args.results)
    print("\n".join(x.replace("**", "") for x in headline(d)))
    for title, sel in (("Issue 14's goals (same-run ratios)", lambda t: not t.info or t.key.startswith("frames")),
                       ("Other figures (info)", lambda t: t.info and not t.key.startswith("frames"))):  # fmt: skip
        rows = [[t.what, t.value if len(t.value) < 60 else t.value[:57] + "...", t.baseline, t.ratio_text,
                 t.limit_str, t.verdict.replace("*", "") + (" (noisy)" if t.why_noisy else "")]
                for t in ts if sel(t)]  # fmt: skip
        print(f"\n{title}")
        print(text_table(["goal", "ours", "baseline", "ratio", "goal", "verdict"], rows))
    print("\nThroughput, GB/s (median) by message size")
    head = ["path"] + [size_str(s) for s in SIZES]
    rows = []
    seen = []
    for f in d.figs:
        if f.kind == "tp" and (f.part, f.id) not in seen:
            seen.append((f.part, f.id))
    for part, fid in seen:
        row = [f"{part}: {fid}"]
        for s in SIZES:
            f = d.get(part, "tp", fid, s)
            row.append(f"{f.gbps:.3g}" if f else "-")
        rows.append(row)
    print(text_table(head, rows))
    print("\nRound trip 64 B, median / p99 / p99.9 / max")
    rows = [[f"{f.part}: {f.label}", ns(f.v.med), ns(f.p99.med), ns(f.p999.med),
             ns(f.max.med) if f.max.ok else "-"] for f in d.figs if f.kind == "rtt" and f.v.ok]  # fmt: skip
    print(text_table(["path", "median", "p99", "p99.9", "max"], rows))
    if d.load_start is not None:
        print(f"\nload average before the run {d.load_start:.2f}; per part: " + ", ".join(
            f"{m['part']} {m['load_before']:.2f}->{m['load_after']:.2f} (other CPU {m['foreign_cpu']:.2f})"
            for m in d.meta))  # fmt: skip
    print(f"report: {args.results / 'REPORT.md'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
