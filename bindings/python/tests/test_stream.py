"""The API within one process: every call, every kind of buffer, timeouts, lifetime."""

from __future__ import annotations

import array
import ctypes
import gc
import pickle
import time
import warnings
from pathlib import Path

import pytest

import shm_channel as sc

CAP = 1 << 16


@pytest.fixture
def pair(name: str):
    with sc.Producer(name, CAP) as p, sc.Consumer(name, CAP) as c:
        yield p, c


def test_write_read_bytes(pair) -> None:
    p, c = pair
    p.write(b"hello")
    p.write(b"")
    p.write(b"x" * p.max_payload)
    assert c.read() == b"hello"
    assert c.read() == b""
    assert c.read() == b"x" * p.max_payload
    with pytest.raises(BlockingIOError):
        c.read(timeout=0)


@pytest.mark.parametrize(
    "data",
    [
        bytearray(b"bytearray"),
        memoryview(b"memoryview"),
        memoryview(b"0123456789")[2:7],
        array.array("i", [1, 2, 3]),
        (ctypes.c_uint32 * 3)(1, 2, 3),
    ],
    ids=["bytearray", "memoryview", "memoryview-slice", "array", "ctypes"],
)
def test_write_any_buffer(pair, data) -> None:
    p, c = pair
    p.write(data)
    assert c.read() == bytes(memoryview(data).cast("B"))


def test_write_numpy_without_copy(pair) -> None:
    np = pytest.importorskip("numpy")
    p, c = pair
    a = np.arange(100, dtype=np.float64)
    p.write(a)
    assert c.read() == a.tobytes()


def test_write_rejects_non_buffers_and_non_contiguous(pair) -> None:
    p, _ = pair
    with pytest.raises(TypeError):
        p.write("text")  # type: ignore[arg-type]
    with pytest.raises((TypeError, BufferError, ValueError)):
        p.write(memoryview(b"0123456789")[::2])


def test_message_too_large(pair) -> None:
    p, c = pair
    with pytest.raises(sc.MessageTooLarge) as e:
        p.write(b"x" * (p.max_payload + 1))
    assert e.value.size == p.max_payload + 1
    assert e.value.limit == p.max_payload == CAP // 2 - 8
    assert "capacity" in str(e.value)
    assert isinstance(e.value, OSError) and e.value.errno == 90
    with pytest.raises(BlockingIOError):
        c.read(timeout=0)  # nothing was written


def test_timeouts(pair) -> None:
    p, c = pair
    t = time.monotonic()
    with pytest.raises(TimeoutError) as e:
        c.read(timeout=0.25)
    assert 0.25 <= time.monotonic() - t < 30  # never early; the upper bound guards a hang
    assert "0.25 s" in str(e.value)
    with pytest.raises(BlockingIOError):
        c.read(timeout=0)
    with pytest.raises(ValueError, match="timeout"):
        c.read(timeout=-1)
    with pytest.raises(ValueError, match="timeout"):
        c.read(timeout=float("nan"))
    # fill the ring, then the writer waits
    n = 0
    with pytest.raises(BlockingIOError):
        while True:
            p.write(b"y" * 1000, timeout=0)
            n += 1
    assert n == CAP // 1008
    with pytest.raises(TimeoutError):
        p.write(b"y" * 1000, timeout=0.05)
    t = time.monotonic()
    with pytest.raises(TimeoutError):  # longer than one 0.1 s slice
        p.write(b"y" * 1000, timeout=0.3)
    assert 0.3 <= time.monotonic() - t < 30


def test_read_into(pair) -> None:
    p, c = pair
    p.write(b"abcdef")
    buf = bytearray(10)
    assert c.read_into(buf) == 6
    assert buf[:6] == b"abcdef"
    p.write(b"0123456789abc")
    small = bytearray(4)
    with pytest.raises(sc.MessageTooLarge) as e:
        c.read_into(small)
    assert e.value.size == 13 and e.value.limit == 4
    assert "stays unread" in str(e.value)
    assert c.read() == b"0123456789abc"  # kept
    with pytest.raises((TypeError, BufferError)):
        c.read_into(b"read-only")  # type: ignore[arg-type]
    p.write(b"xyz")
    view = memoryview(bytearray(8))
    assert c.read_into(view[2:]) == 3
    assert bytes(view) == b"\0\0xyz\0\0\0"


def test_read_larger_than_scratch(name: str) -> None:
    with sc.Producer(name, 1 << 20) as p, sc.Consumer(name) as c:
        big = bytes(range(256)) * 1000  # 256000 bytes, more than the 64 KiB scratch buffer
        p.write(big)
        p.write(b"after")
        assert c.read() == big
        assert c.read() == b"after"


def test_write_many_read_many(pair) -> None:
    p, c = pair
    msgs = [bytes([i]) * i for i in range(50)]
    assert p.write_many(msgs) == 50
    assert p.write_many([]) == 0
    assert p.write_many(iter([b"gen1", b"gen2"])) == 2
    got = c.read_many(30)
    assert got == msgs[:30]
    assert c.read_many() == [*msgs[30:], b"gen1", b"gen2"]
    assert c.read_many(0) == []
    p.write_many([b""] * 5)
    assert c.read_many() == [b""] * 5
    p.write_many([b"same"] * 7 + [b"one"])
    assert c.read_many(7) == [b"same"] * 7
    assert c.read_many() == [b"one"]
    with pytest.raises(BlockingIOError):
        c.read_many(timeout=0)
    with pytest.raises(TimeoutError):
        c.read_many(timeout=0.05)


def test_write_many_mixed_buffers(pair) -> None:
    np = pytest.importorskip("numpy")
    p, c = pair
    msgs = [
        b"b",
        bytearray(b"ba"),
        memoryview(b"mv"),
        np.arange(3, dtype=np.uint16),
        np.zeros((2, 0)),
        array.array("d", [1.5]),
    ]
    assert p.write_many(msgs) == len(msgs)
    assert c.read_many() == [
        bytes(memoryview(m).cast("B")) if memoryview(m).nbytes else b"" for m in msgs
    ]


def test_write_many_checks_sizes_first(pair) -> None:
    p, c = pair
    with pytest.raises(sc.MessageTooLarge):
        p.write_many([b"ok", b"x" * (p.max_payload + 1)])
    with pytest.raises(BlockingIOError):
        c.read(timeout=0)  # nothing at all was written


def test_write_many_partial_when_time_runs_out(pair) -> None:
    p, c = pair
    msgs = [b"z" * 1000] * 100  # more than the ring holds
    n = p.write_many(msgs, timeout=0)
    assert n == CAP // 1008
    with pytest.raises(BlockingIOError):
        p.write_many(msgs, timeout=0)
    with pytest.raises(TimeoutError):
        p.write_many(msgs, timeout=0.05)
    assert len(c.read_many(1000)) == n


def test_write_many_waits_for_the_reader(name: str) -> None:
    import threading

    msgs = [i.to_bytes(4, "little") * 100 for i in range(2000)]  # 800 KB through a 64 KiB ring
    got: list[bytes] = []
    with sc.Producer(name, CAP) as p, sc.Consumer(name, CAP) as c:

        def reader() -> None:
            while len(got) < len(msgs):
                got.extend(c.read_many(100, timeout=5))

        t = threading.Thread(target=reader)
        t.start()
        assert p.write_many(msgs, timeout=10) == len(msgs)
        t.join(10)
    assert got == msgs


def test_read_many_grows_for_big_messages(name: str) -> None:
    with sc.Producer(name, 1 << 22) as p, sc.Consumer(name) as c:
        big = b"B" * 1_000_000
        p.write_many([b"s", big, b"t", big])
        out = []
        while len(out) < 4:
            out += c.read_many()
        assert out == [b"s", big, b"t", big]


def test_reserve_commit_and_abort(pair) -> None:
    p, c = pair
    with p.reserve(5) as view:
        assert isinstance(view, memoryview) and not view.readonly and len(view) == 5
        view[:] = b"12345"
    assert c.read() == b"12345"
    with pytest.raises(RuntimeError), p.reserve(3) as view:
        view[:] = b"abc"
        raise RuntimeError("changed my mind")
    with pytest.raises(BlockingIOError):
        c.read(timeout=0)  # aborted: nothing published
    with pytest.raises(ValueError, match="released"):
        view[0]  # the view ends with the block
    with p.reserve(0) as view:
        assert len(view) == 0
    assert c.read() == b""
    with pytest.raises(sc.MessageTooLarge):
        with p.reserve(p.max_payload + 1):
            pass


def test_write_during_reserve_is_refused(pair) -> None:
    p, c = pair
    with p.reserve(4) as view:
        view[:] = b"resv"
        with pytest.raises(sc.ChannelBusy, match="reserve"):
            p.write(b"no")
    assert c.read() == b"resv"


def test_peek(pair) -> None:
    p, c = pair
    p.write(b"first")
    p.write(b"second")
    with c.peek() as view:
        assert view.readonly
        assert bytes(view) == b"first"
        with pytest.raises(TypeError):
            view[0] = 1  # type: ignore[index]
    with pytest.raises(ValueError, match="released"):
        bytes(view)
    with pytest.raises(KeyError), c.peek() as view:
        assert bytes(view) == b"second"
        raise KeyError("not done")
    with c.peek(timeout=0) as view:  # kept after the exception
        assert bytes(view) == b"second"
    with pytest.raises(BlockingIOError), c.peek(timeout=0):
        pass


def test_peek_view_is_aligned_and_in_place(pair) -> None:
    np = pytest.importorskip("numpy")
    p, c = pair
    sizes = [1, 13, 64, 1000, 0, 7]
    for size in sizes:
        p.write(b"\1" * size)
    addrs = []
    for size in sizes:
        with c.peek() as view:
            assert len(view) == size
            a = np.frombuffer(view, np.uint8)
            addrs.append(a.__array_interface__["data"][0] if size else None)
            del a
    # consecutive records sit back to back in the ring: 8-byte header, payload padded to 8
    for i in range(3):
        assert addrs[i] % 8 == 0
        assert addrs[i + 1] - addrs[i] == 8 + (sizes[i] + 7) // 8 * 8


def test_iteration_until_end_of_stream(name: str) -> None:
    with sc.Consumer(name, CAP) as c:
        with sc.Producer(name, CAP) as p:
            for i in range(10):
                p.write(str(i).encode())
        assert list(c) == [str(i).encode() for i in range(10)]
        assert list(c) == []
        with pytest.raises(sc.EndOfStream) as e:
            c.read()
        assert isinstance(e.value, BrokenPipeError)
        assert "closed" in str(e.value)
        with pytest.raises(sc.EndOfStream):
            c.read_many()
        with pytest.raises(sc.EndOfStream), c.peek():
            pass


def test_finished_stream_removes_its_segment(name: str, segment_dir: Path) -> None:
    with sc.Producer(name, CAP) as p, sc.Consumer(name, CAP) as c:
        assert (segment_dir / name).exists()
        p.write(b"m")
        p.close()
        assert list(c) == [b"m"]
    assert not (segment_dir / name).exists()


def test_consumer_may_start_first(name: str) -> None:
    with sc.Consumer(name, CAP) as c, sc.Producer(name) as p:
        assert p.capacity == CAP
        p.write(b"x")
        assert c.read(timeout=1) == b"x"


def test_stat_and_properties(pair, name: str) -> None:
    p, c = pair
    p.write(b"12345")
    st = c.stat()
    assert isinstance(st, sc.Stat)
    assert st.capacity == CAP and st.max_payload == CAP // 2 - 8
    assert st.msgs_written == 1 and st.bytes_written == 5 and st.msgs_read == 0
    assert st.used == 16 and st.write_pos - st.read_pos == 16
    assert st.producer_alive and st.consumer_alive and st.in_use
    assert st.producer_state == 1 and st.consumer_state == 1
    assert st.kind == 1 and (st.layout_major, st.layout_minor) == (1, 1)  # 1.1: spec §5.10
    c.read()
    st2 = sc.stat(name)
    assert st2.msgs_read == 1 and st2.bytes_read == 5 and st2.used == 0
    assert p.name == c.name == name
    assert p.capacity == c.capacity == CAP
    assert repr(p) == f"<shm_channel.Producer {name!r} capacity={CAP}>"
    assert p.stat().msgs_written == 1


def test_set_spin(pair) -> None:
    p, c = pair
    c.set_spin(0)
    p.set_spin(0.001)
    with pytest.raises(ValueError):
        c.set_spin(11)
    with pytest.raises(TimeoutError):
        c.read(timeout=0.01)


def test_close_is_idempotent_and_closed_channel_raises(name: str) -> None:
    p = sc.Producer(name, CAP)
    c = sc.Consumer(name, CAP)
    p.close()
    p.close()
    c.close()
    assert p.closed and c.closed
    assert repr(c) == f"<shm_channel.Consumer {name!r} closed>"
    for call in (
        lambda: p.write(b"x"),
        lambda: p.write_many([b"x"]),
        lambda: p.stat(),
        lambda: p.reserve(1).__enter__(),
        lambda: c.read(),
        lambda: c.read_many(),
        lambda: c.read_into(bytearray(1)),
        lambda: c.peek().__enter__(),
        lambda: c.stat(),
        lambda: c.set_spin(0),
        lambda: list(c),
    ):
        with pytest.raises(sc.ChannelClosedError, match="closed"):
            call()
    assert issubclass(sc.ChannelClosedError, ValueError)


def test_close_inside_blocks(name: str) -> None:
    p = sc.Producer(name, CAP)
    c = sc.Consumer(name, CAP)
    with pytest.raises(sc.ChannelClosedError), p.reserve(4) as view:
        view[:] = b"lost"
        p.close()  # drops the reservation
    p2 = sc.Producer(name, CAP)
    p2.write(b"m")
    with c.peek() as view:
        assert bytes(view) == b"m"
        c.close()
    p2.close()
    with sc.Consumer(name, CAP) as c2:  # the peeked message was not released
        assert list(c2) == [b"m"]


def test_leaked_view_stays_readable_after_close(name: str) -> None:
    np = pytest.importorskip("numpy")
    with sc.Producer(name, CAP) as p:
        p.write(np.arange(1000, dtype=np.int64))
        p.write(b"next")
        c = sc.Consumer(name, CAP)
        with c.peek() as view:
            kept = np.frombuffer(view, np.int64)  # against the rules: outlives the block
        with pytest.warns(ResourceWarning, match="still referenced"):
            c.close()
        assert kept.sum() == sum(range(1000))  # no crash: the memory is still mapped
        # The role ended at once all the same: a new consumer takes over.
        with sc.Consumer(name, CAP) as c2:
            assert c2.read(timeout=0) == b"next"
            for i in range(3 * CAP // 1000):  # the producer reuses the ring several times
                p.write(bytes([i & 0xFF]) * 1000)
                assert c2.read(timeout=10) == bytes([i & 0xFF]) * 1000
        # The old view is a private copy now: still readable, whatever it shows.
        assert len(kept.copy()) == 1000
        del kept, view
        gc.collect()


def test_array_from_a_peek_view_kept_past_close_inside_the_block(name: str) -> None:
    np = pytest.importorskip("numpy")
    with sc.Producer(name, CAP) as p:
        p.write(np.full(4096, 7, np.uint8))
        c = sc.Consumer(name, CAP)
        with c.peek() as view:
            a = np.frombuffer(view, np.uint8)
            with pytest.warns(ResourceWarning):
                c.close()
            assert a.sum() == 7 * 4096  # readable after close, inside the block
        assert a[-1] == 7 and a.sum() == 7 * 4096  # and after it
        with sc.Consumer(name, CAP) as c2:  # close() did not release the message
            assert c2.read(timeout=0) == bytes([7]) * 4096


def test_not_picklable(pair) -> None:
    p, c = pair
    for obj in (p, c):
        with pytest.raises(TypeError, match="open the channel by name"):
            pickle.dumps(obj)


def test_garbage_collected_producer_ends_the_stream(name: str) -> None:
    c = sc.Consumer(name, CAP)
    p = sc.Producer(name, CAP)
    p.write(b"last")
    del p
    gc.collect()
    assert list(c) == [b"last"]
    c.close()


def test_unlink(name: str, segment_dir: Path) -> None:
    with pytest.raises(FileNotFoundError):
        sc.unlink(name)
    c = sc.Consumer(name, CAP)
    with pytest.raises(sc.ChannelBusy, match="force=True"):
        sc.unlink(name)
    sc.unlink(name, force=True)
    assert not (segment_dir / name).exists()
    c.close()
    assert sc.channel_dir() == str(segment_dir)


def test_argument_checks(name: str) -> None:
    for bad in ("", ".hidden", "a/b", "sp ace", "x" * 201, "ü"):
        with pytest.raises(ValueError, match="invalid channel name"):
            sc.Producer(bad)
    with pytest.raises(TypeError):
        sc.Producer(b"bytes")  # type: ignore[arg-type]
    for cap in (1000, 512, 3 << 20, 1 << 41):
        with pytest.raises(ValueError, match="capacity"):
            sc.Producer(name, cap)
    with pytest.raises(ValueError, match="mode"):
        sc.Producer(name, mode=0o1777)
    with pytest.raises(ValueError, match="exclusive"):
        sc.Producer(name, create=False, exclusive=True)
    with sc.Producer("/" + name, CAP):  # a leading slash is allowed
        pass


def test_no_resource_warning_in_normal_use(pair) -> None:
    p, c = pair
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        p.write(b"a")
        with c.peek() as v:
            bytes(v)
