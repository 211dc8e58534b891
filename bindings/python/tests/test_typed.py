"""numpy arrays (.npy-format messages and raw frames) and ctypes structures."""

from __future__ import annotations

import ctypes
import io

import pytest

import shm_channel as sc

np = pytest.importorskip("numpy")

CAP = 1 << 20


@pytest.fixture
def pair(name: str):
    with sc.Producer(name, CAP) as p, sc.Consumer(name, CAP) as c:
        yield p, c


ARRAYS = {
    "f64-2d": lambda: np.arange(12.0).reshape(3, 4),
    "u8-rgb": lambda: np.arange(4 * 5 * 3, dtype=np.uint8).reshape(4, 5, 3),
    "0-d": lambda: np.array(3.5),
    "empty": lambda: np.zeros((0, 7), np.int32),
    "fortran": lambda: np.asfortranarray(np.arange(6, dtype=np.int16).reshape(2, 3)),
    "strided": lambda: np.arange(20)[::3],
    "big-endian": lambda: np.arange(5, dtype=">u4"),
    "bool": lambda: np.array([True, False, True]),
    "complex": lambda: np.array([1 + 2j, 3 - 4j], np.complex128),
    "structured": lambda: np.array([(1, 2.5), (3, 4.5)], dtype=[("id", "<i4"), ("v", "<f8")]),
    "datetime": lambda: np.array(["2024-01-01", "2025-06-30"], dtype="datetime64[D]"),
    "unicode": lambda: np.array(["ab", "cde"]),
}


@pytest.mark.parametrize("make", ARRAYS.values(), ids=ARRAYS.keys())
def test_array_round_trip(pair, make) -> None:
    p, c = pair
    a = make()
    p.write_array(a)
    p.write_array(a)
    b = c.read_array()
    assert b.dtype == a.dtype and b.shape == a.shape
    np.testing.assert_array_equal(b, a)
    assert (b.flags.writeable and b.flags.owndata is False) or b.base is not None
    with c.peek_array() as v:
        assert not v.flags.writeable
        assert v.dtype == a.dtype and v.shape == a.shape
        np.testing.assert_array_equal(v, a)
        if a.flags.f_contiguous and not a.flags.c_contiguous:
            assert v.flags.f_contiguous


def test_message_is_a_npy_file(pair) -> None:
    p, c = pair
    a = np.arange(10, dtype=np.float32).reshape(2, 5)
    msg = sc.array_message(a)
    assert msg[:6] == b"\x93NUMPY"
    header_len = 10 + int.from_bytes(msg[8:10], "little")
    assert header_len % 64 == 0
    np.testing.assert_array_equal(np.load(io.BytesIO(msg)), a)
    p.write_array(a)
    assert c.read() == msg
    buf = io.BytesIO()
    np.save(buf, a)
    p.write(buf.getvalue())  # what numpy itself writes reads back too
    np.testing.assert_array_equal(c.read_array(), a)


def test_peek_array_is_zero_copy_and_aligned(pair) -> None:
    p, c = pair
    p.write_array(np.arange(100, dtype=np.float64))
    p.write(np.arange(7, dtype=np.float64))
    with pytest.raises(RuntimeError), c.peek() as raw:  # raising keeps the message
        start = np.frombuffer(raw, np.uint8).__array_interface__["data"][0]
        size = len(raw)
        raise RuntimeError("keep it")
    with c.peek_array() as v:  # the same message
        addr = v.__array_interface__["data"][0]
        assert start < addr < start + size  # inside the message, in the ring
        assert (addr - start) % 64 == 0 and addr % 8 == 0
        assert v.sum() == sum(range(100))
    with c.peek_array(np.float64) as v:  # raw: no header
        assert v.tolist() == list(range(7))


def test_raw_frames(pair) -> None:
    p, c = pair
    frame = np.random.default_rng(1).integers(0, 255, (48, 64, 3), dtype=np.uint8)
    for _ in range(3):
        p.write(frame)
    got = c.read_array(np.uint8, (48, 64, 3))
    np.testing.assert_array_equal(got, frame)
    out = np.empty_like(frame)
    assert c.read_into(out) == frame.nbytes
    np.testing.assert_array_equal(out, frame)
    with c.peek_array(np.uint8, frame.shape) as v:
        np.testing.assert_array_equal(v, frame)


def test_shape_mismatch_keeps_the_message(pair) -> None:
    p, c = pair
    p.write(b"x" * 10)
    with pytest.raises(ValueError, match="stays unread"):
        c.read_array(np.float64)
    with pytest.raises(ValueError, match="stays unread"):
        c.read_array(np.uint8, (3, 3))
    with pytest.raises(ValueError, match=r"no \.npy header"):
        c.read_array()
    with pytest.raises(ValueError), c.peek_array():
        pass
    assert c.read() == b"x" * 10
    p.write_array(np.zeros(3))
    with pytest.raises(ValueError, match="shape"):
        c.read_array(shape=(4,))
    np.testing.assert_array_equal(c.read_array(shape=3), np.zeros(3))


def test_object_arrays_are_refused(pair) -> None:
    p, _ = pair
    with pytest.raises(TypeError, match="objects"):
        p.write_array(np.array([object()]))


def test_write_array_too_large(name: str) -> None:
    with sc.Producer(name, 1 << 12) as p:
        with pytest.raises(sc.MessageTooLarge):
            p.write_array(np.zeros(1000))


def test_reserve_fills_an_array_in_place(pair) -> None:
    p, c = pair
    with p.reserve(8 * 16) as view:
        a = np.frombuffer(view, np.float64)
        a[:] = np.arange(16)
        del a
    np.testing.assert_array_equal(c.read_array(np.float64), np.arange(16.0))


class Reading(ctypes.Structure):
    _fields_ = [("seq", ctypes.c_uint64), ("value", ctypes.c_double), ("flags", ctypes.c_uint32)]


def test_ctypes_structures(pair) -> None:
    p, c = pair
    p.write(Reading(7, 2.5, 3))
    r = c.read_struct(Reading)
    assert (r.seq, r.value, r.flags) == (7, 2.5, 3)
    p.write_many([Reading(i, i / 2, 0) for i in range(5)])
    assert [c.read_struct(Reading).seq for _ in range(5)] == list(range(5))
    p.write(b"short")
    with pytest.raises(ValueError, match="stays unread"):
        c.read_struct(Reading)
    assert c.read() == b"short"
    p.write(Reading(9, 0.0, 1))
    into = Reading()
    assert c.read_into(into) == ctypes.sizeof(Reading)
    assert into.seq == 9
