"""Compat channels (spec/compat.md) from Python: CompatProducer / CompatConsumer are the stream
classes on seed 002's 16-byte-header ring. In the test's private directory: the exact bytes
of the layout, every stream call (split records included), the errors the layout gives
(empty message, names, SegmentRemoved, CorruptSegment); and against the model of the peer's
Python side (tests/compat/peer_model.py, byte-by-byte index stores) in /dev/shm, where the
peer looks, in both directions."""

from __future__ import annotations

import os
import struct
import subprocess
import sys
import time

import pytest

import shm_channel
from conftest import REPO

PEER_PY = REPO / "tests" / "compat" / "peer_model.py"


def header(segment_dir, name: str) -> tuple[int, int, int, int]:
    with open(segment_dir / name, "rb") as f:
        return struct.unpack("<4I", f.read(16))


def test_layout_roles_and_calls(name: str, segment_dir) -> None:
    with shm_channel.CompatProducer(name, 64) as p, shm_channel.CompatConsumer(name) as c:
        path = segment_dir / name
        assert path.stat().st_size == 64 + 16
        assert path.stat().st_mode & 0o777 == 0o600
        assert header(segment_dir, name) == (0, 0, 64, 0)
        p.write(b"hello")
        raw = path.read_bytes()
        assert raw[16:25] == b"\x05\x00\x00\x00hello"
        assert header(segment_dir, name)[0] == 9
        assert c.read(timeout=0) == b"hello"
        assert p.max_payload == 60 and p.capacity == 64
        st = p.stat()
        assert st.kind == shm_channel._lib.lib.SHM_CHANNEL_KIND_COMPAT
        # Every size at every offset: split prefixes and payloads through every call.
        for i in range(300):
            msg = bytes((i + k) % 256 for k in range(1 + (i * 7) % 60))
            if i % 3 == 0:
                p.write(msg)
            elif i % 3 == 1:
                with p.reserve(len(msg)) as view:
                    view[:] = msg
            else:
                assert p.write_many([msg]) == 1
            if i % 3 == 0:
                assert c.read(timeout=0) == msg
            elif i % 3 == 1:
                with c.peek(timeout=0) as view:
                    assert bytes(view) == msg
            else:
                assert c.read_many(4, timeout=0) == [msg]
        cs = c.compat_stat()
        assert cs.msgs == 301 and cs.head == cs.tail and cs.torn_loads == 0
        with pytest.raises(ValueError):
            p.write(b"")  # the peer's consumers stall forever on an empty message
        with pytest.raises(shm_channel.MessageTooLarge):
            p.write(b"x" * 61)
        with pytest.raises(BlockingIOError):
            c.read(timeout=0)
        with pytest.raises(TimeoutError):
            c.read(timeout=0.02)
        with pytest.raises(shm_channel.ChannelBusy):
            shm_channel.CompatConsumer(name)
    assert (segment_dir / name).exists(), "close never unlinks a compat segment"
    shm_channel.compat_unlink(name)
    assert not (segment_dir / name).exists()


def test_arguments(name: str) -> None:
    with pytest.raises(FileNotFoundError):
        shm_channel.CompatConsumer(name)  # consumers never create
    with pytest.raises(ValueError):
        shm_channel.CompatProducer("x" * 64)
    with pytest.raises(ValueError):
        shm_channel.CompatProducer(name, 1000)
    with pytest.raises(ValueError):
        shm_channel.CompatProducer(name, replace=True, create=False)
    with shm_channel.CompatProducer("y" * 63, 8):
        pass
    shm_channel.compat_unlink("y" * 63)
    with shm_channel.Producer(name):  # a stream is not a compat segment
        with pytest.raises(shm_channel.CorruptSegment):
            shm_channel.CompatConsumer(name)


def test_replace_orphans_the_old_consumer(name: str) -> None:
    p = shm_channel.CompatProducer(name, 256)
    c = shm_channel.CompatConsumer(name)
    p.write(b"old")
    p.close()
    p = shm_channel.CompatProducer(name, 256, replace=True)
    p.write(b"new")
    assert c.read(timeout=1) == b"old"
    with pytest.raises(shm_channel.SegmentRemoved):
        c.read()  # blocking: ends, it does not wait forever
    assert c.compat_stat().segment_gone
    c.close()
    with shm_channel.CompatConsumer(name) as c2:
        assert c2.read(timeout=1) == b"new"
    p.close()
    shm_channel.compat_unlink(name, force=True)


@pytest.fixture
def dev_shm(monkeypatch: pytest.MonkeyPatch) -> str:
    """The peer's shm_open looks in /dev/shm only: these tests meet it there."""
    monkeypatch.setenv("SHM_CHANNEL_DIR", "/dev/shm")
    n = f"pyc-{os.getpid()}-{os.urandom(4).hex()}"
    yield n
    try:
        shm_channel.compat_unlink(n, force=True)
    except FileNotFoundError:
        pass


def peer(*args: str) -> subprocess.Popen[str]:
    env = dict(os.environ, PYTHONWARNINGS="ignore", PEER_MODEL_TORN="yield")
    return subprocess.Popen(
        [sys.executable, str(PEER_PY), *args], env=env, stderr=subprocess.PIPE, text=True
    )


def expected(seed: int, seq: int, maxlen: int) -> bytes:
    sys.path.insert(0, str(PEER_PY.parent))
    try:
        import peer_model
    finally:
        sys.path.pop(0)
    return peer_model.msg_bytes(seed, seq, peer_model.msg_len(seed, seq, maxlen))


COUNT = 1000


def test_python_peer_producer_to_us(dev_shm: str) -> None:
    proc = peer("produce", dev_shm, str(1024 + 16), str(COUNT), "7", "1020")
    try:
        for _ in range(2000):
            try:
                c = shm_channel.CompatConsumer(dev_shm)
                break
            except (FileNotFoundError, TimeoutError):
                assert proc.poll() is None, proc.stderr.read()
                time.sleep(0.005)
        with c:
            for seq in range(COUNT):
                assert c.read(timeout=30) == expected(7, seq, 1020), seq
    finally:
        assert proc.wait(60) == 0, proc.stderr.read()


def test_us_to_python_peer_consumer(dev_shm: str) -> None:
    with shm_channel.CompatProducer(dev_shm, 1024, exclusive=True) as p:
        proc = peer("consume", dev_shm, str(COUNT), "8", "1020")
        for seq in range(COUNT):
            p.write(expected(8, seq, 1020), timeout=30)
        assert proc.wait(60) == 0, proc.stderr.read()
        assert p.compat_stat().msgs == COUNT
