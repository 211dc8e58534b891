"""Stream reserve() and peek() blocks (issue 14): one block object reused per handle, the view
a slice of the handle's window found by the one-try offset calls (shm_channel_try_reserve /
shm_channel_try_peek), the waiting pointer calls only when the ring is full or empty. Both
paths, and a library without the one-try calls, give the same messages and the same errors;
a view stays unusable after its block even when the block object is handed out again."""

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
        monkeypatch.setattr(_channel, "_c_try_reserve", _channel._try_zc_compat)
        monkeypatch.setattr(_channel, "_c_try_peek", _channel._try_zc_compat)
    return str(request.param)


def test_the_library_has_the_one_try_zero_copy_calls() -> None:
    assert _channel._c_try_reserve is not _channel._try_zc_compat
    assert _channel._c_try_peek is not _channel._try_zc_compat


def test_messages_of_every_size_through_the_ring_several_times(name: str, library: str) -> None:
    sizes = [0, 1, 8, 64, 1000, 9000, CAP // 2 - 8]
    with sc.Producer(name, CAP) as p, sc.Consumer(name, CAP) as c:
        for r in range(12):  # wraps the ring several times
            for k, size in enumerate(sizes):
                with p.reserve(size) as v:
                    assert len(v) == size and not v.readonly
                    v[:] = bytes([r + k + 1]) * size
                with c.peek() as m:
                    assert m.readonly
                    assert bytes(m) == bytes([r + k + 1]) * size
        st = c.stat()
        assert st.msgs_read == 12 * len(sizes)
        assert st.read_pos == st.write_pos


def test_a_view_is_dead_after_its_block_though_the_block_is_reused(name: str, library: str) -> None:
    with sc.Producer(name, CAP) as p, sc.Consumer(name, CAP) as c:
        with p.reserve(8) as v1:
            v1[:] = b"AAAAAAAA"
        r = p.reserve(8)
        with r as v2:
            with pytest.raises(ValueError):
                v1[0] = 1  # the earlier block's view, while the same object is in use again
            v2[:] = b"BBBBBBBB"
        with c.peek() as m1:
            assert bytes(m1) == b"AAAAAAAA"
        with c.peek() as m2:
            with pytest.raises(ValueError):
                bytes(m1)
            assert bytes(m2) == b"BBBBBBBB"
        with pytest.raises(ValueError):
            bytes(m2)
        with pytest.raises(ValueError, match="entered once"):
            with r:
                pass
        assert c.stat().msgs_read == 2


def test_blocks_made_before_others_are_entered_keep_their_own_size(name: str, library: str) -> None:
    with sc.Producer(name, CAP) as p, sc.Consumer(name, CAP) as c:
        first = p.reserve(4)  # not entered yet: the next reserve() makes another block
        second = p.reserve(6)
        assert first is not second
        with first as v:
            v[:] = b"1234"
        with second as v:
            v[:] = b"123456"
        with p.reserve(2) as v:
            v[:] = b"12"
        assert [len(m) for m in c.read_many(3)] == [4, 6, 2]
        p.write(b"x")
        pending = c.peek()  # not entered: the next peek() makes another block
        with c.peek() as m:
            assert bytes(m) == b"x"
        assert pending is not c.peek()
        assert c.stat().msgs_read == 4


def test_a_reserve_waits_for_room_and_a_peek_for_a_message(name: str, library: str) -> None:
    with sc.Producer(name, CAP, spin=0) as p, sc.Consumer(name, CAP, spin=0) as c:
        n = 0
        with pytest.raises(BlockingIOError):
            while True:
                with p.reserve(1000, timeout=0) as v:
                    v[:4] = n.to_bytes(4, "little")
                n += 1
        done: list[int] = []
        t = threading.Thread(target=lambda: done.append(len(p.reserve(1000).__enter__())))
        t.start()
        wait_until(lambda: c.stat().producer_sleeps > 0)  # blocked in the waiting call
        for i in range(n):
            with c.peek() as m:
                assert int.from_bytes(m[:4], "little") == i
        t.join(10)
        assert done == [1000]
    with sc.Producer(name, CAP) as p, sc.Consumer(name, CAP, spin=0) as c:
        got: list[bytes] = []

        def peek_one() -> None:
            with c.peek() as m:
                got.append(bytes(m))

        t = threading.Thread(target=peek_one)
        t.start()
        wait_until(lambda: c.stat().consumer_sleeps > 0)
        with p.reserve(4) as v:
            v[:] = b"late"
        t.join(10)
        assert got == [b"late"]


def test_errors_are_those_of_the_waiting_calls(name: str, library: str) -> None:
    with sc.Producer(name, CAP) as p, sc.Consumer(name, CAP) as c:
        with pytest.raises(sc.MessageTooLarge):
            with p.reserve(CAP):
                pass
        with pytest.raises(BlockingIOError):
            with c.peek(timeout=0):
                pass
        with p.reserve(3) as v:
            v[:] = b"end"
        p.close()
        with c.peek() as m:
            assert bytes(m) == b"end"
        with pytest.raises(sc.EndOfStream):
            with c.peek():
                pass
