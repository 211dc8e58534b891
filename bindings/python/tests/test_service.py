"""Services (kind 4) in one process: a Server and Clients on threads, over real shared
memory and futexes. Across processes: test_service_procs.py."""

from __future__ import annotations

import errno
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest

import shm_channel as sc


@pytest.fixture
def pair(name: str) -> Iterator[tuple[sc.Server, sc.Client]]:
    with sc.Server(name, max_request=256, max_response=512, max_clients=8) as srv:
        with sc.Client(name) as cli:
            yield srv, cli


class Background:
    """Runs fn in a thread; result() re-raises what it raised."""

    def __init__(self, fn: Callable[[], Any]) -> None:
        self.value: Any = None
        self.error: BaseException | None = None

        def run() -> None:
            try:
                self.value = fn()
            except BaseException as e:
                self.error = e

        self.thread = threading.Thread(target=run, daemon=True)
        self.thread.start()

    def result(self, timeout: float = 20) -> Any:
        self.thread.join(timeout)
        assert not self.thread.is_alive(), "the background call did not finish"
        if self.error is not None:
            raise self.error
        return self.value


def wait_until(cond: Callable[[], bool], what: str, timeout: float = 20) -> None:
    end = time.monotonic() + timeout
    while not cond():
        assert time.monotonic() < end, f"timed out waiting for {what}"
        time.sleep(0.001)


def test_round_trip_sizes_and_buffers(pair: tuple[sc.Server, sc.Client]) -> None:
    """0 bytes to the maximum both ways; any buffer type in; each answer to its request."""
    srv, cli = pair
    assert (cli.max_request, cli.max_response, cli.max_clients) == (256, 512, 8)
    answer = Background(lambda: srv.serve(lambda d: bytes(d[:1]) * (2 * len(d)), count=5))
    assert cli.request(b"", 10) == b""
    assert cli.request(b"\x07", 10) == b"\x07\x07"
    assert cli.request(bytearray(b"a" * 256), 10) == b"a" * 512
    assert cli.request(memoryview(b"xyz"), 10) == b"x" * 6
    numpy = pytest.importorskip("numpy")
    assert cli.request(numpy.full(4, 9, numpy.uint8), 10) == b"\x09" * 8
    assert answer.result() == 5
    st = srv.service_stat()
    assert (st.requests, st.responses, st.clients) == (5, 5, 1)


def test_request_too_large_is_not_sent(pair: tuple[sc.Server, sc.Client]) -> None:
    srv, cli = pair
    with pytest.raises(sc.MessageTooLarge) as ei:
        cli.request(b"x" * 257, 1)
    assert (ei.value.size, ei.value.limit, ei.value.errno) == (257, 256, errno.EMSGSIZE)
    with pytest.raises(BlockingIOError):
        srv.receive(0)


def test_answer_larger_than_the_buffer_stays_readable(pair: tuple[sc.Server, sc.Client]) -> None:
    srv, cli = pair
    answer = Background(lambda: srv.serve(lambda d: b"R" * 300, count=1))
    buf = bytearray(100)
    with pytest.raises(sc.MessageTooLarge) as ei:
        cli.request_into(b"q", buf, 10)
    assert (ei.value.size, ei.value.limit) == (300, 100)
    with cli.response(0) as view:  # the same answer, in place
        assert bytes(view) == b"R" * 300
    answer.result()
    served = Background(lambda: srv.serve(lambda d: d * 2, count=1))
    assert cli.request_into(b"ab", buf, 10) == 4
    assert bytes(buf[:4]) == b"abab"
    served.result()


def test_respond_too_large_keeps_the_request_owed(pair: tuple[sc.Server, sc.Client]) -> None:
    srv, cli = pair
    reply = Background(lambda: cli.request(b"q", 10))
    req = srv.receive(10)
    with pytest.raises(sc.MessageTooLarge) as ei:
        req.respond(b"x" * 513)
    assert (ei.value.size, ei.value.limit) == (513, 512)
    assert req.respond(b"x" * 512)
    assert reply.result() == b"x" * 512
    with pytest.raises(ValueError, match="answered already"):
        req.respond(b"again")


def test_a_timed_out_request_that_was_not_taken_never_runs(
    pair: tuple[sc.Server, sc.Client],
) -> None:
    srv, cli = pair
    with pytest.raises(TimeoutError, match="withdrawn"):
        cli.request(b"never", 0.05)
    with pytest.raises(BlockingIOError):
        srv.receive(0)
    assert srv.service_stat().client_timeouts == 1
    # The client goes on: its next request is answered.
    served = Background(lambda: srv.serve(lambda d: d.upper(), count=1))
    assert cli.request(b"next", 10) == b"NEXT"
    served.result()


@pytest.mark.parametrize("late", ["before-next", "after-next"])
def test_a_late_answer_is_never_the_answer_to_a_later_request(
    pair: tuple[sc.Server, sc.Client], late: str
) -> None:
    """The server takes request 1 and answers it only after the client gave up on it:
    either before the client's next request (the answer is written; nobody reads it) or
    after (refused: False). Either way the next request gets its own answer."""
    srv, cli = pair
    taken = threading.Event()
    gave_up = threading.Event()
    answered = threading.Event()

    def server() -> tuple[bool, bool]:
        r1 = srv.receive(10)
        taken.set()
        assert gave_up.wait(10)
        early = r1.respond(b"stale") if late == "before-next" else None
        answered.set()
        r2 = srv.receive(10)
        assert r2.data == b"2"
        stale = r1.respond(b"stale") if late == "after-next" else early
        return stale, r2.respond(b"fresh")

    s = Background(server)
    with pytest.raises(TimeoutError):
        cli.request(b"1", 0.3)
    assert taken.is_set()  # the server had it: given up, not withdrawn
    gave_up.set()
    if late == "before-next":
        assert answered.wait(10)  # the late answer is in the client's mailbox now
    assert cli.request(b"2", 10) == b"fresh"
    stale, fresh = s.result()
    assert fresh is True
    assert stale is (late == "before-next")


def test_many_requests_in_flight_answered_in_any_order_or_not_at_all(name: str) -> None:
    with sc.Server(name, max_clients=4) as srv:
        clients = [sc.Client(name) for _ in range(4)]
        calls = [
            Background(lambda c=c, i=i: c.request(b"%d" % i, 2 if i == 1 else 20))
            for i, c in enumerate(clients)
        ]
        reqs = [srv.receive(10) for _ in range(4)]
        assert sorted(r.data for r in reqs) == [b"0", b"1", b"2", b"3"]
        assert len({r.client for r in reqs}) == 4
        for r in reversed(reqs):
            if r.data == b"1":
                r.drop()
            else:
                assert r.respond(b"answer " + r.data)
        for i, call in enumerate(calls):
            if i == 1:
                with pytest.raises(TimeoutError):
                    call.result()
            else:
                assert call.result() == b"answer %d" % i
        for c in clients:
            c.close()


def test_zero_copy_both_ways(pair: tuple[sc.Server, sc.Client]) -> None:
    srv, cli = pair

    def server() -> None:
        with srv.receive_view(10) as req:
            assert isinstance(req.data, memoryview) and req.data.readonly
            data = bytes(req.data)
            with req.reserve(len(data) + 1) as out:
                out[:-1] = data[::-1]
                out[-1:] = b"!"
            with pytest.raises(ValueError):
                req.data.tobytes()  # the view ended with the answer
        req2 = srv.receive_view(10)
        req2.release()  # done reading in place: the answer is still owed
        assert req2.respond(b"late but owed")

    s = Background(server)
    with cli.reserve(5) as buf:
        buf[:] = b"hello"
    with cli.response(10) as view:
        assert bytes(view) == b"olleh!"
    with cli.request_view(b"x", 10) as view:
        assert bytes(view) == b"late but owed"
    with pytest.raises(ValueError):
        bytes(view)  # released at the end of the block
    s.result()


def test_server_close_answers_waiting_clients_and_a_new_server_takes_over(name: str) -> None:
    srv = sc.Server(name)
    with sc.Client(name) as cli:
        call = Background(lambda: cli.request(b"q", 20))
        req = srv.receive(10)
        srv.close()
        with pytest.raises(sc.ServerClosed) as ei:
            call.result()
        assert isinstance(ei.value, BrokenPipeError) and ei.value.errno == errno.EPIPE
        with pytest.raises(sc.ChannelClosedError):
            req.respond(b"x")
        with pytest.raises(sc.ServerClosed):
            cli.request(b"q", 1)
        with sc.Server(name) as successor:
            served = Background(lambda: successor.serve(lambda d: b"new " + d, count=1))
            assert cli.request(b"q", 10) == b"new q"
            served.result()


def test_roles_and_slots(name: str) -> None:
    with sc.Server(name, max_clients=2) as srv:
        with pytest.raises(sc.ChannelBusy, match="already has a live server"):
            sc.Server(name)
        a, b = sc.Client(name), sc.Client(name)
        with pytest.raises(sc.ChannelBusy) as ei:
            sc.Client(name)
        assert ei.value.errno == errno.EUSERS
        a.close()
        with sc.Client(name):  # the freed slot
            assert srv.service_stat().clients == 2
        b.close()


def test_kinds_do_not_mix(name: str) -> None:
    with sc.Server(name):
        with pytest.raises(sc.IncompatibleLayout):
            sc.Producer(name)
    with pytest.raises(FileNotFoundError):  # closed, no client: finished, name removed
        sc.unlink(name)
    with sc.Producer(name), pytest.raises(sc.IncompatibleLayout, match="not a service"):
        sc.Client(name)


def test_sizes_must_match_an_existing_service(name: str) -> None:
    with sc.Server(name, max_request=100):
        with pytest.raises(ValueError, match="max_request, max_response or max_clients"):
            sc.Client(name, max_request=200)
        with sc.Client(name, max_request=100) as c:
            assert c.max_request == 100


@pytest.mark.parametrize(
    "kwargs",
    [{"max_request": -1}, {"max_response": (1 << 30) + 1}, {"max_clients": 1025}],
)
def test_bad_sizes_are_refused_before_opening(name: str, kwargs: dict[str, int]) -> None:
    with pytest.raises(ValueError):
        sc.Server(name, **kwargs)
    with pytest.raises(TypeError):
        sc.Client(name, max_clients=1.5)  # type: ignore[arg-type]


def test_wait_server_times_out_then_returns(name: str) -> None:
    with sc.Client(name) as cli:
        with pytest.raises(TimeoutError, match="no server"):
            cli.wait_server(0.05)
        with sc.Server(name):
            cli.wait_server(0)


def test_serve_stops_on_event_close_and_handler_errors(pair: tuple[sc.Server, sc.Client]) -> None:
    srv, cli = pair
    stop = threading.Event()
    loop = Background(lambda: srv.serve(lambda d: None if d == b"drop" else d, stop=stop))
    with pytest.raises(TimeoutError):
        cli.request(b"drop", 0.2)  # None: dropped, unanswered
    assert cli.request(b"echo", 10) == b"echo"
    stop.set()
    assert loop.result() == 2

    def boom(d: bytes) -> bytes:
        raise RuntimeError("handler failed")

    failing = Background(lambda: srv.serve(boom))
    with pytest.raises(TimeoutError):
        cli.request(b"x", 0.3)
    with pytest.raises(RuntimeError, match="handler failed"):
        failing.result()

    closing = Background(lambda: srv.serve(lambda d: d))
    wait_until(lambda: srv._busy, "serve to be waiting")
    srv.close()
    assert closing.result() == 0


def test_close_stops_a_blocked_receive(name: str) -> None:
    srv = sc.Server(name)
    call = Background(lambda: srv.receive())
    wait_until(lambda: srv._busy, "receive to be waiting")
    srv.close()
    with pytest.raises(sc.ChannelClosedError):
        call.result()
