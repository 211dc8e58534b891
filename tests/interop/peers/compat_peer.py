"""Our compat side in Python (shm_channel.CompatProducer / CompatConsumer), for
tests/interop/test_compat.py: the command line, message stream and exit codes of
tests/compat/peer_model.py (see compat_peer.c).

  compat_peer.py produce NAME SIZE COUNT SEED MAXLEN
  compat_peer.py consume NAME COUNT SEED MAXLEN
"""

import sys
import time
from pathlib import Path

import shm_channel

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "compat"))
from peer_model import msg_bytes, msg_len  # noqa: E402  (the one definition of the stream)

STALL = 20.0


def main(argv):
    if len(argv) >= 7 and argv[1] == "produce":
        name = argv[2]
        size, count, seed, maxlen = (int(a, 0) for a in argv[3:7])
        with shm_channel.CompatProducer(name, size - 16) as p:
            for seq in range(count):
                p.write(msg_bytes(seed, seq, msg_len(seed, seq, maxlen)), timeout=STALL)
        return 0
    if len(argv) >= 6 and argv[1] == "consume":
        name = argv[2]
        count, seed, maxlen = (int(a, 0) for a in argv[3:6])
        t0 = time.monotonic()
        while True:
            try:
                c = shm_channel.CompatConsumer(name, mode=0o666)
                break
            except (FileNotFoundError, TimeoutError):
                if time.monotonic() - t0 > STALL:
                    return 4
                time.sleep(0.001)
        with c:
            for seq in range(count):
                try:
                    data = c.read(timeout=STALL)
                except TimeoutError:
                    return 4
                if data != msg_bytes(seed, seq, msg_len(seed, seq, maxlen)):
                    print(f"compat_peer.py: CORRUPT message {seq}", file=sys.stderr)
                    return 3
        return 0
    print(__doc__, file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv))
