"""Cross-language services (kind 4): a server and several clients in C, Python and Rust, as
separate processes over one libshm_channel. The contract is in README.md, "Services"."""

from __future__ import annotations

import random

import pytest

import harness
from harness import LANGS, InteropError, SvcProc, run_checked

PAIRS = [(s, c) for s in LANGS for c in LANGS]
CROSS = [(a, b) for a in LANGS for b in LANGS if a != b]
CLIENTS = 4
REQUESTS = 1000
DEADLINE = 60


@pytest.fixture(scope="module")
def svc_built(built):
    harness.build_svc_peer()
    if not harness.SVC_PEER_RUST.exists():
        raise InteropError("the Rust svc_peer was not built (%s)" % harness.SVC_PEER_RUST)
    return True


def spawn(session, lang, *args, label=""):
    p = SvcProc(lang, [str(a) for a in args], session.workdir, session.env, label).start()
    session.procs.append(p)
    return p


def third(a, b):
    return next(x for x in LANGS if x not in (a, b))


def check_client(res, count):
    problems = []
    if res.get("exit") != 0 or not res.get("ok"):
        problems.append("client %s (%s) failed (exit %s): %s" % (
            res.get("id"), res.get("lang"), res.get("exit"), res.get("errors")))
    elif res.get("next") != count:
        problems.append("client %s completed %s requests, expected %d" % (
            res.get("id"), res.get("next"), count))
    return problems


def check_server(res, expect_byes):
    problems = []
    if res.get("exit") != 0 or not res.get("ok"):
        problems.append("server (%s) failed (exit %s): %s" % (
            res.get("lang"), res.get("exit"), res.get("errors")))
    elif res.get("byes") != expect_byes:
        problems.append("server saw %s byes, expected %d" % (res.get("byes"), expect_byes))
    return problems


@pytest.mark.parametrize("srv,cli", PAIRS, ids=["%s-serves-%s" % sc for sc in PAIRS])
def test_svc_matrix(session, svc_built, srv, cli):
    """4 clients of one language against a server of another, 1,500 checksummed requests
    each: every answer is the one to that client's own request; either side first."""
    name = harness.unique_name("svc")
    seed = random.Random(name).getrandbits(63)
    k = LANGS.index(srv) * 3 + LANGS.index(cli)
    common = ["--name", name, "--seed", seed, "--max-size", 2048, "--deadline", DEADLINE]
    server_zc = ["--zero-copy"] if k % 2 else []

    def body():
        def start_server():
            return spawn(session, srv, "serve", *common, "--expect", CLIENTS, *server_zc)

        server = start_server() if k % 2 == 0 else None
        clients = [spawn(session, cli, "request", *common, "--id", c, "--count", REQUESTS,
                         *(["--zero-copy"] if c % 2 else []), label="c%d" % c)
                   for c in range(CLIENTS)]
        if server is None:  # the clients first: they wait for a server
            server = start_server()
        results = [p.finish(DEADLINE + 30) for p in clients]
        sres = server.finish(DEADLINE + 30)
        problems = [x for r in results for x in check_client(r, REQUESTS)]
        problems += check_server(sres, CLIENTS)
        if not problems and sres.get("served") != CLIENTS * REQUESTS:
            problems.append("server answered %s requests, expected %d" % (
                sres.get("served"), CLIENTS * REQUESTS))
        if problems:
            raise InteropError("; ".join(problems))
        total = {"count": CLIENTS * REQUESTS, "msgs_per_s": sres.get("rps", 0.0)}
        return total, ("srv-zc" if server_zc else "") + (" cli-first" if k % 2 else "")

    run_checked("svc-matrix", "%s<%s" % (srv, cli), body)


@pytest.mark.parametrize("srv", LANGS)
def test_svc_client_killed(session, svc_built, srv):
    """A client SIGKILLed while the server holds its request: the server reaps it, refuses
    the late answer, and a new client gets the freed slot (max_clients 2) and completes."""
    victim, succ = [x for x in LANGS if x != srv][:2]
    other = srv
    name = harness.unique_name("svc-ck")
    seed = random.Random(name).getrandbits(63)
    common = ["--name", name, "--seed", seed, "--max-size", 512, "--clients", 2,
              "--deadline", DEADLINE]

    def body():
        sprog = session.progress_path("server")
        vprog = session.progress_path("victim")
        server = spawn(session, srv, "serve", *common, "--expect", 2, "--progress", sprog)
        steady = spawn(session, other, "request", *common, "--id", 0, "--count", 400,
                       label="steady")
        v = spawn(session, victim, "request", *common, "--id", 1, "--count", 100,
                  "--hold-at", 50, "--progress", vprog, label="victim")
        session.wait_for("the victim's hold request to be held by the server",
                         lambda: session.progress(vprog)["hang"]
                         and session.progress(sprog)["hang"], 60, watch=[server, v])
        v.sigkill()
        session.wait_for("the server to reap the dead client",
                         lambda: session.progress(sprog)["owner_dead"] >= 1, 60, watch=[server])
        new = spawn(session, succ, "request", *common, "--id", 2, "--count", 300, label="new")
        problems = check_client(new.finish(DEADLINE + 30), 300)
        problems += check_client(steady.finish(DEADLINE + 30), 400)
        sres = server.finish(DEADLINE + 30)
        problems += check_server(sres, 2)
        if sres.get("held_reclaimed") != 1:
            problems.append("server: held_reclaimed %s, expected 1" % sres.get("held_reclaimed"))
        if problems:
            raise InteropError("; ".join(problems))
        return {"count": sres.get("served", 0)}, "%s killed, %s took its slot" % (victim, succ)

    run_checked("svc-client-killed", "%s-serves" % srv, body)


@pytest.mark.parametrize("dead,succ", CROSS, ids=["%s-to-%s" % ab for ab in CROSS])
def test_svc_server_killed(session, svc_built, dead, succ):
    """Server A SIGKILLed while it holds a request: every client (one per language) reports
    the death before server B (another language) takes over; then every client completes
    every request, each answer the one to its own request."""
    name = harness.unique_name("svc-sk")
    seed = random.Random(name).getrandbits(63)
    common = ["--name", name, "--seed", seed, "--max-size", 1024, "--deadline", DEADLINE]
    count = 400

    def body():
        aprog = session.progress_path("server-a")
        progs = [session.progress_path("client%d" % c) for c in range(3)]
        clients = [spawn(session, lang, "request", *common, "--id", c, "--count", count,
                         "--progress", progs[c], label="c%d" % c)
                   for c, lang in enumerate(LANGS)]
        # Every client has joined before A serves, so none is still starting (and waiting
        # for a server, with no request to fail) when A dies.
        session.wait_for("every client to join", lambda: all(
            p.exists() and p.stat().st_size >= 24 for p in progs), 60, watch=clients)
        a = spawn(session, dead, "serve", *common, "--expect", 3, "--hang-after", 300,
                  "--progress", aprog, label="server-a")
        session.wait_for("server A to hang holding a request",
                         lambda: session.progress(aprog)["hang"], 60, watch=[a, *clients])
        a.sigkill()
        session.wait_for("every client to report the dead server",
                         lambda: all(session.progress(p)["owner_dead"] for p in progs), 60,
                         watch=clients)
        b = spawn(session, succ, "serve", *common, "--expect", 3, label="server-b")
        results = [p.finish(DEADLINE + 30) for p in clients]
        problems = [x for r in results for x in check_client(r, count)]
        problems += check_server(b.finish(DEADLINE + 30), 3)
        for r in results:
            if not (r.get("owner_dead") or r.get("resets")):
                problems.append("client %s never saw the death" % r.get("id"))
        if problems:
            raise InteropError("; ".join(problems))
        return {"count": 3 * count}, "A answered 300"

    run_checked("svc-server-killed", "%s>%s" % (dead, succ), body)
