#!/usr/bin/env python3
"""A subscriber of a bridged bytes topic, checking messages by the number each carries.

tests/interop's bcast_peer derives a message's number from the subscriber's position on its
topic, which holds on the publisher's machine only: behind a bridge, the remote topic numbers
what arrived (the bridge's own losses shift it). This one reads the number i in the message
(`[u64 i][u32 len][u32 crc32][body]`, bcast_peer's definition), checks the content is exactly
message i's, numbers strictly increasing, and accounts for every number it did not get.

  topic_sub.py --name N --count C [--seed S=1] [--depth D] [--max-payload M] [--progress FILE]

Creates the topic if absent (with --depth/--max-payload, untyped), writes FILE (u64 delivered,
u64 last i + 1) after attaching and every 256 messages, reads until end-of-stream, prints ONE
JSON line: delivered, missed (the library's count, summed), skipped (numbers never seen: the
first ones, the gaps, the last ones up to C - 1), first, last, end, ok, error.
"""
from __future__ import annotations

import json
import sys
from pathlib import Path

import shm_channel as sc

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "interop" / "peers"))
from bcast_peer import expected  # noqa: E402


def main() -> int:
    a = sys.argv[1:]
    o = {"--seed": "1", "--depth": "64", "--max-payload": "256", "--progress": ""}
    for k in range(0, len(a), 2):
        o[a[k]] = a[k + 1]
    name, count, seed = o["--name"], int(o["--count"]), int(o["--seed"])
    sub = sc.Subscriber(name, depth=int(o["--depth"]), max_payload=int(o["--max-payload"]))
    mp = sub.max_payload
    prog = Path(o["--progress"]) if o["--progress"] else None
    r = {"delivered": 0, "missed": 0, "skipped": 0, "first": None, "last": -1, "end": None,
         "ok": True, "error": ""}

    def progress() -> None:
        if prog:
            prog.write_bytes(r["delivered"].to_bytes(8, "little") + (r["last"] + 1).to_bytes(8, "little"))

    progress()
    try:
        while True:
            try:
                data, missed = sub.recv(timeout=60)
            except sc.EndOfStream:
                r["end"] = "EPIPE"
                break
            data = bytes(data)
            i = int.from_bytes(data[:8], "little")
            if data != expected("bytes", seed, mp, i):
                raise AssertionError("message %d: wrong content" % i)
            if i <= r["last"]:
                raise AssertionError("message %d after %d" % (i, r["last"]))
            if r["first"] is None:
                r["first"] = i
            r["skipped"] += i - r["last"] - 1
            r["last"] = i
            r["delivered"] += 1
            r["missed"] += missed
            if r["delivered"] % 256 == 0:
                progress()
        progress()
        r["skipped"] += count - 1 - r["last"]
        if r["missed"] != sub.missed:
            raise AssertionError("summed missed %d != handle's %d" % (r["missed"], sub.missed))
    except Exception as e:  # noqa: BLE001 - reported in the JSON line
        r["ok"], r["error"] = False, repr(e)
    print(json.dumps(r), flush=True)
    return 0 if r["ok"] else 1


if __name__ == "__main__":
    sys.exit(main())
