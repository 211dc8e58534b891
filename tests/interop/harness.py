"""Runs interop participants as real, separate processes, with a bound on everything.

The participant contract is in README.md. This module builds the peers, starts them, reads
their progress files, asks the C peer for segment positions, and collects results for the
matrix that conftest.py prints at the end.
"""

from __future__ import annotations

import itertools
import json
import os
import shutil
import signal
import struct
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
HERE = Path(__file__).resolve().parent
BUILD = Path(os.environ.get("SHM_INTEROP_BUILD", ROOT / "build-interop"))
LIB_DIR = BUILD / "lib"
PEER_C = BUILD / "peer-c"
CARGO_TARGET = BUILD / "cargo"
PEER_RUST = CARGO_TARGET / "release" / "peer"
PEER_PY = HERE / "peers" / "peer.py"
LANGS = ("c", "py", "rust")
LANG_NAME = {"c": "C", "py": "Python", "rust": "Rust"}
# Broadcast peers (tests/interop/README.md, "Broadcast channels"): the command of each language.
BCAST_PEER = {"c": [str(BUILD / "bcast-peer-c")],
              "py": [sys.executable, str(HERE / "peers" / "bcast_peer.py")],
              "rust": [str(CARGO_TARGET / "release" / "bcast_peer")]}
LANG_NAME.update({"bcast-" + k: v + " bcast_peer" for k, v in list(LANG_NAME.items())})

SOAK = os.environ.get("SHM_INTEROP_SOAK", "") not in ("", "0")


class InteropError(AssertionError):
    pass


def _run(cmd, log, **kw):
    """Run a build step; on failure, raise with its output."""
    t = time.monotonic()
    p = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, **kw)
    log.append("%s (%.1f s)" % (" ".join(str(c) for c in cmd[:4]), time.monotonic() - t))
    if p.returncode != 0:
        raise InteropError("build step failed: %s\n%s" % (
            " ".join(map(str, cmd)), p.stdout[-4000:]))
    return p.stdout


def build_all() -> list[str]:
    """Build the library, the C peer and the Rust peer, once. Returns a log of the steps."""
    log: list[str] = []
    BUILD.mkdir(parents=True, exist_ok=True)
    gen = ["-G", "Ninja"] if shutil.which("ninja") else []
    if not (LIB_DIR / "CMakeCache.txt").exists():
        _run(["cmake", "-S", ROOT, "-B", LIB_DIR, *gen, "-DCMAKE_BUILD_TYPE=Release",
              "-DSHM_CHANNEL_TESTS=OFF", "-DSHM_CHANNEL_BENCH=OFF", "-DSHM_CHANNEL_EXAMPLES=OFF"],
             log, timeout=300)
    _run(["cmake", "--build", LIB_DIR, "--target", "shm_channel", "shm_channel_cli"], log,
         timeout=600)
    _run([os.environ.get("CC", "cc"), "-std=c11", "-O2", "-Wall", "-Wextra", "-Wpedantic",
          "-Wshadow", "-Wstrict-prototypes", "-Wmissing-prototypes", "-Wformat=2", "-Werror",
          "-I", ROOT / "c" / "include", HERE / "peers" / "peer.c", "-L", LIB_DIR, "-lshm_channel",
          "-Wl,-rpath," + str(LIB_DIR), "-o", PEER_C], log, timeout=300)
    # ---- broadcast peer, C (test_broadcast.py; the Rust one is a bin of peers/rust) ----
    _run([os.environ.get("CC", "cc"), "-std=c11", "-O2", "-Wall", "-Wextra", "-Wpedantic",
          "-Wshadow", "-Wstrict-prototypes", "-Wmissing-prototypes", "-Wformat=2", "-Werror",
          "-I", ROOT / "c" / "include", HERE / "peers" / "bcast_peer.c", "-L", LIB_DIR,
          "-lshm_channel", "-Wl,-rpath," + str(LIB_DIR), "-o", BCAST_PEER["c"][0]], log,
         timeout=300)
    env = dict(os.environ, SHM_CHANNEL_LIB_DIR=str(LIB_DIR), CARGO_TARGET_DIR=str(CARGO_TARGET))
    env.pop("SHM_CHANNEL_STATIC", None)
    cargo = shutil.which("cargo") or str(Path.home() / ".cargo" / "bin" / "cargo")
    _run([cargo, "build", "--release", "--quiet", "--manifest-path",
          HERE / "peers" / "rust" / "Cargo.toml"], log, env=env, timeout=900)
    return log


def peer_cmd(lang: str, *args) -> list[str]:
    args = [str(a) for a in args]
    if lang == "c":
        return [str(PEER_C), *args]
    if lang == "rust":
        return [str(PEER_RUST), *args]
    if lang == "py":
        return [sys.executable, str(PEER_PY), *args]
    if lang.startswith("bcast-"):  # a broadcast peer (Proc(lang="bcast-c", ...))
        return [*BCAST_PEER[lang[6:]], *args]
    raise ValueError(lang)


def peer_env(shm_dir: Path) -> dict:
    env = dict(os.environ)
    env["SHM_CHANNEL_DIR"] = str(shm_dir)
    # The Python binding loads this file first: the very library the other two link.
    env["SHM_CHANNEL_LIBRARY"] = str(LIB_DIR / "libshm_channel.so.1")
    env.setdefault("PYTHONUNBUFFERED", "1")
    return env


_names = itertools.count()


def unique_name(tag: str) -> str:
    return "io-%d-%d-%s" % (os.getpid(), next(_names), tag)


@dataclass
class Proc:
    """One participant process. stdout and stderr go to files, so no pipe can fill up."""
    lang: str
    args: list
    workdir: Path
    env: dict
    label: str = ""
    popen: subprocess.Popen = None
    out_path: Path = None
    err_path: Path = None

    def start(self) -> "Proc":
        n = next(_names)
        tag = self.label or (self.args[0] if self.args else "none")
        self.out_path = self.workdir / ("%d-%s-%s.out" % (n, self.lang, tag))
        self.err_path = self.out_path.with_suffix(".err")
        with open(self.out_path, "wb") as out, open(self.err_path, "wb") as err:
            self.popen = subprocess.Popen(self.command(), stdout=out, stderr=err,
                                          stdin=subprocess.DEVNULL, env=self.env,
                                          start_new_session=True)
        return self

    def command(self) -> list[str]:
        return peer_cmd(self.lang, *self.args)

    @property
    def pid(self) -> int:
        return self.popen.pid

    def alive(self) -> bool:
        return self.popen.poll() is None

    def kill(self) -> None:
        """Cleanup: SIGKILL the process if it is still running."""
        if self.popen and self.popen.poll() is None:
            try:
                os.kill(self.popen.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            self.popen.wait(timeout=30)

    def sigkill(self) -> None:
        """A death scenario: the process, waiting at a known point (--hang-at, --pause-at),
        must still be alive, and must end by this SIGKILL, not by exiting on its own."""
        if self.popen.poll() is not None:
            raise InteropError("%s exited (%s) before it was killed\n%s" % (
                self.describe(), self.popen.returncode, self.output()))
        os.kill(self.popen.pid, signal.SIGKILL)
        rc = self.popen.wait(timeout=30)
        if rc != -signal.SIGKILL:
            raise InteropError("%s ended with %s, not by the SIGKILL\n%s" % (
                self.describe(), rc, self.output()))

    def output(self) -> str:
        out = self.out_path.read_text(errors="replace") if self.out_path else ""
        err = self.err_path.read_text(errors="replace") if self.err_path else ""
        return "%s %s\n--- stdout\n%s--- stderr\n%s" % (
            LANG_NAME[self.lang], " ".join(map(str, self.args)), out[-3000:], err[-3000:])

    def finish(self, timeout: float) -> dict:
        """Wait for exit (killing it after `timeout` s) and return its JSON result line."""
        try:
            self.popen.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.kill()
            raise InteropError("%s did not finish within %.0f s (killed)\n%s" % (
                self.describe(), timeout, self.output()))
        lines = [ln for ln in self.out_path.read_text(errors="replace").splitlines()
                 if ln.startswith("{")]
        if not lines:
            raise InteropError("%s exited %d without a result\n%s" % (
                self.describe(), self.popen.returncode, self.output()))
        res = json.loads(lines[-1])
        res["exit"] = self.popen.returncode
        return res

    def describe(self) -> str:
        return "%s %s (pid %d)" % (LANG_NAME[self.lang], " ".join(self.args[:1]), self.popen.pid)


class Session:
    """Per-test helper: starts peers, polls progress and segment state, kills leftovers."""

    def __init__(self, shm_dir: Path, workdir: Path):
        self.shm_dir = shm_dir
        self.workdir = workdir
        self.env = peer_env(shm_dir)
        self.procs: list[Proc] = []

    def spawn(self, lang: str, *args, label: str = "") -> Proc:
        p = Proc(lang, [str(a) for a in args], self.workdir, self.env, label).start()
        self.procs.append(p)
        return p

    def cleanup(self) -> None:
        for p in self.procs:
            p.kill()

    def run_c(self, *args, timeout: float = 60) -> dict:
        """Run a short C peer command (stat, locate) and return its JSON output."""
        p = subprocess.run(peer_cmd("c", *args), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                           text=True, env=self.env, timeout=timeout)
        try:
            return json.loads(p.stdout.strip().splitlines()[-1])
        except (IndexError, json.JSONDecodeError):
            raise InteropError("peer-c %s: %s %s" % (" ".join(map(str, args)), p.stdout, p.stderr))

    def stat(self, name: str) -> dict:
        return self.run_c("stat", "--name", name)

    def locate(self, pos: int, gen_args) -> dict:
        res = self.run_c("locate", "--pos", pos, *gen_args)
        if "error" in res:
            raise InteropError("locate: %s" % res["error"])
        return res

    def progress_path(self, tag: str) -> Path:
        return self.workdir / ("progress-%d-%s" % (next(_names), tag))

    @staticmethod
    def progress(path: Path) -> dict:
        try:
            data = path.read_bytes()
        except FileNotFoundError:
            data = b""
        if len(data) < 24:
            return {"done": 0, "hang": 0, "owner_dead": 0}
        done, hang, owner_dead = struct.unpack_from("<QQQ", data)
        return {"done": done, "hang": hang, "owner_dead": owner_dead}

    def wait_for(self, what: str, cond, timeout: float, watch=(), poll: float = 0.005):
        """Poll cond() until true; fail after `timeout` s or if a watched process exits."""
        end = time.monotonic() + timeout
        while True:
            v = cond()
            if v:
                return v
            for p in watch:
                if not p.alive():
                    raise InteropError("%s exited (%s) while waiting for %s\n%s" % (
                        p.describe(), p.popen.returncode, what, p.output()))
            if time.monotonic() > end:
                raise InteropError("timed out after %.0f s waiting for %s" % (timeout, what)
                                   + "".join("\n" + p.output() for p in watch))
            time.sleep(poll)


@dataclass
class Result:
    scenario: str
    row: str           # "c>py": producer > consumer, or, for crashes, dead > successor
    ok: bool
    msgs: int = 0
    msgs_per_s: float = 0.0
    mb_per_s: float = 0.0
    note: str = ""
    detail: dict = field(default_factory=dict)


RESULTS: list[Result] = []


def record(scenario: str, row: str, ok: bool, res: dict | None = None, note: str = "", **detail):
    r = Result(scenario, row, ok, note=note, detail=detail)
    if res:
        r.msgs = res.get("count", 0)
        r.msgs_per_s = res.get("msgs_per_s", 0.0)
        r.mb_per_s = res.get("mb_per_s", 0.0)
    RESULTS.append(r)
    return r


def run_checked(scenario: str, rowname: str, fn):
    """Run one scenario body (returning its result and a note); record the outcome in the
    matrix whatever happens."""
    try:
        res, note = fn()
    except BaseException as e:
        record(scenario, rowname, False, note=(str(e) or type(e).__name__).splitlines()[0][:80])
        raise
    record(scenario, rowname, True, res, note=note)


def check_consumer(res: dict, count: int, start: int = 0, end: str = "EPIPE"):
    """The consumer's own verdict, plus the runner's reading of it."""
    problems = []
    if res.get("exit") != 0 or not res.get("ok"):
        problems.append("consumer reported failure (exit %s): %s" % (
            res.get("exit"), res.get("errors")))
    if res.get("first") != start or res.get("next") != count:
        problems.append("consumer got messages %s..%s, expected %d..%d" % (
            res.get("first"), res.get("next"), start, count))
    if res.get("end") != end:
        problems.append("consumer ended with %s, expected %s" % (res.get("end"), end))
    if res.get("dups"):
        problems.append("consumer saw %s duplicates" % res.get("dups"))
    return problems


def check_producer(res: dict, count: int, start: int = 0):
    problems = []
    if res.get("exit") != 0 or not res.get("ok"):
        problems.append("producer reported failure (exit %s): %s" % (
            res.get("exit"), res.get("errors")))
    if res.get("first") != start or res.get("next") != count:
        problems.append("producer wrote %s..%s, expected %d..%d" % (
            res.get("first"), res.get("next"), start, count))
    return problems


def fmt_count(n: float) -> str:
    for unit, div in (("G", 1e9), ("M", 1e6), ("k", 1e3)):
        if n >= div:
            return "%.3g%s" % (n / div, unit)
    return "%d" % n


def _cell(rs: list[Result]) -> str:
    r = rs[0]
    if len(rs) > 1:  # e.g. one result per vector in a language's cell
        n_ok = sum(x.ok for x in rs)
        return "%s %d/%d" % ("ok" if n_ok == len(rs) else "FAIL", n_ok, len(rs))
    if not r.ok:
        return "FAIL"
    if r.msgs:
        text = "ok %s %s/s" % (fmt_count(r.msgs), fmt_count(r.msgs_per_s))
        return text + " " + r.note if r.note else text
    return "ok " + r.note if r.note else "ok"


def _table(rows: list[str], cols: list[str], cell: dict, corner: str) -> list[str]:
    width = {c: max([len(c)] + [len(cell.get((row, c), "")) for row in rows]) + 2 for c in cols}
    rw = max(len(corner), *(len(r) for r in rows)) + 2
    head = corner.ljust(rw) + "".join(c.ljust(width[c]) for c in cols)
    lines = [head.rstrip(), "-" * len(head.rstrip())]
    for row in rows:
        lines.append((row.ljust(rw) + "".join(cell.get((row, c), "-").ljust(width[c])
                                              for c in cols)).rstrip())
    return lines


CORNER = {"producer-crash": "killed>successor", "consumer-crash": "killed>successor"}


def render_matrix(results: list[Result]) -> str:
    """Pairs x scenarios, with pass/fail, messages and throughput in each cell: one table per
    group of scenarios that share their rows (the 3x3 pairs, the crash pairs, languages)."""
    groups: dict = {}
    for r in results:
        groups.setdefault((r.row, r.scenario), []).append(r)
    cell = {key: _cell(rs) for key, rs in groups.items()}
    rows_of: dict = {}
    for r in results:
        rows_of.setdefault(r.scenario, [])
        if r.row not in rows_of[r.scenario]:
            rows_of[r.scenario].append(r.row)
    tables: dict = {}
    for scen, rows in rows_of.items():
        key = tuple(sorted(rows))
        tables.setdefault(key, {"rows": sorted(rows), "cols": []})["cols"].append(scen)
    lines = []
    for t in tables.values():
        if len(t["rows"]) <= 1 and len(t["cols"]) == 1:
            scen = t["cols"][0]
            lines.append("%s %s: %s" % (scen, t["rows"][0], cell[(t["rows"][0], scen)]))
            lines.append("")
            continue
        corner = CORNER.get(t["cols"][0], "producer>consumer" if ">" in t["rows"][0] else "language")
        lines += _table(t["rows"], t["cols"], cell, corner) + [""]
    lines.append("Cells: messages and messages/s through the (last) consumer. Crash pairs: the "
                 "third language is the other side;")
    lines.append("hang@K = killed holding message K uncommitted (producer) or peeked, unreleased "
                 "(consumer: K is delivered again);")
    lines.append("kill@K = killed at a random point; the successor starts at message K.")
    n_ok = sum(r.ok for r in results)
    for r in results:
        if not r.ok:
            lines.append("FAILED %s %s: %s" % (r.scenario, r.row, r.note))
    lines.append("checks: %d ok, %d failing" % (n_ok, len(results) - n_ok))
    return "\n".join(lines)


# ---- services (test_service.py; contract in README.md, "Services") ---------------------------

SVC_PEER_C = BUILD / "svc-peer-c"
SVC_PEER_RUST = CARGO_TARGET / "release" / "svc_peer"
SVC_PEER_PY = HERE / "peers" / "svc_peer.py"


def build_svc_peer() -> list[str]:
    """Build the C service peer (the Rust one is a bin of the peer crate, built by build_all)."""
    log: list[str] = []
    _run([os.environ.get("CC", "cc"), "-std=c11", "-O2", "-Wall", "-Wextra", "-Wpedantic",
          "-Wshadow", "-Wstrict-prototypes", "-Wmissing-prototypes", "-Wformat=2", "-Werror",
          "-I", ROOT / "c" / "include", HERE / "peers" / "svc_peer.c", "-L", LIB_DIR,
          "-lshm_channel", "-Wl,-rpath," + str(LIB_DIR), "-o", SVC_PEER_C], log, timeout=300)
    return log


class SvcProc(Proc):
    """A service participant (svc_peer) instead of the stream peer."""

    def command(self) -> list[str]:
        args = [str(a) for a in self.args]
        if self.lang == "c":
            return [str(SVC_PEER_C), *args]
        if self.lang == "rust":
            return [str(SVC_PEER_RUST), *args]
        return [sys.executable, str(SVC_PEER_PY), *args]


CORNER.update({"svc-matrix": "server<clients", "svc-client-killed": "server",
               "svc-server-killed": "killed>successor"})
