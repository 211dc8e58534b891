"""The shm_channel program driven as real processes against real channels and real peers
(docs/cli.md): every command, its --json, exit statuses, bad input, send | recv, record and
replay, doctor, and top in a real terminal (a pty)."""

from __future__ import annotations

import json
import os
import pty
import re
import select
import signal
import struct
import subprocess
import time

import pytest

from conftest import CLI

COMMANDS = ["ls", "stat", "top", "hz", "send", "recv", "call", "record", "replay", "doctor",
            "rm", "gc", "version"]


# --- help, usage errors, exit statuses ------------------------------------------------------
def test_help_lists_every_command_and_the_exit_statuses(cli):
    out = cli.ok("--help")
    for c in COMMANDS:
        assert re.search(rf"^  {c}\b", out, re.M), f"{c} missing from --help:\n{out}"
    for code in ("0 done", "1 runtime failure", "2 usage error", "3 doctor", "4 --timeout"):
        assert code in out


@pytest.mark.parametrize("cmd", COMMANDS)
def test_every_command_has_help(cli, cmd):
    r = cli.run(cmd, "--help")
    assert r.returncode == 0, r.stderr
    assert r.stdout.startswith(b"usage: shm_channel " + cmd.encode())
    assert b"Exit status" in r.stdout
    assert list(cli.dir.iterdir()) == [], "--help does nothing"


@pytest.mark.parametrize("args", [
    [], ["frob"], ["--bogus"], ["ls", "x"], ["stat"], ["stat", "a", "b"], ["send"],
    ["recv", "x", "--format", "yaml"], ["recv", "x", "--count", "-1"],
    ["recv", "x", "--count", "ten"], ["top", "--interval"], ["top", "--interval", "0"],
    ["send", "x", "--frames", "--file"], ["send", "x", "extra"], ["gc", "--force"],
    ["stat", "x", "--kind", "yaml"], ["record", "x"], ["replay", "f"], ["hz"],
    ["send", "x", "--depth", "4"], ["ls", "--json=yes"],
])
def test_bad_command_lines_exit_2_and_do_nothing(cli, args):
    r = cli.run(*args)
    assert r.returncode == 2, f"{args}: exit {r.returncode} {r.stderr}"
    assert b"usage: shm_channel" in r.stderr
    assert list(cli.dir.iterdir()) == []


def test_runtime_failures_exit_1_naming_the_channel_and_the_reason(cli):
    for args in (["stat", "nosuch"], ["recv", "nosuch"], ["send", "nosuch"], ["hz", "nosuch"],
                 ["rm", "nosuch"], ["record", "nosuch", "/dev/null"]):
        r = cli.run(*args)
        assert r.returncode == 1, f"{args}: {r.returncode}"
        err = r.stderr.decode()
        assert "nosuch" in err and "no such channel" in err.lower(), err
    r = cli.run("replay", "/nonexistent/rec", "x")
    assert r.returncode == 1 and b"/nonexistent/rec: No such file or directory" in r.stderr
    r = cli.run("send", "--create", "--file", "x", "/nonexistent/msg")
    assert r.returncode == 1 and b"/nonexistent/msg: No such file or directory" in r.stderr


def test_version(cli):
    assert re.fullmatch(r"\d+\.\d+\.\d+\n", cli.ok("version"))


# --- ls and stat --json against real peers --------------------------------------------------
def _round_trip(cli, name, lines):
    prod = cli.spawn("send", "--create", name)
    cli.wait_for("created", lambda: cli.stat(name))
    cons = cli.spawn("recv", name, stdin=subprocess.DEVNULL)
    cli.wait_for("both attached", lambda: (s := cli.stat(name)) and s["producer"]["alive"]
                 and s["consumer"]["alive"])
    prod.stdin.write(b"".join(x + b"\n" for x in lines))
    prod.stdin.flush()
    got = [cons.stdout.readline().rstrip(b"\n") for _ in lines]
    assert got == lines
    return prod, cons


def test_stream_stat_json_follows_real_peers(cli):
    lines = [b"hello", b"", b"x" * 100]
    prod, cons = _round_trip(cli, "s1", lines)
    s = cli.stat("s1")
    assert s["name"] == "s1" and s["kind"] == "stream" and s["kind_id"] == 1
    assert s["layout"] == "1.1" and s["in_use"] is True
    assert s["msgs_written"] == 3 and s["msgs_read"] == 3
    assert s["bytes_written"] == 105 and s["bytes_read"] == 105 and s["used"] == 0
    assert s["capacity"] == 1 << 20 and s["max_payload"] > 0
    assert s["producer"] == {"state": "alive", "alive": True, "epoch": 1}
    assert s["consumer"]["state"] == "alive"
    for k in ("write_pos", "read_pos", "full_events", "empty_events", "producer_wakes",
              "consumer_wakes", "producer_sleeps", "consumer_sleeps", "creator_pid",
              "created_ns"):
        assert isinstance(s[k], int), k
    # The text form says the same.
    text = cli.ok("stat", "s1")
    assert re.search(r"^msgs_written +3$", text, re.M) and "producer        alive" in text
    # The producer closes: end-of-stream; the consumer drains, exits 0, and the finished
    # stream is gone.
    prod.stdin.close()
    assert prod.wait(30) == 0 and cons.wait(30) == 0
    assert cli.run("stat", "s1").returncode == 1


def test_broadcast_and_ls_json(cli):
    pub = cli.spawn("send", "--create", "--broadcast", "--depth", "4", "--max-payload", "64",
                    "--max-subscribers", "8", "b1")
    cli.wait_for("publisher", lambda: (s := cli.stat("b1")) and s["publisher"]["alive"])
    subs = [cli.spawn("recv", "--follow", "--format", "json", "b1", stdin=subprocess.DEVNULL)
            for _ in range(2)]
    cli.wait_for("2 subscribers", lambda: cli.stat("b1")["subscribers_live"] == 2)
    pub.stdin.write(b"one\ntwo\nthree\n")
    pub.stdin.flush()
    for sub in subs:
        got = [json.loads(sub.stdout.readline()) for _ in range(3)]
        assert [g["text"] for g in got] == ["one", "two", "three"]
        assert [g["seq"] for g in got] == [1, 2, 3] and [g["n"] for g in got] == [1, 2, 3]
        assert got[0]["hex"] == "6f6e65" and got[0]["missed"] == 0
    s = cli.stat("b1")
    assert s["kind"] == "broadcast" and s["kind_id"] == 2
    assert s["depth"] == 4 and s["max_payload"] == 64 and s["max_subscribers"] == 8
    assert s["published"] == 3 and s["type_tag"] == ""
    assert s["publisher"]["state"] == "alive" and s["joins"] == 2
    assert len(s["subscribers"]) == 2
    for e in s["subscribers"]:
        assert e["alive"] and e["delivered"] == 3 and e["next_seq"] == 4 and e["lag"] == 0
    # A stream next to it; ls --json lists both with the objects stat --json gives.
    prod = cli.spawn("send", "--create", "s2")
    cli.wait_for("producer", lambda: cli.stat("s2"))
    (cli.dir / "not-a-channel").write_bytes(b"x" * 5000)
    ls = cli.json("ls", "--json")
    assert ls["dir"] == str(cli.dir)
    by = {c["name"]: c for c in ls["channels"]}
    assert set(by) == {"b1", "s2"}, "files that are not channels are left out"
    assert by["b1"]["kind"] == "broadcast" and by["b1"]["subscribers_live"] == 2
    assert by["s2"]["kind"] == "stream" and by["s2"]["producer"]["alive"]
    assert set(by["s2"]) == set(cli.stat("s2")), "ls --json holds stat --json's objects"
    text = cli.ok("ls")
    assert re.search(r"^b1 +broadcast .* 2 subs", text, re.M), text
    # The publisher closes: each subscriber ends (exit 0).
    pub.stdin.close()
    assert pub.wait(30) == 0
    for sub in subs:
        assert sub.wait(30) == 0
    prod.stdin.close()
    prod.wait(30)


def test_broadcast_recv_without_follow_prints_what_is_held(cli):
    pub = cli.spawn("send", "--create", "--broadcast", "--depth", "4", "b2")
    pub.stdin.write(b"".join(b"%d\n" % i for i in range(1, 11)))
    pub.stdin.flush()
    cli.wait_for("10 published", lambda: (s := cli.stat("b2")) and s["published"] == 10)
    r = cli.run("recv", "b2")
    assert r.returncode == 0
    assert r.stdout.split() == [b"7", b"8", b"9", b"10"], "the depth's newest, oldest first"


SVC_ECHO = os.environ.get("SHM_CHANNEL_CLI_SVC_ECHO", "")


def _has_compat(cli):
    return b"not yet" not in cli.run("stat", "--kind", "compat", "x").stderr


def test_kinds_not_in_this_build_say_not_yet(cli):
    if _has_compat(cli) and SVC_ECHO:
        pytest.skip("this build has the service and compat calls")
    if not _has_compat(cli):
        r = cli.run("stat", "--kind", "compat", "x")
        assert r.returncode == 1 and b"compat" in r.stderr and b"not yet" in r.stderr
    if not SVC_ECHO:
        r = cli.run("call", "svc")
        assert r.returncode == 1 and b"service" in r.stderr and b"not yet" in r.stderr


@pytest.mark.skipif(not SVC_ECHO, reason="the header has no service calls (issue 12)")
def test_service_call_stat_ls_top(cli):
    server = subprocess.Popen([SVC_ECHO, "svc1"], stdout=subprocess.PIPE, env=cli.env)
    cli.procs.append(server)
    assert server.stdout.readline() == b"ready\n"
    r = cli.run("call", "svc1", input=b"ping")
    assert r.returncode == 0 and r.stdout == b"echo:ping", r.stderr
    assert cli.run("call", "svc1", input=b"x" * 100).stdout == b"echo:" + b"x" * 100
    s = cli.stat("svc1")
    assert s["kind"] == "service" and s["kind_id"] == 4
    assert s["server"]["state"] == "alive" and s["server"]["alive"] is True
    assert s["requests"] == 2 and s["responses"] == 2 and s["joins"] == 2
    assert s["max_request"] > 0 and s["max_clients"] > 0 and s["clients_live"] == 0
    assert "requests        2" in cli.ok("stat", "svc1")
    assert [c["name"] for c in cli.json("ls", "--json")["channels"]] == ["svc1"]
    top = cli.json("top", "--once", "--json", "--interval", "0.05")["channels"][0]
    assert top["kind"] == "service" and top["server"] == "alive" and top["requests"] == 2
    assert re.search(r"^svc1 +service .*server alive, clients 0/", cli.ok("top", "--once",
                     "--interval", "0.05"), re.M)
    r = cli.run("call", "--timeout", "0.2", "nosvc")
    assert r.returncode == 1 and b"nosvc" in r.stderr
    r = cli.run("recv", "svc1")
    assert r.returncode == 1 and b"svc1" in r.stderr and b"shm_channel call" in r.stderr
    server.kill()
    server.wait()
    r = cli.run("call", "--timeout", "0.5", "svc1", input=b"late")
    assert r.returncode in (1, 4) and b"svc1" in r.stderr
    d = json.loads(cli.run("doctor", "--min-size", "1M", "--json").stdout)
    assert [(f["name"], f["level"]) for f in d["findings"]] == [("svc1", "problem")]
    assert "server died" in d["findings"][0]["what"]


def test_compat_segment_named_explicitly(cli):
    if not _has_compat(cli):
        pytest.skip("the header has no compat calls (issue 13)")
    # Seed 002's layout, as its producer writes it: head, tail, capacity, reserved (u32 LE),
    # then the ring: one record [u32 length]["hi!"] written, none read.
    cap = 64
    ring = bytearray(cap)
    ring[0:7] = struct.pack("<I", 3) + b"hi!"
    (cli.dir / "peer002").write_bytes(struct.pack("<IIII", 7, 0, cap, 0) + ring)
    os.chmod(cli.dir / "peer002", 0o600)
    s = cli.json("stat", "--kind", "compat", "--json", "peer002")
    assert s["name"] == "peer002" and s["kind"] == "compat"
    assert s["capacity"] == cap and s["head"] == 7 and s["tail"] == 0 and s["used"] == 7
    assert "head            7" in cli.ok("stat", "--kind", "compat", "peer002")
    assert cli.json("ls", "--json")["channels"] == [], "no header: ls cannot recognise it"


# --- send | recv ------------------------------------------------------------------------------
def test_send_recv_formats_and_counts(cli):
    frames = [b"", b"\x00\x01\x02", b"a\nb", bytes(range(256)) * 4]
    data = b"".join(struct.pack("<I", len(f)) + f for f in frames)
    cli.ok("send", "--create", "--frames", "f1", input=data)
    r = cli.run("recv", "f1", "--format", "frames")
    assert r.returncode == 0 and r.stdout == data, "frames round trip byte for byte"

    cli.ok("send", "--create", "--count", "2", "c1", input=b"a\nb\nc\n")
    assert cli.ok("recv", "c1", "--format", "hex") == "61\n62\n", "--count 2 sent two"

    cli.ok("send", "--create", "c2", input=b"x\ny\nz\n")
    assert cli.ok("recv", "c2", "--count", "2") == "x\ny\n"
    assert cli.stat("c2")["msgs_read"] == 2, "recv --count 2 read exactly two"
    assert cli.ok("recv", "c2", "--format", "raw") == "z"

    f1, f2 = cli.dir.parent / f"{cli.dir.name}-a", cli.dir.parent / f"{cli.dir.name}-b"
    try:
        f1.write_bytes(b"whole\nfile\n")
        f2.write_bytes(b"\xff" * 3000)
        cli.ok("send", "--create", "--file", "w1", str(f1), str(f2))
        out = [json.loads(x) for x in cli.ok("recv", "w1", "--format", "json").splitlines()]
        assert [o["len"] for o in out] == [11, 3000]
        assert out[0]["text"] == "whole\nfile\n" and "text" not in out[1]
        assert bytes.fromhex(out[1]["hex"]) == b"\xff" * 3000
    finally:
        f1.unlink()
        f2.unlink()


def test_send_rate_paces_messages(cli):
    t0 = time.monotonic()
    cli.ok("send", "--create", "--rate", "20", "r1", input=b"1\n2\n3\n4\n5\n6\n")
    assert time.monotonic() - t0 >= 0.2, "6 messages at 20/s take at least 5/20 s"
    assert cli.ok("recv", "r1").split() == ["1", "2", "3", "4", "5", "6"]


def test_bad_input_to_send(cli):
    r = cli.run("send", "--create", "--frames", "bf", input=struct.pack("<I", 10) + b"short")
    assert r.returncode == 1 and b"inside frame 1" in r.stderr
    r = cli.run("send", "--create", "--capacity", "1024", "big", input=b"y" * 5000 + b"\n")
    assert r.returncode == 1 and b"max_payload" in r.stderr and b"big" in r.stderr
    r = cli.run("send", "--create", "--capacity", "1000", "cap")
    assert r.returncode == 1 and b"cap" in r.stderr


def test_recv_timeout_exits_4_and_peer_death_exits_1(cli):
    cons_side = cli.spawn("send", "--create", "t1")  # a producer that sends nothing
    cli.wait_for("producer", lambda: cli.stat("t1"))
    r = cli.run("recv", "t1", "--timeout", "0.2")
    assert r.returncode == 4 and b"timeout" in r.stderr
    cons_side.kill()
    cons_side.wait()
    r = cli.run("recv", "t1")
    assert r.returncode == 1 and b"producer died" in r.stderr


# --- record / replay --------------------------------------------------------------------------
def _read_recording(path):
    data = path.read_bytes()
    magic, version, kind, start_ns, max_payload = struct.unpack_from("<8sIIQQ", data)
    assert magic == b"SHMCREC\0" and version == 1
    recs, off = [], 32
    while off < len(data):
        t, n, missed = struct.unpack_from("<QII", data, off)
        recs.append((t, data[off + 16:off + 16 + n], missed))
        off += 16 + n
    assert off == len(data)
    return kind, start_ns, max_payload, recs


def test_record_and_replay_keep_timestamps(cli, tmp_path):
    rec = tmp_path / "rec.shmrec"
    recorder = cli.spawn("record", "--create", "src", str(rec), stdin=subprocess.DEVNULL)
    cli.wait_for("recorder attached", lambda: (s := cli.stat("src")) and s["consumer"]["alive"])
    msgs = [b"m%d" % i for i in range(8)]
    t0 = time.monotonic()
    cli.ok("send", "--rate", "20", "src", input=b"".join(m + b"\n" for m in msgs))
    assert recorder.wait(30) == 0, recorder.stderr.read()
    kind, start_ns, max_payload, recs = _read_recording(rec)
    assert kind == 1 and max_payload > 0 and abs(start_ns / 1e9 - time.time()) < 3600
    assert [r[1] for r in recs] == msgs
    ts = [r[0] for r in recs]
    assert ts == sorted(ts) and ts[-1] - ts[0] >= 0.3e9, "7 gaps of 1/20 s"

    # Replay at the recorded pace, into a consumer that tells when each message came.
    t0 = time.monotonic()
    cli.ok("replay", "--create", str(rec), "dst")
    took = time.monotonic() - t0
    assert took >= (ts[-1] - ts[0]) / 1e9 * 0.9, f"replay kept the pace: {took:.3f} s"
    assert cli.ok("recv", "dst").encode().split() == msgs

    # --fast: the same messages.
    cli.ok("replay", "--fast", "--create", str(rec), "dst2")
    assert cli.ok("recv", "dst2").encode().split() == msgs
    # --count on replay
    cli.ok("replay", "--fast", "--count", "3", "--create", str(rec), "dst3")
    assert cli.ok("recv", "dst3").encode().split() == msgs[:3]


def test_replay_rejects_bad_recordings(cli, tmp_path):
    bad = tmp_path / "bad"
    bad.write_bytes(b"hello world, not a recording at all")
    r = cli.run("replay", str(bad), "x")
    assert r.returncode == 1 and b"not a shm_channel recording" in r.stderr
    trunc = tmp_path / "trunc"
    hdr = struct.pack("<8sIIQQ", b"SHMCREC\0", 1, 1, 0, 64)
    trunc.write_bytes(hdr + struct.pack("<QII", 0, 2, 0) + b"ok" + struct.pack("<QII", 0, 50, 0)
                      + b"short")
    r = cli.run("replay", "--create", str(trunc), "tr")
    assert r.returncode == 1 and b"truncated record 2" in r.stderr
    assert cli.ok("recv", "tr") == "ok\n", "the complete record before it was replayed"
    newer = tmp_path / "newer"
    newer.write_bytes(struct.pack("<8sIIQQ", b"SHMCREC\0", 2, 1, 0, 64))
    r = cli.run("replay", str(newer), "x")
    assert r.returncode == 1 and b"version 2" in r.stderr


def test_record_of_a_broadcast_channel(cli, tmp_path):
    rec = tmp_path / "b.rec"
    pub = cli.spawn("send", "--create", "--broadcast", "--depth", "16", "br")
    cli.wait_for("publisher", lambda: cli.stat("br"))
    recorder = cli.spawn("record", "--count", "3", "br", str(rec), stdin=subprocess.DEVNULL)
    cli.wait_for("subscriber", lambda: cli.stat("br")["subscribers_live"] == 1)
    pub.stdin.write(b"a\nb\nc\n")
    pub.stdin.flush()
    assert recorder.wait(30) == 0
    kind, _, _, recs = _read_recording(rec)
    assert kind == 2 and [r[1] for r in recs] == [b"a", b"b", b"c"]
    pub.stdin.close()
    pub.wait(30)


# --- hz, top ----------------------------------------------------------------------------------
def _busy_stream(cli, name, rate="400"):
    """A consumer and a producer sending `payload` lines (an endless input) at `rate`/s."""
    cons = cli.spawn("recv", name, "--create", stdout=subprocess.DEVNULL,
                     stdin=subprocess.DEVNULL)
    cli.wait_for("created", lambda: cli.stat(name))
    yes = subprocess.Popen(["yes", "payload"], stdout=subprocess.PIPE)
    cli.procs.append(yes)
    prod = cli.spawn("send", name, "--rate", rate, stdin=yes.stdout)
    cli.wait_for("peers", lambda: (s := cli.stat(name)) and s["producer"]["alive"])
    return prod, cons


def test_hz_measures_a_live_rate(cli):
    _busy_stream(cli, "h1", rate="200")
    out = cli.ok("hz", "h1", "--interval", "0.3", "--count", "4", "--json").splitlines()
    assert len(out) == 4
    hz = [json.loads(line) for line in out]
    for h in hz:
        assert h["name"] == "h1" and h["kind"] == "stream" and h["interval_s"] > 0
        # every message is "payload": 7 bytes
        assert h["bytes_per_s"] == pytest.approx(7 * h["msgs_per_s"], rel=1e-6)
    assert any(h["msgs_per_s"] > 0 for h in hz), "messages flow (a loaded machine may stall one)"
    written = [h["msgs_written"] for h in hz]
    assert written == sorted(written) and written[-1] > written[0]
    text = cli.ok("hz", "h1", "--interval", "0.2", "--count", "1")
    assert re.match(r"h1: [\d.]+k? msg/s, [\d.]+k?B/s, \d+%, \d+ messages\n", text), text


def test_top_once_json_and_text(cli):
    _busy_stream(cli, "t1", rate="300")
    cli.ok("send", "--create", "idle", input=b"a\n")
    for _ in range(20):  # until an interval saw messages flow (a loaded machine may stall one)
        top = cli.json("top", "--once", "--json", "--interval", "0.3")
        by = {c["name"]: c for c in top["channels"]}
        assert set(by) == {"t1", "idle"}
        if by["t1"]["msgs_per_s"] > 0:
            break
    assert by["t1"]["msgs_per_s"] > 0 and by["t1"]["producer"] == "alive"
    assert by["t1"]["bytes_per_s"] == pytest.approx(7 * by["t1"]["msgs_per_s"], rel=1e-6)
    assert by["t1"]["consumer"] == "alive" and 0 <= by["t1"]["fill"] <= 1
    assert by["idle"]["msgs_per_s"] == 0 and by["idle"]["used"] > 0
    assert by["idle"]["producer"] == "closed" and by["idle"]["consumer"] == "none"
    text = cli.ok("top", "--once", "--interval", "0.2")
    assert "\x1b[" not in text, "--once prints a plain table"
    assert re.search(r"^t1 +stream ", text, re.M) and "prod alive, cons alive" in text
    assert re.search(r"^idle +stream +1 +0 +0 ", text, re.M), text


def test_top_in_a_real_terminal_shows_live_figures(cli):
    _busy_stream(cli, "live", rate="500")
    pid, fd = pty.fork()
    if pid == 0:
        os.execve(CLI, [CLI, "top", "--interval", "0.25"], dict(cli.env, TERM="xterm"))
    out = b""

    def screens():
        return out.split(b"\x1b[H\x1b[2J")[1:]

    def figures():
        rows = [re.search(rb"^live +stream +(\d+) +(\S+) ", s, re.M) for s in screens()[:-1]]
        return [(int(m.group(1)), m.group(2)) for m in rows if m]

    try:
        end = time.monotonic() + 60
        while time.monotonic() < end:  # until the figures moved (a loaded machine is slow)
            f = figures()
            if len(f) >= 3 and f[-1][0] > f[0][0] and any(r not in (b"0", b"-") for _, r in f):
                break
            r, _, _ = select.select([fd], [], [], 1)
            if r:
                try:
                    out += os.read(fd, 65536)
                except OSError:
                    break
    finally:
        os.kill(pid, signal.SIGINT)
        while True:  # what it prints on its way out
            try:
                chunk = os.read(fd, 65536)
            except OSError:
                break
            if not chunk:
                break
            out += chunk
        _, st = os.waitpid(pid, 0)
        os.close(fd)
    assert os.WIFEXITED(st) and os.WEXITSTATUS(st) == 0, "Ctrl-C ends top cleanly"
    assert out.startswith(b"\x1b[?25l"), "the cursor is hidden while it redraws"
    f = figures()
    for s in screens()[:-1]:
        assert b"MSG/S" in s and b"PEERS" in s and b"prod alive, cons alive" in s, s
    totals = [t for t, _ in f]
    assert len(f) >= 3 and totals == sorted(totals) and totals[-1] > totals[0], f
    assert any(r not in (b"0", b"-") for _, r in f), f"a nonzero rate: {f}"
    assert out.endswith(b"\x1b[?25h"), "the cursor is shown again on exit"


# --- doctor, rm, gc ---------------------------------------------------------------------------
def test_doctor_finds_a_dead_owner_and_gc_fixes_it(cli):
    r = cli.run("doctor", "--min-size", "1M")
    assert r.returncode == 0, r.stdout
    assert b"0 problems found" in r.stdout
    dying = cli.spawn("send", "--create", "dead1")
    dying.stdin.write(b"unread\n")
    dying.stdin.flush()
    cli.wait_for("written", lambda: (s := cli.stat("dead1")) and s["msgs_written"] == 1)
    dying.kill()
    dying.wait()
    alive = cli.spawn("send", "--create", "alive1")
    cli.wait_for("alive", lambda: cli.stat("alive1"))
    r = cli.run("doctor", "--min-size", "1M", "--json")
    assert r.returncode == 3
    d = json.loads(r.stdout)
    assert d["channels"] == 2 and d["problems"] == 1 and d["dir"] == str(cli.dir)
    (f,) = d["findings"]
    assert f["level"] == "problem" and f["name"] == "dead1"
    assert "dead" in f["what"] and "shm_channel rm dead1" in f["advice"]
    text = cli.run("doctor", "--min-size", "1M").stdout.decode()
    assert "problem: dead1: owners all dead" in text and "advice:" in text
    # A small directory is a limit that will bite.
    r = cli.run("doctor", "--min-size", "1024G", "--json")
    assert any("holds only" in f["what"] and "--shm-size" in f["advice"]
               for f in json.loads(r.stdout)["findings"])
    # gc removes the dead channel, not the live one.
    assert cli.ok("gc") == "removed dead1\n"
    assert cli.run("doctor", "--min-size", "1M").returncode == 0
    assert cli.stat("alive1")


def test_doctor_flags_other_writable_segments(cli):
    cli.ok("send", "--create", "open1", input=b"x\n")
    os.chmod(cli.dir / "open1", 0o666)
    d = json.loads(cli.run("doctor", "--min-size", "1M", "--json").stdout)
    assert any(f["name"] == "open1" and "writable by others" in f["what"]
               for f in d["findings"])


def test_doctor_without_a_directory(cli, env):
    r = subprocess.run([CLI, "doctor"], capture_output=True,
                       env=dict(env, SHM_CHANNEL_DIR="/nonexistent/shm"))
    assert r.returncode == 3 and b"/nonexistent/shm" in r.stdout


def test_rm(cli):
    cli.ok("send", "--create", "gone", input=b"x\n")
    busy = cli.spawn("send", "--create", "busy")
    cli.wait_for("busy", lambda: cli.stat("busy"))
    r = cli.run("rm", "busy")
    assert r.returncode == 1 and b"in use" in r.stderr
    cli.ok("rm", "gone")
    assert cli.run("stat", "gone").returncode == 1


def test_gc_reclaims_dead_subscriber_entries_of_a_live_broadcast_channel(cli):
    pub = cli.spawn("send", "--create", "--broadcast", "--max-subscribers", "8", "bgc")
    cli.wait_for("publisher", lambda: (s := cli.stat("bgc")) and s["publisher"]["alive"])
    subs = [cli.spawn("recv", "--follow", "bgc", stdin=subprocess.DEVNULL) for _ in range(2)]
    cli.wait_for("2 subscribers", lambda: cli.stat("bgc")["subscribers_live"] == 2)
    subs[0].kill()
    subs[0].wait()
    cli.wait_for("1 live", lambda: cli.stat("bgc")["subscribers_live"] == 1)
    assert cli.stat("bgc")["reclaims"] == 0, "nobody has taken the dead entry back yet"
    out = cli.ok("gc")
    assert out == "reclaimed 1 dead subscriber entry of bgc\n", out
    s = cli.stat("bgc")
    assert s["reclaims"] == 1 and s["subscribers_live"] == 1, "the live one keeps its entry"
    assert cli.ok("gc") == "", "nothing left to reclaim, and a live channel stays"
    pub.stdin.close()
    assert pub.wait(30) == 0
    assert subs[1].wait(30) == 0
