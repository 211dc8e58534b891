"""write() and read() with no timeout make one short C call first (shm_channel_try_write /
shm_channel_try_read: three arguments, the length returned) and the waiting call only when
it finds the ring full or empty (issue 14). Both paths, and the same calls on a library
without the one-try functions, must give the same messages and the same errors."""

from __future__ import annotations

import threading

import pytest

import shm_channel as sc
from conftest import wait_until
from shm_channel import _channel

CAP = 1 << 16


@pytest.fixture(params=["one-try", "older library"])
def library(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    if request.param == "older library":
        monkeypatch.setattr(_channel, "_c_try_write", _channel._try_write_compat)
        monkeypatch.setattr(_channel, "_c_try_read", _channel._try_read_compat)
    return str(request.param)


def test_the_library_has_the_one_try_calls() -> None:
    assert _channel._c_try_write is not _channel._try_write_compat
    assert _channel._c_try_read is not _channel._try_read_compat


def test_messages_of_every_size_come_back_whole(name: str, library: str) -> None:
    sizes = [0, 1, 64, 1000, 40_000, CAP // 2 - 8]  # the last is larger than read's scratch
    with sc.Producer(name, CAP * 2) as p, sc.Consumer(name, CAP * 2) as c:
        for k, size in enumerate(sizes):
            data = bytes([k + 1]) * size
            p.write(data)
            p.write(bytearray(data))
            assert c.read() == data
            assert c.read() == data
        assert c.stat().msgs_read == 2 * len(sizes)


def test_a_read_waits_for_the_next_message(name: str, library: str) -> None:
    with sc.Producer(name, CAP) as p, sc.Consumer(name, CAP, spin=0) as c:
        got: list[bytes] = []
        t = threading.Thread(target=lambda: got.append(c.read()))
        t.start()
        wait_until(lambda: c.stat().consumer_sleeps > 0)  # blocked in the waiting call
        p.write(b"late")
        t.join(10)
        assert got == [b"late"]


def test_a_write_waits_for_room(name: str, library: str) -> None:
    with sc.Producer(name, CAP, spin=0) as p, sc.Consumer(name, CAP) as c:
        n = 0
        with pytest.raises(BlockingIOError):
            while True:
                p.write(n.to_bytes(4, "little") * 100, timeout=0)
                n += 1
        last = b"last" * 100  # as large as the others: it does not fit
        t = threading.Thread(target=lambda: p.write(last))
        t.start()
        wait_until(lambda: c.stat().producer_sleeps > 0)  # blocked: the ring is full
        for i in range(n):
            assert c.read()[:4] == i.to_bytes(4, "little")
        t.join(10)
        assert not t.is_alive()
        assert c.read() == last


def test_the_end_of_the_stream_and_wrong_sizes_raise_as_before(name: str, library: str) -> None:
    with sc.Consumer(name, CAP) as c:
        with sc.Producer(name, CAP) as p:
            with pytest.raises(sc.MessageTooLarge):
                p.write(b"x" * CAP)
            p.write(b"only")
        assert c.read() == b"only"
        with pytest.raises(sc.EndOfStream):
            c.read()
        with pytest.raises(sc.EndOfStream):  # and it stays so
            c.read()
