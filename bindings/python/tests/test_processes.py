"""Across processes: Python to Python, C to Python and Python to C, and what a consumer or
producer sees when the other one dies."""

from __future__ import annotations

import multiprocessing
import signal
import subprocess
import sys
import time

import pytest

import shm_channel as sc
from conftest import REPO, drain, python_child

FRAME = 1920 * 1080 * 3  # 6,220,800 bytes
FRAME_CAP = 32 << 20

PRODUCER = """
import sys, shm_channel
name, count = sys.argv[1], int(sys.argv[2])
with shm_channel.Producer(name, 1 << 16) as p:
    for i in range(count):
        p.write(i.to_bytes(8, "little") * (1 + i % 50))
"""


@pytest.mark.parametrize("consumer_first", [True, False], ids=["consumer-first", "producer-first"])
def test_python_to_python(name: str, consumer_first: bool) -> None:
    count = 20000
    if consumer_first:
        c = sc.Consumer(name, 1 << 16)
        child = python_child(PRODUCER, name, str(count))
    else:
        child = python_child(PRODUCER, name, str(count))
        deadline = time.monotonic() + 10
        while True:
            try:
                c = sc.Consumer(name, 1 << 16, create=False)
                break
            except FileNotFoundError:
                assert time.monotonic() < deadline
                time.sleep(0.01)
    with c:
        got = drain(c)
        assert len(got) == count
        for i, msg in enumerate(got):
            assert msg == i.to_bytes(8, "little") * (1 + i % 50)
    assert child.wait(10) == 0, child.stderr.read() if child.stderr else ""


def test_python_to_python_batches(name: str) -> None:
    code = """
import sys, shm_channel
with shm_channel.Producer(sys.argv[1], 1 << 16) as p:
    for k in range(100):
        p.write_many([(k * 100 + i).to_bytes(4, "little") for i in range(100)])
"""
    with sc.Consumer(name, 1 << 16) as c:
        child = python_child(code, name)
        got = []
        try:
            while True:
                got += c.read_many(300, timeout=10)
        except sc.EndOfStream:
            pass
    assert [int.from_bytes(m, "little") for m in got] == list(range(10000))
    assert child.wait(10) == 0


def _mp_producer(name: str, count: int) -> None:
    with sc.Producer(name, 1 << 16) as p:
        for i in range(count):
            p.write(str(i).encode())


def test_multiprocessing_spawn(name: str) -> None:
    ctx = multiprocessing.get_context("spawn")
    with sc.Consumer(name, 1 << 16) as c:
        proc = ctx.Process(target=_mp_producer, args=(name, 500))
        proc.start()
        assert drain(c) == [str(i).encode() for i in range(500)]
        proc.join(10)
        assert proc.exitcode == 0


def test_c_producer_numpy_frames(name: str, c_programs) -> None:
    np = pytest.importorskip("numpy")
    count = 12
    with sc.Consumer(name, FRAME_CAP) as c:
        prod = subprocess.Popen(
            [str(c_programs["demo_producer"]), name, str(count), str(FRAME), str(FRAME_CAP)],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        frame = np.empty((1080, 1920, 3), np.uint8)
        n = 0
        while True:
            try:
                if n % 2 == 0:  # one copy: ring -> preallocated array
                    assert c.read_into(frame, timeout=10) == FRAME
                    seq = int(frame.reshape(-1)[:8].view("<u8")[0])
                    fill = frame[-1, -1, -1]
                else:  # no copy: a view of the ring
                    with c.peek_array(np.uint8, (1080, 1920, 3), timeout=10) as view:
                        seq = int(view.reshape(-1)[:8].view("<u8")[0])
                        fill = view[-1, -1, -1]
                        assert not view.flags.writeable
            except sc.EndOfStream:
                break
            assert seq == n
            assert fill == n & 0xFF
            n += 1
        assert n == count
    assert prod.wait(10) == 0, prod.stderr.read() if prod.stderr else ""


def test_python_producer_to_c_consumer(name: str, c_programs) -> None:
    np = pytest.importorskip("numpy")
    cons = subprocess.Popen(
        [str(c_programs["demo_consumer"]), name, str(1 << 22)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    with sc.Producer(name, 1 << 22) as p:
        for i in range(200):
            with p.reserve(100_000) as view:
                a = np.frombuffer(view, np.uint8)
                a[:] = i & 0xFF
                a[:8] = np.frombuffer(i.to_bytes(8, "little"), np.uint8)
                del a
    out, err = cons.communicate(timeout=20)
    assert cons.returncode == 0, err
    assert "200" in out


def test_producer_killed_mid_stream(name: str) -> None:
    code = """
import sys, time, shm_channel
p = shm_channel.Producer(sys.argv[1], 1 << 16)
for i in range(100):
    p.write(i.to_bytes(4, "little"))
with p.reserve(64) as view:  # half-written when the process dies: never seen
    view[:4] = b"HALF"
    print("ready", flush=True)
    time.sleep(60)
"""
    with sc.Consumer(name, 1 << 16) as c:
        child = python_child(code, name)
        assert child.stdout is not None
        assert child.stdout.readline().strip() == "ready"
        child.send_signal(signal.SIGKILL)
        child.wait(10)
        got = [c.read(timeout=5) for _ in range(100)]
        assert [int.from_bytes(m, "little") for m in got] == list(range(100))
        with pytest.raises(sc.PeerDied, match="producer of") as e:
            c.read(timeout=5)
        assert e.value.errno == 130
        # A new producer continues the stream.
        with sc.Producer(name, 1 << 16) as p:
            p.write(b"resumed")
        assert drain(c) == [b"resumed"]


def test_consumer_killed_then_a_new_one_resumes(name: str) -> None:
    code = """
import sys, time, shm_channel
c = shm_channel.Consumer(sys.argv[1], 1 << 12)
for _ in range(3):
    c.read()
print("ready", flush=True)
time.sleep(60)
"""
    with sc.Producer(name, 1 << 12) as p:
        for i in range(10):
            p.write(bytes([i]) * 100)
        child = python_child(code, name)
        assert child.stdout is not None
        assert child.stdout.readline().strip() == "ready"
        child.send_signal(signal.SIGKILL)
        child.wait(10)
        # The ring is nearly full and its consumer is dead: the writer learns it.
        with pytest.raises(sc.PeerDied, match="consumer of"):
            while True:
                p.write(b"x" * 1000, timeout=5)
        with sc.Consumer(name, 1 << 12) as c:
            got = c.read_many(timeout=5)
        assert got[:7] == [bytes([i]) * 100 for i in range(3, 10)]


@pytest.mark.parametrize("copy", [False, True], ids=["peek", "copy"])
def test_frame_consumer_example(name: str, c_programs, copy: bool) -> None:
    pytest.importorskip("numpy")
    example = REPO / "examples" / "python" / "frame_consumer.py"
    cmd = [sys.executable, str(example), name] + (["--copy"] if copy else [])
    consumer = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    producer = subprocess.run(
        [str(c_programs["demo_producer"]), name, "10"], capture_output=True, text=True, timeout=60
    )
    out, err = consumer.communicate(timeout=60)
    assert producer.returncode == 0, producer.stderr
    assert consumer.returncode == 0, err
    assert out.startswith("consumer: 10 frames"), out
    assert "last pixel [9, 9, 9]" in out
