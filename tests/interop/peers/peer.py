#!/usr/bin/env python3
"""Interop participant, Python side, over the installed `shm_channel` package. The contract
(commands, options, message definition, output) is in tests/interop/README.md; peer.c and
peers/rust implement the same one."""

from __future__ import annotations

import errno
import json
import os
import struct
import sys
import time
import zlib

import shm_channel

# ---- message definition (README.md, "Messages") ----------------------------------------------

M64 = (1 << 64) - 1
GOLDEN = 0x9E3779B97F4A7C15
POOL_SEED_XOR = 0x6A09E667F3BCC909
POOL_SPAN = 65536


def mix(z: int) -> int:
    z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & M64
    z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & M64
    return z ^ (z >> 31)


def make_pool(seed: int, length: int) -> bytes:
    ps = seed ^ POOL_SEED_XOR
    words = length // 8
    try:
        import numpy as np
    except ImportError:
        np = None
    if np is not None and words > 4096:
        with np.errstate(over="ignore"):
            z = np.uint64(ps) + (np.arange(1, words + 1, dtype=np.uint64) * np.uint64(GOLDEN))
            z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
            z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
            z = z ^ (z >> np.uint64(31))
        return z.astype("<u8").tobytes()
    return b"".join(struct.pack("<Q", mix((ps + k * GOLDEN) & M64)) for k in range(1, words + 1))


HASH_BLOCK = 4096


def hash_block(seed: int, first: int, count: int) -> list:
    """[h(first), ..., h(first + count - 1)]."""
    try:
        import numpy as np
    except ImportError:
        return [mix((seed + (i + 1) * GOLDEN) & M64) for i in range(first, first + count)]
    with np.errstate(over="ignore"):
        i = np.arange(count, dtype=np.uint64) + np.uint64(first + 1)
        z = np.uint64(seed) + i * np.uint64(GOLDEN)
        z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
        z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
        z = z ^ (z >> np.uint64(31))
    return z.tolist()


class Gen:
    def __init__(self, seed: int, max_size: int, fixed: int | None):
        self.seed = seed
        self.max_size = max_size
        self.fixed = fixed
        biggest = fixed if fixed is not None else max_size
        self.pool = make_pool(seed, (POOL_SPAN + biggest + 8) & ~7)
        self._hbase, self._htab = 0, []
        self.small = min(max_size, 64) + 1
        self.medium = min(max_size, 2048) + 1

    def hash(self, i: int) -> int:
        """h(i), from a table computed HASH_BLOCK at a time (with numpy when it is there:
        big-integer arithmetic per message would dominate the Python peer's time)."""
        j = i - self._hbase
        if 0 <= j < len(self._htab):
            return self._htab[j]
        self._hbase = i
        self._htab = hash_block(self.seed, i, HASH_BLOCK)
        return self._htab[0]

    def size_of(self, h: int) -> int:
        if self.fixed is not None:
            return self.fixed
        sel = h & 63
        if sel == 0:
            return 0
        if sel == 1:
            return self.max_size
        if sel < 24:
            return (h >> 8) % self.small
        return (h >> 8) % self.medium

    def message(self, i: int) -> bytes:
        h = self.hash(i)
        n = self.size_of(h)
        off = h >> 48
        if n < 12:
            return (i.to_bytes(8, "little") + self.pool[off:off + 4])[:n]
        body = i.to_bytes(8, "little") + self.pool[off:off + n - 12]
        return body + zlib.adler32(body).to_bytes(4, "little")

    def check(self, i: int, m) -> str | None:
        """None if m (bytes or a memoryview) is message i, else a description."""
        h = self.hash(i)
        n = len(m)
        if n != self.size_of(h):
            return "message %d: size %d, expected %d (its first bytes read as seq %d)" % (
                i, n, self.size_of(h), int.from_bytes(m[:8], "little"))
        off = h >> 48
        if n < 12:
            if bytes(m) != (i.to_bytes(8, "little") + self.pool[off:off + 4])[:n]:
                return "message %d (%d bytes): content differs" % (i, n)
            return None
        v = memoryview(m)  # slices of it copy nothing
        seq = int.from_bytes(v[:8], "little")
        if seq != i:
            return "message %d: carries sequence number %d" % (i, seq)
        if zlib.adler32(v[:n - 4]) != int.from_bytes(v[n - 4:], "little"):
            return "message %d (%d bytes): checksum mismatch" % (i, n)
        # startswith compares any buffer in place (memcmp)
        if not self.pool.startswith(v[8:n - 4], off):
            return "message %d (%d bytes): content differs" % (i, n)
        return None


# ---- options -----------------------------------------------------------------------------------

INT_OPTS = {"--capacity": "capacity", "--seed": "seed", "--count": "count", "--start": "start",
            "--max-size": "max_size", "--fixed-size": "fixed", "--hang-at": "hang_at",
            "--pause-at": "pause_at"}
COMMANDS = ("info", "produce", "consume", "vector")
MIN_CAPACITY, MAX_CAPACITY = 1 << 10, 1 << 40


def number(opt, v):
    """A whole unsigned decimal number, or usage."""
    if not (v.isascii() and v.isdigit()):
        usage("%s: %s" % (opt, v))
    return int(v)


class Opts:
    """Every argument is checked before anything is opened or created (README: "Bad
    arguments")."""

    def __init__(self, argv):
        if not argv:
            usage("no command")
        self.cmd = argv[0]
        if self.cmd not in COMMANDS:
            usage("unknown command: %s" % self.cmd)
        self.name = None
        self.capacity = 65536
        self.seed = 1
        self.count = -1
        self.start = 0
        self.max_size = None
        self.fixed = None
        self.hang_at = None
        self.pause_at = None
        self.progress = None
        self.end = "EPIPE"
        self.deadline = 120.0
        self.poll = False
        self.zero_copy = False
        self.numpy = False
        it = iter(argv[1:])
        for a in it:
            if a == "--zero-copy":
                self.zero_copy = True
                continue
            if a == "--numpy":
                self.numpy = self.zero_copy = True
                continue
            v = next(it, None)
            if v is None or v.startswith("--"):  # a missing value: the next word is an option
                usage("option without a value: %s" % a)
            if a == "--name":
                self.name = v
            elif a in INT_OPTS:
                setattr(self, INT_OPTS[a], number(a, v))
            elif a == "--progress":
                self.progress = v
            elif a == "--end":
                if v not in ("EPIPE", "EOWNERDEAD"):
                    usage("--end is EPIPE or EOWNERDEAD")
                self.end = v
            elif a == "--deadline":
                try:
                    self.deadline = float(v)
                except ValueError:
                    usage("%s: %s" % (a, v))
                if not 0 < self.deadline < 1e9:  # also refuses nan and inf
                    usage("%s: %s" % (a, v))
            elif a == "--mode":
                if v not in ("block", "poll"):
                    usage("--mode is block or poll")
                self.poll = v == "poll"
            else:
                usage("unknown option: %s" % a)
        cap = self.capacity
        if not (MIN_CAPACITY <= cap <= MAX_CAPACITY and cap & (cap - 1) == 0):
            usage("--capacity is a power of two from %d to %d" % (MIN_CAPACITY, MAX_CAPACITY))
        top = cap // 2 - 8
        if self.max_size is None:
            self.max_size = top
        if self.max_size > top or (self.fixed is not None and self.fixed > top):
            usage("--max-size and --fixed-size are at most capacity/2 - 8")
        if self.cmd != "info" and not self.name:
            usage("--name is required")
        if self.cmd == "produce" and self.count < 0:
            usage("produce needs --count")


def usage(msg):
    sys.stderr.write("peer: %s\nusage: peer.py info|produce|consume|vector [options] "
                     "(see tests/interop/README.md)\n" % msg)
    sys.exit(2)


def err_name(e: BaseException) -> str:
    code = getattr(e, "errno", None)
    return errno.errorcode.get(code, "E?") if code else "E?"


class Progress:
    """u64 done, u64 hang (seq + 1 or 0), u64 owner_dead, pwritten at offset 0."""

    def __init__(self, path):
        self.fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600) if path else None

    def put(self, done, hang, owner_dead):
        if self.fd is not None:
            os.pwrite(self.fd, struct.pack("<QQQ", done, hang, owner_dead), 0)


def hang_forever():
    while True:
        time.sleep(3600)  # until the runner's SIGKILL


def result(role, error, first, nxt, nbytes, secs, end, owner_dead, end_pos, **extra):
    count = nxt - first
    out = {"lang": "py", "role": role, "ok": error is None, "count": count, "first": first,
           "next": nxt, "bytes": nbytes, "secs": round(secs, 6),
           "msgs_per_s": round(count / secs, 1) if secs > 0 else 0.0,
           "mb_per_s": round(nbytes / secs / 1e6, 1) if secs > 0 else 0.0, "end": end,
           "owner_dead": owner_dead, "end_pos": end_pos, "dups": 0,
           "errors": [error] if error else []}
    out.update(extra)
    print(json.dumps(out), flush=True)


def open_failed(e):
    print(json.dumps({"lang": "py", "ok": False, "errors": ["open: %s" % e]}), flush=True)
    sys.exit(2)


# ---- commands ------------------------------------------------------------------------------

def produce(o: Opts) -> int:
    if o.count < 0:
        usage("produce needs --count")
    try:
        p = shm_channel.Producer(o.name, o.capacity, mode=0o600)
    except OSError as e:
        open_failed(e)
    g = Gen(o.seed, o.max_size, o.fixed)
    progress = Progress(o.progress)
    put = progress.put if o.progress else None
    t0 = time.monotonic()
    deadline = t0 + o.deadline
    nbytes = owner_dead = 0
    i = o.start
    count = o.count
    error, end, code = None, "CLOSED", 0
    write, reserve, message = p.write, p.reserve, g.message
    # Blocking calls wait without a limit: the library reports a dead peer by itself, and the
    # runner kills a peer that outlives its bound.
    timeout = 0 if o.poll else None
    zero_copy = o.zero_copy
    hang_at = o.hang_at
    while i < count:
        if i == o.pause_at:
            hang_forever()  # everything before message i is published
        try:
            if zero_copy or i == hang_at:
                msg = message(i)
                n = len(msg)
                with reserve(n, timeout) as view:
                    if i == hang_at:
                        # Half a message in the ring, never committed: no consumer may see it.
                        view[:n // 2] = msg[:n // 2]
                        progress.put(i, i + 1, owner_dead)
                        hang_forever()
                    view[:] = msg
            else:
                msg = message(i)
                n = len(msg)
                write(msg, timeout)
            nbytes += n
            i += 1
            if put:
                put(i, 0, owner_dead)
            continue
        except shm_channel.PeerDied:
            owner_dead += 1  # ring full and no consumer: messages wait for the next one
            time.sleep(0.001)
        except (BlockingIOError, TimeoutError):
            if o.poll:
                os.sched_yield()
        except OSError as e:
            error, end, code = "message %d: %s" % (i, e), err_name(e), 1
            break
        if time.monotonic() > deadline:
            error, end, code = "deadline passed", "ETIMEDOUT", 3
            break
    secs = time.monotonic() - t0
    end_pos = p.stat().write_pos
    p.close()  # end-of-stream
    result("produce", error, o.start, i, nbytes, secs, end, owner_dead, end_pos)
    return code


def _maps_path(addr: int) -> str:
    """The file mapped at address addr in this process, from /proc/self/maps."""
    with open("/proc/self/maps") as f:
        for line in f:
            parts = line.split(None, 5)
            lo, hi = (int(x, 16) for x in parts[0].split("-"))
            if lo <= addr < hi:
                return parts[5].strip() if len(parts) > 5 else ""
    return ""


def consume(o: Opts) -> int:
    try:
        c = shm_channel.Consumer(o.name, o.capacity, mode=0o600)
    except OSError as e:
        open_failed(e)
    g = Gen(o.seed, o.max_size, o.fixed)
    progress = Progress(o.progress)
    put = progress.put if o.progress else None
    np = None
    pool_np = None
    numpy_views = 0
    if o.numpy:
        import numpy as np
        pool_np = np.frombuffer(g.pool, dtype=np.uint8)
    t0 = time.monotonic()
    deadline = t0 + o.deadline
    tfirst = tlast = None
    nbytes = owner_dead = 0
    nxt = o.start
    count = o.count
    error, end, code = None, "NONE", 0
    timeout = 0 if o.poll else None  # as in produce()
    read, peek, check = c.read, c.peek, g.check
    seg_path = os.path.join(shm_channel.channel_dir(), o.name)
    progress.put(nxt, 0, 0)

    def verify(i, m):
        if 0 <= count <= i:
            return "message %d beyond --count" % i
        err = check(i, m)
        if err and i > 0 and check(i - 1, m) is None:
            return "duplicate of message %d" % (i - 1)
        return err

    while True:
        if nxt == o.pause_at:
            hang_forever()  # everything before message nxt is released
        try:
            if o.numpy:
                shape = (1080, 1920, 3) if o.fixed == 1920 * 1080 * 3 else None
                with c.peek_array(np.uint8, shape, timeout) as a:
                    if tfirst is None:
                        tfirst = time.monotonic()
                    err = verify_array(g, nxt, a, np, pool_np, count)
                    if err is None and numpy_views < 3:
                        # Zero-copy: the array is a view of the segment file's mapping.
                        addr = a.__array_interface__["data"][0]
                        where = _maps_path(addr)
                        if a.flags.owndata or addr % 8 or \
                                os.path.realpath(where) != os.path.realpath(seg_path):
                            err = "frame %d is not a view of the ring (address %#x in %r)" % (
                                nxt, addr, where)
                    if err:
                        error, code = err, 1
                        break
                    n = a.nbytes
                    numpy_views += 1
            elif o.zero_copy or nxt == o.hang_at:
                with peek(timeout) as m:
                    if tfirst is None:
                        tfirst = time.monotonic()
                    err = verify(nxt, m)
                    if err:
                        error, code = err, 1
                        break
                    if nxt == o.hang_at:
                        progress.put(nxt, nxt + 1, owner_dead)  # seen, verified, not released
                        hang_forever()
                    n = len(m)
            else:
                m = read(timeout)
                n = len(m)
                if tfirst is None:
                    tfirst = time.monotonic()
                err = verify(nxt, m)
                if err:
                    error, code = err, 1
                    break
            nbytes += n
            nxt += 1
            if put:
                put(nxt, 0, owner_dead)
            continue
        except shm_channel.EndOfStream:
            end, tlast = "EPIPE", time.monotonic()
            break
        except shm_channel.PeerDied:
            if o.end == "EOWNERDEAD":
                end, tlast = "EOWNERDEAD", time.monotonic()
                break
            owner_dead += 1  # a new producer may take over: keep reading
            progress.put(nxt, 0, owner_dead)
            time.sleep(0.002)
        except (BlockingIOError, TimeoutError):
            if o.poll:
                os.sched_yield()
        except OSError as e:
            error, code = "message %d: %s (%s)" % (nxt, err_name(e), e), 1
            break
        except ValueError as e:  # peek_array: the message does not fit the array's shape
            error, code = "message %d: %s" % (nxt, e), 1
            break
        if time.monotonic() > deadline:
            error, code = "deadline passed after message %d" % nxt, 3
            break
    if error is None and count >= 0 and nxt != count:
        error, code = "stream ended (%s) after %d messages, expected %d" % (end, nxt, count), 1
    end_pos = c.stat().read_pos
    c.close()
    secs = ((tlast or time.monotonic()) - tfirst) if tfirst else 0.0
    extra = {"numpy_views": numpy_views} if o.numpy else {}
    result("consume", error, o.start, nxt, nbytes, secs, end, owner_dead, end_pos, **extra)
    return code


def verify_array(g, i, a, np, pool_np, count):
    """Check message i, viewed in place as the numpy array a, with numpy operations."""
    if 0 <= count <= i:
        return "message %d beyond --count" % i
    flat = a.reshape(-1)  # a view: the message is contiguous
    n = flat.nbytes
    h = g.hash(i)
    if n != g.size_of(h) or n < 12:
        return g.check(i, flat.tobytes())
    seq = int(flat[:8].view("<u8")[0])
    if seq != i:
        return "message %d: carries sequence number %d" % (i, seq)
    if zlib.adler32(flat[:n - 4]) != int(flat[n - 4:].view("<u4")[0]):
        return "message %d (%d bytes): checksum mismatch" % (i, n)
    off = h >> 48
    if not np.array_equal(flat[8:n - 4], pool_np[off:off + n - 12]):
        return "message %d (%d bytes): content differs" % (i, n)
    return None


def vector(o: Opts) -> int:
    """Golden vector (spec/vectors/README.md): open as consumer (no create, capacity 0), read
    without waiting until an error, print the verdict in the .expect format."""
    try:
        c = shm_channel.Consumer(o.name, 0, create=False, mode=0o600)
    except OSError as e:
        print("open %s" % err_name(e))
        return 0
    print("open ok")
    end = "LOOP"
    for _ in range(100000):
        try:
            m = c.read(0)
        except OSError as e:
            end = err_name(e)
            break
        print("msg %s" % (m.hex() if m else "-"))
    print("end %s" % end)
    c.close()
    return 0


def info(o: Opts) -> int:
    lib = ""
    with open("/proc/self/maps") as f:
        for line in f:
            if "libshm_channel" in line and "/" in line:
                lib = line[line.index("/"):].strip()
                break
    print(json.dumps({"lang": "py", "version": shm_channel.__version__, "lib": lib,
                      "library_path": str(shm_channel.library_path)}))
    return 0


def main() -> int:
    o = Opts(sys.argv[1:])
    cmds = {"produce": produce, "consume": consume, "vector": vector, "info": info}
    return cmds[o.cmd](o)


if __name__ == "__main__":
    sys.exit(main())
