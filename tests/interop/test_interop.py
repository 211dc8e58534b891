"""Cross-language interop: producer and consumer in C, Python and Rust, as separate processes
over one libshm_channel. The participant contract is in README.md."""

from __future__ import annotations

import os
import random
import shutil
from pathlib import Path

import pytest

import harness
from harness import LANGS, InteropError, check_consumer, check_producer, record, run_checked

PAIRS = [(p, c) for p in LANGS for c in LANGS]
CROSS = [(a, b) for a in LANGS for b in LANGS if a != b]
VECTORS = sorted((harness.ROOT / "spec" / "vectors").glob("*.bin"))


def third(a, b):
    return next(x for x in LANGS if x not in (a, b))


def row(a, b):
    return "%s>%s" % (a, b)


def bound(count: int, per_s: float = 10_000) -> float:
    """A generous upper bound in seconds for moving `count` messages (slow Python, busy CPU)."""
    return 120 + count / per_s


# ---- the 3x3 matrix ------------------------------------------------------------------------

def stream_params(scenario):
    """(count, generator options) for a plain stream scenario."""
    if scenario == "block":
        if harness.SOAK:
            count = int(os.environ.get("SHM_INTEROP_COUNT", 100_000_000))
            # Small messages, so that 100 M of them cross 2^32 bytes of ring positions.
            return count, ["--capacity", 1 << 20, "--max-size", 256]
        count = int(os.environ.get("SHM_INTEROP_COUNT", 1_000_000))
        return count, ["--capacity", 65536]
    if scenario in ("poll", "zero-copy"):
        return 100_000, ["--capacity", 65536]
    if scenario == "consumer-first":
        return 20_000, ["--capacity", 65536]
    raise ValueError(scenario)


@pytest.mark.parametrize("scenario", ["block", "poll", "consumer-first", "zero-copy"])
@pytest.mark.parametrize("prod,cons", PAIRS, ids=["%s-to-%s" % pc for pc in PAIRS])
def test_matrix(session, scenario, prod, cons):
    """A seeded stream of messages of random sizes (0 .. the maximum), each carrying its
    sequence number and a checksum; the consumer verifies order, content, count and
    end-of-stream."""
    count, gen = stream_params(scenario)
    name = harness.unique_name(scenario)
    seed = random.Random(name).getrandbits(63)
    common = ["--name", name, "--seed", seed, *gen, "--deadline", bound(count) - 10]
    extra = []
    if scenario == "poll":
        extra = ["--mode", "poll"]
    elif scenario == "zero-copy":
        extra = ["--zero-copy"]

    def body():
        c = session.spawn(cons, "consume", *common, *extra, "--count", count)
        if scenario == "consumer-first":
            # The consumer creates the channel and is asleep in a blocking read first.
            session.wait_for("the consumer to sleep on an empty ring",
                             lambda: _consumer_sleeping(session, name), 30, watch=[c])
        p = session.spawn(prod, "produce", *common, *extra, "--count", count)
        pres = p.finish(bound(count))
        cres = c.finish(bound(count))
        problems = check_producer(pres, count) + check_consumer(cres, count)
        if cres.get("owner_dead"):
            problems.append("consumer saw EOWNERDEAD %d times" % cres["owner_dead"])
        if harness.SOAK and scenario == "block" and cres.get("end_pos", 0) <= 1 << 32:
            problems.append("soak stayed below 2^32 bytes (end position %s)" % cres.get("end_pos"))
        if problems:
            raise InteropError("\n".join(problems) + "\n" + p.output() + "\n" + c.output())
        return cres, ""

    run_checked(scenario, row(prod, cons), body)


def _consumer_sleeping(session, name):
    st = session.stat(name)
    return st.get("consumer_alive") == 1 and st.get("producer_state") == 0 and \
        st.get("consumer_sleeps", 0) >= 1


# ---- crashes -------------------------------------------------------------------------------

CRASH_COUNT = 100_000
# Which killed processes hang at a fixed message (uncommitted reservation / unreleased peek)
# rather than dying at a random point: every language does each once.
HANG = {("c", "py"), ("py", "rust"), ("rust", "c")}


def crash_plan(tag: str, dead: str, succ: str):
    """What both crash tests share: a stream of CRASH_COUNT seeded messages named after `tag`,
    and where its victim dies: hung (the HANG pairings) or after passing message kill_at.
    Returns name, count, gen, common (arguments of every peer), hang, kill_at."""
    count = CRASH_COUNT
    name = harness.unique_name(tag)
    rnd = random.Random(name)
    seed = rnd.getrandbits(63)
    gen = ["--seed", seed, "--capacity", 65536]
    common = ["--name", name, *gen, "--deadline", bound(count) - 10]
    return name, count, gen, common, (dead, succ) in HANG, rnd.randrange(count // 10, count // 2)


def kill_victim(session, lang: str, verb: str, common: list, count: int, hang: bool, kill_at: int,
                progress, hung: str, watch: list):
    """Start the victim (`verb` is produce or consume) and SIGKILL it where crash_plan said:
    once it hangs (zero-copy: `hung` says where) or once it passed message kill_at."""
    a_args = [verb, *common, "--count", count, "--progress", progress]
    if hang:
        a_args += ["--zero-copy", "--hang-at", kill_at]
    else:
        # Killed as soon as the runner sees it pass kill_at; the pause only guarantees it
        # is still there to be killed when the runner is slow to look.
        a_args += ["--pause-at", count * 3 // 4]
    a = session.spawn(lang, *a_args, label="dead")
    who = "producer" if verb == "produce" else "consumer"
    if hang:
        session.wait_for("%s to hang %s" % (who, hung),
                         lambda: session.progress(progress)["hang"], 60, watch=[a, *watch])
    else:
        session.wait_for("%s to pass message %d" % (who, kill_at),
                         lambda: session.progress(progress)["done"] >= kill_at, 60, watch=[a, *watch])
    a.sigkill()


@pytest.mark.parametrize("dead,succ", CROSS, ids=["%s-to-%s" % ab for ab in CROSS])
def test_producer_crash(session, dead, succ):
    """Producer `dead` is SIGKILLed mid-stream; the consumer (the third language) drains every
    committed message and sees EOWNERDEAD; producer `succ` takes over at the next message; the
    consumer gets every message exactly once, then EPIPE."""
    cons = third(dead, succ)
    name, count, gen, common, hang, kill_at = crash_plan("pcrash", dead, succ)

    def body():
        pz = session.progress_path("consumer")
        pa = session.progress_path("dead")
        c = session.spawn(cons, "consume", *common, "--count", count, "--progress", pz)
        kill_victim(session, dead, "produce", common, count, hang, kill_at, pa, "in a reservation", [c])
        # Every committed message reaches the consumer, then it learns the producer died.
        session.wait_for("consumer to see EOWNERDEAD",
                         lambda: session.progress(pz)["owner_dead"] >= 1, 30, watch=[c])
        st = session.stat(name)
        if st["producer_alive"] != 0 or st["producer_state"] != 1:
            raise InteropError("after the kill: %s" % st)
        loc = session.locate(st["write_pos"], gen)
        nxt = loc["seq"]
        if loc["at"] != "end":
            raise InteropError("write_pos %d is not right after a message: %s" % (st["write_pos"], loc))
        prog_a, prog_c = session.progress(pa), session.progress(pz)
        if hang and not (nxt == kill_at == prog_a["done"]):
            raise InteropError("producer hung in message %d's reservation, but the ring holds "
                               "messages up to %d" % (kill_at, nxt - 1))
        if not hang and nxt not in (prog_a["done"], prog_a["done"] + 1):
            raise InteropError("dead producer had written %d messages, ring holds %d" % (
                prog_a["done"], nxt))
        if prog_c["done"] != nxt:
            raise InteropError("consumer reported the producer dead after %d messages, but %d "
                               "were committed" % (prog_c["done"], nxt))
        b = session.spawn(succ, "produce", *common, "--count", count, "--start", nxt, label="succ")
        bres = b.finish(bound(count))
        cres = c.finish(bound(count))
        problems = check_producer(bres, count, start=nxt) + check_consumer(cres, count)
        if cres.get("owner_dead", 0) < 1:
            problems.append("consumer never reported EOWNERDEAD")
        if problems:
            raise InteropError("\n".join(problems) + "\n" + b.output() + "\n" + c.output())
        return cres, "%s@%d" % ("hang" if hang else "kill", nxt)

    run_checked("producer-crash", row(dead, succ), body)


@pytest.mark.parametrize("dead,succ", CROSS, ids=["%s-to-%s" % ab for ab in CROSS])
def test_consumer_crash(session, dead, succ):
    """Consumer `dead` is SIGKILLed mid-stream; consumer `succ` resumes after the last message
    the dead one released. Nothing is skipped; the only message delivered twice is one the
    dead consumer had peeked and not released (spec 5.5)."""
    prod = third(dead, succ)
    name, count, gen, common, hang, kill_at = crash_plan("ccrash", dead, succ)

    def body():
        pa = session.progress_path("dead")
        p = session.spawn(prod, "produce", *common, "--count", count)
        kill_victim(session, dead, "consume", common, count, hang, kill_at, pa, "on a peeked message", [])
        st = session.stat(name)
        if st["consumer_alive"] != 0:
            raise InteropError("after the kill: %s" % st)
        loc = session.locate(st["read_pos"], gen)
        resume = loc["seq"]
        prog = session.progress(pa)
        if hang:
            if not (prog["hang"] == kill_at + 1 and resume == kill_at):
                raise InteropError("consumer hung holding message %d unreleased; the successor "
                                   "resumes at %d (must be %d)" % (kill_at, resume, kill_at))
        elif resume not in (prog["done"], prog["done"] + 1):
            raise InteropError("dead consumer had verified messages up to %d; the successor "
                               "resumes at %d" % (prog["done"] - 1, resume))
        b = session.spawn(succ, "consume", *common, "--count", count, "--start", resume,
                          label="succ")
        bres = b.finish(bound(count))
        pres = p.finish(bound(count))
        problems = check_producer(pres, count) + check_consumer(bres, count, start=resume)
        if problems:
            raise InteropError("\n".join(problems) + "\n" + b.output() + "\n" + p.output())
        return bres, "%s@%d" % ("hang" if hang else "kill", resume)

    run_checked("consumer-crash", row(dead, succ), body)


# ---- zero-copy frames ----------------------------------------------------------------------

FRAME = 1920 * 1080 * 3  # 6,220,800 bytes


def test_frames_c_to_numpy(session):
    """A C producer reserves and fills 1080p RGB frames in place; a Python consumer views each
    one as a numpy array in place (no copy) and verifies it."""
    pytest.importorskip("numpy")
    count = 1000 if harness.SOAK else 150
    name = harness.unique_name("frames")
    gen = ["--seed", 1080, "--capacity", 1 << 25, "--fixed-size", FRAME]
    common = ["--name", name, *gen, "--deadline", 170]

    def body():
        c = session.spawn("py", "consume", *common, "--numpy", "--count", count)
        p = session.spawn("c", "produce", *common, "--zero-copy", "--count", count)
        pres = p.finish(180)
        cres = c.finish(180)
        problems = check_producer(pres, count) + check_consumer(cres, count)
        if not cres.get("numpy_views"):
            problems.append("the consumer made no in-place numpy view: %s" % cres)
        if problems:
            raise InteropError("\n".join(problems) + "\n" + p.output() + "\n" + c.output())
        return cres, "%.1f GB/s" % (cres["mb_per_s"] / 1000)

    run_checked("frames", "c>py", body)


# ---- golden vectors ------------------------------------------------------------------------

def expected_verdict(path: Path) -> list[str]:
    return [ln.strip() for ln in path.read_text().splitlines()
            if ln.strip() and not ln.startswith("#")]


@pytest.mark.parametrize("vector", VECTORS, ids=[v.stem for v in VECTORS])
def test_vector(session, vector):
    """Each golden vector, opened by each language as spec/vectors/README.md says, reaches the
    verdict in its .expect file."""
    want = expected_verdict(vector.with_suffix(".expect"))
    got = {}
    for lang in LANGS:
        name = harness.unique_name("vec")
        dst = session.shm_dir / name
        shutil.copyfile(vector, dst)
        os.chmod(dst, 0o600)
        pr = session.spawn(lang, "vector", "--name", name)
        try:
            pr.popen.wait(timeout=60)
        except Exception:
            pr.kill()
            raise InteropError("%s hung on vector %s" % (harness.LANG_NAME[lang], vector.name))
        got[lang] = [ln.strip() for ln in pr.out_path.read_text().splitlines() if ln.strip()]
        if pr.popen.returncode != 0:
            got[lang].append("exit %d: %s" % (pr.popen.returncode, pr.err_path.read_text()[-500:]))
        dst.unlink(missing_ok=True)
    bad = {lang: g for lang, g in got.items() if g != want}
    for lang in LANGS:
        record("vectors", lang, lang not in bad)
    if bad:
        raise InteropError("vector %s: expected %s\n%s" % (
            vector.name, want, "\n".join("%s: %s" % (harness.LANG_NAME[k], v) for k, v in bad.items())))


def test_vectors_present():
    """The vectors test above would pass vacuously without vectors."""
    assert len(VECTORS) >= 10, "spec/vectors/ holds %d vectors" % len(VECTORS)


# ---- one library ---------------------------------------------------------------------------

def test_same_library(session):
    """The three languages' processes mapped the same libshm_channel file."""
    libs = {}
    for lang in LANGS:
        pr = session.spawn(lang, "info")
        res = pr.finish(60)
        libs[lang] = os.path.realpath(res.get("lib") or "?")
    want = os.path.realpath(harness.LIB_DIR / "libshm_channel.so.1")
    ok = all(v == want for v in libs.values())
    for lang in LANGS:
        record("same-library", lang, libs[lang] == want, note=os.path.basename(libs[lang]))
    assert ok, "mapped libraries differ: %s (want %s)" % (libs, want)


# ---- the checkers can fail -----------------------------------------------------------------

@pytest.mark.parametrize("fault", ["gap", "duplicate", "wrong-seed"])
@pytest.mark.parametrize("cons", LANGS)
def test_consumer_rejects_bad_stream(session, cons, fault):
    """Negative control: a stream with a missing message, a repeated message or foreign content
    makes every consumer fail (exit 1, with a reason), so a green matrix means something."""
    name = harness.unique_name("neg")
    gen = ["--seed", 42, "--capacity", 1 << 22, "--max-size", 4096]  # the ring holds it all
    common = ["--name", name, *gen, "--deadline", 50]

    def body():
        # Producers run to completion first; the stream waits in the ring for the consumer.
        if fault == "gap":
            writes = [["--start", 0, "--count", 100], ["--start", 101, "--count", 200]]
        elif fault == "duplicate":
            writes = [["--start", 0, "--count", 100], ["--start", 99, "--count", 200]]
        else:
            writes = [["--count", 200, "--seed", 43]]
        for w in writes:
            res = session.spawn("c", "produce", *common, *w).finish(60)
            if res["exit"] != 0:
                raise InteropError("producer failed: %s" % res)
        res = session.spawn(cons, "consume", *common, "--count", 200).finish(60)
        if res["exit"] != 1 or res["ok"] or not res["errors"]:
            raise InteropError("%s consumer accepted a stream with a %s: %s" % (
                harness.LANG_NAME[cons], fault, res))
        want = {"gap": "message 100", "duplicate": "duplicate of message 99",
                "wrong-seed": "message 0"}[fault]
        if want not in res["errors"][0]:
            raise InteropError("%s consumer's reason %r does not name %r" % (
                harness.LANG_NAME[cons], res["errors"][0], want))
        return None, fault

    run_checked("rejects-bad-stream", cons, body)


# ---- bad arguments -------------------------------------------------------------------------

# Each is refused with the usage and exit status 2, before anything is opened or created.
BAD_ARGS = [
    [],
    ["bogus", "--name", "{name}"],
    ["produce", "--name", "--count", "5"],  # the value is missing: no segment named "--count"
    ["produce", "--count", "5", "--name"],
    ["produce", "--name", "{name}"],  # produce needs --count
    ["produce", "--name", "{name}", "--count", "x"],
    ["produce", "--name", "{name}", "--count", "-5"],
    ["produce", "--name", "{name}", "--count", "0x10"],
    ["produce", "--name", "{name}", "--count", "5", "--capacity", "3000"],
    ["produce", "--name", "{name}", "--count", "5", "--capacity", "512"],
    ["produce", "--name", "{name}", "--count", "5", "--max-size", "40000"],
    ["produce", "--name", "{name}", "--count", "5", "--fixed-size", "32761"],
    ["produce", "--name", "{name}", "--count", "5", "--deadline", "-1"],
    ["produce", "--name", "{name}", "--count", "5", "--deadline", "nan"],
    ["produce", "--name", "{name}", "--count", "5", "--mode", "fast"],
    ["produce", "--name", "{name}", "--count", "5", "--bogus", "1"],
    ["consume", "--name", "{name}", "--end", "EOF"],
    ["consume", "--name", "{name}", "stray"],
    ["consume", "--count", "5"],  # no name
    ["vector"],
]


@pytest.mark.parametrize("lang", LANGS)
def test_peer_refuses_bad_arguments(session, lang):
    """Every peer checks all its arguments first: a bad one prints the usage and exits 2, and
    no segment is created (none named after the bad argument, none at all)."""
    def body():
        before = sorted(os.listdir(session.shm_dir))
        for args in BAD_ARGS:
            name = harness.unique_name("badarg")
            argv = [a.replace("{name}", name) for a in args]
            pr = session.spawn(lang, *argv, label="badarg")
            try:
                rc = pr.popen.wait(timeout=60)
            except Exception:
                pr.kill()
                raise InteropError("%s hung on arguments %s" % (pr.describe(), argv))
            err = pr.err_path.read_text(errors="replace")
            if rc != 2 or "usage:" not in err:
                raise InteropError("%s %s: exit %s, expected 2 with the usage\n%s" % (
                    harness.LANG_NAME[lang], argv, rc, pr.output()))
            after = sorted(os.listdir(session.shm_dir))
            if after != before:
                raise InteropError("%s %s created %s" % (
                    harness.LANG_NAME[lang], argv, sorted(set(after) - set(before))))
        return None, "%d refused" % len(BAD_ARGS)

    run_checked("bad-arguments", lang, body)
