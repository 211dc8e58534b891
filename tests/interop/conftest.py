"""Session setup for the interop suite: build every participant once, give each test a
private segment directory and work directory, and print the result matrix at the end."""

from __future__ import annotations

import json
import os
import shutil
import sys
import time
from pathlib import Path

import pytest

import harness


def pytest_addoption(parser):
    parser.addoption("--soak", action="store_true", default=False,
                     help="soak sizes: >= 100 M messages per pair, positions past 2^32 "
                          "(same as SHM_INTEROP_SOAK=1)")


def pytest_configure(config):
    if config.getoption("--soak"):
        os.environ["SHM_INTEROP_SOAK"] = "1"
        harness.SOAK = True


@pytest.fixture(scope="session")
def built():
    try:
        import shm_channel  # noqa: F401  (the Python peer runs with this interpreter)
    except ImportError as e:
        pytest.exit("the shm_channel package is not installed in %s (%s): run tests/interop/run.sh"
                    % (sys.executable, e), returncode=2)
    t = time.monotonic()
    log = harness.build_all()
    print("\nbuilt participants in %.1f s: %s" % (time.monotonic() - t, "; ".join(log)))
    return True


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass
    return True


@pytest.fixture(scope="session")
def shm_root():
    base = Path("/dev/shm") if Path("/dev/shm").is_dir() else harness.BUILD
    # Segment directories left by runs that were killed before their cleanup.
    for old in base.glob("shm-interop-*"):
        pid = old.name.rsplit("-", 1)[-1]
        if pid.isdigit() and not _pid_alive(int(pid)):
            shutil.rmtree(old, ignore_errors=True)
    d = base / ("shm-interop-%d" % os.getpid())
    d.mkdir(mode=0o700, parents=True, exist_ok=True)
    yield d
    shutil.rmtree(d, ignore_errors=True)


@pytest.fixture
def session(built, shm_root, tmp_path):
    s = harness.Session(shm_root, tmp_path)
    yield s
    s.cleanup()


def pytest_terminal_summary(terminalreporter):
    if not harness.RESULTS:
        return
    tr = terminalreporter
    tr.write_sep("=", "interop result matrix" + (" (soak)" if harness.SOAK else ""))
    tr.write_line(harness.render_matrix(harness.RESULTS))
    out = harness.BUILD / "interop-results.json"
    try:
        out.write_text(json.dumps([r.__dict__ for r in harness.RESULTS], indent=1))
        tr.write_line("results: %s" % out)
    except OSError:
        pass
