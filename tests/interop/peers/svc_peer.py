#!/usr/bin/env python3
"""Service interop participant, Python side, over the installed `shm_channel` package. The
contract (commands, options, messages, output) is in tests/interop/README.md, "Services";
svc_peer.c and peers/rust (bin svc_peer) implement the same one."""

from __future__ import annotations

import errno
import json
import os
import struct
import sys
import time
import zlib

import shm_channel
from peer import GOLDEN, M64, make_pool, mix

CLIENT_G = 0xD1B54A32D192ED03
HOLD = 0xFFFFFFFF
BYE = 0xFFFFFFFE
HEAD = struct.Struct("<IIQ")
SLICE = 0.05


def usage(msg: str) -> None:
    sys.stderr.write(
        "svc_peer: %s\nusage: svc_peer.py serve|request --name N [options] "
        "(see tests/interop/README.md, Services)\n" % msg
    )
    sys.exit(2)


class Msgs:
    """The message definition of the contract."""

    def __init__(self, seed: int, max_size: int):
        self.seed = seed
        self.room = max_size - 20
        self.pool = make_pool(seed, (65536 + max_size + 8) & ~7)
        self.small = min(self.room, 64) + 1
        self.medium = min(self.room, 1024) + 1

    def length(self, x: int) -> int:
        sel = x & 63
        if sel == 0:
            return 0
        if sel == 1:
            return self.room
        return (x >> 8) % (self.small if sel < 48 else self.medium)

    def hashes(self, c: int, i: int) -> tuple[int, int]:
        h = mix((self.seed + (c + 1) * CLIENT_G + (i + 1) * GOLDEN) & M64)
        return h, mix(h)

    @staticmethod
    def seal(head: bytes, body: bytes) -> bytes:
        m = head + body
        return m + zlib.adler32(m).to_bytes(4, "little")

    def request(self, c: int, i: int) -> bytes:
        h, h2 = self.hashes(c, i)
        off = h >> 48
        return self.seal(HEAD.pack(c, self.length(h2), i), self.pool[off : off + self.length(h)])

    def response(self, c: int, i: int) -> bytes:
        _, h2 = self.hashes(c, i)
        off, want = h2 >> 48, self.length(h2)
        return self.seal(HEAD.pack(c, want, i), self.pool[off : off + want])

    def special(self, c: int, kind: int, i: int) -> bytes:
        return self.seal(HEAD.pack(c, kind, i), b"")


def number(opt: str, v: str) -> int:
    if not (v.isascii() and v.isdigit()):
        usage("%s: %s" % (opt, v))
    return int(v)


class Opts:
    INTS = {"--seed": "seed", "--max-size": "max_size", "--clients": "clients",
            "--expect": "expect", "--hang-after": "hang_after", "--id": "id",
            "--count": "count", "--start": "start", "--hold-at": "hold_at"}

    def __init__(self, argv: list[str]):
        if not argv:
            usage("no command")
        self.cmd = argv[0]
        if self.cmd not in ("serve", "request"):
            usage("unknown command: %s" % self.cmd)
        self.name = None
        self.seed, self.max_size, self.clients = 1, 1024, 64
        self.expect = self.hang_after = self.id = self.count = self.hold_at = None
        self.start = 0
        self.zero_copy = False
        self.progress = None
        self.deadline = 60.0
        it = iter(argv[1:])
        for a in it:
            if a == "--zero-copy":
                self.zero_copy = True
                continue
            v = next(it, None)
            if v is None or v.startswith("--"):
                usage("option without a value: %s" % a)
            if a == "--name":
                self.name = v
            elif a in self.INTS:
                setattr(self, self.INTS[a], number(a, v))
            elif a == "--progress":
                self.progress = v
            elif a == "--deadline":
                try:
                    self.deadline = float(v)
                except ValueError:
                    usage("%s: %s" % (a, v))
                if not 0 < self.deadline < 1e9:
                    usage("%s: %s" % (a, v))
            else:
                usage("unknown option: %s" % a)
        if not self.name:
            usage("--name is required")
        if not 20 <= self.max_size <= 65536:
            usage("--max-size is 20..65536")
        if not 1 <= self.clients <= 1024:
            usage("--clients is 1..1024")
        if self.cmd == "serve" and self.expect is None:
            usage("serve needs --expect")
        if self.cmd == "request":
            if self.id is None or self.count is None:
                usage("request needs --id and --count")
            if self.id >= BYE:
                usage("--id is at most 2^32-2")


class Progress:
    def __init__(self, path: str | None):
        self.fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600) if path else None

    def put(self, a: int, b: int, c: int) -> None:
        if self.fd is not None:
            os.pwrite(self.fd, struct.pack("<QQQ", a, b, c), 0)


def emit(out: dict) -> None:
    print(json.dumps(out), flush=True)


def err_name(e: BaseException) -> str:
    return errno.errorcode.get(getattr(e, "errno", 0) or 0, type(e).__name__)


# ---- server ------------------------------------------------------------------------------


def serve(o: Opts) -> int:
    msgs = Msgs(o.seed, o.max_size)
    prog = Progress(o.progress)
    end = time.monotonic() + o.deadline
    try:
        srv = shm_channel.Server(o.name, max_request=o.max_size, max_response=o.max_size,
                                 max_clients=o.clients)
    except OSError as e:
        emit({"lang": "py", "role": "server", "ok": False, "errors": ["open: %s" % e]})
        return 2
    served = byes = nbytes = held_reclaimed = reaped = 0
    held: dict[int, shm_channel.Request] = {}
    hanging = False
    errors: list[str] = []
    first = last = 0.0
    code = 0
    while byes < o.expect and not errors:
        if time.monotonic() > end:
            errors.append("deadline: %d of %d byes" % (byes, o.expect))
            code = 3
            break
        if held:
            for slot in srv.reap():
                reaped += 1
                req = held.pop(slot, None)
                if req is not None:
                    try:
                        ok = req.respond(b"late")
                    except ValueError:
                        ok = False  # not owed any more: the client was reaped
                    if ok:
                        errors.append("late answer to dead client %d accepted" % slot)
                    held_reclaimed += 1
            prog.put(served, 1 if held or hanging else 0, reaped)
        try:
            req = srv.receive_view(SLICE) if o.zero_copy else srv.receive(SLICE)
        except TimeoutError:
            continue
        data = req.data
        n = len(data)
        if n < 20:
            errors.append("request of %d bytes" % n)
            break
        c, want, i = HEAD.unpack_from(data)
        if zlib.adler32(data[: n - 4]) != int.from_bytes(data[n - 4 :], "little"):
            errors.append("client %d request %d: checksum mismatch" % (c, i))
            break
        if want in (HOLD, BYE):
            if n != 20:
                errors.append("client %d: special request of %d bytes" % (c, n))
                break
            if want == HOLD:
                if o.zero_copy:
                    req.release()
                held[req.client] = req
                prog.put(served, 1, reaped)
                continue
            echo = bytes(data)
            req.respond(echo)
            byes += 1
            continue
        if bytes(data) != msgs.request(c, i):
            errors.append("client %d request %d (%d bytes): content differs" % (c, i, n))
            break
        answer = msgs.response(c, i)
        if o.hang_after is not None and served >= o.hang_after:
            if o.zero_copy:
                req.release()
            held[req.client] = req
            hanging = True
            prog.put(served, 1, reaped)
            while True:
                time.sleep(3600)  # until the runner's SIGKILL
        if o.zero_copy:
            try:
                with req.reserve(len(answer)) as buf:
                    buf[:] = answer
            except shm_channel.StaleRequest:
                continue
        elif not req.respond(answer):
            continue  # the client gave up on it
        served += 1
        nbytes += n + len(answer)
        last = time.monotonic()
        if served == 1:
            first = last
        prog.put(served, 1 if held else 0, reaped)
    srv.close()
    secs = last - first
    emit({"lang": "py", "role": "server", "ok": not errors, "served": served, "byes": byes,
          "bytes": nbytes, "secs": round(secs, 6),
          "rps": round(served / secs, 1) if secs > 0 else 0.0,
          "held_reclaimed": held_reclaimed, "reaped": reaped, "errors": errors})
    return code or (1 if errors else 0)


# ---- client ------------------------------------------------------------------------------


def request(o: Opts) -> int:
    msgs = Msgs(o.seed, o.max_size)
    prog = Progress(o.progress)
    end = time.monotonic() + o.deadline
    out = {"lang": "py", "role": "client", "id": o.id, "ok": False, "count": 0,
           "first": o.start, "next": o.start, "owner_dead": 0, "resets": 0, "closed": 0,
           "secs": 0.0, "rps": 0.0, "errors": []}
    try:
        cli = shm_channel.Client(o.name, max_request=o.max_size, max_response=o.max_size,
                                 max_clients=o.clients)
    except OSError as e:
        out["errors"] = ["open: %s" % e]
        emit(out)
        return 2
    verdicts = 0

    def call(req: bytes) -> bytes:
        nonlocal verdicts
        while True:
            left = end - time.monotonic()
            if left <= 0:
                raise TimeoutError("deadline")
            try:
                if o.zero_copy:
                    with cli.reserve(len(req)) as buf:
                        buf[:] = req
                    with cli.response(left) as view:
                        return bytes(view)
                return cli.request(req, left)
            except (shm_channel.PeerDied, ConnectionResetError, shm_channel.ServerClosed) as e:
                key = {errno.EOWNERDEAD: "owner_dead", errno.ECONNRESET: "resets"}.get(
                    e.errno, "closed")
                out[key] += 1
                verdicts += 1
                prog.put(i, 0, verdicts)
                cli.wait_server(max(end - time.monotonic(), 0))

    code = 0
    t0 = time.monotonic()
    i = o.start
    prog.put(i, 0, 0)  # joined: the slot is ours
    try:
        cli.wait_server(o.deadline)
        t0 = time.monotonic()
        while i < o.count:
            if o.hold_at is not None and i == o.hold_at:
                prog.put(i, 1, verdicts)
                call(msgs.special(o.id, HOLD, i))
                out["errors"].append("hold request %d was answered" % i)
                break
            got = call(msgs.request(o.id, i))
            want = msgs.response(o.id, i)
            if got != want:
                c, w, j = HEAD.unpack_from(got) if len(got) >= 16 else (-1, -1, -1)
                out["errors"].append(
                    "request %d: answer of %d bytes for client %d request %d, expected %d bytes"
                    % (i, len(got), c, j, len(want)))
                break
            i += 1
            prog.put(i, 0, verdicts)
        else:
            bye = msgs.special(o.id, BYE, o.count)
            if call(bye) != bye:
                out["errors"].append("bye not echoed")
    except TimeoutError:
        out["errors"].append("deadline at request %d" % i)
        code = 3
    except OSError as e:
        out["errors"].append("request %d: %s %s" % (i, err_name(e), e))
    secs = time.monotonic() - t0
    cli.close()
    out.update(ok=not out["errors"], count=i - o.start, next=i, secs=round(secs, 6),
               rps=round((i - o.start) / secs, 1) if secs > 0 else 0.0)
    emit(out)
    return code or (1 if out["errors"] else 0)


def main(argv: list[str]) -> int:
    o = Opts(argv)
    return serve(o) if o.cmd == "serve" else request(o)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
