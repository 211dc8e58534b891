"""Fixtures of the CLI tests: the program under test ($SHM_CHANNEL_CLI, which run.sh sets),
a private segment directory per test, and helpers to run it and wait on observable state."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

import pytest

CLI = os.environ.get("SHM_CHANNEL_CLI", "")


@pytest.fixture
def env():
    """A private SHM_CHANNEL_DIR under /dev/shm (tmpfs, as in production)."""
    d = tempfile.mkdtemp(prefix="cli-test-", dir="/dev/shm")
    e = dict(os.environ, SHM_CHANNEL_DIR=d)
    yield e
    shutil.rmtree(d, ignore_errors=True)


class Cli:
    """Runs the program as real processes in one segment directory."""

    def __init__(self, env):
        assert CLI and Path(CLI).is_file(), "set SHM_CHANNEL_CLI (tests/cli/run.sh does)"
        self.env = env
        self.dir = Path(env["SHM_CHANNEL_DIR"])
        self.procs = []

    def run(self, *args, input=b"", timeout=60):
        """Run to completion; returns CompletedProcess with bytes stdout/stderr."""
        return subprocess.run([CLI, *args], input=input, capture_output=True, env=self.env,
                              timeout=timeout)

    def ok(self, *args, input=b""):
        r = self.run(*args, input=input)
        assert r.returncode == 0, f"{args}: exit {r.returncode}: {r.stderr.decode()}"
        return r.stdout.decode()

    def json(self, *args):
        return json.loads(self.ok(*args))

    def spawn(self, *args, stdin=subprocess.PIPE, stdout=subprocess.PIPE, **kw):
        p = subprocess.Popen([CLI, *args], stdin=stdin, stdout=stdout, stderr=subprocess.PIPE,
                             env=self.env, **kw)
        self.procs.append(p)
        return p

    def stat(self, name):
        r = self.run("stat", "--json", name)
        return json.loads(r.stdout) if r.returncode == 0 else None

    def wait_for(self, what, pred, timeout=30):
        """Poll pred() (a look at observable state) until true; fail after timeout."""
        end = time.monotonic() + timeout
        while True:
            v = pred()
            if v:
                return v
            assert time.monotonic() < end, f"timed out waiting for {what}"
            time.sleep(0.01)

    def close(self):
        for p in self.procs:
            if p.poll() is None:
                p.kill()
            p.wait()
            for f in (p.stdin, p.stdout, p.stderr):
                if f:
                    f.close()


@pytest.fixture
def cli(env):
    c = Cli(env)
    yield c
    c.close()
