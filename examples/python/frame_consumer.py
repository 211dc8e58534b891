#!/usr/bin/env python3
"""Receive 1080p RGB frames from the C demo producer as numpy arrays.

    c/examples/demo_producer frames 300 &        # build/demo_producer after the CMake build
    python examples/python/frame_consumer.py frames

Arguments: NAME [--capacity BYTES] [--copy] (--help says more; bad arguments print the usage
and create nothing). By default each frame is a read-only numpy view
of the shared ring, with no copy at all (``peek_array``); with ``--copy`` it is copied once
into a preallocated array (``read_into``), which the program may keep. Each frame's first 8
bytes are its sequence number (little-endian), which is checked. Either side may start first;
both must use the same capacity (the demo's default is 32 MiB). Stops at end-of-stream.
"""

from __future__ import annotations

import argparse
import sys
import time

import numpy as np
import shm_channel

SHAPE = (1080, 1920, 3)  # what demo_producer sends by default: 6,220,800 bytes


def capacity(text: str) -> int:
    """--capacity: a power of two from 1 KiB to 1 TiB, in bytes (0x... accepted)."""
    try:
        value = int(text, 0)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number of bytes: {text!r}") from None
    if not shm_channel.MIN_CAPACITY <= value <= shm_channel.MAX_CAPACITY or value & (value - 1):
        raise argparse.ArgumentTypeError(
            f"{value} is not a power of two from {shm_channel.MIN_CAPACITY} to "
            f"{shm_channel.MAX_CAPACITY}"
        )
    return value


def main() -> int:
    """Receive frames until end-of-stream; 0 on success, 1 on a bad stream, 2 on bad usage."""
    ap = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0],
        epilog="Start c/examples/demo_producer NAME (before or after this program) to send frames.",
    )
    ap.add_argument("name", help="channel name: 1-200 characters from [A-Za-z0-9._-]")
    ap.add_argument(
        "--capacity", type=capacity, default=32 << 20, help="ring bytes (default 32 MiB)"
    )
    ap.add_argument("--copy", action="store_true", help="copy each frame into an array")
    args = ap.parse_args()

    frames = 0
    t0 = None
    frame = np.empty(SHAPE, np.uint8)
    try:
        c = shm_channel.Consumer(args.name, args.capacity)
    except ValueError as e:  # checked before anything is created
        ap.error(str(e))
    with c:
        while True:
            try:
                if args.copy:
                    c.read_into(frame, timeout=10)  # one copy: ring -> frame
                    seq, brightness = int(frame.reshape(-1)[:8].view("<u8")[0]), frame[-1, -1]
                else:
                    with c.peek_array(np.uint8, SHAPE, timeout=10) as view:  # no copy
                        seq, brightness = int(view.reshape(-1)[:8].view("<u8")[0]), view[-1, -1]
            except shm_channel.EndOfStream:
                break
            except TimeoutError:
                print(f"frame_consumer: no frame on {args.name!r} for 10 s", file=sys.stderr)
                return 1
            if t0 is None:
                t0 = time.perf_counter()
            if seq != frames:
                print(f"frame_consumer: frame {frames} has sequence {seq}", file=sys.stderr)
                return 1
            frames += 1
    dt = time.perf_counter() - t0 if t0 else 0.0
    how = "copied into numpy" if args.copy else "viewed in place as numpy"
    rate = (
        f": {frames / dt:.0f} frames/s, {frames * frame.nbytes / dt / 1e9:.2f} GB/s" if dt else ""
    )
    print(
        f"consumer: {frames} frames {how}, last pixel {brightness.tolist()}{rate}"
        if frames
        else "consumer: no frames"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
