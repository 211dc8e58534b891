"""ZeroMQ PUSH/PULL baseline: two processes over tcp://127.0.0.1, COUNT messages of SIZE bytes;
prints the receiver's messages per second (first to last message)."""
import multiprocessing as mp
import sys
import time

import zmq


def pull(port_q, n, out_q):
    s = zmq.Context().socket(zmq.PULL)
    port = s.bind_to_random_port("tcp://127.0.0.1")
    port_q.put(port)
    s.recv()
    t0 = time.perf_counter()
    for _ in range(n - 1):
        s.recv()
    out_q.put((n - 1) / (time.perf_counter() - t0))


def main():
    n, size = int(sys.argv[1]), int(sys.argv[2])
    pq, oq = mp.Queue(), mp.Queue()
    p = mp.Process(target=pull, args=(pq, n, oq))
    p.start()
    s = zmq.Context().socket(zmq.PUSH)
    s.connect("tcp://127.0.0.1:%d" % pq.get())
    msg = b"x" * size
    for _ in range(n):
        s.send(msg)
    print(round(oq.get()))
    p.join()


if __name__ == "__main__":
    main()
