"""Cross-language interop of broadcast channels (kind 2): a publisher in each of C, Python and
Rust with subscribers in all three at once; typed values read identically in every language;
lapping and missed counts identical across languages; a publisher killed mid-stream seen dead
(EOWNERDEAD) by every subscriber, and a publisher in another language taking over. The peer
contract is in README.md ("Broadcast channels"). A missing Rust peer is skipped loudly."""

from __future__ import annotations

import os
import random
import sys
import warnings
from pathlib import Path

import pytest

import harness
from harness import LANGS, InteropError, record

SOAK = harness.SOAK
# Default sizes are small but real; SHM_INTEROP_SOAK=1 makes them large.
LAPPED_COUNT = 200_000 if SOAK else 500
LIVE_COUNT = 1_000_000 if SOAK else 2_000
TYPED_COUNT = 10_000 if SOAK else 50
DEPTH = 16
TYPES = ["f64", "i64", "bool", "struct:<3d", "ndarray:|u1:4x8x3"]
MISSING: list[str] = []


def _rust_missing() -> bool:
    return not Path(harness.BCAST_PEER["rust"][0]).exists()


def langs_here(built) -> tuple[str, ...]:
    """The languages whose broadcast peer exists; says so loudly when Rust's does not."""
    if _rust_missing():
        msg = ("RUST BROADCAST PEER MISSING (%s): the Rust bin bcast_peer of tests/interop/peers/"
               "rust is not built; its rows and columns are SKIPPED" % harness.BCAST_PEER["rust"][0])
        if msg not in MISSING:
            MISSING.append(msg)
            sys.stderr.write("\n*** %s ***\n" % msg)
            warnings.warn(msg, stacklevel=2)  # in pytest's warnings summary, even with -q
        return ("c", "py")
    return LANGS


def need(langs, *wanted):
    for lang in wanted:
        if lang not in langs:
            pytest.skip("the %s broadcast peer is missing (see the warning above): SKIPPED" % lang)


def spawn(session, lang, *args, label=""):
    return session.spawn("bcast-" + lang, *args, label=label)


def check_sub(res, lang, want, what):
    problems = []
    if res.get("exit") != 0 or not res.get("ok"):
        problems.append("%s subscriber (%s) failed (exit %s): %s" % (
            lang, what, res.get("exit"), res.get("error")))
    for k, v in want.items():
        if res.get(k) != v:
            problems.append("%s subscriber (%s): %s = %r, expected %r" % (
                lang, what, k, res.get(k), v))
    return problems


def check_pub(res, lang, count):
    if res.get("exit") != 0 or not res.get("ok") or res.get("published") != count:
        return ["%s publisher: published %s of %d, exit %s: %s" % (
            lang, res.get("published"), count, res.get("exit"), res.get("error"))]
    return []


def cell_note(res):
    """delivered / missed (the handle's own total) of one subscriber, for the matrix."""
    return "d%s m%s" % (res.get("delivered"), res.get("missed_total"))


# ---- a publisher in each language, subscribers in all three at once -----------------------

@pytest.mark.parametrize("pub", LANGS)
def test_fanout(session, built, pub):
    """Publisher `pub`; in every language, one subscriber held by --start-after until the
    publisher finished (lapped: deterministic counts, identical in all languages) and one
    reading live in order (block; Python's zero-copy), both to end-of-stream."""
    langs = langs_here(built)
    need(langs, pub)
    name = harness.unique_name("bcast-" + pub)
    seed = random.Random(name).getrandbits(63)
    go = session.workdir / ("go-" + name)
    common = ["--name", name, "--seed", seed, "--depth", DEPTH]
    count = LAPPED_COUNT
    lapped = {c: spawn(session, c, "subscribe", *common, "--start-after", go,
                       "--expect-end", "EPIPE", label="lapped") for c in langs}
    live = {c: spawn(session, c, "subscribe", *common, "--expect-end", "EPIPE",
                     *(["--zero-copy"] if c == "py" else []), label="live") for c in langs}
    p = spawn(session, pub, "publish", *common, "--count", count,
              "--wait-subs", 2 * len(langs), "--rate", 20_000 if not SOAK else 0)
    problems = []
    pres = p.finish(120 + count / 1000)
    problems += check_pub(pres, pub, count)
    go.touch()
    # Every lapped subscriber: the newest DEPTH messages, the rest counted missed, exactly.
    want = {"delivered": DEPTH, "missed": count - DEPTH, "first": count - DEPTH,
            "last": count - 1, "end": "EPIPE", "missed_total": count - DEPTH}
    results = {}
    for c in langs:
        r = lapped[c].finish(120)
        results[c] = r
        bad = check_sub(r, c, want, "lapped")
        record("bcast-lapped", "%s>%s" % (pub, c), not bad, note=cell_note(r))
        problems += bad
    for c in langs:
        r = live[c].finish(120 + count / 1000)
        bad = check_sub(r, c, {"last": count - 1, "end": "EPIPE"}, "live")
        if not bad and r["delivered"] + r["missed"] != count:  # it joined before message 0
            bad = ["%s live subscriber: %d delivered + %d missed != %d published"
                   % (c, r["delivered"], r["missed"], count)]
        record("bcast-live", "%s>%s" % (pub, c), not bad, note=cell_note(r))
        problems += bad
    if problems:
        raise InteropError("\n".join(problems) + "".join(
            "\n" + x.output() for x in [p, *lapped.values(), *live.values()]))


# ---- typed values, read identically in every language --------------------------------------

@pytest.mark.parametrize("type_tag", TYPES)
def test_typed_values(session, built, type_tag):
    """Typed topic `type_tag` (spec/topics.md); its publisher's language rotates with the type.
    Every language's subscriber checks every value's wire bytes (via its typed API), in order,
    and one reads latest values only (is_new)."""
    langs = langs_here(built)
    pub = LANGS[TYPES.index(type_tag) % 3]
    if pub not in langs:
        pub = "c"
    name = harness.unique_name("typed")
    go = session.workdir / ("go-" + name)
    count = TYPED_COUNT
    common = ["--name", name, "--type", type_tag, "--depth", max(64, count)]
    subs = {c: spawn(session, c, "subscribe", *common, "--start-after", go,
                     "--expect-end", "EPIPE") for c in langs}
    latest = spawn(session, langs[(TYPES.index(type_tag) + 1) % len(langs)], "subscribe",
                   *common, "--mode", "latest", "--expect-end", "EPIPE", label="latest")
    p = spawn(session, pub, "publish", *common, "--count", count,
              "--wait-subs", len(langs) + 1, "--rate", 5_000)
    problems = check_pub(p.finish(120), pub, count)
    go.touch()
    want = {"delivered": count, "missed": 0, "first": 0, "last": count - 1, "end": "EPIPE"}
    for c in langs:
        r = subs[c].finish(120)
        bad = check_sub(r, c, want, type_tag)
        record("bcast-" + type_tag, "%s>%s" % (pub, c), not bad, note=cell_note(r))
        problems += bad
    r = latest.finish(120)
    bad = check_sub(r, latest.lang[6:], {"last": count - 1, "end": "EPIPE"}, "latest")
    if not bad and r["delivered"] + r["missed"] != count:  # it joined before message 0
        bad = ["latest subscriber: delivered + missed != %d published" % count]
    problems += bad
    if problems:
        raise InteropError("\n".join(problems) + "".join(
            "\n" + x.output() for x in [p, latest, *subs.values()]))


# ---- a publisher killed mid-stream; another language takes over ----------------------------

@pytest.mark.parametrize("dead", LANGS)
def test_publisher_killed_and_taken_over(session, built, dead):
    """Publisher `dead` hangs after message K-1 (--hang-at K) and is SIGKILLed: every
    subscriber (all three languages) reads messages 0..K-1, then EOWNERDEAD. A publisher in
    the next language takes over (--start K): new subscribers in every language get message
    K-1 at once (the newest, as late joiners), then K.. to end-of-stream."""
    langs = langs_here(built)
    need(langs, dead)
    succ = langs[(langs.index(dead) + 1) % len(langs)]
    name = harness.unique_name("bkill-" + dead)
    seed = random.Random(name).getrandbits(63)
    hang = random.Random(name).randrange(20, 60)
    total = hang + 30
    common = ["--name", name, "--seed", seed, "--depth", 128]
    prog = {c: session.progress_path("bsub-" + c) for c in langs}
    subs = {c: spawn(session, c, "subscribe", *common, "--progress", prog[c],
                     "--expect-end", "EOWNERDEAD") for c in langs}
    a = spawn(session, dead, "publish", *common, "--count", total, "--hang-at", hang,
              "--wait-subs", len(langs), label="dead")
    problems = []
    for c in langs:
        session.wait_for("%s subscriber to read %d messages" % (c, hang),
                         lambda c=c: session.progress(prog[c])["done"] >= hang, 120,
                         watch=[a, subs[c]])
    a.sigkill()
    for c in langs:
        r = subs[c].finish(120)
        bad = check_sub(r, c, {"delivered": hang, "missed": 0, "first": 0, "last": hang - 1,
                               "end": "EOWNERDEAD"}, "publisher killed")
        record("bcast-killed", "%s>%s" % (dead, c), not bad,
               note="%s %s@%d" % (cell_note(r), r.get("end"), hang))
        problems += bad
    # The successor, in another language, continues the numbering; new subscribers join once
    # it is attached (before, they would find the dead one and end with EOWNERDEAD).
    b = spawn(session, succ, "publish", *common, "--count", total - hang, "--start", hang,
              "--wait-subs", len(langs), label="successor")
    session.wait_for("the successor to attach", lambda: (
        lambda st: st.get("producer_alive") == 1 and st.get("producer_epoch", 0) >= 2)(
            session.stat(name)), 60, watch=[b])
    after = {c: spawn(session, c, "subscribe", *common, "--expect-end", "EPIPE", label="after")
             for c in langs}
    problems += check_pub(b.finish(120), succ, total - hang)
    for c in langs:
        r = after[c].finish(120)
        bad = check_sub(r, c, {"delivered": total - hang + 1, "missed": 0, "first": hang - 1,
                               "last": total - 1, "end": "EPIPE"}, "after the takeover")
        record("bcast-takeover", "%s>%s" % (succ, c), not bad,
               note="%s from %s" % (cell_note(r), r.get("first")))
        problems += bad
    if problems:
        raise InteropError("\n".join(problems) + "".join(
            "\n" + x.output() for x in [a, b, *subs.values(), *after.values()]))


def test_rust_broadcast_peer_present(built):
    """Fails loudly (as a skip with the reason in the summary) while the Rust peer is absent."""
    if _rust_missing():
        pytest.skip("RUST BROADCAST PEER MISSING: %s not built; Rust rows/columns skipped"
                    % harness.BCAST_PEER["rust"][0])


@pytest.mark.parametrize("lang", ["c", "py", "rust"])
def test_bcast_peer_refuses_bad_arguments(session, built, lang):
    """Exit 2 with the usage on stderr, creating nothing."""
    need(langs_here(built), lang)
    for args in (["publish", "--name", "x"], ["subscribe"], ["subscribe", "--name", "x",
                 "--mode", "sideways"], ["publish", "--name", "x", "--count", "3", "--type",
                 "complex"]):
        p = spawn(session, lang, *args, label="bad")
        p.popen.wait(60)
        assert p.popen.returncode == 2, p.output()
        assert "usage" in p.err_path.read_text(), p.output()
    assert list(os.scandir(session.shm_dir)) == [] or all(
        not e.name.startswith("x") for e in os.scandir(session.shm_dir))
