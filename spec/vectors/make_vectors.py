#!/usr/bin/env python3
"""Write the golden segment images of spec/vectors/ (layout version 1.0, kind stream), of
spec/vectors/broadcast/ (kind broadcast, spec/broadcast.md) and of spec/vectors/service/ (kind
service, spec/service.md).

Usage: make_vectors.py [OUTPUT_DIR]      (default: the directory of this script)

Python standard library only. Every byte comes from the tables of spec/README.md (sections 3 and
4), written here with struct.pack; the C library is never called. The output is deterministic:
running this again reproduces every .bin, .md and .expect file byte for byte (a C test checks that).

For each vector NAME it writes:
  NAME.bin     the segment file: 4096-byte header + capacity bytes of data (unless the vector
               is about a wrong size)
  NAME.md      what the bytes are and what a conforming reader must do
  NAME.expect  the verdict every binding checks (format in README.md)
"""
import os
import struct
import sys

HEADER_SIZE = 4096
CAP = 1024
MAGIC = b"SHM_CHAN"
REC_MESSAGE = 1
REC_PADDING = 2
CREATED_NS = 1_700_000_000_000_000_000  # fixed, so the output is reproducible
CREATOR_PID = 4242
STALE = 0xA5  # data bytes not covered by any record: "stale data from an earlier lap"

# Header fields: (offset, struct format, name), spec/README.md section 3. Little-endian.
FIELDS = [
    (0, "8s", "magic"),
    (8, "<H", "layout_major"),
    (10, "<H", "layout_minor"),
    (12, "<H", "kind"),
    (14, "<H", "flags"),
    (16, "<I", "header_size"),
    (24, "<Q", "capacity"),
    (32, "<Q", "max_payload"),
    (40, "<Q", "segment_size"),
    (48, "<Q", "created_ns"),
    (56, "<I", "creator_pid"),
    (128, "<Q", "write_pos"),
    (136, "<I", "write_seq"),
    (140, "<I", "producer_state"),
    (144, "<I", "producer_epoch"),
    (152, "<Q", "msgs_written"),
    (160, "<Q", "bytes_written"),
    (168, "<Q", "full_events"),
    (176, "<Q", "producer_wakes"),
    (184, "<Q", "producer_sleeps"),
    (256, "<Q", "read_pos"),
    (264, "<I", "read_seq"),
    (268, "<I", "consumer_state"),
    (272, "<I", "consumer_epoch"),
    (280, "<Q", "msgs_read"),
    (288, "<Q", "bytes_read"),
    (296, "<Q", "empty_events"),
    (304, "<Q", "consumer_wakes"),
    (312, "<Q", "consumer_sleeps"),
    (384, "<I", "consumer_waiting"),
    (388, "<I", "consumer_handshake"),
    (512, "<I", "producer_waiting"),
    (516, "<I", "producer_handshake"),
]
FIELD_NAMES = {name for _, _, name in FIELDS}


def align8(n):
    return (n + 7) & ~7


class Vector:
    """One segment image being built: header fields, records in the data area."""

    def __init__(self, name, summary, capacity=CAP):
        self.name = name
        self.summary = summary
        self.capacity = capacity
        self.f = {
            "magic": MAGIC,
            "layout_major": 1,
            "layout_minor": 0,
            "kind": 1,
            "flags": 0,
            "header_size": HEADER_SIZE,
            "capacity": capacity,
            "max_payload": capacity // 2 - 8,
            "segment_size": HEADER_SIZE + capacity,
            "created_ns": CREATED_NS,
            "creator_pid": CREATOR_PID,
        }
        for _, _, n in FIELDS:
            self.f.setdefault(n, 0)
        self.data = bytearray([STALE]) * capacity
        self.records = []  # (position, type, length, payload or None, note)
        self.extra = []  # (offset, bytes, note): raw header bytes outside the field table
        self.file_len = None  # None: segment_size as written
        self.details = []  # extra paragraphs for the .md
        self.open = "ok"
        self.msgs = []
        self.end = "EAGAIN"
        self.must = ""

    def set(self, **kw):
        for k, v in kw.items():
            assert k in FIELD_NAMES, k
            self.f[k] = v
        return self

    def _put_header(self, pos, length, rtype):
        off = pos & (self.capacity - 1)
        word = length | (rtype << 32)
        self.data[off:off + 8] = struct.pack("<Q", word)
        return off

    def message(self, pos, payload, note=""):
        """A message record at `pos`; returns the position after it."""
        off = self._put_header(pos, len(payload), REC_MESSAGE)
        assert off + 8 + len(payload) <= self.capacity
        self.data[off + 8:off + 8 + len(payload)] = payload
        self.records.append((pos, REC_MESSAGE, len(payload), bytes(payload), note))
        return pos + 8 + align8(len(payload))

    def padding(self, pos, length=None, note=""):
        """A padding record at `pos` filling to the end of the data area (or `length`)."""
        off = pos & (self.capacity - 1)
        if length is None:
            length = self.capacity - off - 8
        self._put_header(pos, length, REC_PADDING)
        self.records.append((pos, REC_PADDING, length, None, note))
        return pos + self.capacity - off

    def raw_record(self, pos, length, rtype, payload=b"", note=""):
        """A record header with arbitrary length and type (for invalid vectors)."""
        off = self._put_header(pos, length, rtype)
        n = min(len(payload), self.capacity - off - 8)
        self.data[off + 8:off + 8 + n] = payload[:n]
        self.records.append((pos, rtype, length, None, note))

    def verdict(self, open_="ok", msgs=(), end="EAGAIN", must=""):
        self.open, self.msgs, self.end, self.must = open_, list(msgs), end, must
        return self

    # ---- output ------------------------------------------------------------------------

    def header_bytes(self):
        h = bytearray(HEADER_SIZE)
        for off, fmt, name in FIELDS:
            v = self.f[name]
            b = struct.pack(fmt, v)
            h[off:off + len(b)] = b
        for off, b, _ in self.extra:
            h[off:off + len(b)] = b
        return bytes(h)

    def image(self):
        img = self.header_bytes() + bytes(self.data)
        if self.file_len is not None:
            img = img[:self.file_len]
        return img

    def expect_text(self):
        lines = ["# %s: %s" % (self.name, self.summary),
                 "# generated by make_vectors.py; format in README.md",
                 "open %s" % self.open]
        if self.open == "ok":
            for m in self.msgs:
                lines.append("msg %s" % (m.hex() if m else "-"))
            lines.append("end %s" % self.end)
        return "\n".join(lines) + "\n"

    def md_text(self):
        img = self.image()
        out = ["# Vector `%s`" % self.name, "", self.summary, ""]
        out += ["File `%s.bin`: %d bytes (4096-byte header + %s)." % (
            self.name, len(img),
            "%d bytes of data" % (len(img) - HEADER_SIZE) if len(img) >= HEADER_SIZE else "nothing")]
        out += ["Layout version 1.0 (spec/README.md). All integers little-endian. Reserved "
                "header bytes are zero unless listed below. Data bytes that no record covers "
                "are 0x%02X (stale bytes from an earlier lap)." % STALE, ""]
        out += ["## Header fields", "", "| offset | field | value |", "|---:|---|---|"]
        for off, fmt, name in FIELDS:
            v = self.f[name]
            if name == "magic":
                shown = "`%s` (%s)" % (v.decode("latin-1").replace("\0", "\\0"),
                                       " ".join("%02X" % c for c in v))
            elif v == 0:
                continue
            else:
                shown = "%d (0x%X)" % (v, v)
            out.append("| %d | `%s` | %s |" % (off, name, shown))
        out.append("")
        out.append("Every field not listed is zero.")
        for off, b, note in self.extra:
            out.append("")
            out.append("Also bytes %d..%d (reserved) = `%s`: %s" % (
                off, off + len(b) - 1, b.hex(" "), note))
        out.append("")
        if self.records:
            out += ["## Records", "",
                    "| position | data offset | file offset | type | length | payload | note |",
                    "|---:|---:|---:|---|---:|---|---|"]
            for pos, rtype, length, payload, note in self.records:
                off = pos & (self.capacity - 1)
                tname = {1: "1 message", 2: "2 padding"}.get(rtype, "%d (invalid)" % rtype)
                if payload is None:
                    shown = ""
                elif not payload:
                    shown = "(empty)"
                elif len(payload) <= 24:
                    shown = "`%s`" % payload.hex()
                else:
                    shown = "`%s...` (%d bytes)" % (payload[:16].hex(), len(payload))
                out.append("| %d | %d | %d | %s | %d | %s | %s |" % (
                    pos, off, HEADER_SIZE + off, tname, length, shown, note))
            out.append("")
        else:
            out += ["## Records", "", "None.", ""]
        for para in self.details:
            out += [para, ""]
        out += ["## What a conforming reader does", "",
                "Opened as consumer (flags 0, capacity 0) from a copy with mode 0600:", ""]
        if self.open == "ok":
            out.append("- the open succeeds;")
            if self.msgs:
                out.append("- non-blocking reads return %d message(s), in order:" % len(self.msgs))
                for m in self.msgs:
                    if len(m) <= 40:
                        out.append("  - %d bytes: `%s`" % (len(m), m.hex() if m else "(empty)"))
                    else:
                        out.append("  - %d bytes: `%s...`" % (len(m), m[:16].hex()))
            else:
                out.append("- there is no message;")
            out.append("- the next non-blocking read fails with `%s`." % self.end)
        else:
            out.append("- the open fails with `%s`." % self.open)
        if self.must:
            out += ["", self.must]
        out.append("")
        out.append("Verdict file: `%s.expect`." % self.name)
        return "\n".join(out) + "\n"


def build():
    V = []
    MAX = CAP // 2 - 8  # 504

    # ---------------------------------------------------------------- valid vectors
    v = Vector("empty", "a fresh segment: no producer ever attached, nothing written")
    v.verdict(end="EAGAIN", must="`producer_state` 0 means no producer has attached yet: an "
              "empty ring is \"empty for now\" (`EAGAIN`), not end-of-stream and not death.")
    V.append(v)

    v = Vector("one_message", "one 18-byte message at position 0")
    p = v.message(0, b"hello, shm_channel")
    v.set(write_pos=p, msgs_written=1, bytes_written=18)
    v.details.append("The record occupies 8 + align8(18) = 32 bytes, so `write_pos` = 32. Bytes "
                     "8+18..31 of the record (alignment slack) are unspecified (here 0xA5).")
    v.verdict(msgs=[b"hello, shm_channel"], end="EAGAIN",
              must="`producer_state` is 0 (no producer attached), so after the message the "
              "empty ring reads `EAGAIN`.")
    V.append(v)

    v = Vector("zero_length", "zero-length messages around a one-byte message")
    p = v.message(0, b"", "8 bytes: header only")
    p = v.message(p, b"\x2a", "16 bytes")
    p = v.message(p, b"", "8 bytes: header only")
    v.set(write_pos=p, msgs_written=3, bytes_written=1)
    v.verdict(msgs=[b"", b"\x2a", b""], end="EAGAIN",
              must="A zero-length message is a valid message (a record of 8 bytes), delivered "
              "with length 0; it is not \"empty ring\" and not padding.")
    V.append(v)

    v = Vector("wrapped_padding",
               "positions past the capacity; a padding record at the wrap; a message at offset 0")
    rp = 3 * CAP + 960  # data offset 960
    p = v.message(rp, b"message before the wrap.", "ends at data offset 992")
    assert p & (CAP - 1) == 992
    p = v.padding(p, note="fills data offsets 992..1023: length = 32 - 8 = 24")
    m2 = bytes((i * 7 + 3) & 0xFF for i in range(100))
    p = v.message(p, m2, "at data offset 0")
    v.set(read_pos=rp, write_pos=p, producer_state=0, msgs_written=41, bytes_written=5000,
          msgs_read=39, bytes_read=4872, consumer_state=2, consumer_epoch=1)
    v.details.append("Positions are free-running: `read_pos` = %d is at data offset %d (%d & %d). "
                     "`write_pos - read_pos` = %d <= capacity." % (rp, rp & (CAP - 1), rp, CAP - 1,
                                                                    p - rp))
    v.details.append("The second message's payload is bytes `(i*7+3) & 0xFF` for i = 0..99.")
    v.verdict(msgs=[b"message before the wrap.", m2], end="EAGAIN",
              must="The reader skips the padding record (it is not a message) and finds the next "
              "record at data offset 0, position %d." % (4 * CAP))
    V.append(v)

    v = Vector("full_ring", "write_pos - read_pos == capacity: the ring is exactly full")
    rp = 10 * CAP + 256
    m1 = bytes((i & 0xFF) for i in range(100))
    m2 = bytes(((255 - i) & 0xFF) for i in range(MAX))
    m3 = bytes(((i * 13) & 0xFF) for i in range(136))
    m4 = bytes(((i * 31 + 5) & 0xFF) for i in range(248))
    p = v.message(rp, m1, "112 bytes")
    p = v.message(p, m2, "max_payload (504): 512 bytes")
    p = v.message(p, m3, "144 bytes, ends exactly at the end of the data area")
    p = v.message(p, m4, "256 bytes, at data offset 0")
    assert p - rp == CAP
    v.set(read_pos=rp, write_pos=p, producer_state=0, msgs_written=60, bytes_written=20000,
          msgs_read=56, bytes_read=19012, consumer_state=2, consumer_epoch=3, full_events=7)
    v.details.append("`write_pos` = %d, `read_pos` = %d: difference %d = capacity (full, not "
                     "empty: only equality means empty). The third record ends exactly at the "
                     "end of the data area, so no padding is needed. Payloads: bytes i & 0xFF "
                     "(100), (255 - i) & 0xFF (504), (13 i) & 0xFF (136), (31 i + 5) & 0xFF "
                     "(248)." % (p, rp, p - rp))
    v.verdict(msgs=[m1, m2, m3, m4], end="EAGAIN",
              must="A full ring is not corrupt: `write_pos - read_pos == capacity` is allowed. "
              "The largest payload, max_payload = capacity/2 - 8 = 504, is accepted.")
    V.append(v)

    v = Vector("end_of_stream", "producer closed cleanly (producer_state 2) with two messages unread")
    p = v.message(0, b"first")
    p = v.message(p, b"last message before close")
    v.set(write_pos=p, producer_state=2, producer_epoch=1, msgs_written=2, bytes_written=31)
    v.verdict(msgs=[b"first", b"last message before close"], end="EPIPE",
              must="End-of-stream is reported only after the drain: every published message "
              "is read first, then `EPIPE`.")
    V.append(v)

    v = Vector("producer_died",
               "producer_state 1 but no process holds the producer lock: the producer died")
    p = v.message(0, b"committed before death")
    p = v.message(p, b"\x00\x01\x02\x03\x04\x05\x06\x07\x08")
    v.raw_record(p, 40, REC_MESSAGE, b"half-written, never published",
                 "beyond write_pos: never published, must not be read")
    v.set(write_pos=p, producer_state=1, producer_epoch=1, msgs_written=2, bytes_written=31)
    v.details.append("A copied file carries no locks, so nobody holds the producer lock (byte 0): "
                     "state 1 with the lock free means the producer died. The record header at "
                     "position %d (beyond `write_pos`) is a message the producer was writing when "
                     "it died; it is not published." % p)
    v.verdict(msgs=[b"committed before death", bytes(range(9))], end="EOWNERDEAD",
              must="Every published message is read first; then the empty ring with a dead "
              "producer is `EOWNERDEAD` (not `EAGAIN`, not `EPIPE`). Bytes beyond `write_pos` "
              "are never read.")
    V.append(v)

    v = Vector("future_minor",
               "layout 1.7 with non-zero reserved bytes: a 1.0 reader accepts it and ignores them")
    p = v.message(0, b"from a newer minor")
    v.set(layout_minor=7, flags=0, write_pos=p, msgs_written=1, bytes_written=18)
    v.extra.append((60, b"\x11\x22\x33\x44", "reserved in 1.0; a later minor's field"))
    v.extra.append((200, b"\x55" * 8, "reserved in 1.0 (producer line)"))
    v.extra.append((700, b"\x66" * 8, "reserved in 1.0 (rest of the header)"))
    v.verdict(msgs=[b"from a newer minor"], end="EAGAIN",
              must="A reader accepts any minor of its major and MUST NOT reject a segment because "
              "a reserved byte is non-zero (spec section 1 and 7).")
    V.append(v)

    v = Vector("handshake_membarrier",
               "layout 1.1: both handshake words say membarrier (spec section 5.10)")
    p = v.message(0, b"fast publish")
    p = v.message(p, b"no fence")
    v.set(layout_minor=1, write_pos=p, producer_state=1, producer_epoch=1, msgs_written=2,
          bytes_written=20, producer_handshake=1, consumer_handshake=1, consumer_state=1,
          consumer_epoch=1)
    v.details.append("Written by two layout-1.1 sides that both registered for "
                     "`MEMBARRIER_CMD_GLOBAL_EXPEDITED` and died (a copied file carries no "
                     "locks). The consumer's word is a dead holder's: the new consumer stores its "
                     "own word when it attaches (section 5.3 step 3), whatever it finds.")
    v.verdict(msgs=[b"fast publish", b"no fence"], end="EOWNERDEAD",
              must="The handshake words change nothing in what is read: both messages, then "
              "`EOWNERDEAD` (the producer died). A 1.0 reader reads this segment the same way.")
    V.append(v)

    v = Vector("handshake_unknown",
               "layout 1.1: handshake words with a value no version defines (7)")
    p = v.message(0, b"fenced")
    v.set(layout_minor=1, write_pos=p, msgs_written=1, bytes_written=6,
          producer_handshake=7, consumer_handshake=7)
    v.verdict(msgs=[b"fenced"], end="EAGAIN",
              must="A handshake word other than 1 means the full-fence handshake (section "
              "5.10): the segment opens and reads normally; a reader MUST NOT reject it.")
    V.append(v)

    # ---------------------------------------------------------------- invalid vectors
    v = Vector("bad_magic", "magic is SHM_CHAX, not SHM_CHAN")
    v.set(magic=b"SHM_CHAX")
    v.verdict("EPROTO", must="Not a shm_channel segment: refused before any other field is read.")
    V.append(v)

    v = Vector("unknown_major", "layout_major 2")
    v.set(layout_major=2)
    v.verdict("EPROTONOSUPPORT", must="A 1.x reader refuses any other major; the rest of the "
              "header (here a valid 1.0 header) is not looked at.")
    V.append(v)

    v = Vector("wrong_kind", "kind 0x7FFF: a kind this reader does not implement")
    v.set(kind=0x7FFF)
    v.verdict("EPROTOTYPE", must="A stream reader refuses every kind other than 1.")
    V.append(v)

    v = Vector("capacity_not_pow2", "capacity 1536, not a power of two", capacity=1536)
    v.set(capacity=1536, max_payload=1536 // 2 - 8, segment_size=HEADER_SIZE + 1536)
    v.verdict("EBADMSG", must="max_payload and segment_size are consistent with 1536 and the file "
              "is long enough; the capacity alone is wrong.")
    V.append(v)

    v = Vector("file_short", "segment_size says 5120 bytes but the file has 4608")
    v.file_len = HEADER_SIZE + CAP // 2
    v.verdict("EBADMSG", must="The file's real length is checked against segment_size before "
              "anything beyond the header is mapped (mapping it would fault with SIGBUS).")
    V.append(v)

    v = Vector("record_past_write_pos", "a valid message, then a record whose length runs past "
               "write_pos")
    p = v.message(0, b"valid")
    v.raw_record(p, 100, REC_MESSAGE, b"truncated", "claims 100 bytes (record of 112), but "
                 "write_pos is only 16 bytes further")
    v.set(write_pos=p + 16, msgs_written=2, bytes_written=105)
    v.verdict(msgs=[b"valid"], end="EBADMSG",
              must="The first message is valid and is delivered; the second record would extend "
              "past write_pos (unpublished bytes): `EBADMSG`, never a read of those bytes.")
    V.append(v)

    v = Vector("position_diff_exceeds_capacity", "write_pos - read_pos = 2048 > capacity 1024")
    v.message(0, b"x")
    v.set(write_pos=2048, read_pos=0)
    v.verdict("EBADMSG", must="The consumer checks both positions when it claims its role "
              "(spec 5.3 step 2), so the open fails.")
    V.append(v)

    v = Vector("bad_record_type", "a record of type 3")
    v.raw_record(0, 5, 3, b"what?", "type 3 is neither message nor padding")
    v.set(write_pos=16)
    v.verdict(end="EBADMSG", must="A record type other than 1 or 2 is corruption.")
    V.append(v)

    v = Vector("padding_wrong_length", "a padding record at data offset 992 with length 16 "
               "instead of 24")
    rp = CAP + 992
    v.padding(rp, length=16, note="should be 1024 - 992 - 8 = 24")
    p = v.message(2 * CAP, b"unreachable", "would be valid")
    v.set(read_pos=rp, write_pos=p, consumer_state=2, consumer_epoch=1)
    v.verdict(end="EBADMSG", must="A padding record always fills to the end of the data area; "
              "any other length is corruption (the message after it is not delivered).")
    V.append(v)

    v = Vector("header_not_ready", "magic all zero: the creator has not finished initialising")
    v.set(magic=b"\0" * 8)
    v.verdict("ETIMEDOUT", must="An opener that finds the magic all zero waits, re-reading, for a "
              "bounded time (the C library: 1 s), then fails with `ETIMEDOUT`. Every other field "
              "is already written, as by a creator that writes the magic last.")
    V.append(v)

    v = Vector("record_crosses_end", "a message record that runs past the end of the data area")
    rp = 992
    v.raw_record(rp, 100, REC_MESSAGE, b"crosses the end", "record of 112 bytes at offset 992")
    v.set(read_pos=rp, write_pos=rp + 144, consumer_state=2, consumer_epoch=1)
    v.verdict(end="EBADMSG", must="Records never wrap (spec 4.2): a message record that runs past "
              "the end of the data area is corruption, even though write_pos covers it.")
    V.append(v)

    v = Vector("payload_exceeds_max", "a message record of length 600 > max_payload 504")
    v.raw_record(0, 600, REC_MESSAGE, bytes(600), "608-byte record")
    v.set(write_pos=608)
    v.verdict(end="EBADMSG", must="A message longer than max_payload is corruption, even when it "
              "fits before write_pos and the end of the data area.")
    V.append(v)

    v = Vector("position_misaligned", "read_pos and write_pos not multiples of 8")
    v.set(read_pos=4, write_pos=20)
    v.verdict("EBADMSG", must="Every record starts at a multiple of 8; the consumer checks the "
              "positions when it claims its role, so the open fails.")
    V.append(v)
    return V


# ---- kind 2: broadcast (spec/broadcast.md) ---------------------------------------------------
# Written to OUTPUT_DIR/broadcast/, with their own .expect format (broadcast/README.md).

B_SUBS_OFFSET = 4096
B_FIELDS = [  # spec/broadcast.md section 3
    (0, "8s", "magic"), (8, "<H", "layout_major"), (10, "<H", "layout_minor"),
    (12, "<H", "kind"), (14, "<H", "flags"), (16, "<I", "header_size"),
    (24, "<Q", "capacity"), (32, "<Q", "max_payload"), (40, "<Q", "segment_size"),
    (48, "<Q", "created_ns"), (56, "<I", "creator_pid"), (64, "<Q", "slot_stride"),
    (72, "<I", "depth"), (76, "<I", "max_subscribers"), (80, "<Q", "subs_offset"),
    (88, "<Q", "slots_offset"), (128, "<Q", "pub_seq"), (136, "<I", "notify_seq"),
    (140, "<I", "publisher_state"), (144, "<I", "publisher_epoch"),
    (148, "<I", "publisher_handshake"), (256, "<I", "subscribers"), (264, "<Q", "joins"),
    (512, "<Q", "msgs_written"), (520, "<Q", "bytes_written"), (640, "<I", "type_len"),
]
B_FIELD_NAMES = {name for _, _, name in B_FIELDS}


def align_up(n, a):
    return (n + a - 1) // a * a


def bpayload(m):
    """The payload of message m in the vectors: lengths 0, 1, 64, then 8 + (m mod 5)."""
    if m == 1:
        return b""
    if m == 2:
        return b"\x02"
    if m == 3:
        return bytes((3 * 7 + i) & 0xFF for i in range(64))
    return struct.pack("<Q", m) + bytes(range(m % 5))


class BVector:
    """A kind-2 segment image: depth 4, max_payload 64, max_subscribers 4 unless changed."""

    def __init__(self, name, summary, depth=4, max_payload=64, max_subscribers=4, tag=b"<u8"):
        self.name, self.summary = name, summary
        stride = align_up(16 + max_payload, 64)
        slots = B_SUBS_OFFSET + align_up(max_subscribers * 128, 4096)
        self.f = {n: 0 for n in B_FIELD_NAMES}
        self.f.update(magic=MAGIC, layout_major=1, layout_minor=1, kind=2,
                      header_size=HEADER_SIZE,
                      capacity=depth * stride, max_payload=max_payload,
                      segment_size=slots + depth * stride, created_ns=CREATED_NS,
                      creator_pid=CREATOR_PID, slot_stride=stride, depth=depth,
                      max_subscribers=max_subscribers, subs_offset=B_SUBS_OFFSET,
                      slots_offset=slots, type_len=len(tag))
        self.tag = tag
        self.extra = []  # (offset, bytes)
        self.slots = {}  # slot index -> (stamp, length, payload)
        self.actions = []  # expect lines after "open"
        self.open = "ok"
        self.require = None
        self.role = "subscriber"
        self.details = []
        self.must = ""

    def set(self, **kw):
        for k, v in kw.items():
            assert k in B_FIELD_NAMES, k
            self.f[k] = v
        return self

    def publish(self, first, last, state=0):
        """Messages first..last published, each in its slot (later ones overwrite)."""
        for m in range(first, last + 1):
            p = bpayload(m)
            self.slots[m % self.f["depth"]] = (2 * m, len(p), p)
        self.set(pub_seq=last, publisher_state=state, publisher_epoch=1 if state else 0,
                 msgs_written=last, bytes_written=sum(len(bpayload(m)) for m in range(1, last + 1)))
        return self

    def slot(self, index, stamp, length, payload=b""):
        self.slots[index] = (stamp, length, payload)
        return self

    def msg(self, m, missed=0):
        p = bpayload(m)
        self.actions.append("msg %s missed %d" % (p.hex() if p else "-", missed))
        return self

    def latest(self, m, new, missed=0):
        p = bpayload(m)
        self.actions.append("latest %s new %d missed %d" % (p.hex() if p else "-", new, missed))
        return self

    def end(self, verdict, latest=None):
        if latest:
            self.actions.append("latest_end %s" % latest)
        self.actions.append("end %s" % verdict)
        return self

    def image(self):
        img = bytearray(self.f["segment_size"])
        for off, fmt, name in B_FIELDS:
            b = struct.pack(fmt, self.f[name])
            img[off:off + len(b)] = b
        img[648:648 + len(self.tag)] = self.tag
        for off, b in self.extra:
            img[off:off + len(b)] = b
        base, stride = self.f["slots_offset"], self.f["slot_stride"]
        for k in range(self.f["depth"]):
            if base + (k + 1) * stride > len(img):
                break
            img[base + k * stride + 16:base + (k + 1) * stride] = bytes([STALE]) * (stride - 16)
        for k, (stamp, length, payload) in sorted(self.slots.items()):
            o = base + k * stride
            img[o:o + 16] = struct.pack("<QI4x", stamp, length)
            img[o + 16:o + 16 + len(payload)] = payload
        return bytes(img)

    def expect_text(self):
        lines = ["# %s: %s" % (self.name, self.summary),
                 "# generated by make_vectors.py; format in broadcast/README.md"]
        if self.role != "subscriber":
            lines.append("role %s" % self.role)
        if self.require is not None:
            lines.append("require %s" % self.require)
        lines.append("open %s" % self.open)
        if self.open == "ok":
            lines += self.actions
        return "\n".join(lines) + "\n"

    def md_text(self):
        out = ["# `%s`" % self.name, "", self.summary + ".", "",
               "Kind 2 (spec/broadcast.md). Header fields that are not zero:", "",
               "| offset | field | value |", "|---:|---|---|"]
        for off, _, name in B_FIELDS:
            v = self.f[name]
            if v:
                out.append("| %d | `%s` | %s |" % (off, name, v.decode() if isinstance(v, bytes)
                                                    else v))
        if self.tag:
            out.append("| 648 | `type_tag` | `%s` |" % self.tag.decode("ascii", "replace")
                       .replace("|", "\\|"))
        for off, b in self.extra:
            out.append("| %d | raw bytes | %s |" % (off, b.hex()))
        if self.slots:
            out += ["", "Slots (the rest of every payload area is 0xA5):", "",
                    "| slot | file offset | stamp | message | length | payload |",
                    "|---:|---:|---:|---|---:|---|"]
            for k, (stamp, length, payload) in sorted(self.slots.items()):
                o = self.f["slots_offset"] + k * self.f["slot_stride"]
                what = "%d %s" % (stamp >> 1, "complete" if stamp % 2 == 0 else "being written")
                out.append("| %d | %d | %d | %s | %d | %s |" % (k, o, stamp, what, length,
                                                               payload.hex() or "-"))
        out += [""] + self.details
        if self.must:
            out += ["", "A conforming reader: " + self.must]
        return "\n".join(out).rstrip() + "\n"


def one_message_stream_image():
    for v in build():
        if v.name == "one_message":
            return v.image()
    raise AssertionError("one_message")


def build_broadcast():
    vs = []
    v = BVector("bcast_empty", "fresh broadcast segment, no publisher ever attached")
    v.end("EAGAIN", latest="EAGAIN")
    v.must = "opens it; a read finds nothing (`EAGAIN`, or waits), so does a latest read."
    vs.append(v)

    v = BVector("bcast_three", "messages 1-3 of lengths 0, 1 and 64 (max_payload)")
    v.publish(1, 3, state=0).msg(1).msg(2).msg(3).latest(3, 0).end("EAGAIN")
    v.must = "reads the three in order with nothing missed; the newest is 3, already read."
    vs.append(v)

    v = BVector("bcast_membarrier_publisher",
                "layout 1.1: messages 1-3 from a publisher that publishes without a fence")
    v.publish(1, 3, state=0).set(publisher_handshake=1)
    v.msg(1).msg(2).msg(3).latest(3, 0).end("EAGAIN")
    v.must = ("reads as `bcast_three`; before any sleep a subscriber MUST issue "
              "membarrier(MEMBARRIER_CMD_GLOBAL_EXPEDITED) or bound the sleep to 1 ms "
              "(spec/broadcast.md section 5.7 S3).")
    vs.append(v)

    v = BVector("bcast_lapped", "1-10 published with depth 4: the slots hold 7-10")
    v.publish(1, 10).latest(10, 1, missed=3).end("EAGAIN")
    v.must = ("starting at the oldest held message (7), a latest read returns 10 as new and "
              "counts 7, 8, 9 as missed.")
    vs.append(v)

    v = BVector("bcast_lapped_next", "1-10 published with depth 4, read in order from 7")
    v.publish(1, 10).msg(7).msg(8).msg(9).msg(10).latest(10, 0).end("EAGAIN")
    vs.append(v)

    v = BVector("bcast_writing", "1-10 published; message 11 is being written over 7's slot")
    v.publish(1, 10).slot(11 % 4, 2 * 11 + 1, 0, b"\xee" * 20)
    v.msg(8, missed=1).msg(9).msg(10).end("EAGAIN")
    v.must = ("finds stamp 2*11+1 where 7 was expected: lapped by message 11 (in the same "
              "slot, at most pub_seq + 1), so 8..10 are still held; 7 is missed.")
    vs.append(v)

    v = BVector("bcast_end_of_stream", "publisher_state 2 (closed) after messages 1-3")
    v.publish(1, 3, state=2).msg(1).msg(2).msg(3).end("EPIPE")
    vs.append(v)

    v = BVector("bcast_publisher_died", "publisher_state 1, no lock holder, message 4 "
                "half-written (stamp 9) in slot 0")
    v.publish(1, 3, state=1).slot(0, 2 * 4 + 1, 0, struct.pack("<Q", 4) + b"\xde\xad")
    v.msg(1).msg(2).msg(3).end("EOWNERDEAD")
    v.must = ("reads 1-3 (message 4 is not published: pub_seq is 3), then reports the death "
              "(`EOWNERDEAD`): the state is 1 and nobody holds lock byte 0.")
    vs.append(v)

    v = BVector("bcast_future_minor", "layout 1.7, reserved header bytes set")
    v.publish(1, 3).set(layout_minor=7)
    v.extra += [(20, b"\x11\x22\x33\x44"), (96, b"\x55" * 32), (1000, b"\x66" * 8)]
    v.msg(1).msg(2).msg(3).end("EAGAIN")
    v.must = "ignores the minor version and every reserved byte: as `bcast_three`."
    vs.append(v)

    v = BVector("bcast_typed", "type tag `<f4(3,)`", tag=b"<f4(3,)")
    v.require = "<f4(3,)"
    v.publish(1, 2).msg(1).msg(2).end("EAGAIN")
    vs.append(v)

    v = BVector("bcast_typed_mismatch", "type tag `<f4(3,)`, opened requiring `<f8`",
                tag=b"<f4(3,)")
    v.require = "<f8"
    v.open = "EMEDIUMTYPE"
    vs.append(v)

    v = BVector("bcast_as_stream", "a valid kind-2 segment opened as a stream consumer")
    v.publish(1, 3)
    v.role = "consumer"
    v.open = "EPROTOTYPE"
    vs.append(v)

    for name, what, kw in [
            ("bcast_bad_depth", "depth 1 (sizes consistent with it)", {"depth": 1}),
            ("bcast_bad_max_payload", "max_payload 0", {"max_payload": 0}),
    ]:
        v = BVector(name, what, **{k: max(x, 2) if k == "depth" else max(x, 1)
                                   for k, x in kw.items()})
        d, mp = kw.get("depth", v.f["depth"]), kw.get("max_payload", v.f["max_payload"])
        stride = align_up(16 + mp, 64)
        v.set(depth=d, max_payload=mp, slot_stride=stride, capacity=d * stride,
              segment_size=v.f["slots_offset"] + d * stride)
        v.open = "EBADMSG"
        vs.append(v)
    v = BVector("bcast_bad_stride", "slot_stride 80, not align64(16 + 64) = 128")
    v.set(slot_stride=80)
    v.open = "EBADMSG"
    vs.append(v)
    v = BVector("bcast_bad_slots_offset", "slots_offset 4096 + 128, not 8192")
    v.set(slots_offset=4096 + 128)
    v.open = "EBADMSG"
    vs.append(v)
    v = BVector("bcast_bad_tag_len", "type_len 121 (more than 120)")
    v.set(type_len=121)
    v.open = "EBADMSG"
    vs.append(v)
    v = BVector("bcast_bad_tag_byte", "a type tag byte 0x07 (not printable)", tag=b"<u\x078")
    v.open = "EBADMSG"
    vs.append(v)

    v = BVector("bcast_stamp_below", "the slot of published message 2 holds stamp 2 "
                "(message 1)")
    v.publish(1, 3).slot(2, 2, 1, b"\x02")
    v.msg(1).end("EBADMSG")
    vs.append(v)
    v = BVector("bcast_stamp_future", "the slot of message 1 names message 9; pub_seq is 3")
    v.publish(1, 3).slot(1, 18, 0)
    v.end("EBADMSG")
    vs.append(v)
    v = BVector("bcast_length_exceeds", "a complete slot (message 2) with length 65")
    v.publish(1, 3).slot(2, 4, 65, b"\x02")
    v.msg(1).end("EBADMSG")
    vs.append(v)
    v = BVector("bcast_pub_seq_huge", "pub_seq 2^63 - 1 (a stamp could not hold the next one)")
    v.set(pub_seq=(1 << 63) - 1)
    v.end("EBADMSG")
    vs.append(v)
    return vs


# ---- kind 4: service (spec/service.md) -------------------------------------------------------
# Written to OUTPUT_DIR/service/, with their own .expect format (service/README.md).

S_FIELDS = [  # spec/service.md section 3
    (0, "8s", "magic"), (8, "<H", "layout_major"), (10, "<H", "layout_minor"),
    (12, "<H", "kind"), (14, "<H", "flags"), (16, "<I", "header_size"),
    (24, "<Q", "capacity"), (32, "<Q", "max_payload"), (40, "<Q", "segment_size"),
    (48, "<Q", "created_ns"), (56, "<I", "creator_pid"), (64, "<Q", "slot_stride"),
    (72, "<Q", "max_request"), (80, "<Q", "max_response"), (88, "<I", "max_clients"),
    (96, "<Q", "slots_offset"), (104, "<Q", "response_offset"),
    (128, "<I", "server_state"), (132, "<I", "server_epoch"), (136, "<I", "server_seq"),
    (144, "<Q", "requests_taken"), (152, "<Q", "responses"), (168, "<Q", "expired"),
    (176, "<Q", "invalid"), (256, "<I", "clients"), (264, "<Q", "joins"),
    (512, "<Q", "ready0"),
]
S_FIELD_NAMES = {name for _, _, name in S_FIELDS}
S_PHASES = {"FREE": 0, "QUEUED": 1, "TAKEN": 2, "INVALID": 3}


class SVector:
    """A kind-4 segment image: max_request 64, max_response 64, max_clients 4 unless changed."""

    def __init__(self, name, summary, max_request=64, max_response=64, max_clients=4):
        self.name, self.summary = name, summary
        resp_off = 128 + align_up(16 + max_request, 128)
        stride = resp_off + align_up(16 + max_response, 128)
        self.f = {n: 0 for n in S_FIELD_NAMES}
        self.f.update(magic=MAGIC, layout_major=1, kind=4, header_size=HEADER_SIZE,
                      capacity=max_clients * stride, max_payload=max(max_request, max_response),
                      segment_size=4096 + max_clients * stride, created_ns=CREATED_NS,
                      creator_pid=CREATOR_PID, slot_stride=stride, max_request=max_request,
                      max_response=max_response, max_clients=max_clients, slots_offset=4096,
                      response_offset=resp_off)
        self.extra = []   # (offset, bytes)
        self.slots = {}   # slot -> dict(state, req=(phase, seq, len, epoch, payload), resp=...)
        self.lines = []   # expect lines after the open
        self.role = "client"
        self.open = "ok"
        self.must = ""

    def set(self, **kw):
        for k, v in kw.items():
            assert k in S_FIELD_NAMES, k
            self.f[k] = v
        return self

    def req(self, slot, phase, seq, payload=b"", length=None, epoch=0, state=2):
        d = self.slots.setdefault(slot, {"state": state})
        d["req"] = (S_PHASES[phase], seq, len(payload) if length is None else length, epoch,
                    payload)
        return self

    def resp(self, slot, seq, payload=b""):
        d = self.slots.setdefault(slot, {"state": 2})
        d["resp"] = (seq, payload)
        return self

    def line(self, text):
        self.lines.append(text)
        return self

    def image(self):
        img = bytearray(self.f["segment_size"])
        for off, fmt, name in S_FIELDS:
            b = struct.pack(fmt, self.f[name])
            img[off:off + len(b)] = b
        for off, b in self.extra:
            img[off:off + len(b)] = b
        stride, ro = self.f["slot_stride"], self.f["response_offset"]
        for i, d in sorted(self.slots.items()):
            o = 4096 + i * stride
            if o + stride > len(img):
                continue
            img[o:o + 4] = struct.pack("<I", d["state"])
            if "req" in d:
                phase, seq, length, epoch, payload = d["req"]
                img[o + 128:o + 144] = struct.pack("<QII", seq << 2 | phase, length, epoch)
                img[o + 144:o + 144 + len(payload)] = payload
            if "resp" in d:
                seq, payload = d["resp"]
                img[o + ro:o + ro + 16] = struct.pack("<QII", seq, len(payload), 0)
                img[o + ro + 16:o + ro + 16 + len(payload)] = payload
        return bytes(img)

    def expect_text(self):
        lines = ["# %s: %s" % (self.name, self.summary),
                 "# generated by make_vectors.py; format in service/README.md"]
        if self.role != "client":
            lines.append("role %s" % self.role)
        lines.append("open %s" % self.open)
        lines += self.lines
        return "\n".join(lines) + "\n"

    def md_text(self):
        out = ["# `%s`" % self.name, "", self.summary + ".", "",
               "Kind 4 (spec/service.md). Header fields that are not zero:", "",
               "| offset | field | value |", "|---:|---|---|"]
        for off, _, name in S_FIELDS:
            v = self.f[name]
            if v:
                out.append("| %d | `%s` | %s |" % (off, name, v.decode() if isinstance(v, bytes)
                                                    else v))
        for off, b in self.extra:
            out.append("| %d | raw bytes | %s |" % (off, b.hex()))
        if self.slots:
            names = {v: k for k, v in S_PHASES.items()}
            out += ["", "Client slots (every other byte is zero):", "",
                    "| slot | file offset | state | request | len | epoch | payload | response |",
                    "|---:|---:|---:|---|---:|---:|---|---|"]
            for i, d in sorted(self.slots.items()):
                r = d.get("req")
                rq = ("%s(%d)" % (names[r[0]], r[1]), r[2], r[3], r[4].hex() or "-") if r \
                    else ("FREE(0)", 0, 0, "-")
                rs = d.get("resp")
                rsp = ("%d: %s" % (rs[0], rs[1].hex() or "-")) if rs else "none"
                out.append("| %d | %d | %d | %s | %d | %d | %s | %s |" % (
                    i, 4096 + i * self.f["slot_stride"], d["state"], rq[0], rq[1], rq[2],
                    rq[3], rsp))
        if self.must:
            out += ["", "A conforming reader: " + self.must]
        return "\n".join(out).rstrip() + "\n"


def build_service():
    vs = []
    ping, pong = b"ping".hex(), b"pong".hex()

    v = SVector("svc_empty", "fresh service segment, no server ever attached")
    v.line("request %s ETIMEDOUT" % ping).line("model verdict any none")
    v.line("model serve_as 1").line("model receive EAGAIN")
    v.must = ("the server check finds none attached yet (a client waits for one: a request "
              "with timeout 0 times out); a server finds no request.")
    vs.append(v)

    v = SVector("svc_queued", "server epoch 1 (state 1, nobody holds lock 0); slot 1 holds "
                "QUEUED(3) \"ping\" addressed to epoch 1, ready bit 1 set")
    v.set(server_state=1, server_epoch=1, ready0=1 << 1)
    v.req(1, "QUEUED", 3, b"ping", epoch=1, state=1)
    v.role = "server"
    v.line("receive EAGAIN").line("counter expired 1")
    v.line("model serve_as 1").line("model receive 1 3 %s" % ping)
    v.must = ("a new server (epoch 2) drops the request sent to its predecessor without "
              "running it (`expired` 1, slot 1 FREE(3)); a reading as epoch 1 (the replay "
              "without the lock check) receives request (1, 3) \"ping\".")
    vs.append(v)

    v = SVector("svc_answered", "slot 0 FREE(5), its response area names request 5: \"pong\"")
    v.req(0, "FREE", 5).resp(0, 5, b"pong")
    v.line("model client 0 5").line("model response %s" % pong)
    v.line("model client 0 6").line("model response EAGAIN")
    v.line("request %s ETIMEDOUT" % ping)
    v.must = ("a client waiting for request 5 reads \"pong\"; one waiting for 6 does not (an "
              "older number is never its answer).")
    vs.append(v)

    v = SVector("svc_server_died", "server state 1, epoch 1, nobody holds lock 0; slot 2 "
                "TAKEN(1)")
    v.set(server_state=1, server_epoch=1)
    v.req(2, "TAKEN", 1, b"x", epoch=1, state=1)
    v.line("request %s EOWNERDEAD" % ping).line("model verdict any EOWNERDEAD")
    v.line("model attach").line("model req 2 FREE 1")
    v.must = ("a client's server check reports the death (`EOWNERDEAD`); a new server frees "
              "slot 2 (FREE(1)) when it attaches.")
    vs.append(v)

    v = SVector("svc_server_closed", "server state 2 (closed), epoch 1")
    v.set(server_state=2, server_epoch=1)
    v.line("request %s EPIPE" % ping).line("model verdict any EPIPE")
    vs.append(v)

    v = SVector("svc_future_minor", "layout 1.7, reserved header and line bytes set; as "
                "svc_answered")
    v.set(layout_minor=7)
    v.extra += [(20, b"\x11\x22\x33\x44"), (112, b"\x55" * 16), (1000, b"\x66" * 8),
                (4096 + 56, b"\x77" * 8)]
    v.req(0, "FREE", 5).resp(0, 5, b"pong")
    v.line("model client 0 5").line("model response %s" % pong)
    v.line("model client 0 6").line("model response EAGAIN")
    v.must = "ignores the minor version and every reserved byte: as `svc_answered`."
    vs.append(v)

    v = SVector("svc_as_stream", "a valid kind-4 segment opened as a stream consumer")
    v.role = "consumer"
    v.open = "EPROTOTYPE"
    vs.append(v)
    v = SVector("svc_as_bcast", "a valid kind-4 segment opened as a broadcast subscriber")
    v.role = "subscriber"
    v.open = "EPROTOTYPE"
    vs.append(v)

    v = SVector("svc_bad_clients_0", "max_clients 0 (other sizes as for 4)")
    v.set(max_clients=0)
    v.open = "EBADMSG"
    vs.append(v)
    v = SVector("svc_bad_clients_1025", "max_clients 1025 (other sizes as for 4)")
    v.set(max_clients=1025)
    v.open = "EBADMSG"
    vs.append(v)
    v = SVector("svc_bad_stride", "slot_stride 384 + 8, inconsistent with the maxima")
    v.set(slot_stride=v.f["slot_stride"] + 8)
    v.open = "EBADMSG"
    vs.append(v)
    v = SVector("svc_bad_response_offset", "response_offset 128, inconsistent with "
                "max_request 64")
    v.set(response_offset=128)
    v.open = "EBADMSG"
    vs.append(v)
    v = SVector("svc_bad_max_request", "max_request 2^30 + 1")
    v.set(max_request=(1 << 30) + 1)
    v.open = "EBADMSG"
    vs.append(v)

    v = SVector("svc_bad_request_len", "slot 0 QUEUED(1) of length 65 (max_request 64), "
                "addressed to epoch 1, ready bit 0 set; no server yet (epoch 0)")
    v.set(ready0=1)
    v.req(0, "QUEUED", 1, b"\x41" * 64, length=65, epoch=1, state=1)
    v.role = "server"
    v.line("receive EAGAIN").line("counter invalid 1").line("counter expired 0")
    v.must = ("the server (epoch 1) drops the request of invalid length without handing it "
              "out (`invalid` 1) and goes on serving others.")
    vs.append(v)

    v = SVector("svc_resp_future", "slot 0 FREE(1), its response area names request 9")
    v.req(0, "FREE", 1).resp(0, 9, b"late")
    v.line("model client 0 2").line("model response EBADMSG")
    v.must = "a client waiting for request 2 finds a response to a number it never sent: `EBADMSG`."
    vs.append(v)

    v = SVector("svc_phase_3", "slot 0 request word with phase 3 (invalid), ready bit 0 set")
    v.set(ready0=1)
    v.req(0, "INVALID", 1)
    v.open = "EBADMSG"
    v.lines = []
    v2 = SVector("svc_phase_3_server", "slot 0 request word with phase 3 (invalid), ready bit 0 "
                 "set, opened by a server")
    v2.set(ready0=1)
    v2.req(0, "INVALID", 1)
    v2.role = "server"
    v2.line("receive EAGAIN").line("model join 0 EBADMSG")
    v.must = "a client joining slot 0 refuses it (`EBADMSG`)."
    v2.must = "a server ignores slot 0 (not a request); a client joining slot 0 gets `EBADMSG`."
    vs += [v, v2]
    return vs


def main():
    out = sys.argv[1] if len(sys.argv) > 1 else os.path.dirname(os.path.abspath(__file__))
    os.makedirs(out, exist_ok=True)
    for v in build():
        for ext, content in ((".bin", v.image()), (".md", v.md_text().encode()),
                             (".expect", v.expect_text().encode())):
            with open(os.path.join(out, v.name + ext), "wb") as f:
                f.write(content)
    bout = os.path.join(out, "broadcast")
    os.makedirs(bout, exist_ok=True)
    vs = build_broadcast()
    for v in vs:
        for ext, content in ((".bin", v.image()), (".md", v.md_text().encode()),
                             (".expect", v.expect_text().encode())):
            with open(os.path.join(bout, v.name + ext), "wb") as f:
                f.write(content)
    # A stream image opened as a broadcast subscriber: EPROTOTYPE.
    with open(os.path.join(bout, "stream_as_bcast.bin"), "wb") as f:
        f.write(one_message_stream_image())
    with open(os.path.join(bout, "stream_as_bcast.md"), "wb") as f:
        f.write(b"# `stream_as_bcast`\n\nThe stream vector `one_message` (kind 1), opened as a "
                b"broadcast subscriber: `EPROTOTYPE`.\n")
    with open(os.path.join(bout, "stream_as_bcast.expect"), "wb") as f:
        f.write(b"# stream_as_bcast: the stream vector one_message opened as a broadcast "
                b"subscriber\n# generated by make_vectors.py; format in broadcast/README.md\n"
                b"open EPROTOTYPE\n")
    sout = os.path.join(out, "service")
    os.makedirs(sout, exist_ok=True)
    for v in build_service():
        for ext, content in ((".bin", v.image()), (".md", v.md_text().encode()),
                             (".expect", v.expect_text().encode())):
            with open(os.path.join(sout, v.name + ext), "wb") as f:
                f.write(content)
    # A stream image opened as a service client: EPROTOTYPE.
    with open(os.path.join(sout, "stream_as_svc.bin"), "wb") as f:
        f.write(one_message_stream_image())
    with open(os.path.join(sout, "stream_as_svc.md"), "wb") as f:
        f.write(b"# `stream_as_svc`\n\nThe stream vector `one_message` (kind 1), opened as a "
                b"service client: `EPROTOTYPE`.\n")
    with open(os.path.join(sout, "stream_as_svc.expect"), "wb") as f:
        f.write(b"# stream_as_svc: the stream vector one_message opened as a service client\n"
                b"# generated by make_vectors.py; format in service/README.md\nopen EPROTOTYPE\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
