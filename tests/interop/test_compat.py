"""Compat channels (spec/compat.md) across languages: our side in C, Python and Rust
(peers/compat_peer.c, compat_peer.py, peers/rust/src/bin/compat_peer.rs) against the models
of seed 002's C++ and Python processes (tests/compat/peer_model.cpp, peer_model.py), in both
directions, and our side in one language against our side in another, over compat segments
in /dev/shm (where the peer's shm_open looks). Every participant speaks the models' command
line and message stream and checks every message byte for byte (exit 0), so any producer
pairs with any consumer. Messages of random sizes 1..1020 on a 1 KiB ring (split records,
split length prefixes, many laps)."""

from __future__ import annotations

import os
import subprocess
import sys
import time

import pytest

import harness

COMPAT = harness.ROOT / "tests" / "compat"
PEER_PY_MODEL = COMPAT / "peer_model.py"
PEER_CPP_MODEL = harness.BUILD / "peer-model-cpp"
COMPAT_C = harness.BUILD / "compat-peer-c"
COMPAT_RUST = harness.CARGO_TARGET / "release" / "compat_peer"
COMPAT_PY = harness.HERE / "peers" / "compat_peer.py"
CAP = 1024
MAXLEN = CAP - 4


@pytest.fixture(scope="module")
def compat_built(built):
    log: list[str] = []
    harness._run(["c++", "-std=c++14", "-O2", "-Wall", "-Wextra", "-Werror", COMPAT /
                  "peer_model.cpp", "-o", PEER_CPP_MODEL], log, timeout=300)
    harness._run([os.environ.get("CC", "cc"), "-std=c11", "-O2", "-Wall", "-Wextra", "-Werror",
                  "-I", harness.ROOT / "c" / "include", harness.HERE / "peers" / "compat_peer.c",
                  "-L", harness.LIB_DIR, "-lshm_channel", "-Wl,-rpath," + str(harness.LIB_DIR),
                  "-o", COMPAT_C], log, timeout=300)
    return True


def cmd(who: str, *args) -> list[str]:
    args = tuple(str(a) for a in args)
    return {
        "cpp-model": [str(PEER_CPP_MODEL)],
        "py-model": [sys.executable, str(PEER_PY_MODEL)],
        "c": [str(COMPAT_C)],
        "py": [sys.executable, str(COMPAT_PY)],
        "rust": [str(COMPAT_RUST)],
    }[who] + list(args)


def env() -> dict:
    e = dict(os.environ)
    e["SHM_CHANNEL_DIR"] = "/dev/shm"  # the peer's shm_open looks nowhere else
    e["SHM_CHANNEL_LIBRARY"] = str(harness.LIB_DIR / "libshm_channel.so.1")
    e["PYTHONWARNINGS"] = "ignore"  # the Python model's resource tracker notices
    e["PEER_MODEL_TORN"] = "yield"  # tears for sure (peer_model.py's docstring)
    return e


OURS = ("c", "py", "rust")
NAMES = {"cpp-model": "C++ model", "py-model": "Python model", "c": "C", "py": "Python",
         "rust": "Rust"}
PAIRS = (
    [(m, o) for m in ("cpp-model", "py-model") for o in OURS]
    + [(o, m) for o in OURS for m in ("cpp-model", "py-model")]
    + [("c", "py"), ("py", "rust"), ("rust", "c")]
)


def count_for(prod: str, cons: str) -> int:
    slow = "py-model" in (prod, cons) or "py" in (prod, cons)
    n = 2000 if slow else 20000
    return n * 100 if harness.SOAK else n


@pytest.mark.parametrize(("prod", "cons"), PAIRS, ids=[f"{p}>{c}" for p, c in PAIRS])
def test_compat_pair(compat_built, prod: str, cons: str) -> None:
    name = harness.unique_name("compat")
    count, seed = count_for(prod, cons), 1000 + PAIRS.index((prod, cons))
    e = env()
    t0 = time.monotonic()
    p = subprocess.Popen(cmd(prod, "produce", name, CAP + 16, count, seed, MAXLEN), env=e,
                         stderr=subprocess.PIPE, text=True)
    # The peer's consumers open once and do not retry: start them once the producer made
    # the segment (its capacity word is set).
    path = "/dev/shm/" + name
    while True:
        try:
            with open(path, "rb") as f:
                if len(f.read(16)) == 16 and f.seek(8) == 8 and f.read(4) != bytes(4):
                    break
        except FileNotFoundError:
            pass
        assert p.poll() is None, f"producer {prod} exited {p.returncode}: {p.stderr.read()}"
        assert time.monotonic() - t0 < 60, "the producer never made the segment"
        time.sleep(0.002)
    c = subprocess.Popen(cmd(cons, "consume", name, count, seed, MAXLEN), env=e,
                         stderr=subprocess.PIPE, text=True)
    try:
        c_rc = c.wait(timeout=240)
        p_rc = p.wait(timeout=60)
    finally:
        for proc in (p, c):
            if proc.poll() is None:
                proc.kill()
                proc.wait()
        try:
            os.unlink("/dev/shm/" + name)
        except FileNotFoundError:
            pass  # the Python model's resource tracker got there first
    dt = time.monotonic() - t0
    ok = c_rc == 0 and p_rc == 0
    harness.record("compat", f"{NAMES[prod]}>{NAMES[cons]}", ok,
                   {"count": count, "msgs_per_s": count / dt})
    assert ok, (f"producer {prod} exit {p_rc}: {p.stderr.read()}\n"
                f"consumer {cons} exit {c_rc}: {c.stderr.read()}")
