"""Services across processes: 64 clients at once, either side first, and the death of
either side (SIGKILL), with checksummed payloads: every answer is the one to that client's
own request, none is lost."""

from __future__ import annotations

import signal
import struct
import threading
import time
import zlib

import pytest

import shm_channel as sc
from conftest import python_child

# One child process runs `threads` clients, each sending `count` checksummed requests and
# checking every answer; it prints "ready" once its clients are open, then waits for a
# server, and prints "ok <n>" at the end.
CLIENTS = r"""
import os, struct, sys, threading, zlib, shm_channel
name, proc, threads, count = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
clients = [shm_channel.Client(name) for _ in range(threads)]
print("ready", flush=True)
errors = []
def run(k, cli):
    tag = proc * 1000 + k
    cli.wait_server(60)
    for i in range(count):
        body = os.urandom(i % 200)
        req = struct.pack("<II", tag, i) + body
        req += struct.pack("<I", zlib.crc32(req))
        got = cli.request(req, 60)
        want = struct.pack("<III", tag, i, zlib.crc32(req)) + body[::-1]
        if got != want:
            errors.append("client %d request %d: wrong answer %r" % (tag, i, got[:12]))
            return
threads_ = [threading.Thread(target=run, args=(k, c)) for k, c in enumerate(clients)]
for t in threads_: t.start()
for t in threads_: t.join()
for c in clients: c.close()
print("errors" if errors else "ok %d" % (threads * count), *errors[:3], flush=True)
"""


def answer(req: bytes) -> bytes:
    """The server's answer: the request's tag, number and checksum, then its body reversed;
    a request whose checksum is wrong raises."""
    tag, i = struct.unpack_from("<II", req)
    (crc,) = struct.unpack_from("<I", req, len(req) - 4)
    assert zlib.crc32(req[:-4]) == crc, f"client {tag} request {i}: bad checksum"
    return struct.pack("<III", tag, i, zlib.crc32(req)) + req[8:-4][::-1]


def test_64_clients_in_8_processes(name: str) -> None:
    """The clients start first (they create the service and wait for a server); 64 are
    attached at once; every answer is checked by its client."""
    procs, threads, count = 8, 8, 30
    children = [python_child(CLIENTS, name, str(p), str(threads), str(count)) for p in range(procs)]
    try:
        for c in children:
            assert c.stdout is not None
            assert c.stdout.readline().strip() == "ready", c.stderr.read() if c.stderr else ""
        with sc.Server(name, create=False) as srv:
            assert srv.max_clients == 64
            assert srv.service_stat().live_clients == 64
            served = srv.serve(answer, count=procs * threads * count)
            assert served == procs * threads * count
            for c in children:
                out, err = c.communicate(timeout=60)
                assert out.strip() == f"ok {threads * count}", err
            st = srv.service_stat()
            assert st.requests == st.responses == procs * threads * count
    finally:
        for c in children:
            c.kill()


WAITING_CLIENT = """
import sys, shm_channel
with shm_channel.Client(sys.argv[1]) as c:
    print("sending", flush=True)
    print(c.request(b"first", 60).decode(), flush=True)
"""


def sleeping(pid: int) -> bool:
    """True if the process is asleep in the kernel (state S in /proc/PID/stat)."""
    with open(f"/proc/{pid}/stat") as f:
        return f.read().rsplit(")", 1)[1].split()[0] == "S"


def test_a_client_started_first_sleeps_until_a_server_comes(name: str) -> None:
    child = python_child(WAITING_CLIENT, name)
    try:
        assert child.stdout is not None
        assert child.stdout.readline().strip() == "sending", child.communicate()
        # After "sending" the child only waits for a server: asleep, not polling.
        end = time.monotonic() + 30
        while not sleeping(child.pid):
            assert child.poll() is None, child.communicate()
            assert time.monotonic() < end, "the child never slept waiting for a server"
            time.sleep(0.005)
        with sc.Server(name, create=False) as srv:
            assert srv.service_stat().clients == 1
            req = srv.receive(30)
            assert req.data == b"first"
            req.respond(b"answered")
            out, err = child.communicate(timeout=30)
            assert out.strip() == "answered", err
    finally:
        child.kill()


HOLDING_SERVER = """
import sys, time, shm_channel
srv = shm_channel.Server(sys.argv[1])
req = srv.receive(60)
print("holding", req.data.decode(), flush=True)
time.sleep(3600)
"""


def test_server_killed_clients_get_the_death_and_a_new_server_takes_over(name: str) -> None:
    child = python_child(HOLDING_SERVER, name)
    try:
        with sc.Client(name) as pending, sc.Client(name) as idle:
            result: list[BaseException] = []

            def call() -> None:
                try:
                    pending.request(b"held", 60)
                except BaseException as e:
                    result.append(e)

            t = threading.Thread(target=call)
            t.start()
            assert child.stdout is not None
            assert child.stdout.readline().split() == ["holding", "held"]
            child.send_signal(signal.SIGKILL)
            child.wait(30)
            t.join(30)
            assert not t.is_alive(), "the pending request hangs after the server died"
            assert isinstance(result[0], sc.PeerDied), result
            with pytest.raises(sc.PeerDied, match="died"):
                idle.request(b"new", 30)  # a new request is refused too, never waits
            with sc.Server(name) as successor:
                idle.wait_server(10)
                done = threading.Thread(target=lambda: successor.serve(bytes.upper, count=2))
                done.start()
                assert pending.request(b"again", 30) == b"AGAIN"
                assert idle.request(b"new", 30) == b"NEW"
                done.join(30)
                assert successor.service_stat().server_epoch == 2
    finally:
        child.kill()


HOLDING_CLIENT = """
import sys, shm_channel
c = shm_channel.Client(sys.argv[1])
c.request(b"hold me", 3600)
"""


def test_client_killed_mid_request_is_reaped_and_its_slot_reused(name: str) -> None:
    with sc.Server(name, max_clients=1) as srv:
        child = python_child(HOLDING_CLIENT, name)
        try:
            req = srv.receive(30)
            assert req.data == b"hold me"
            child.send_signal(signal.SIGKILL)
            child.wait(30)
            end = time.monotonic() + 30
            reaped: list[int] = []
            while not reaped:
                assert time.monotonic() < end, "the dead client was never reaped"
                reaped = srv.reap()
                time.sleep(0.005)
            assert reaped == [req.client]
            assert req.respond(b"too late") is False
            st = srv.service_stat()
            assert (st.clients, st.reaped) == (0, 1)
            with sc.Client(name) as successor:  # max_clients=1: the very slot
                served = threading.Thread(target=lambda: srv.serve(bytes.upper, count=1))
                served.start()
                assert successor.request(b"mine", 30) == b"MINE"
                served.join(30)
        finally:
            child.kill()
