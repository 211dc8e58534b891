"""Threads, signals and fork: the GIL is released while a call blocks, Ctrl-C interrupts a
blocking read promptly, close() from another thread stops a blocked call, and a forked
child never closes its parent's channel."""

from __future__ import annotations

import contextlib
import gc
import os
import signal
import sys
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest

import shm_channel as sc
from conftest import python_child, wait_until

CAP = 1 << 12


@contextlib.contextmanager
def _no_forced_switches() -> Iterator[None]:
    """Python hands the GIL to a waiting thread only when the holder releases it: had a
    blocking call kept the GIL in C, no other thread could run until it returned."""
    old = sys.getswitchinterval()
    sys.setswitchinterval(1000)
    try:
        yield
    finally:
        sys.setswitchinterval(old)


def _sleeps(name: str, role: str) -> int:
    """How often `role` slept on the futex so far (read through an observer handle, so
    that this thread never uses the handle another thread is calling)."""
    return int(getattr(sc.stat(name), f"{role}_sleeps"))


def test_blocking_read_releases_the_gil(name: str) -> None:
    with sc.Producer(name, CAP) as p, sc.Consumer(name, CAP) as c:
        c.set_spin(0)
        got: list[bytes] = []
        sleeps = _sleeps(name, "consumer")
        with _no_forced_switches():
            t = threading.Thread(target=lambda: got.append(c.read(timeout=10)))
            t.start()
            # This thread runs while the reader is asleep in C (were the GIL held there, it
            # would run only once the read had timed out, and the reader would miss this).
            wait_until(lambda: _sleeps(name, "consumer") > sleeps)
            p.write(b"late")
            t.join(30)
        assert got == [b"late"]


def test_blocking_write_releases_the_gil(name: str) -> None:
    with sc.Producer(name, CAP) as p, sc.Consumer(name, CAP) as c:
        p.set_spin(0)
        while True:
            try:
                p.write(b"f" * 500, timeout=0)
            except BlockingIOError:
                break
        done: list[bool] = []
        sleeps = _sleeps(name, "producer")
        with _no_forced_switches():
            t = threading.Thread(target=lambda: done.append(p.write(b"g" * 500, timeout=10)))
            t.start()
            wait_until(lambda: _sleeps(name, "producer") > sleeps)
            c.read()
            t.join(30)
        assert done == [None]
        assert c.read_many(100)[-1] == b"g" * 500


def test_close_from_another_thread_stops_a_blocked_read(name: str) -> None:
    c = sc.Consumer(name, CAP)
    errors: list[type] = []

    def reader() -> None:
        try:
            c.read()
        except BaseException as e:
            errors.append(type(e))

    sleeps = _sleeps(name, "consumer")
    t = threading.Thread(target=reader)
    t.start()
    wait_until(lambda: _sleeps(name, "consumer") > sleeps)  # blocked in the read
    c.close()
    t.join(30)  # within 0.1 s normally (bench/python/latency.py measures it)
    assert not t.is_alive()
    assert errors == [sc.ChannelClosedError]
    sc.Consumer(name, CAP).close()  # the role ended


def test_ctrl_c_interrupts_a_blocking_read(name: str) -> None:
    child = python_child(
        "import sys, shm_channel\n"
        "c = shm_channel.Consumer(sys.argv[1], 4096)\n"
        "print('ready', flush=True)\n"
        "try:\n"
        "    c.read()\n"
        "except KeyboardInterrupt:\n"
        "    print('interrupted', flush=True)\n"
        "    sys.exit(3)\n",
        name,
    )
    assert child.stdout is not None
    assert child.stdout.readline().strip() == "ready"
    wait_until(lambda: _sleeps(name, "consumer") > 0)  # blocked in the read
    child.send_signal(signal.SIGINT)
    rc = child.wait(30)  # within 0.1 s normally (bench/python/latency.py measures it)
    out = child.stdout.read()
    assert rc == 3, child.stderr.read() if child.stderr else ""
    assert "interrupted" in out


def test_ctrl_c_interrupts_a_blocking_read_in_a_thread(name: str) -> None:
    # The read runs in a worker thread; the main thread joins it. Python delivers
    # KeyboardInterrupt to the main thread, whose join() must be interruptible too.
    child = python_child(
        "import sys, threading, shm_channel\n"
        "c = shm_channel.Consumer(sys.argv[1], 4096)\n"
        "t = threading.Thread(target=lambda: c.read(), daemon=True)\n"
        "t.start()\n"
        "try:\n"
        "    print('ready', flush=True)\n"
        "    while t.is_alive():\n"
        "        t.join(0.05)\n"
        "except KeyboardInterrupt:\n"
        "    c.close()\n"
        "    t.join(30)\n"
        "    print('stopped' if not t.is_alive() else 'hung', flush=True)\n",
        name,
    )
    assert child.stdout is not None
    assert child.stdout.readline().strip() == "ready"
    wait_until(lambda: _sleeps(name, "consumer") > 0)
    child.send_signal(signal.SIGINT)
    child.wait(60)
    assert child.stdout.read().strip() == "stopped"


def _signal_when_asleep(name: str, role: str, times: int, then: Callable[[], object]) -> Any:
    """A thread that sends SIGALRM to this process `times` times, each once `role` is
    asleep on the futex again (so: after the previous handler ran and the wait resumed),
    then calls `then()`."""

    main = threading.main_thread().ident
    assert main is not None

    def run() -> None:
        for _ in range(times):
            sleeps = _sleeps(name, role)
            wait_until(lambda: _sleeps(name, role) > sleeps)
            signal.pthread_kill(main, signal.SIGALRM)  # interrupts the wait in C
        then()

    t = threading.Thread(target=run)
    t.start()
    return t


def test_signal_handler_that_returns_resumes_the_wait(name: str) -> None:
    calls: list[float] = []
    old = signal.signal(signal.SIGALRM, lambda *_: calls.append(time.monotonic()))
    try:
        with sc.Producer(name, CAP) as p, sc.Consumer(name, CAP) as c:
            c.set_spin(0)
            t = _signal_when_asleep(name, "consumer", 3, lambda: p.write(b"after 3 signals"))
            assert c.read(timeout=60) == b"after 3 signals"
            t.join(30)
        assert len(calls) == 3  # each ran in the wait, which resumed after each
    finally:
        signal.signal(signal.SIGALRM, old)


@pytest.mark.skipif(not hasattr(signal, "setitimer"), reason="needs setitimer")
def test_signal_handlers_do_not_shorten_or_restart_a_timeout(name: str) -> None:
    calls: list[float] = []
    old = signal.signal(signal.SIGALRM, lambda *_: calls.append(time.monotonic()))
    try:
        with sc.Producer(name, CAP), sc.Consumer(name, CAP) as c:
            c.set_spin(0)
            signal.setitimer(signal.ITIMER_REAL, 0.05, 0.05)
            t0 = time.monotonic()
            with pytest.raises(TimeoutError):
                c.read(timeout=0.6)
            elapsed = time.monotonic() - t0
            signal.setitimer(signal.ITIMER_REAL, 0)
        assert len([t for t in calls if t0 < t < t0 + elapsed]) >= 2  # handlers ran meanwhile
        assert elapsed >= 0.6  # the wait went on for its whole timeout
        assert elapsed < 30  # and did not start again after each signal (that would hang)
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, old)


def test_signal_handler_that_raises_ends_the_wait(name: str) -> None:
    class StopWaitingError(Exception):
        pass

    def handler(*_: object) -> None:
        raise StopWaitingError

    old = signal.signal(signal.SIGALRM, handler)
    try:
        with sc.Producer(name, CAP) as p, sc.Consumer(name, CAP) as c:
            c.set_spin(0)
            t = _signal_when_asleep(name, "consumer", 1, lambda: None)
            with pytest.raises(StopWaitingError):
                c.read(timeout=60)  # the handler's exception, not TimeoutError
            t.join(30)
            p.write(b"still works")
            assert c.read(timeout=10) == b"still works"
    finally:
        signal.signal(signal.SIGALRM, old)


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs fork")
def test_forked_child_does_not_close_the_parents_channel(name: str) -> None:
    with sc.Producer(name, CAP) as p, sc.Consumer(name, CAP) as c:
        p.write(b"before")
        pid = os.fork()
        if pid == 0:  # child
            code = 0
            try:
                p.write(b"from child")
                code = 1
            except sc.ChannelClosedError:
                pass
            del p
            gc.collect()  # would run the finalizer
            os._exit(code)
        _, status = os.waitpid(pid, 0)
        assert os.waitstatus_to_exitcode(status) == 0
        p.write(b"after")
        assert c.read_many() == [b"before", b"after"]
        with pytest.raises(BlockingIOError):  # not end-of-stream: the producer lives
            c.read(timeout=0)
        assert c.stat().producer_alive


def test_threads_can_share_a_channel_one_at_a_time(name: str) -> None:
    with sc.Producer(name, 1 << 16) as p, sc.Consumer(name, 1 << 16) as c:
        lock = threading.Lock()

        def writer(k: int) -> None:
            for i in range(200):
                with lock:
                    p.write(f"{k}:{i}".encode())

        threads = [threading.Thread(target=writer, args=(k,)) for k in range(4)]
        for t in threads:
            t.start()
        got = []
        while len(got) < 800:
            got += c.read_many(timeout=5)
        for t in threads:
            t.join()
        for k in range(4):
            assert [m for m in got if m.startswith(f"{k}:".encode())] == [
                f"{k}:{i}".encode() for i in range(200)
            ]


def test_interpreter_exit_ends_the_stream(name: str) -> None:
    child = python_child(
        "import sys, shm_channel\n"
        "p = shm_channel.Producer(sys.argv[1], 4096)\n"
        "p.write(b'bye')\n",  # no close(): the finalizer at exit must end the stream
        name,
    )
    with sc.Consumer(name, CAP) as c:
        assert child.wait(10) == 0
        assert c.read(timeout=5) == b"bye"
        with pytest.raises(sc.EndOfStream):
            c.read(timeout=5)
