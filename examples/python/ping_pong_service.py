"""Seed 004's ping-pong (two Python processes, 100 rounds, then "end"), on the service kind.

The seed polls a SysV segment with time.sleep(1e-6), a hard-coded key, no framing, no
timeout and no way to tell a dead peer. Here each side is one call per round:

    python ping_pong_service.py server NAME     # answers "pong" until it gets "end"
    python ping_pong_service.py client NAME     # 100 x "ping", then "end"

Either may start first (the client waits for a server, with a timeout). A dead server is
reported to the client (shm_channel.PeerDied), never waited for.
"""

from __future__ import annotations

import sys
import time

import shm_channel

ROUNDS = 100
TIMEOUT = 10.0  # seconds: the most either side waits for the other


def server(name: str) -> None:
    """Answer "pong" to each "ping", until "end"."""
    with shm_channel.Server(name, max_request=16, max_response=16, max_clients=4) as srv:
        rounds = 0
        while True:
            req = srv.receive(timeout=TIMEOUT)
            data = bytes(req.data).decode()
            if data == "end":
                req.respond(b"bye")
                break
            print(f"Server: Received {data}")
            req.respond(b"pong")
            print("Server: Sent pong")
            rounds += 1
        print(f"Server: {rounds} rounds, then end")
    # No mem.remove() as in the seed: the last side to close a service whose server
    # closed removes its name.


def client(name: str) -> None:
    """Wait for the server, play ROUNDS rounds, then say "end"."""
    with shm_channel.Client(name, max_request=16, max_response=16, max_clients=4) as cli:
        cli.wait_server(timeout=TIMEOUT)
        start = time.perf_counter()
        for _ in range(ROUNDS):
            print("Client: Sent ping")
            data = cli.request(b"ping", timeout=TIMEOUT).decode()
            print(f"Client: Received {data}")
            assert data == "pong", data
        took = time.perf_counter() - start
        assert cli.request(b"end", timeout=TIMEOUT) == b"bye"
        print(f"Client: {ROUNDS} round trips in {took * 1e3:.2f} ms (with printing)")


if __name__ == "__main__":
    if len(sys.argv) != 3 or sys.argv[1] not in ("server", "client"):
        sys.exit(f"usage: {sys.argv[0]} server|client NAME")
    (server if sys.argv[1] == "server" else client)(sys.argv[2])
