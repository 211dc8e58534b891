"""Seed 004's ping-pong (two Python processes, 100 rounds, then "end"), on the service kind.

The seed polls a SysV segment with time.sleep(1e-6), a hard-coded key, no framing, no
timeout and no way to tell a dead peer. Here each side is one call per round:

    python ping_pong_service.py server NAME     # answers "pong" until it gets "end"
    python ping_pong_service.py client NAME     # 100 x "ping", then "end"

Either may start first (the client waits for a server, with a timeout). A dead server is
reported to the client (shm_channel.PeerDied), never waited for.
"""

from __future__ import annotations

import argparse
import sys
import time

import shm_channel

ROUNDS = 100
TIMEOUT = 10.0  # seconds: the most either side waits for the other


def server(srv: shm_channel.Server) -> None:
    """Answer "pong" to each "ping", until "end"."""
    with srv:
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


def client(cli: shm_channel.Client) -> None:
    """Wait for the server, play ROUNDS rounds, then say "end"."""
    with cli:
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


def main() -> int:
    """Play one side; 0 on success, 1 if the other side failed us, 2 on bad usage."""
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("role", choices=("server", "client"), help="which side to play")
    ap.add_argument("name", help="service name: 1-200 characters from [A-Za-z0-9._-]")
    args = ap.parse_args()
    side = shm_channel.Server if args.role == "server" else shm_channel.Client
    try:  # the name is checked before anything is created
        handle = side(args.name, max_request=16, max_response=16, max_clients=4)
    except ValueError as e:
        ap.error(str(e))
    try:
        if args.role == "server":
            server(handle)  # type: ignore[arg-type]
        else:
            client(handle)  # type: ignore[arg-type]
    except (TimeoutError, shm_channel.PeerDied, shm_channel.ServerClosed) as e:
        print(f"ping_pong_service: {e}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
