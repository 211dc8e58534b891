"""A model of seed 002's Python side (ShmProducer / ShmConsumer over its byte ring), written
from the behaviour in spec/compat.md section 1, NOT a copy of its code. Bugs included:

- indices are unbounded Python ints, stored with a byte-by-byte little-endian store (what
  CPython's struct.pack_into('<I') does); a peer can read a torn index. Here the bytes are
  stored one Python statement at a time, which widens the window. $PEER_MODEL_TORN: "bytes"
  (default), "pack" (struct.pack_into itself), or "yield" (on one store in 16, also yields
  the CPU between the bytes, as a preemption in the middle of pack_into would: the tests use
  it where they must be sure tears happen);
- past 4 GiB of traffic the store raises (struct.error / ValueError): the model stops;
- the producer unlinks any segment of the name and creates it 0600 through
  multiprocessing.shared_memory (which also registers it with the resource tracker, so
  before Python 3.13 a consumer's exit unlinks the segment);
- Write returns False at once when full; empty is head - tail < 4; a 0-length record stalls.

Usage (the test driver's harness around the peer's classes):
  peer_model.py produce NAME SIZE COUNT SEED MAXLEN     (COUNT 0: until killed)
  peer_model.py consume NAME COUNT SEED MAXLEN
Exit codes as peer_model.cpp: 0 ok, 3 corrupt message, 4 stalled, 2 usage/system error.
"""
import os
import struct
import sys
import time
from multiprocessing import shared_memory

STALL_SEC = 20
TORN = os.environ.get("PEER_MODEL_TORN", "bytes")
M64 = (1 << 64) - 1


def mix(x):
    z = (x + 0x9E3779B97F4A7C15) & M64
    z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & M64
    z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & M64
    return z ^ (z >> 31)


def msg_len(seed, seq, maxlen):
    r = mix((seed * 1000003 + seq) & M64)
    small = min(maxlen, 64)
    return 1 + (r >> 8) % (maxlen if (r & 63) == 0 else small)


def msg_bytes(seed, seq, length):
    k = mix(((seed * 1000003 + seq) & M64) ^ 0xABCDEF)
    return (k.to_bytes(8, "little") * (length // 8 + 1))[:length]


_stores = 0


def store_index(buf, off, value):
    global _stores
    if TORN == "pack":
        struct.pack_into("<I", buf, off, value)
        return
    if value >= 1 << 32:
        raise struct.error("index past 4 GiB: the peer's Python side breaks here")
    _stores += 1
    slow = TORN == "yield" and _stores % 16 == 0
    for i in range(4):  # low byte first, as CPython's lp_uint packer does
        buf[off + i] = (value >> (8 * i)) & 0xFF
        if slow and i < 3:
            os.sched_yield()


class ByteRing:
    def __init__(self, buf, init, capacity=0):
        self.buf = buf
        if init:
            struct.pack_into("<I", buf, 8, capacity)
            store_index(buf, 0, 0)
            store_index(buf, 4, 0)
        self.cap = struct.unpack_from("<I", buf, 8)[0]
        self.head = struct.unpack_from("<I", buf, 0)[0]  # unbounded ints from here on
        self.tail = struct.unpack_from("<I", buf, 4)[0]

    def _put(self, pos, data):
        off = pos & (self.cap - 1)
        first = min(len(data), self.cap - off)
        self.buf[16 + off:16 + off + first] = data[:first]
        if first < len(data):
            self.buf[16:16 + len(data) - first] = data[first:]

    def _get(self, pos, n):
        off = pos & (self.cap - 1)
        first = min(n, self.cap - off)
        out = bytes(self.buf[16 + off:16 + off + first])
        if first < n:
            out += bytes(self.buf[16:16 + n - first])
        return out

    def write(self, data):
        tail = struct.unpack_from("<I", self.buf, 4)[0]
        if 4 + len(data) > self.cap - (self.head - tail):
            return False
        self._put(self.head, struct.pack("<I", len(data)))
        self._put(self.head + 4, data)
        self.head += 4 + len(data)
        store_index(self.buf, 0, self.head)
        return True

    def read(self):
        head = struct.unpack_from("<I", self.buf, 0)[0]
        if head - self.tail < 4:
            return None
        n = struct.unpack("<I", self._get(self.tail, 4))[0]
        if n == 0:
            return None  # never advances: stalls forever
        data = self._get(self.tail + 4, n)
        self.tail += 4 + n
        store_index(self.buf, 4, self.tail)
        return data


def main(argv):
    if len(argv) < 6:
        print(__doc__, file=sys.stderr)
        return 2
    mode, name = argv[1], argv[2]
    if mode == "produce":
        size, count, seed, maxlen = (int(a, 0) for a in argv[3:7])
        try:
            shared_memory.SharedMemory(name).unlink()
        except FileNotFoundError:
            pass
        shm = shared_memory.SharedMemory(name, create=True, size=size)
        cap = 1 << 31
        while cap > size - 16:
            cap >>= 1
        ring = ByteRing(shm.buf, True, cap)
        seq = 0
        while count == 0 or seq < count:
            data = msg_bytes(seed, seq, msg_len(seed, seq, maxlen))
            last = time.monotonic()
            while not ring.write(data):
                time.sleep(0)
                if time.monotonic() - last > STALL_SEC:
                    print(f"peer_model.py produce: stalled at {seq}", file=sys.stderr)
                    return 4
            seq += 1
        del ring
        shm.close()
        return 0
    if mode == "consume":
        count, seed, maxlen = (int(a, 0) for a in argv[3:6])
        shm = shared_memory.SharedMemory(name)
        ring = ByteRing(shm.buf, False)
        for seq in range(count):
            want = msg_bytes(seed, seq, msg_len(seed, seq, maxlen))
            last = time.monotonic()
            while (data := ring.read()) is None:
                time.sleep(0)
                if time.monotonic() - last > STALL_SEC:
                    print(f"peer_model.py consume: stalled at {seq}", file=sys.stderr)
                    return 4
            if data != want:
                print(f"peer_model.py consume: CORRUPT message {seq}", file=sys.stderr)
                return 3
        del ring, data
        shm.close()
        return 0
    print(__doc__, file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv))
