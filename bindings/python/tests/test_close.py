"""close() ends the role at once, whatever else still refers to the channel (issue 9, bug 2):
an exception raised by the channel, and so its traceback's frames, used to keep the C handle
open, so that the consumer never saw end-of-stream, a new producer or consumer got
ChannelBusy, and a finished segment stayed."""

from __future__ import annotations

import contextlib
import subprocess
import threading
import time
from collections.abc import Callable
from pathlib import Path

import pytest

import shm_channel as sc
from conftest import python_child, wait_until
from shm_channel import _channel

CAP = 1 << 12

CONSUMER = """
import sys, shm_channel
with shm_channel.Consumer(sys.argv[1], 4096) as c:
    print("ready", flush=True)
    while True:
        try:
            print(c.read(timeout=30).decode(), flush=True)
        except shm_channel.EndOfStream:
            print("end-of-stream", flush=True)
            break
"""


def _own_error(p: sc.Producer) -> None:
    p.write(b"x" * (p.max_payload + 1))  # raises MessageTooLarge, from inside write()


@pytest.mark.parametrize("keep", [False, True], ids=["inside-except", "exception-kept"])
def test_close_in_except_ends_the_stream_for_a_consumer_process(
    name: str, segment_dir: Path, keep: bool
) -> None:
    kept: list[BaseException] = []
    child = python_child(CONSUMER, name)
    assert child.stdout is not None
    assert child.stdout.readline().strip() == "ready"
    p = sc.Producer(name, CAP)
    p.write(b"one")
    try:
        _own_error(p)
    except sc.MessageTooLarge as e:
        if keep:
            kept.append(e)  # its traceback holds write()'s frame, and the handle in it
        p.close()
        # Still inside except: the role has ended already.
        out, err = child.communicate(timeout=30)
        assert child.returncode == 0, err
        assert out.split() == ["one", "end-of-stream"]
        assert not (segment_dir / name).exists()  # finished: the last one out removed it
    assert len(kept) == keep
    assert kept == [] or kept[0].__traceback__ is not None


@pytest.mark.parametrize("keep", [False, True], ids=["inside-except", "exception-kept"])
def test_close_in_except_lets_a_new_producer_open(name: str, keep: bool) -> None:
    kept: list[BaseException] = []
    with sc.Consumer(name, CAP) as c:
        p = sc.Producer(name, CAP)
        try:
            _own_error(p)
        except sc.MessageTooLarge as e:
            if keep:
                kept.append(e)
            p.close()
            with sc.Producer(name, CAP, create=False) as p2:  # not ChannelBusy
                p2.write(b"from the second producer")
        assert c.read(timeout=10) == b"from the second producer"
    assert len(kept) == keep


def test_consumer_close_in_except_lets_a_new_consumer_open(name: str) -> None:
    kept: list[BaseException] = []
    with sc.Producer(name, CAP) as p:
        c = sc.Consumer(name, CAP)
        try:
            c.read(timeout=0)  # nothing there: BlockingIOError from inside read()
        except BlockingIOError as e:
            kept.append(e)
            c.close()
        p.write(b"m")
        with sc.Consumer(name, CAP, create=False) as c2:
            assert c2.read(timeout=10) == b"m"
        assert c.closed and kept


def test_leaving_a_with_block_by_an_exception_ends_the_role(name: str) -> None:
    with sc.Consumer(name, CAP) as c:
        with pytest.raises(sc.MessageTooLarge) as info, sc.Producer(name, CAP) as p:
            p.write(b"before")
            _own_error(p)
        assert info.value.__traceback__ is not None  # pytest keeps it, and its frames
        assert c.read(timeout=10) == b"before"
        with pytest.raises(sc.EndOfStream):
            c.read(timeout=10)
        assert c.stat().producer_state == 2  # closed: end-of-stream
        with sc.Producer(name, CAP, create=False):
            pass


def test_close_from_another_thread_while_a_read_is_blocked(name: str) -> None:
    c = sc.Consumer(name, CAP)
    c.set_spin(0)
    errors: list[BaseException] = []

    def reader() -> None:
        try:
            c.read()
        except BaseException as e:  # kept, traceback and all
            errors.append(e)

    sleeps = c.stat().consumer_sleeps
    t = threading.Thread(target=reader)
    t.start()
    wait_until(lambda: sc.stat(name).consumer_sleeps > sleeps)  # the reader is blocked
    c.close()
    t.join(10)
    assert not t.is_alive()
    assert [type(e) for e in errors] == [sc.ChannelClosedError]
    with sc.Consumer(name, CAP, create=False) as c2:  # the role ended
        assert c2.stat().consumer_alive
    with pytest.raises(sc.ChannelClosedError):
        c.read(timeout=0)


def test_close_from_another_thread_while_a_write_is_blocked(name: str) -> None:
    with sc.Consumer(name, CAP) as c:
        p = sc.Producer(name, CAP)
        p.set_spin(0)
        while True:
            try:
                p.write(b"f" * 500, timeout=0)
            except BlockingIOError:
                break
        errors: list[BaseException] = []

        def writer() -> None:
            try:
                p.write(b"f" * 500)
            except BaseException as e:
                errors.append(e)

        sleeps = c.stat().producer_sleeps
        t = threading.Thread(target=writer)
        t.start()
        wait_until(lambda: c.stat().producer_sleeps > sleeps)  # the writer is blocked
        p.close()
        t.join(10)
        assert not t.is_alive()
        assert [type(e) for e in errors] == [sc.ChannelClosedError]
        assert len(c.read_many(100, timeout=10)) == CAP // 508
        with pytest.raises(sc.EndOfStream):  # the blocked message was not written
            c.read(timeout=10)


def test_close_never_detaches_during_another_threads_call(
    name: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The C handle is used by one thread at a time, detach included. Count the C calls in
    # flight (each made longer, GIL released, so that close() often lands during one) and
    # record how many were running whenever detach ran: always none.
    inflight = [0]
    at_detach: list[int] = []

    def counted(fn: Callable[..., int]) -> Callable[..., int]:
        def call(*args: object) -> int:
            inflight[0] += 1
            try:
                time.sleep(0.0002)
                return fn(*args)
            finally:
                inflight[0] -= 1

        return call

    real_detach = _channel._c_detach

    def detach(h: object) -> int:
        at_detach.append(inflight[0])
        return real_detach(h)

    monkeypatch.setattr(_channel, "_c_read", counted(_channel._c_read))
    monkeypatch.setattr(_channel, "_c_read_batch", counted(_channel._c_read_batch))
    monkeypatch.setattr(_channel, "_c_detach", detach)
    for k in range(40):
        with sc.Producer(name, 1 << 16) as p:
            c = sc.Consumer(name, 1 << 16)
            outcome: list[str] = []

            def reader(c: sc.Consumer = c, outcome: list[str] = outcome) -> None:
                try:
                    while True:
                        c.read_many(timeout=0.01) if len(outcome) % 2 else c.read(timeout=0.01)
                except sc.ChannelClosedError:
                    outcome.append("closed")
                except TimeoutError:
                    outcome.append("closed" if c.closed else "timeout")

            for i in range(200):
                p.write(i.to_bytes(4, "little"))
            t = threading.Thread(target=reader)
            t.start()
            time.sleep(k * 0.0001)  # jitter: close() lands before, during or after reads
            c.close()
            t.join(10)
            assert not t.is_alive()
            assert outcome in (["closed"], ["timeout"])
            with sc.Consumer(name, 1 << 16, create=False):  # the role ended
                pass
        with contextlib.suppress(FileNotFoundError):
            sc.unlink(name, force=True)
    assert len(at_detach) >= 40
    assert set(at_detach) == {0}


def test_exit_with_a_daemon_thread_blocked_in_write_ends_the_stream(name: str) -> None:
    code = """
import sys, threading, shm_channel
p = shm_channel.Producer(sys.argv[1], 4096)
p.set_spin(0)
while True:
    try:
        p.write(b"f" * 500, timeout=0)
    except BlockingIOError:
        break
threading.Thread(target=lambda: p.write(b"never"), daemon=True).start()
print("ready", flush=True)
sys.stdin.readline()  # exit (no close()) once the writer is blocked
"""
    with sc.Consumer(name, CAP) as c:
        child = python_child(code, name, stdin=subprocess.PIPE)
        assert child.stdout is not None and child.stdin is not None
        assert child.stdout.readline().strip() == "ready"
        wait_until(lambda: c.stat().producer_sleeps > 0)  # the daemon thread is blocked
        child.stdin.close()
        assert child.wait(30) == 0, child.stderr.read() if child.stderr else ""
        assert len(c.read_many(100, timeout=10)) == CAP // 508
        with pytest.raises(sc.EndOfStream):  # ended cleanly at exit, not PeerDied
            c.read(timeout=10)
