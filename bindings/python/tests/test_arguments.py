"""Numeric arguments (issue 9, bug 7): an int argument takes an int (numpy integers too),
and raises TypeError for anything else (float, numeric string, bool) and ValueError when out
of range; a duration takes a real number of seconds. Timeouts: None or math.inf wait
forever, 0 never waits, negative numbers and NaN raise ValueError."""

from __future__ import annotations

import ctypes
import math
import threading
import time
from fractions import Fraction

import pytest

import shm_channel as sc
from conftest import wait_until

np = pytest.importorskip("numpy")

CAP = 1 << 12
NOT_INTS = [1024.5, 4096.0, "4096", b"4096", True, None, float("inf"), float("nan")]
NOT_SECONDS = ["1", b"1", True, False, [1], 1j]
BAD_SECONDS = [-1, -0.001, float("nan"), -math.inf]


@pytest.fixture
def pair(name: str):
    with sc.Producer(name, CAP) as p, sc.Consumer(name, CAP) as c:
        yield p, c


@pytest.mark.parametrize("bad", NOT_INTS, ids=repr)
@pytest.mark.parametrize("cls", [sc.Producer, sc.Consumer])
def test_capacity_must_be_an_int(name: str, cls: type, bad: object) -> None:
    with pytest.raises(TypeError, match="capacity must be an int"):
        cls(name, bad)


@pytest.mark.parametrize("bad", [-4096, 1000, 1 << 41, 1 << 100, -(1 << 100)])
def test_capacity_out_of_range(name: str, bad: int) -> None:
    with pytest.raises(ValueError, match="capacity"):
        sc.Producer(name, bad)


def test_numpy_integers_are_ints(name: str) -> None:
    with sc.Producer(name, np.int64(CAP), mode=np.int32(0o600)) as p:
        assert p.capacity == CAP and type(p.capacity) is int
        with p.reserve(np.uint16(3)) as view:
            view[:] = b"abc"
        with sc.Consumer(name, np.uint32(0)) as c:
            assert c.read_many(np.int8(5)) == [b"abc"]


@pytest.mark.parametrize("bad", [0o600 + 0.0, "0o600", "384", True])
def test_mode_must_be_an_int(name: str, bad: object) -> None:
    with pytest.raises(TypeError, match="mode must be an int"):
        sc.Producer(name, CAP, mode=bad)


@pytest.mark.parametrize("bad", [0, -1, 0o1000, 1 << 70])
def test_mode_out_of_range(name: str, bad: int) -> None:
    with pytest.raises(ValueError, match="mode"):
        sc.Producer(name, CAP, mode=bad)


def _timed_calls(p: sc.Producer, c: sc.Consumer) -> dict[str, object]:
    """Every call that takes a timeout, as f(timeout)."""
    return {
        "read": lambda t: c.read(timeout=t),
        "read_into": lambda t: c.read_into(bytearray(8), timeout=t),
        "read_many": lambda t: c.read_many(timeout=t),
        "peek": lambda t: c.peek(timeout=t).__enter__(),
        "peek_array": lambda t: c.peek_array(timeout=t).__enter__(),
        "read_array": lambda t: c.read_array(timeout=t),
        "read_struct": lambda t: c.read_struct(ctypes.c_uint32, timeout=t),
        "write": lambda t: p.write(b"w", timeout=t),
        "write_many": lambda t: p.write_many([b"w"], timeout=t),
        "reserve": lambda t: p.reserve(1, timeout=t).__enter__(),
        "write_array": lambda t: p.write_array(np.zeros(1), timeout=t),
    }


def test_timeouts_of_every_call(pair) -> None:
    p, c = pair
    calls = _timed_calls(p, c)
    for name, call in calls.items():
        for bad in NOT_SECONDS:
            with pytest.raises(TypeError, match="timeout must be a number of seconds"):
                call(bad)
        for bad in BAD_SECONDS:
            with pytest.raises(ValueError, match=r"timeout must be None \(or math.inf\)"):
                call(bad)
        # Nothing was read or written by the refused calls.
        assert c.stat().msgs_written == 0, name
    # A real number of seconds of any type: int, float, numpy, Fraction.
    for ok in (0, 0.0, np.float32(0), np.float64(0.01), Fraction(1, 100), 0.01):
        with pytest.raises((BlockingIOError, TimeoutError)):
            c.read(timeout=ok)


def test_timeout_lower_bounds(pair) -> None:
    _, c = pair
    for timeout in (0.2, np.float64(0.15), Fraction(1, 5)):
        t0 = time.monotonic()
        with pytest.raises(TimeoutError):
            c.read(timeout=timeout)
        elapsed = time.monotonic() - t0
        assert elapsed >= timeout  # never early
        assert elapsed < timeout + 30  # only a guard against a hang


@pytest.mark.parametrize("forever", [None, math.inf, 1e300, 1 << 80], ids=repr)
def test_timeouts_that_wait_forever(pair, forever: object) -> None:
    p, c = pair
    c.set_spin(0)
    got: list[object] = []
    sleeps = c.stat().consumer_sleeps
    t = threading.Thread(target=lambda: got.append(c.read(timeout=forever)))
    t.start()
    # Asleep on the futex again and again (each 0.1 s slice sleeps anew): still waiting.
    wait_until(lambda: p.stat().consumer_sleeps > sleeps + 3)
    assert t.is_alive()
    p.write(b"late")
    t.join(30)
    assert got == [b"late"]


@pytest.mark.parametrize("bad", NOT_SECONDS, ids=repr)
def test_spin_must_be_seconds(pair, name: str, bad: object) -> None:
    p, _ = pair
    with pytest.raises(TypeError, match="spin must be a number of seconds"):
        p.set_spin(bad)
    with pytest.raises(TypeError, match="spin must be a number of seconds"):
        sc.Producer(name + "x", CAP, spin=bad)


@pytest.mark.parametrize("bad", [-1, -1e-9, 10.5, 11, math.inf, math.nan, 1 << 80], ids=repr)
def test_spin_out_of_range(pair, bad: object) -> None:
    p, _ = pair
    with pytest.raises(ValueError, match="spin must be from 0 to 10 seconds"):
        p.set_spin(bad)


def test_spin_accepts_real_numbers(pair) -> None:
    p, c = pair
    for ok in (0, 10, 0.5, np.float64(1e-6), Fraction(1, 1000), np.int64(1)):
        p.set_spin(ok)
        c.set_spin(ok)


@pytest.mark.parametrize("bad", [4.0, "4", True, None], ids=repr)
def test_reserve_size_must_be_an_int(pair, bad: object) -> None:
    p, _ = pair
    with pytest.raises(TypeError, match="size must be an int"):
        p.reserve(bad)


def test_reserve_size_range(pair) -> None:
    p, c = pair
    with pytest.raises(ValueError, match="size must be >= 0"):
        p.reserve(-1)
    for big in (p.max_payload + 1, 1 << 64, 1 << 100):
        with pytest.raises(sc.MessageTooLarge) as e, p.reserve(big):
            pass
        assert e.value.size == big
    with pytest.raises(BlockingIOError):
        c.read(timeout=0)


@pytest.mark.parametrize("bad", [2.0, "2", True, None], ids=repr)
def test_max_count_must_be_an_int(pair, bad: object) -> None:
    _, c = pair
    with pytest.raises(TypeError, match="max_count must be an int"):
        c.read_many(bad, timeout=0)


def test_max_count_range(pair) -> None:
    p, c = pair
    with pytest.raises(ValueError, match="max_count"):
        c.read_many(-1)
    p.write_many([b"a", b"b"])
    assert c.read_many(0) == []
    assert c.read_many(1 << 80) == [b"a", b"b"]  # more than there are: all of them


@pytest.mark.parametrize("bad", [2.5, (2.0, 4), "8", (True, 8), [None]], ids=repr)
def test_shape_must_be_ints(pair, bad: object) -> None:
    p, c = pair
    p.write(bytes(8))
    with pytest.raises(TypeError, match="shape"):
        c.read_array(np.uint8, bad)
    with pytest.raises(TypeError, match="shape"), c.peek_array(np.uint8, bad):
        pass
    assert c.read_array(np.uint8, np.int64(8)).shape == (8,)  # still unread until now


def test_shape_must_not_be_negative(pair) -> None:
    p, c = pair
    p.write(bytes(8))
    with pytest.raises(ValueError, match="negative"):
        c.read_array(np.uint8, (-2, -4))
    assert c.read_array(np.uint8, (np.int32(2), 4)).shape == (2, 4)
