"""Broadcast channels from Python (shm_channel.Publisher / Subscriber): typed values, lapping
and missed counts, latest with is_new, blocking waits, publisher death and close, zero-copy
views. Peers are real processes where the behaviour crosses one."""

from __future__ import annotations

import ctypes
import errno
import signal
import struct
import subprocess
import threading

import pytest

import shm_channel as sc
from conftest import python_child, wait_until

np = pytest.importorskip("numpy")


class Pose(ctypes.Structure):
    _fields_ = [("x", ctypes.c_double), ("flag", ctypes.c_uint8), ("y", ctypes.c_float)]


TYPED = [
    (bool, [True, False, True], "bool"),
    (int, [0, -(1 << 63), (1 << 63) - 1, 42], "i64"),
    (float, [0.5, -1e300, float("inf")], "f64"),
    (bytes, [b"", b"abc", bytes(range(256))], "bytes"),
    (str, ["", "héllo", "日本"], "str"),
    (struct.Struct("<3d"), [(1.0, 2.0, -1.0), (0.0, 0.0, 0.0)], "struct:<3d"),
    (struct.Struct("<d d d"), [(1.0, 2.0, 3.0)], "struct:<3d"),  # canonical form
]


@pytest.mark.parametrize(("kind", "values", "tag"), TYPED, ids=[t[2] for t in TYPED])
def test_typed_values_round_trip(name: str, kind: object, values: list, tag: str) -> None:
    with sc.Publisher(name, kind, depth=8) as pub, sc.Subscriber(name, kind) as sub:
        assert pub.type_tag == tag
        assert sub.broadcast_stat().type_tag == tag
        for v in values:
            pub.publish(v)
        got = [sub.recv(timeout=0) for _ in values]
    assert got == [(v, 0) for v in values]
    assert [type(g[0]) for g in got] == [type(v) for v in values]


def test_ctypes_structure_is_the_struct_wire_type(name: str) -> None:
    # Pose: double at 0, uint8 at 8, float at 12 (3 padding bytes), 16 bytes in all.
    with sc.Publisher(name, Pose) as pub:
        assert pub.type_tag == "struct:<dB3xf"
        with sc.Subscriber(name, struct.Struct("<dB3xf")) as raw, sc.Subscriber(name, Pose) as s:
            pub.publish(Pose(1.5, 7, -2.0))
            assert raw.recv(timeout=0) == ((1.5, 7, -2.0), 0)
            p, missed = s.recv(timeout=0)
            assert (type(p), p.x, p.flag, p.y, missed) == (Pose, 1.5, 7, -2.0, 0)
            with pytest.raises(TypeError, match="Pose values, not tuple"):
                pub.publish((1.5, 7, -2.0))


def test_ndarray_frames_and_zero_copy_latest_view(name: str) -> None:
    frame = np.zeros((4, 8, 3), np.uint8)
    with sc.Publisher(name, frame, depth=3) as pub, sc.Subscriber(name, frame) as sub:
        assert pub.type_tag == "ndarray:|u1:4x8x3"
        pub.publish(np.full_like(frame, 1))
        with pytest.raises(sc.MessageOverwritten, match="overwrote"):
            with sub.peek_latest() as (view, is_new):
                assert is_new
                assert isinstance(view, np.ndarray)
                assert view.shape == (4, 8, 3) and not view.flags.writeable
                assert int(view.sum()) == frame.size
                # A view, not a copy: publishing depth more frames rewrites its memory.
                for k in range(2, 2 + pub.depth):
                    pub.publish(np.full_like(frame, k))
                assert int(view[0, 0, 0]) == 1 + pub.depth
        # The overwritten view counts as missed, never delivered.
        st = sub.subscriber_stat()
        assert (st.delivered, st.missed) == (0, 1)
        value, missed = sub.recv(timeout=0)  # continues after the overwritten one
        assert value.flags.writeable  # a copy
        assert (int(value[0, 0, 0]), missed) == (2, 0)


def test_wrong_type_names_both_types(name: str) -> None:
    with sc.Publisher(name, 0.0):
        with pytest.raises(sc.TopicTypeError) as info:
            sc.Subscriber(name, 0)
        assert isinstance(info.value, TypeError)
        assert info.value.errno == errno.EMEDIUMTYPE
        assert "f64 (float)" in str(info.value) and "i64 (int)" in str(info.value)
        assert (info.value.have, info.value.want) == ("f64", "i64")
        with pytest.raises(sc.TopicTypeError, match=r"ndarray:<f4:3"):
            sc.Subscriber(name, np.zeros(3, np.float32))
        with sc.Subscriber(name) as untyped:  # no requirement: raw bytes of any topic
            assert untyped.type_tag == ""


def test_int_out_of_range_is_a_clear_error_and_publishes_nothing(name: str) -> None:
    with sc.Publisher(name, int) as pub:
        for bad in (1 << 63, -(1 << 63) - 1):
            with pytest.raises(OverflowError, match="64-bit signed integer"):
                pub.publish(bad)
        with pytest.raises(TypeError, match="not float"):
            pub.publish(1.5)
        assert pub.broadcast_stat().pub_seq == 0


def test_bool_payload_other_than_0_or_1_is_a_decoding_error(name: str) -> None:
    with sc.Publisher(name, bool) as pub, sc.Subscriber(name, bool) as sub:
        with pub.reserve(1) as view:
            view[0] = 2
        with pytest.raises(ValueError, match="0 or 1"):
            sub.recv(timeout=0)


def test_lapping_gives_exact_missed_counts(name: str) -> None:
    with sc.Subscriber(name, int, depth=4) as sub:
        child = python_child(
            "import sys, shm_channel as sc\n"
            "with sc.Publisher(sys.argv[1], int) as p:\n"
            "    for i in range(1, 11): p.publish(i)\n",
            name,
        )
        assert child.wait(30) == 0, child.stderr.read() if child.stderr else ""
        got = list(sub)  # iteration: (value, missed) until end-of-stream
        assert got == [(7, 6), (8, 0), (9, 0), (10, 0)]
        st = sub.subscriber_stat()
        assert (st.delivered, st.missed, sub.missed) == (4, 6, 6)


def test_latest_is_new_once_and_late_joiner_gets_newest_at_once(name: str) -> None:
    child = python_child(
        "import sys, shm_channel as sc\n"
        "p = sc.Publisher(sys.argv[1], float, depth=4)\n"
        "for i in range(100): p.publish(i * 0.5)\n"
        "print('ready', flush=True); sys.stdin.readline()\n",
        name,
        stdin=subprocess.PIPE,
    )
    assert child.stdout is not None and child.stdin is not None
    assert child.stdout.readline() == "ready\n"
    with sc.Subscriber(name, float, create=False) as late:
        assert late.latest() == (49.5, True)
        assert late.latest() == (49.5, False)
        with pytest.raises(BlockingIOError):
            late.recv(timeout=0)
    with sc.Subscriber(name, float, create=False) as late2:
        assert late2.recv(timeout=0) == (49.5, 0)  # the newest, at once, nothing missed
    with sc.Subscriber(name, float, create=False, from_oldest=True) as hist:
        assert [hist.recv(timeout=0)[0] for _ in range(4)] == [48.0, 48.5, 49.0, 49.5]
    child.stdin.close()
    assert child.wait(30) == 0


def test_latest_before_anything_was_published(name: str) -> None:
    with sc.Subscriber(name, float) as sub:
        assert sub.latest(default=-1.0) == (-1.0, False)
        with pytest.raises(BlockingIOError, match="nothing new"):
            sub.latest()


def test_blocking_recv_waits_for_a_publisher_in_another_process(name: str) -> None:
    with sc.Subscriber(name, str, max_payload=64) as sub:
        with pytest.raises(TimeoutError):
            sub.recv(timeout=0.05)
        result: list[object] = []
        t = threading.Thread(target=lambda: result.append(sub.recv(timeout=60)))
        t.start()
        # The subscriber is asleep on the futex (observable), then the publisher comes.
        wait_until(lambda: sub.broadcast_stat().sleepers == 1, what="subscriber asleep")
        child = python_child(
            "import sys, shm_channel as sc\n"
            "with sc.Publisher(sys.argv[1], str) as p: p.publish('hello')\n",
            name,
        )
        t.join(60)
        assert result == [("hello", 0)]
        assert child.wait(30) == 0
        with pytest.raises(sc.EndOfStream):
            sub.recv(timeout=10)


def test_publisher_death_is_peer_died_and_a_new_publisher_takes_over(name: str) -> None:
    with sc.Subscriber(name, int, depth=8) as sub:
        child = python_child(
            "import os, signal, sys, shm_channel as sc\n"
            "p = sc.Publisher(sys.argv[1], int)\n"
            "for i in range(3): p.publish(i)\n"
            "os.kill(os.getpid(), signal.SIGKILL)\n",
            name,
        )
        assert child.wait(30) == -signal.SIGKILL
        assert [sub.recv(timeout=10) for _ in range(3)] == [(0, 0), (1, 0), (2, 0)]
        with pytest.raises(sc.PeerDied, match=r"publisher of .* died"):
            sub.recv(timeout=10)
        with sc.Publisher(name, int) as successor:
            successor.publish(3)
            assert successor.broadcast_stat().pub_seq == 4  # numbering continues
        assert sub.recv(timeout=10) == (3, 0)
        with pytest.raises(sc.EndOfStream):
            sub.recv(timeout=10)


def test_close_semantics(name: str) -> None:
    pub = sc.Publisher(name, int)
    with pytest.raises(sc.ChannelBusy, match="already has a live publisher"):
        sc.Publisher(name, int)
    sub = sc.Subscriber(name, int)
    result: list[object] = []

    def blocked() -> None:
        try:
            sub.recv()
        except Exception as e:
            result.append(e)

    t = threading.Thread(target=blocked)
    t.start()
    wait_until(lambda: pub.broadcast_stat().sleepers == 1, what="subscriber asleep")
    sub.close()
    t.join(10)
    assert [type(e) for e in result] == [sc.ChannelClosedError]
    sub.close()  # again: nothing
    with pytest.raises(sc.ChannelClosedError):
        sub.latest()
    assert pub.broadcast_stat().subscribers == 0
    pub.close()
    with pytest.raises(sc.ChannelClosedError):
        pub.publish(1)
    # The last handle of a cleanly closed topic removed its name.
    with pytest.raises(FileNotFoundError):
        sc.Subscriber(name, int, create=False)


def test_depth_and_payload_mismatch_is_a_clear_error(name: str) -> None:
    with sc.Publisher(name, bytes, depth=4, max_payload=100):
        with pytest.raises(ValueError, match="depth, max_payload or max_subscribers"):
            sc.Subscriber(name, bytes, depth=5)
        with sc.Subscriber(name, bytes) as sub:  # 0 / None: accept the channel's
            assert sub.depth == 4 and sub.max_payload == 100
    with pytest.raises(sc.IncompatibleLayout, match="not a broadcast channel"):
        with sc.Producer(name + "s"):
            sc.Subscriber(name + "s")


@pytest.mark.parametrize(
    ("fmt", "canonical"),
    [
        ("<ddd", "<3d"),
        ("<d2d", "<3d"),
        ("<d d d", "<3d"),
        ("<xxx", "<3x"),
        ("<4s4s", "<4s4s"),
        ("<1d", "<d"),
        ("<l L", "<iI"),
        ("<dB7x", "<dB7x"),
    ],
)
def test_struct_formats_are_canonical(fmt: str, canonical: str) -> None:
    """spec/topics.md §3.1: one layout, one tag."""
    from shm_channel._topic import canonical_struct_format

    assert canonical_struct_format(fmt) == canonical


@pytest.mark.parametrize("fmt", ["3d", "@3d", ">3d", "<3n", "<3d!"])
def test_struct_formats_refused(fmt: str) -> None:
    from shm_channel._topic import canonical_struct_format

    with pytest.raises(ValueError, match="struct format"):
        canonical_struct_format(fmt)


def test_ctypes_layouts_flatten_with_explicit_padding() -> None:
    """spec/topics.md §3.2."""
    from shm_channel._topic import ctypes_format

    class Inner(ctypes.Structure):
        _fields_ = [("a", ctypes.c_uint8 * 3), ("n", ctypes.c_int32)]

    class Outer(ctypes.Structure):
        _fields_ = [("p", Inner), ("q", ctypes.c_double), ("f", ctypes.c_bool)]

    assert ctypes_format(Inner) == "<3Bxi"
    assert ctypes_format(Outer) == "<3Bxid?7x"

    class Bits(ctypes.Structure):
        _fields_ = [("b", ctypes.c_uint32, 3)]

    with pytest.raises(TypeError, match="bit fields"):
        sc.Publisher("never-created", Bits)
