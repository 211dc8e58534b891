"""Threads, signals and fork: the GIL is released while a call blocks, Ctrl-C interrupts a
blocking read promptly, close() from another thread stops a blocked call, and a forked
child never closes its parent's channel."""

from __future__ import annotations

import gc
import os
import signal
import threading
import time

import pytest

import shm_channel as sc
from conftest import python_child

CAP = 1 << 12


def _max_gap_while(busy: threading.Thread) -> tuple[float, int]:
    """Spin in this thread while `busy` runs: the longest pause between two iterations
    (a held GIL shows as a pause as long as the other thread's C call), and the count."""
    last = time.perf_counter()
    gap, n = 0.0, 0
    while busy.is_alive():
        now = time.perf_counter()
        gap = max(gap, now - last)
        last = now
        n += 1
    return gap, n


def test_blocking_read_releases_the_gil(name: str) -> None:
    with sc.Producer(name, CAP) as p, sc.Consumer(name, CAP) as c:
        c.set_spin(0)
        got: list[bytes] = []
        t = threading.Thread(target=lambda: got.append(c.read(timeout=5)))
        t.start()
        time.sleep(0.05)
        # Write from a timer thread after 0.4 s; until then the reader sits in C calls of
        # 0.1 s each, and this thread must keep running.
        timer = threading.Timer(0.4, lambda: p.write(b"late"))
        timer.start()
        gap, n = _max_gap_while(t)
        timer.join()
        # Were the GIL held during the C calls, this thread would stall for whole 0.1 s
        # wait slices (checked by patching in a GIL-holding sleep: gap 0.100 s).
        assert got == [b"late"]
        assert n > 1000
        assert gap < 0.075, f"main thread stalled {gap:.3f} s while another thread waited"


def test_blocking_write_releases_the_gil(name: str) -> None:
    with sc.Producer(name, CAP) as p, sc.Consumer(name, CAP) as c:
        p.set_spin(0)
        while True:
            try:
                p.write(b"f" * 500, timeout=0)
            except BlockingIOError:
                break
        t = threading.Thread(target=lambda: p.write(b"f" * 500, timeout=5))
        t.start()
        timer = threading.Timer(0.3, lambda: c.read())
        timer.start()
        gap, _ = _max_gap_while(t)
        timer.join()
        assert gap < 0.075


def test_close_from_another_thread_stops_a_blocked_read(name: str) -> None:
    c = sc.Consumer(name, CAP)
    errors: list[type] = []

    def reader() -> None:
        try:
            c.read()
        except BaseException as e:
            errors.append(type(e))  # not e: its traceback would hold the handle open

    t = threading.Thread(target=reader)
    t.start()
    time.sleep(0.2)
    t0 = time.monotonic()
    c.close()
    t.join(2)
    assert not t.is_alive()
    assert time.monotonic() - t0 < 0.5
    assert errors == [sc.ChannelClosedError]
    sc.Consumer(name, CAP).close()  # the C handle was closed once the read returned


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
    time.sleep(0.3)  # well into the blocking read
    t0 = time.monotonic()
    child.send_signal(signal.SIGINT)
    rc = child.wait(5)
    elapsed = time.monotonic() - t0
    out = child.stdout.read()
    assert rc == 3, child.stderr.read() if child.stderr else ""
    assert "interrupted" in out
    assert elapsed < 0.5, f"Ctrl-C took {elapsed:.2f} s"


def test_ctrl_c_interrupts_a_blocking_read_in_a_thread(name: str) -> None:
    # The read runs in a worker thread; the main thread joins it. Python delivers
    # KeyboardInterrupt to the main thread, whose join() must be interruptible too.
    child = python_child(
        "import sys, threading, shm_channel\n"
        "c = shm_channel.Consumer(sys.argv[1], 4096)\n"
        "t = threading.Thread(target=lambda: c.read(), daemon=True)\n"
        "t.start()\n"
        "print('ready', flush=True)\n"
        "try:\n"
        "    while t.is_alive():\n"
        "        t.join(0.05)\n"
        "except KeyboardInterrupt:\n"
        "    c.close()\n"
        "    t.join(1)\n"
        "    print('stopped' if not t.is_alive() else 'hung', flush=True)\n",
        name,
    )
    assert child.stdout is not None
    assert child.stdout.readline().strip() == "ready"
    time.sleep(0.3)
    child.send_signal(signal.SIGINT)
    child.wait(5)
    assert child.stdout.read().strip() == "stopped"


@pytest.mark.skipif(not hasattr(signal, "setitimer"), reason="needs setitimer")
def test_signal_handler_that_returns_resumes_the_wait(name: str) -> None:
    calls: list[float] = []
    old = signal.signal(signal.SIGALRM, lambda *_: calls.append(time.monotonic()))
    try:
        with sc.Producer(name, CAP), sc.Consumer(name, CAP) as c:
            c.set_spin(0)
            signal.setitimer(signal.ITIMER_REAL, 0.05, 0.05)
            t0 = time.monotonic()
            with pytest.raises(TimeoutError):
                c.read(timeout=0.4)
            elapsed = time.monotonic() - t0
            signal.setitimer(signal.ITIMER_REAL, 0)
        assert len(calls) >= 4  # the handlers ran during the wait
        assert 0.38 < elapsed < 1.0  # and the wait went on for its whole timeout
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, old)


@pytest.mark.skipif(not hasattr(signal, "setitimer"), reason="needs setitimer")
def test_signal_handler_that_raises_ends_the_wait(name: str) -> None:
    class StopWaitingError(Exception):
        pass

    def handler(*_: object) -> None:
        raise StopWaitingError

    old = signal.signal(signal.SIGALRM, handler)
    try:
        with sc.Producer(name, CAP) as p, sc.Consumer(name, CAP) as c:
            signal.setitimer(signal.ITIMER_REAL, 0.1)
            t0 = time.monotonic()
            with pytest.raises(StopWaitingError):
                c.read()
            assert time.monotonic() - t0 < 0.3
            p.write(b"still works")
            assert c.read(timeout=1) == b"still works"
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
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
