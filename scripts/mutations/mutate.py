#!/usr/bin/env python3
"""Mutation testing of the C core: run by scripts/mutate.sh (see there)."""
import argparse
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
TABLES = os.path.join(ROOT, "scripts", "mutations")


def die(msg):
    print("mutate: " + msg, file=sys.stderr)
    sys.exit(2)


def parse_tables():
    """Every *.txt table in scripts/mutations: one per source file."""
    muts = []
    for fn in sorted(os.listdir(TABLES)):
        if not fn.endswith(".txt"):
            continue
        path = os.path.join(TABLES, fn)
        target = None
        blocks, cur = [], None
        for lineno, line in enumerate(open(path).read().split("\n"), 1):
            if line.startswith("#"):
                continue
            if line.startswith("file:"):
                target = line[5:].strip()
                continue
            if not line.strip():
                cur = None
                continue
            if cur is None:
                cur = {"table": fn, "line": lineno, "old": [], "new": [], "file": target}
                blocks.append(cur)
            if line[:1] == "-":
                cur["old"].append(line[1:])
            elif line[:1] == "+":
                cur["new"].append(line[1:])
            elif ":" in line:
                key, val = line.split(":", 1)
                cur[key.strip()] = val.strip()
            else:
                die(f"{fn}:{lineno}: cannot parse: {line!r}")
        for b in blocks:
            where = f"{fn}:{b['line']}"
            if not b["file"]:
                die(f"{where}: no 'file:' line before the first mutation")
            for key in ("id", "why"):
                if key not in b:
                    die(f"{where}: mutation without '{key}:'")
            if not b["old"]:
                die(f"{where}: mutation {b['id']} has no '-' lines")
            b["old"] = "\n".join(b["old"]) + "\n"
            b["new"] = "\n".join(b["new"]) + "\n" if b["new"] else ""
        muts += blocks
    ids = [m["id"] for m in muts]
    dup = {i for i in ids if ids.count(i) > 1}
    if dup:
        die(f"duplicate mutation ids: {sorted(dup)}")
    return muts


def check_patterns(muts, tree):
    """Each mutation's old text must occur exactly once: fail loudly, before any build."""
    bad = []
    for m in muts:
        path = os.path.join(tree, m["file"])
        text = open(path).read() if os.path.exists(path) else ""
        n = text.count(m["old"])
        if n != 1:
            bad.append(f"  {m['table']}: {m['id']}: the old text occurs {n} times in {m['file']}")
    if bad:
        die("mutation patterns no longer match the code (update scripts/mutations):\n"
            + "\n".join(bad))


def copy_tree(dst):
    files = subprocess.run(["git", "ls-files", "-z", "-co", "--exclude-standard"], cwd=ROOT,
                           check=True, capture_output=True).stdout.split(b"\0")
    for f in files:
        if not f:
            continue
        src = os.path.join(ROOT, f.decode())
        if not os.path.isfile(src):
            continue
        out = os.path.join(dst, f.decode())
        os.makedirs(os.path.dirname(out), exist_ok=True)
        # A fresh mtime: a reused scratch directory must never keep objects of a mutant
        # (the original, copied with its old mtime, would look older than them to ninja).
        shutil.copy(src, out)


def configure(src, build, sanitize, scale):
    log = open(os.path.join(os.path.dirname(build), os.path.basename(build) + ".log"), "w")
    subprocess.run(["cmake", "-S", src, "-B", build, "-G", "Ninja",
                    "-DCMAKE_BUILD_TYPE=RelWithDebInfo", "-DSHM_CHANNEL_TESTS=ON",
                    "-DSHM_CHANNEL_BENCH=OFF", f"-DSHM_CHANNEL_SANITIZE={sanitize}",
                    f"-DSHM_CHANNEL_TEST_SCALE={scale}"], check=True, stdout=log, stderr=log)


def build(build_dir):
    r = subprocess.run(["ninja", "-C", build_dir, "-j2"], capture_output=True, text=True)
    return r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]


def list_tests(build_dir):
    """The C test executables CMake registered (ctest's own list), with env and timeout."""
    out = subprocess.run(["ctest", "--test-dir", build_dir, "--show-only=json-v1"], check=True,
                         capture_output=True, text=True).stdout
    tests = []
    for t in json.loads(out)["tests"]:
        cmd = t.get("command") or []
        if not cmd or not cmd[0].startswith(build_dir):
            continue  # cmake -P scripts (install check, vector regeneration): not C behaviour
        props = {p["name"]: p["value"] for p in t.get("properties", [])}
        env = dict(e.split("=", 1) for e in props.get("ENVIRONMENT", []))
        cwd = props.get("WORKING_DIRECTORY", os.path.dirname(cmd[0]))
        tests.append({"name": t["name"], "cmd": cmd, "env": env, "cwd": cwd,
                      "timeout": float(props.get("TIMEOUT", 1500))})
    return tests


def run_test(t, cap, extra_env):
    env = dict(os.environ)
    env.update(t["env"])
    env.update(extra_env)
    t0 = time.time()
    p = subprocess.Popen(t["cmd"], cwd=t["cwd"], env=env, stdout=subprocess.PIPE,
                         stderr=subprocess.STDOUT, start_new_session=True)
    try:
        out, _ = p.communicate(timeout=min(t["timeout"], cap))
        status = "passed" if p.returncode == 0 else f"failed (exit {p.returncode})"
    except subprocess.TimeoutExpired:
        os.killpg(p.pid, signal.SIGKILL)
        out, _ = p.communicate()
        status = "timeout"
    return status, time.time() - t0, out.decode(errors="replace")


def main():
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--list", action="store_true", help="list the mutations and check them")
    ap.add_argument("--only", help="comma-separated mutation ids")
    ap.add_argument("--all-tests", action="store_true",
                    help="run every test on each mutant (default: stop at the first kill)")
    ap.add_argument("--no-tsan", action="store_true", help="skip the TSan build")
    ap.add_argument("--keep", action="store_true", help="keep the scratch directory")
    args = ap.parse_args()
    scale = os.environ.get("MUTATE_SCALE", "0.1")
    cap = float(os.environ.get("MUTATE_TEST_TIMEOUT", "120"))

    muts = parse_tables()
    check_patterns(muts, ROOT)
    if args.only:
        want = args.only.split(",")
        unknown = set(want) - {m["id"] for m in muts}
        if unknown:
            die(f"unknown mutation ids: {sorted(unknown)}")
        muts = [m for m in muts if m["id"] in want]
    if args.list:
        for m in muts:
            print(f"{m['id']:30} {m['file']:16} {m['why']}")
        print(f"{len(muts)} mutations; every pattern matches exactly once")
        return 0

    start = time.time()
    scratch = os.environ.get("MUTATE_DIR") or tempfile.mkdtemp(prefix="shm-mutate-")
    src = os.path.join(scratch, "src")
    print(f"mutate: scratch copy in {scratch} (test scale {scale}, per-test cap {cap:.0f} s)")
    copy_tree(src)
    variants = [("plain", os.path.join(scratch, "plain"), "", {})]
    if not args.no_tsan:
        # Stop at the first report: a mutant TSan flags has been caught.
        variants.append(("tsan", os.path.join(scratch, "tsan"), "thread",
                         {"TSAN_OPTIONS": "halt_on_error=1"}))
    suites = {}
    for name, bdir, san, env in variants:
        configure(src, bdir, san, scale)
        ok, log = build(bdir)
        if not ok:
            die(f"the unmutated tree does not build ({name}):\n{log}")
        tests = list_tests(bdir)
        # Baseline: the unmutated tree must pass, or no kill means anything.
        for t in tests:
            status, dt, out = run_test(t, cap, env)
            if status != "passed":
                # Once more: a test that fails now and then is flagged, and its kills with it.
                print(f"mutate: baseline {name} {t['name']} {status}; running it again:\n"
                      f"{out[-1500:]}")
                status, dt, out = run_test(t, cap, env)
                if status != "passed":
                    die(f"baseline {name} {t['name']} {status} twice:\n{out[-3000:]}")
                t["flaky"] = True
            t["dt"] = dt
        tests.sort(key=lambda t: t["dt"])  # cheapest first: most mutants die early
        suites[name] = (bdir, tests, env)
        print(f"mutate: baseline {name}: {len(tests)} tests pass in "
              f"{sum(t['dt'] for t in tests):.0f} s")
    sys.stdout.flush()

    rows = []
    for m in muts:
        t0 = time.time()
        path = os.path.join(src, m["file"])
        orig = open(path).read()
        if orig.count(m["old"]) != 1:
            die(f"{m['id']}: pattern does not match the scratch copy")
        open(path, "w").write(orig.replace(m["old"], m["new"]))
        killers, result = [], "SURVIVED"
        try:
            for name, (bdir, tests, env) in suites.items():
                ok, log = build(bdir)
                if not ok:
                    result = "BUILD-FAILED"
                    print(f"mutate: {m['id']}: the mutant does not build ({name}):\n{log}")
                    break
                for t in tests:
                    status, dt, out = run_test(t, cap, env)
                    if status != "passed":
                        logdir = os.path.join(scratch, "logs")
                        os.makedirs(logdir, exist_ok=True)
                        with open(os.path.join(logdir, f"{m['id']}.{name}.{t['name']}.log"),
                                  "w") as f:
                            f.write(out)
                        killers.append(f"{name}:{t['name'][2:] if t['name'].startswith('c_') else t['name']}"
                                       + (" (timeout)" if status == "timeout" else "")
                                       + (" (flaky in baseline)" if t.get("flaky") else ""))
                        first = [ln for ln in out.splitlines()
                                 if "FAIL" in ln or "assert" in ln or "WARNING: ThreadSanitizer" in ln]
                        m.setdefault("detail", (first[:2] or [status])[0].strip()[:160])
                        if not args.all_tests:
                            break
                if killers:
                    result = "KILLED"
                    if not args.all_tests:
                        break
        finally:
            open(path, "w").write(orig)
        rows.append((m, result, killers, time.time() - t0))
        print(f"mutate: {m['id']}: {result} {' '.join(killers)} ({time.time() - t0:.0f} s)")
        sys.stdout.flush()

    print()
    print(f"{'mutation':30} {'result':9} {'caught by':45} {'time':>6}  expected")
    for m, result, killers, dt in rows:
        print(f"{m['id']:30} {result:9} {', '.join(killers) or '-':45} {dt:5.0f}s  "
              f"{m.get('expect', '')}")
    killed = sum(1 for r in rows if r[1] == "KILLED")
    print(f"\n{killed} of {len(rows)} mutants killed; total {time.time() - start:.0f} s")
    for m, result, killers, dt in rows:
        if m.get("detail"):
            print(f"  {m['id']}: {m['detail']}")
    if not args.keep and not os.environ.get("MUTATE_DIR"):
        shutil.rmtree(scratch, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
