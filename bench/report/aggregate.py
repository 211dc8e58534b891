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


# ---- targets ---------------------------------------------------------------------------------

# Why a target can be missed and what meeting it would take; shown next to a missed target.
NOTES = {
    "c64": (
        "Per 64 B message the minimal ring costs {spsc_ns} ns and write/read {copy_ns} ns. "
        "{fenced}Both touch the same cache lines per message (the data, each side's own position "
        "line, and the peer's waiting-flag line, which stays shared while nobody sleeps: "
        "bench/README.md, \"Where the time goes\"); the difference is instructions: callgrind, "
        "one process, 64 B, loop included (bench/callgrind.sh): 224 per write+read pair against "
        "the minimal ring's 108, after session 5's fused write/read path (316 with session 4's "
        "library). "
        "What is left, line by line in bench/README.md: the entry checks, the record header's "
        "validation (the segment is untrusted), the header counters, the wake check, the call "
        "into the shared library through the PLT{rust_static}; the batch calls amortise it "
        "(shm_batch: {batch}). On a loaded machine the two-process ratio swings 0.8-2.2x from "
        "run to run for the ring and for us alike (which side keeps up decides how many line "
        "transfers a message costs): read it with the instruction counts."
    ),
    "zc_memcpy": (
        "The zero-copy producer still writes every byte once (it stands for producing the data "
        "in place) into a ring larger than the last-level cache, on the other core's side of "
        "the cache; memcpy is measured in one process that owns its buffer. Above the cache "
        "size both are bounded by memory bandwidth, and a two-process transfer on a shared, "
        "virtualised machine pays the cross-core cache-line transfers as well. It would take "
        "a ring that fits the cache (smaller capacity) or non-temporal stores for large "
        "reservations."
    ),
    "rtt_cl": (
        "A round trip through a ring is two hand-offs of two cache lines each (the position "
        "the receiver polls, then the record), where the bare floor moves one line per hand-off: "
        "the minimal ring itself measures {spsc_rtt} the floor in the same run, so the 1.6x goal "
        "is under what any ring with a separate position line reaches here (our spin round trip "
        "is now 1.04-1.13x the ring's, paired). Each look of a spin is also paced by a pause "
        "(about 55 ns on an AMD EPYC guest), which looking without it does not win back (the "
        "exit from an unpaused spin is slower, measured for both). A receiver that polls the "
        "record header itself does better: the bench's prototype spsc_hdr measures 1.24-1.62x the "
        "floor where the ring measures 1.53-1.85x (0.80-0.96x the ring's round trip, every run); "
        "it needs a layout change (proposed in "
        "bench/README.md). On a loaded machine a preempted spinner dominates the median."
    ),
    "ice": (
        "Both spin; the difference is per-message work. iceoryx2 is measured with its own "
        "benchmark's choreography (samples loaned ahead of time)."
    ),
    "py1": (
        "Each write() and read() is a cffi ABI-mode call (through libffi) wrapped in Python: "
        "about 1 µs each on this machine measured in one process with no peer, against the "
        "~0.35 µs of a bare cffi call with a buffer (the brief), and read() makes a new bytes "
        "object per message. multiprocessing.Pipe's send_bytes/recv_bytes are C methods with one "
        "system call each, about 3 µs per message end to end here, so one call per message tops "
        "out near 2-3x the Pipe. It would take less Python work per call in the binding (bind "
        "the C function and its out-parameters once, skip the per-call checks for plain bytes, "
        "offer a read that fills a reused buffer) or API-mode cffi (a compiled extension, which "
        "the brief excludes); the batch calls (py_batch) are the way past it."
    ),
    "pyb": (
        "read_many returns a list of new bytes objects, one per message; at 64 B, building "
        "them costs more than the ring. It would take a batch read that returns one buffer "
        "plus offsets (a numpy view of fixed-size records)."
    ),
    "rust": (
        "The Rust crate calls the same C code (compiled into the crate by build.rs, statically "
        "linked) through a thin safe wrapper that adds no copy; where it trails the C program "
        "beyond 5% the two ran minutes apart, in different programs with different process "
        "roles (the Rust consumer is the parent), and the 4 KiB figures of both move by up to 2x "
        "from run to run on this machine (their spreads). A paired comparison would need the "
        "Rust cases inside shm_channel_bench's interleaved runs, or more runs per figure."
    ),
    "idle": (
        "A blocked call sleeps on the futex in slices (50 ms in C, 100 ms in Python, which also "
        "returns to the interpreter for signals); each slice costs a wake-up."
    ),
}


def note_fill(d: Data) -> dict[str, str]:
    """Figures quoted by the NOTES."""
    spsc, fen = d.get("c", "tp", "spsc_ring"), d.get("c", "tp", "spsc_fenced")
    copy, batch = d.get("c", "tp", "shm_copy"), d.get("c", "tp", "shm_batch")
    rs = d.get("rust", "tp", "rs_copy")
    per = lambda f: f"{1e9 / f.v.med:.0f}" if f else "?"  # noqa: E731
    fill = {"spsc_ns": per(spsc), "copy_ns": per(copy), "fenced": "", "rust_static": "",
            "batch": f"{ratio(batch, spsc):.2f}x the ring" if batch and spsc else "not measured"}  # fmt: skip
    srtt, cl = d.get("c", "rtt", "spsc_ring"), d.get("c", "rtt", "cacheline")
    r = ratio(srtt, cl) if srtt and cl else None
    fill["spsc_rtt"] = f"{r:.2f}x" if r is not None else "(not measured)"
    if fen and spsc:
        fill["fenced"] = (f"The same minimal ring with only shm_channel's wake-up fence added (a "
                          f"seq_cst fence after each position store, so a sleeping peer is never "
                          f"missed) costs {per(fen)} ns: {ratio(fen, spsc):.2f}x the ring's rate. ")  # fmt: skip
    if rs and copy and ratio(rs, copy) > 1.05:  # only then evidence of the call's cost
        fill["rust_static"] = (f" (the Rust part, which links the same C code statically, moves "
                               f"{si(rs.v.med)} msg/s: {ratio(rs, copy):.2f}x the C program)")  # fmt: skip
    return fill


@dataclass
class Target:
    key: str
    what: str
    value: str
    baseline: str
    ratio: float | None
    limit: float
    higher_is_better: bool
    why_noisy: list[str]
    overlap: bool = False  # cross-part: the two figures' run ranges overlap

    @property
    def met(self) -> bool | None:
        if self.ratio is None:
            return None
        return self.ratio >= self.limit if self.higher_is_better else self.ratio <= self.limit

    @property
    def limit_str(self) -> str:
        return f"{'≥' if self.higher_is_better else '≤'} {self.limit:g}"

    @property
    def verdict(self) -> str:
        m = self.met
        if "(info" in self.what:  # context, not one of the targets
            return "n/a" if m is None else "(info: would meet)" if m else "(info: short)"
        v = "n/a" if m is None else "met" if m else "**missed**"
        return v + (" (run ranges overlap)" if self.overlap and m is False else "")


def targets(d: Data) -> list[Target]:
    t: list[Target] = []
    c = lambda fid, size=64, kind="tp": d.get("c", kind, fid, size)  # noqa: E731
    a, b = c("shm_copy"), c("spsc_ring")
    t.append(Target("c64", "C 64 B throughput, write/read vs minimal SPSC ring",
                    f"{si(a.v.med) if a else '-'} msg/s", f"{si(b.v.med) if b else '-'} msg/s",
                    ratio(a, b), 1.0, True, noisy(d, a, b)))  # fmt: skip
    a, f = c("shm_copy"), c("shm_copy_fenced")
    t.append(Target("c64hs", "C 64 B write/read, membarrier handshake vs fence handshake (info: the fence's price)",
                    f"{si(a.v.med) if a else '-'} msg/s", f"{si(f.v.med) if f else '-'} msg/s",
                    ratio(a, f), 1.0, True, noisy(d, a, f)))  # fmt: skip
    a = c("shm_batch")
    t.append(Target("c64b", "C 64 B throughput, *_batch (32/call) vs minimal SPSC ring (info)",
                    f"{si(a.v.med) if a else '-'} msg/s", f"{si(b.v.med) if b else '-'} msg/s",
                    ratio(a, b), 1.0, True, noisy(d, a, b)))  # fmt: skip
    for size in (65536, 1048576, 6220800):
        a, m = c("shm_zerocopy", size), c("memcpy", size)
        t.append(Target("zc_memcpy", f"C zero-copy {size_str(size)} vs memcpy",
                        f"{a.gbps:.2f} GB/s" if a else "-", f"{m.gbps:.2f} GB/s" if m else "-",
                        ratio(a, m), 0.8, True, noisy(d, a, m)))  # fmt: skip
    a, b = c("shm_spin", kind="rtt"), c("cacheline", kind="rtt")
    t.append(Target("rtt_cl", "C 64 B spinning round trip vs bare cache-line round trip",
                    ns(a.v.med) if a else "-", ns(b.v.med) if b else "-",
                    ratio(a, b), 1.6, False, noisy(d, a, b)))  # fmt: skip
    a, b = d.get("rust", "tp", "rs_zerocopy", 6220800), d.get("rust", "tp", "ice_pubsub", 6220800)
    t.append(Target("frames", "1080p frames (6,220,800 B), Rust zero-copy vs iceoryx2 pub/sub",
                    f"{a.gbps:.2f} GB/s" if a else "-", f"{b.gbps:.2f} GB/s" if b else "-",
                    ratio(a, b), 1.0, True, noisy(d, a, b)))  # fmt: skip
    a, b = d.get("rust", "rtt", "rs_spin"), d.get("rust", "rtt", "ice_rtt")
    t.append(Target("ice", "64 B one-way latency (RTT/2), Rust spin vs iceoryx2 pub/sub",
                    ns(a.v.med / 2) if a else "-", ns(b.v.med / 2) if b else "-",
                    ratio(a, b), 0.8, False, noisy(d, a, b)))  # fmt: skip
    a = d.get("c", "rtt", "shm_spin")
    t.append(Target("ice", "64 B one-way latency, C spin vs iceoryx2 (info: not the same binary)",
                    ns(a.v.med / 2) if a else "-", ns(b.v.med / 2) if b else "-",
                    ratio(a, b), 0.8, False, noisy(d, a, b)))  # fmt: skip
    p = lambda fid: d.get("python", "tp", fid, 64)  # noqa: E731
    a, b = p("py_single"), p("mp_pipe")
    t.append(Target("py1", "Python 64 B single-call throughput vs multiprocessing.Pipe",
                    f"{si(a.v.med) if a else '-'} msg/s", f"{si(b.v.med) if b else '-'} msg/s",
                    ratio(a, b), 3.0, True, noisy(d, a, b)))  # fmt: skip
    a = p("py_batch")
    t.append(Target("pyb", "Python 64 B batch throughput vs multiprocessing.Pipe",
                    f"{si(a.v.med) if a else '-'} msg/s", f"{si(b.v.med) if b else '-'} msg/s",
                    ratio(a, b), 20.0, True, noisy(d, a, b)))  # fmt: skip
    def overlap(a: Fig | None, b: Fig | None) -> bool:
        return bool(a and b and a.v.lo <= b.v.hi and b.v.lo <= a.v.hi)

    for size in (64, 4096, 1048576):
        a, b = d.get("rust", "tp", "rs_copy", size), c("shm_copy", size)
        t.append(Target("rust", f"Rust vs C, write/read throughput {size_str(size)}",
                        f"{si(a.v.med) if a else '-'} msg/s", f"{si(b.v.med) if b else '-'} msg/s",
                        ratio(a, b), 0.95, True, noisy(d, a, b), overlap(a, b)))  # fmt: skip
    a, b = d.get("rust", "rtt", "rs_spin"), c("shm_spin", kind="rtt")
    t.append(Target("rust", "Rust vs C, 64 B spinning round trip",
                    ns(a.v.med) if a else "-", ns(b.v.med) if b else "-",
                    ratio(a, b), 1.05, False, noisy(d, a, b), overlap(a, b)))  # fmt: skip
    for i in d.idle:
        if "cpu_percent" in i:
            t.append(Target("idle", f"Idle waiting: {i['label']}", f"{i['cpu_percent']:.3f} % CPU",
                            f"over {i['seconds']:.1f} s", i["cpu_percent"], IDLE_LIMIT, False, []))  # fmt: skip
    return t


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


def write_report(d: Data, out: Path, args: argparse.Namespace, ts: list[Target]) -> str:
    L: list[str] = []
    started = d.raw.get("c", {}).get("started") or time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    L.append("# shm_channel: the issue-6 comparison\n")
    L.append(f"Run of `bench/run.sh{' --quick' if args.quick else ''}` started {started}. "
             "Every figure is the median of its runs [min–max]; every ratio is against a "
             "baseline measured in the same run. ⚠ marks a noisy figure: runs spread more than "
             f"{SPREAD_LIMIT}x (max/min), load average above {LOAD_LIMIT} before the run, or "
             f"other processes using more than {FOREIGN_LIMIT} CPU during the part.\n")  # fmt: skip
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
    for part in ("c", "rust", "python"):
        if part not in d.raw:
            why = "did not run"
            if part == "rust" and (out / "rust-build.log").exists():
                why = "did not build (see rust-build.log)"
            L.append(f"\n**The {part} part {why}: its figures and targets are missing.**")
    L.append("")

    L.append("## Targets (ratios, same run)\n")
    rows = []
    for t in ts:
        r = "-" if t.ratio is None else (f"{t.ratio:.3f}%" if t.key == "idle" else f"{t.ratio:.2f}x")
        rows.append([t.what, t.value, t.baseline, r.replace("%", " %"), t.limit_str + (" %" if t.key == "idle" else "x"),
                     t.verdict + (" ⚠" if t.why_noisy else "")])  # fmt: skip
    L.append(md_table(["target", "ours", "baseline", "ratio", "target", "verdict"], rows, "llllll"))
    missed = []
    fill = note_fill(d)
    for t in ts:
        if t.met is False and t.key in NOTES and t.key not in missed:
            missed.append(t.key)
            L.append(f"\n*{t.what}: missed.* {NOTES[t.key].format(**fill)}")
    noisy_t = [t for t in ts if t.why_noisy]
    if noisy_t:
        L.append("\nNoisy: " + "; ".join(sorted({w for t in noisy_t for w in t.why_noisy})) + ".")
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
    rows = []
    for t in ts:
        r = "-" if t.ratio is None else (f"{t.ratio:.3f} %" if t.key == "idle" else f"{t.ratio:.2f}x")
        rows.append([t.what, t.value, t.baseline, r, t.limit_str, t.verdict.replace("*", "") +
                     (" (noisy)" if t.why_noisy else "")])  # fmt: skip
    print("\nTargets (ratios to baselines from this run)")
    print(text_table(["target", "ours", "baseline", "ratio", "target", "verdict"], rows))
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
