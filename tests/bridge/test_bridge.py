"""Bridge tests: two "machines" on one host, each with its own SHM_CHANNEL_DIR and its own
bridge process, joined by Zenoh over 127.0.0.1 (explicit endpoints, no multicast scouting), or
with SHM_BRIDGE_NETNS=1 (root) also over a veth pair between two network namespaces.

stream: the C interop peer produces N checksummed, numbered messages (0..64 bytes) on machine A;
  the Python interop peer consumes them on machine B and verifies every one (size, sequence
  number, checksum, content, in order, no gap, no duplicate) and the end-of-stream verdict.
  While it runs, the exporting bridge, then the importing bridge, then both are SIGKILLed and
  restarted, at points read from the consumer's progress file.
frames: in the same bridge pair, 1080p RGB frames (6,220,800 bytes) from C to Python.
Run by run.sh, which builds everything; the environment names the binaries.
"""
from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
BIN = os.environ["SHM_BRIDGE_BIN"]
PEER_C = os.environ["SHM_BRIDGE_PEER_C"]
PEER_PY = str(ROOT / "tests" / "interop" / "peers" / "peer.py")
BCAST_C = os.environ.get("SHM_BRIDGE_BCAST_C", "")
SVC_C = os.environ.get("SHM_BRIDGE_SVC_C", "")
SVC_PY = str(ROOT / "tests" / "interop" / "peers" / "svc_peer.py")
CLI = os.environ.get("SHM_BRIDGE_CLI", "")
TOPIC_SUB = str(Path(__file__).resolve().parent / "topic_sub.py")
SOAK = os.environ.get("SHM_BRIDGE_SOAK", "") not in ("", "0")
N = int(os.environ.get("SHM_BRIDGE_COUNT", 10**7 if SOAK else 10**6))
FRAMES = int(os.environ.get("SHM_BRIDGE_FRAMES", 20))
FRAME = 6_220_800
TOPIC_N = int(os.environ.get("SHM_BRIDGE_TOPIC_COUNT", 100_000 if SOAK else 4000))
DEADLINE = int(os.environ.get("SHM_BRIDGE_DEADLINE", 900 if SOAK else 120))


def free_port() -> int:
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    p = s.getsockname()[1]
    s.close()
    return p


class Machine:
    def __init__(self, tag: str):
        self.shm = Path("/dev/shm/shm-bridge-%d-%s" % (os.getpid(), tag))
        self.shm.mkdir(mode=0o700)
        self.state = Path(tempfile.mkdtemp(prefix="shm-bridge-%s-" % tag))
        self.env = dict(os.environ, SHM_CHANNEL_DIR=str(self.shm), PYTHONUNBUFFERED="1")
        self.bridge = None
        self.procs: list[subprocess.Popen] = []  # started on this machine (peer()): killed at the end
        self.starts = 0
        self.wrap: list[str] = []  # e.g. ["ip", "netns", "exec", NS]: the bridge in a namespace

    def start_bridge(self, args: list[str]):
        self.starts += 1
        log = open(self.state / "bridge.log", "a")
        self.bridge = subprocess.Popen([*self.wrap, BIN, *args, "--state-dir", str(self.state), "--stats",
                                        str(self.state / "stats.json")],
                                       env=self.env, stdout=log, stderr=log)
        self.args = args

    def kill_bridge(self):
        assert self.bridge.poll() is None, "bridge exited before it was killed: %s" % self.log()
        self.bridge.send_signal(signal.SIGKILL)
        self.bridge.wait()

    def restart(self):
        self.kill_bridge()
        self.start_bridge(self.args)

    def log(self) -> str:
        return (self.state / "bridge.log").read_text(errors="replace")

    def stats(self) -> list:
        return json.loads((self.state / "stats.json").read_text())

    def stop(self):
        """Kill what still runs: every process started on this machine and its bridge (a frozen
        one is continued first)."""
        for p in self.procs + ([self.bridge] if self.bridge else []):
            if p.poll() is None:
                p.send_signal(signal.SIGCONT)
                p.kill()
                p.wait()

    def cleanup(self):
        shutil.rmtree(self.shm, ignore_errors=True)
        shutil.rmtree(self.state, ignore_errors=True)


def dump(machines):
    for m in machines:
        print("---- bridge log %s\n%s" % (m.shm.name, m.log()[-6000:] if (m.state / "bridge.log").exists() else ""))
        for f in sorted(m.state.glob("*.out")):
            print("---- %s\n%s" % (f.name, f.read_text()[-2000:]))


@contextlib.contextmanager
def machines():
    """Machines A and B of one test. If it fails, their bridge logs and the outputs of their
    processes are printed; at the end every process started on them is killed and their folders
    are removed."""
    a, b = Machine("A"), Machine("B")
    try:
        yield a, b
    except BaseException:
        dump((a, b))
        raise
    finally:
        for m in (a, b):
            m.stop()
        for m in (a, b):
            m.cleanup()


def start_bridges(a: Machine, b: Machine, imports: list[str], exports: list[str], host: str = "127.0.0.1"):
    """B's bridge listens on a free port (on `host`: B's address) and imports; A's connects to it
    and exports. Arguments such as ["--import", "s"]."""
    ep = "tcp/%s:%d" % (host, free_port())
    b.start_bridge(["--listen", ep, *imports])
    a.start_bridge(["--connect", ep, *exports])


def peer(cmd: list[str], m: Machine, name: str) -> subprocess.Popen:
    out = open(m.state / ("%s.out" % name), "w")
    p = subprocess.Popen(cmd, env=m.env, stdout=out, stderr=subprocess.STDOUT)
    m.procs.append(p)
    return p


def progress(path: Path, at: int = 0) -> int:
    try:
        b = path.read_bytes()
    except FileNotFoundError:
        return 0
    return int.from_bytes(b[at:at + 8], "little") if len(b) >= at + 8 else 0


def wait_for(what: str, cond, until: float, procs=()):
    while not cond():
        for p in procs:
            if p.poll() is not None:
                raise AssertionError("%s: a process ended early (%s, status %s)" % (what, p.args, p.returncode))
        if time.monotonic() > until:
            raise AssertionError("timed out waiting for " + what)
        time.sleep(0.01)


def result(m: Machine, name: str) -> dict:
    lines = [l for l in (m.state / ("%s.out" % name)).read_text().splitlines() if l.startswith("{")]
    assert lines, "%s printed no result: %s" % (name, (m.state / ("%s.out" % name)).read_text())
    return json.loads(lines[-1])


def test_stream_and_frames():
    with machines() as (a, b):
        procs = []
        t0 = time.monotonic()
        until = t0 + DEADLINE
        gen_s = ["--capacity", "65536", "--max-size", "64", "--seed", "7"]
        gen_f = ["--capacity", str(32 << 20), "--fixed-size", str(FRAME), "--seed", "9"]
        dl = ["--deadline", str(DEADLINE)]
        prog = b.state / "progress"
        cons = peer([sys.executable, PEER_PY, "consume", "--name", "s", "--count", str(N),
                     "--progress", str(prog), *gen_s, *dl], b, "cons")
        fcons = peer([sys.executable, PEER_PY, "consume", "--name", "f", "--count", str(FRAMES),
                      *gen_f, *dl], b, "fcons")
        prod = peer([PEER_C, "produce", "--name", "s", "--count", str(N), *gen_s, *dl], a, "prod")
        fprod = peer([PEER_C, "produce", "--name", "f", "--count", str(FRAMES), *gen_f, *dl], a, "fprod")
        procs = [cons, fcons, prod, fprod]
        # Every segment exists before the bridges open them (observable state, no sleep).
        wait_for("segments", lambda: all((m.shm / n).exists() for m in (a, b) for n in ("s", "f")),
                 until, [cons, fcons])
        start_bridges(a, b, ["--import", "s", "--import", "f"], ["--export", "s", "--export", "f"])
        # Kill and restart in the middle: exporter, importer, both.
        for frac, victims in ((0.25, (a,)), (0.5, (b,)), (0.75, (a, b))):
            target = int(N * frac)
            wait_for("consumer past %d" % target, lambda: progress(prog) >= target, until,
                     [cons, a.bridge, b.bridge])
            for v in victims:
                v.restart()
        for p in procs:
            p.wait(timeout=max(1, until - time.monotonic()))
        r, fr = result(b, "cons"), result(b, "fcons")
        assert r["ok"] and r["count"] == N and r["next"] == N and r["end"] == "EPIPE", r
        assert fr["ok"] and fr["count"] == FRAMES and fr["end"] == "EPIPE", fr
        assert prod.returncode == 0 and fprod.returncode == 0, result(a, "prod")
        # Both bridges end by themselves: every end of stream forwarded and acknowledged.
        a.bridge.wait(timeout=max(1, until - time.monotonic()))
        b.bridge.wait(timeout=max(1, until - time.monotonic()))
        assert a.bridge.returncode == 0 and b.bridge.returncode == 0, (a.log(), b.log())
        # The restarts were noticed and said (log lines and counters).
        alog, blog = a.log(), b.log()
        assert "importer session" in alog and "resuming at seq" in blog, (alog, blog)
        st = {(s["name"], s["role"]): s for s in a.stats() + b.stats()}
        assert st[("s", "import")]["acked"] == N + 1, st  # N messages + the end of stream
        # Restarted after the end (same state): both know the streams are finished and exit 0;
        # the exporter recreates no channel.
        b.start_bridge(b.args)
        a.start_bridge(a.args)
        for m in (a, b):
            m.bridge.wait(timeout=max(1, until - time.monotonic()))
            assert m.bridge.returncode == 0, m.log()
        last = a.log().rsplit("up: listen", 1)[1]
        assert last.count("finished before (end of stream acknowledged)") == 2, a.log()
        assert not (a.shm / "s").exists() and not (a.shm / "f").exists(), list(a.shm.iterdir())
        secs = time.monotonic() - t0
        print("stream: %d messages (C -> bridge -> bridge -> Python), 3 kill rounds (%d + %d bridge"
              " starts), %d frames of %d B: ok in %.1f s; stream %.0f msg/s through the kills"
              % (N, a.starts, b.starts, FRAMES, FRAME, secs, N / r["secs"] if r["secs"] else 0))
        print("exporter counters (last run): %s" % json.dumps(st[("s", "export")]))


def test_topics():
    """A bytes topic with subscribers on both machines (C publisher on A; Python and C
    subscribers on A, Python subscriber on B), the exporting bridge frozen in the middle so that
    its local subscriber is lapped: every subscriber accounts for every message (delivered +
    missed = published on its machine; the numbers B never saw = B's own misses + the bridge's
    forwarded misses + Zenoh's losses). A typed topic (f64): a C subscriber on B reads the values
    of A's C publisher; a Python subscriber asking for i64 on B gets TopicTypeError."""
    with machines() as (a, b):
        procs = []
        until = time.monotonic() + 60
        depth, mp = 64, 256
        geo = ["--depth", str(depth), "--max-payload", str(mp)]
        pa, pb = a.state / "sub.progress", b.state / "sub.progress"
        sub_a = peer([sys.executable, TOPIC_SUB, "--name", "t", "--count", str(TOPIC_N), *geo,
                      "--progress", str(pa)], a, "sub_a")
        cpa = a.state / "csub.progress"
        csub_a = peer([BCAST_C, "subscribe", "--name", "t", *geo, "--timeout-s", "60", "--progress", str(cpa)],
                      a, "csub_a")
        procs = [sub_a, csub_a]
        wait_for("A's subscribers attached", lambda: pa.exists() and cpa.exists(), until, procs)
        start_bridges(a, b, ["--import-topic", "t", "--import-topic", "tf"],
                      ["--export-topic", "t", "--export-topic", "tf"])
        # The typed topic exists on A before anyone publishes; the importer creates B's topics
        # with A's parameters (asked through Zenoh) before any message: B's subscribers attach.
        fgeo = ["--type", "f64", "--depth", "1024", "--max-payload", "64"]
        fsub_a = peer([BCAST_C, "subscribe", "--name", "tf", *fgeo, "--timeout-s", "60"], a, "fsub_a")
        procs.append(fsub_a)
        wait_for("B's topics created by the importer", lambda: (b.shm / "t").exists() and (b.shm / "tf").exists(),
                 until, procs + [a.bridge, b.bridge])
        sub_b = peer([sys.executable, TOPIC_SUB, "--name", "t", "--count", str(TOPIC_N), *geo,
                      "--progress", str(pb)], b, "sub_b")
        fsub_b = peer([BCAST_C, "subscribe", "--name", "tf", *fgeo, "--timeout-s", "60"], b, "fsub_b")
        procs += [sub_b, fsub_b]
        probe = ("import shm_channel as sc, time\n"
                 "s = sc.Subscriber('tf', create=False)\n"
                 "while s.broadcast_stat().subscribers < 2: time.sleep(0.01)\n"
                 "try:\n sc.Subscriber('tf', int, create=False)\nexcept sc.TopicTypeError as e:\n"
                 " print('TopicTypeError', e)\nelse:\n print('opened')")
        chk = subprocess.run([sys.executable, "-c", probe], env=b.env, capture_output=True, text=True,
                             timeout=max(1, until - time.monotonic()))
        # The type travelled: B's topic says f64, and a subscriber asking for i64 is refused.
        assert chk.stdout.startswith("TopicTypeError") and "carries f64" in chk.stdout, (chk.stdout, chk.stderr)
        wait_for("B's subscriber attached", lambda: pb.exists(), until, procs)
        # Publishers wait for their subscribers on A (the bridge's included), then publish at a
        # bounded rate (the bridge keeps up unless frozen).
        pub = peer([BCAST_C, "publish", "--name", "t", "--count", str(TOPIC_N), *geo, "--wait-subs", "3",
                    "--rate", "2000"], a, "pub")
        fpub = peer([BCAST_C, "publish", "--name", "tf", "--count", "300", *fgeo, "--wait-subs", "2",
                     "--rate", "2000"], a, "fpub")
        procs += [pub, fpub]
        # Freeze the exporting bridge for more than `depth` messages: its subscriber is lapped.
        # (Positions from A's C subscriber: u64 at 8 = its last message number + 1.)
        last = lambda: progress(cpa, 8)  # noqa: E731
        wait_for("A's subscriber past a third", lambda: last() >= TOPIC_N // 3, until, [pub, a.bridge])
        a.bridge.send_signal(signal.SIGSTOP)
        p0 = last()
        wait_for("publisher past the frozen bridge", lambda: last() >= p0 + 3 * depth, until, [pub])
        a.bridge.send_signal(signal.SIGCONT)
        for p in procs:
            p.wait(timeout=max(1, until - time.monotonic()))
        for br in (a.bridge, b.bridge):
            br.wait(timeout=max(1, until - time.monotonic()))
            assert br.returncode == 0, (a.log(), b.log())
        ra, rb, rc = result(a, "sub_a"), result(b, "sub_b"), result(a, "csub_a")
        rf, rfa = result(b, "fsub_b"), result(a, "fsub_a")
        assert result(a, "pub")["published"] == TOPIC_N and result(a, "fpub")["published"] == 300
        st = {(s["name"], s["role"]): s for s in a.stats() + b.stats()}
        ex, im = st[("t", "export-topic")], st[("t", "import-topic")]
        for r in (ra, rb, rc, rf, rfa):
            assert r["ok"] and r["end"] == "EPIPE", r
        # A: every number accounted for by the subscriber's own misses.
        assert ra["delivered"] + ra["missed"] == TOPIC_N and ra["skipped"] == ra["missed"], ra
        assert rc["delivered"] + rc["missed"] == TOPIC_N, rc
        # The bridge: everything A published reached B, or was lapped on A, or lost in Zenoh.
        assert ex["missed"] > 0, ex  # the freeze lapped the exporting bridge
        assert ex["sent"] + ex["missed"] == TOPIC_N and im["missed"] == ex["missed"], (ex, im)
        assert im["written"] + im["lost"] == ex["sent"], (ex, im)
        # B: delivered + missed = published on B; numbers never seen = own + bridge losses.
        assert rb["delivered"] + rb["missed"] == im["written"], (rb, im)
        assert rb["skipped"] == rb["missed"] + im["missed"] + im["lost"], (rb, im)
        assert rf["delivered"] + rf["missed"] == 300 and rf["missed"] == 0, rf
        print("topics: %d messages, A subscribers %d+%d / %d+%d delivered+missed, bridge lapped %d, lost %d,"
              " B subscriber %d+%d; f64 topic 300/300 on B, i64 refused"
              % (TOPIC_N, ra["delivered"], ra["missed"], rc["delivered"], rc["missed"], ex["missed"],
                 im["lost"], rb["delivered"], rb["missed"]))


class Netns:
    """Two network namespaces joined by a veth pair (10.77.0.1 in A's, 10.77.0.2 in B's), made
    and removed by the test (root needed: SHM_BRIDGE_NETNS=1). Only the bridges run inside."""

    def __init__(self):
        t = str(os.getpid())[-6:]
        self.a, self.b = "shmb-a-" + t, "shmb-b-" + t
        va, vb = "shmbva" + t, "shmbvb" + t
        self.run("ip", "netns", "add", self.a)
        self.run("ip", "netns", "add", self.b)
        self.run("ip", "link", "add", va, "type", "veth", "peer", "name", vb)
        for ns, v, ip in ((self.a, va, "10.77.0.1/24"), (self.b, vb, "10.77.0.2/24")):
            self.run("ip", "link", "set", v, "netns", ns)
            self.run("ip", "-n", ns, "addr", "add", ip, "dev", v)
            self.run("ip", "-n", ns, "link", "set", v, "up")
            self.run("ip", "-n", ns, "link", "set", "lo", "up")

    @staticmethod
    def run(*cmd: str):
        subprocess.run(cmd, check=True, capture_output=True, timeout=30)

    def close(self):
        for ns in (self.a, self.b):  # removing a namespace removes its end of the veth pair
            subprocess.run(["ip", "netns", "del", ns], capture_output=True, timeout=30)


def test_netns_services():
    """test_services with the two bridges in two network namespaces joined by a veth pair
    (SHM_BRIDGE_NETNS=1; needs root). The processes using the channels stay outside."""
    ns = Netns()
    try:
        test_services(ns)
    finally:
        ns.close()


def test_services(ns: Netns | None = None):
    """A service across: C server on A, Python clients on B (svc_peer: checksummed requests and
    answers of 20..M bytes, each naming its client and number). Server A1 is SIGKILLed while it
    holds a request: the client on B gets EOWNERDEAD (PeerDied) as on one machine, waits for a
    server, and when server A2 attaches (another C process) completes every request, none
    answered twice or wrongly. A2 closes after the bye: a new request on B gets EPIPE
    (ServerClosed)."""
    with machines() as (a, b):
        procs = []
        until = time.monotonic() + 60
        size = ["--max-size", "1024", "--deadline", "60"]
        aprog, cprog = a.state / "srv.progress", b.state / "cli.progress"
        srv1 = peer([SVC_C, "serve", "--name", "s", "--expect", "1", "--hang-after", "40", "--progress",
                     str(aprog), *size], a, "srv1")
        procs = [srv1]
        wait_for("A's service", lambda: (a.shm / "s").exists(), until, procs)
        if ns:
            a.wrap, b.wrap = ["ip", "netns", "exec", ns.a], ["ip", "netns", "exec", ns.b]
        start_bridges(a, b, ["--import-service", "s"], ["--export-service", "s"],
                      "10.77.0.2" if ns else "127.0.0.1")
        wait_for("B's service (created by the importing bridge)", lambda: (b.shm / "s").exists(), until,
                 procs + [a.bridge, b.bridge])
        cli = peer([sys.executable, SVC_PY, "request", "--name", "s", "--id", "3", "--count", "150",
                    "--progress", str(cprog), *size], b, "cli")
        procs.append(cli)
        # progress files: u64 done, u64 hang, u64 verdicts (tests/interop/README.md, Services).
        wait_for("server A1 holding a request", lambda: progress(aprog, 8) == 1, until, procs)
        srv1.send_signal(signal.SIGKILL)
        srv1.wait()
        procs.remove(srv1)
        wait_for("the client on B told the server died", lambda: progress(cprog, 16) >= 1, until,
                 procs + [a.bridge, b.bridge])
        # A client that is attached when the server closes (a closed service without clients is
        # removed, on one machine as here).
        probe = ("import shm_channel as sc, sys\n"
                 "c = sc.Client('s', create=False)\n"
                 "print('open', flush=True)\n"
                 "sys.stdin.readline()\n"
                 "try:\n c.request(b'x', 30)\nexcept sc.ServerClosed:\n print('ServerClosed')\n"
                 "except Exception as e:\n print('other', type(e), e)\nelse:\n print('answered')")
        late = subprocess.Popen([sys.executable, "-c", probe], env=b.env, stdin=subprocess.PIPE,
                                stdout=subprocess.PIPE, text=True)
        b.procs.append(late)
        procs.append(late)
        assert late.stdout.readline().strip() == "open"
        srv2 = peer([SVC_C, "serve", "--name", "s", "--expect", "1", *size], a, "srv2")
        procs.append(srv2)
        cli.wait(timeout=max(1, until - time.monotonic()))
        srv2.wait(timeout=max(1, until - time.monotonic()))
        r, r2 = result(b, "cli"), result(a, "srv2")
        assert r["ok"] and r["count"] == 150 and r["owner_dead"] >= 1, r
        assert r2["ok"] and r2["byes"] == 1, r2
        # A2 closed (after the bye): a request on B now gets EPIPE, as from a closed server.
        wait_for("the close mirrored on B", lambda: "remote server closed" in b.log(), until, [b.bridge])
        late.stdin.write("go\n")
        late.stdin.close()
        late.wait(timeout=max(1, until - time.monotonic()))
        out = late.stdout.read()
        assert out.strip() == "ServerClosed", out
        # Counters (the stats file is rewritten every 200 ms).
        im = lambda: {s["role"]: s for s in b.stats()}["import-service"]  # noqa: E731
        wait_for("importer counters", lambda: im()["requests"] >= 152, until, [b.bridge])
        assert im()["errors"] >= 1, im()  # the death
        assert "remote server dead" in b.log() and "remote server closed" in b.log(), b.log()
        print("services: 150 requests + bye from B to A across a server death (client saw %d EOWNERDEAD,"
              " %d ECONNRESET), then EPIPE after the close; importer %s" % (r["owner_dead"], r["resets"], im()))


def cli(m: Machine, *args: str) -> str:
    r = subprocess.run([CLI, *args], env=m.env, capture_output=True, text=True, timeout=30)
    assert r.returncode == 0, (args, r.stdout, r.stderr)
    return r.stdout


def bridge_of(m: Machine, name: str) -> dict:
    """The first bridge entry `shm_channel stat --json NAME` shows (docs/cli.md, "Bridges")."""
    b = json.loads(cli(m, "stat", "--json", name)).get("bridges", [])
    return b[0] if b else {}


def test_reconnect():
    """The importing bridge is SIGKILLed and restarted: the exporting one logs the loss and the
    reconnection, and `shm_channel stat`/`top` on its machine show the peer state and the
    reconnect counter moving (read from the bridge's status file); the killed bridge's file is
    ignored on the other machine (its pid is dead)."""
    with machines() as (a, b):
        procs = []
        until = time.monotonic() + 30
        pa = a.state / "sub.progress"
        holder = peer([sys.executable, TOPIC_SUB, "--name", "r", "--count", "1", "--progress", str(pa)], a, "holder")
        procs = [holder]
        wait_for("topic r on A", lambda: pa.exists(), until, procs)
        start_bridges(a, b, ["--import-topic", "r"], ["--export-topic", "r"])
        wait_for("A's bridge sees its peer", lambda: bridge_of(a, "r").get("peer") == "connected", until,
                 [a.bridge, b.bridge])
        st = bridge_of(a, "r")
        assert st["reconnects"] == 0 and st["role"] == "export-topic" and st["pid"] == a.bridge.pid, st
        old_pid = b.bridge.pid
        b.kill_bridge()
        wait_for("A's bridge sees the peer lost", lambda: bridge_of(a, "r").get("peer") == "lost", until, [a.bridge])
        b.start_bridge(b.args)
        wait_for("A's bridge reconnected", lambda: bridge_of(a, "r").get("reconnects") == 1, until,
                 [a.bridge, b.bridge])
        assert bridge_of(a, "r")["peer"] == "connected"
        log = a.log()
        assert "peer lost: reconnecting" in log and "peer connected again" in log and "(reconnect 1)" in log, log
        # top: the bridge table (text) and the "bridges" array (JSON).
        text = cli(a, "top", "--once", "--interval", "0.1")
        assert "BRIDGE" in text and "export-topic" in text, text
        tops = json.loads(cli(b, "top", "--once", "--json", "--interval", "0.1"))["bridges"]
        # B: the killed bridge left its file; only the live one is shown.
        assert (b.shm / (".bridge-%d.json" % old_pid)).exists()
        assert [t["pid"] for t in tops] == [b.bridge.pid], tops
        assert tops[0]["channels"][0]["role"] == "import-topic", tops
        print("reconnect: peer lost and back, reconnects 1 in stat/top, the dead bridge's file ignored")


if __name__ == "__main__":
    tests = [test_stream_and_frames, test_topics, test_services, test_reconnect]
    if os.environ.get("SHM_BRIDGE_NETNS", "") not in ("", "0"):
        tests.append(test_netns_services)
    if sys.argv[1:]:
        tests = [t for t in tests if t.__name__ in sys.argv[1:]]
    failed = 0
    for t in tests:
        t0 = time.monotonic()
        try:
            t()
            print("PASS %s (%.1f s)" % (t.__name__, time.monotonic() - t0))
        except Exception as e:  # noqa: BLE001 - report and go on
            failed += 1
            print("FAIL %s: %s" % (t.__name__, e))
    print("bridge: %d passed, %d failed" % (len(tests) - failed, failed))
    sys.exit(1 if failed else 0)
