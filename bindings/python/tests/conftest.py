"""Shared fixtures. Every test runs with $SHM_CHANNEL_DIR set to a private directory on
tmpfs, so tests never touch other users' channels, and a leaked segment is caught."""

from __future__ import annotations

import itertools
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[3]
# Child processes (multiprocessing's spawn imports this file again) share the directory.
_OWN_DIR = "SHM_CHANNEL_TEST_DIR" not in os.environ
if _OWN_DIR:
    _base = "/dev/shm" if os.path.isdir("/dev/shm") else None
    os.environ["SHM_CHANNEL_TEST_DIR"] = tempfile.mkdtemp(
        prefix=f"py-tests-{os.getpid()}-", dir=_base
    )
SEGMENT_DIR = os.environ["SHM_CHANNEL_TEST_DIR"]
os.environ["SHM_CHANNEL_DIR"] = SEGMENT_DIR

import shm_channel  # noqa: E402  (after SHM_CHANNEL_DIR is set)

_counter = itertools.count()


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    if _OWN_DIR:
        shutil.rmtree(SEGMENT_DIR, ignore_errors=True)


def drain(consumer: shm_channel.Consumer, timeout: float = 10) -> list[bytes]:
    """Every message until end-of-stream, failing (not hanging) if one takes too long."""
    out = []
    while True:
        try:
            out.append(consumer.read(timeout=timeout))
        except shm_channel.EndOfStream:
            return out


def pytest_report_header(config: pytest.Config) -> list[str]:
    return [
        f"shm_channel {shm_channel.__version__} from {Path(shm_channel.__file__).parent}",
        f"library {shm_channel.library_path} (version {shm_channel.library_version})",
        f"segments in {SEGMENT_DIR}",
    ]


@pytest.fixture
def name() -> Iterator[str]:
    """A fresh channel name, unlinked after the test if it is still there."""
    n = f"py-{os.getpid()}-{next(_counter)}"
    yield n
    try:
        shm_channel.unlink(n, force=True)
    except FileNotFoundError:
        pass


@pytest.fixture
def segment_dir() -> Path:
    return Path(SEGMENT_DIR)


_children: list[subprocess.Popen[str]] = []

# Python turns SIGINT into KeyboardInterrupt only when it starts with SIGINT at its default,
# as under a terminal; a shell starts background jobs with SIGINT ignored, and a child
# inherits that. Every child installs Python's handler itself, so Ctrl-C reaches it as it
# would under a terminal even when the suite runs as such a job (`nohup scripts/test.sh &`).
_CTRL_C_AS_AT_A_TERMINAL = (
    "import signal\nsignal.signal(signal.SIGINT, signal.default_int_handler)\n"
)


def python_child(code: str, *args: str, **kwargs: object) -> subprocess.Popen[str]:
    """Start `python -c code args...` with the same shm_channel and $SHM_CHANNEL_DIR, and
    Ctrl-C as under a terminal. One still running when its test ends is killed then (see
    _no_child_outlives_its_test)."""
    child = subprocess.Popen(
        [sys.executable, "-c", _CTRL_C_AS_AT_A_TERMINAL + code, *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        **kwargs,  # type: ignore[arg-type]
    )
    _children.append(child)
    return child


@pytest.fixture(autouse=True)
def _no_child_outlives_its_test() -> Iterator[None]:
    """A test that failed while its child was blocked (a hung read, say) would otherwise
    leave that process running after the suite, holding its channel open."""
    yield
    while _children:
        child = _children.pop()
        if child.poll() is None:
            child.kill()
            child.wait()


@pytest.fixture(scope="session")
def c_programs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """The C demo programs of c/examples/, built with cc against the library the binding
    loaded (so C and Python use the same one). Skips when there is no C compiler."""
    cc = shutil.which("cc") or shutil.which("gcc")
    if cc is None:
        pytest.skip("no C compiler to build the C demo programs")
    lib = Path(shm_channel.library_path)
    if not lib.is_absolute() or not lib.exists():
        pytest.skip(f"the loaded library has no usable path ({lib})")
    out = tmp_path_factory.mktemp("cbin")
    progs = {}
    for prog in ("demo_producer", "demo_consumer"):
        src = REPO / "c" / "examples" / f"{prog}.c"
        exe = out / prog
        subprocess.run(
            [
                cc,
                "-O2",
                "-std=c11",
                f"-I{REPO / 'c' / 'include'}",
                str(src),
                str(lib),
                f"-Wl,-rpath,{lib.parent}",
                "-o",
                str(exe),
            ],
            check=True,
        )
        progs[prog] = exe
    return progs


def wait_until(condition: Callable[[], object], timeout: float = 30, what: str = "") -> None:
    """Poll until `condition()` is true: for a state (a peer blocked, a file gone), never
    a fixed sleep. Fails after `timeout` seconds, so a broken state fails, not hangs."""
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what or condition}"
        time.sleep(0.002)
