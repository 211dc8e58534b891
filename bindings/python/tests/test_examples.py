"""The example programs in examples/python (issue 9, bug 8): --help prints the usage and
exits 0; bad arguments print the usage and an error and exit 2; neither creates anything."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import REPO

EXAMPLES = sorted((REPO / "examples" / "python").glob("*.py"))


def _run(example: Path, args: list[str], segments: Path) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ, SHM_CHANNEL_DIR=str(segments))
    return subprocess.run(
        [sys.executable, str(example), *args], env=env, capture_output=True, text=True, timeout=60
    )


def test_there_are_examples() -> None:
    assert [p.name for p in EXAMPLES] == ["frame_consumer.py", "ping_pong_service.py"]


@pytest.mark.parametrize("example", EXAMPLES, ids=lambda p: p.name)
@pytest.mark.parametrize("flag", ["--help", "-h"])
def test_help(example: Path, flag: str, tmp_path: Path) -> None:
    pytest.importorskip("numpy")
    r = _run(example, [flag], tmp_path)
    assert r.returncode == 0, r.stderr
    assert r.stdout.startswith("usage: ")
    assert list(tmp_path.iterdir()) == []


BAD_ARGS = {
    "frame_consumer.py": [
        [],  # the channel name is required
        ["--no-such-option", "frames"],
        ["frames", "extra"],
        ["a b"],  # invalid channel name
        [".hidden"],
        ["x" * 201],
        ["frames", "--capacity", "1000"],  # not a power of two
        ["frames", "--capacity", "512"],
        ["frames", "--capacity", "0"],
        ["frames", "--capacity", "-4096"],
        ["frames", "--capacity", "1.5e6"],
        ["frames", "--capacity", "lots"],
        ["frames", "--capacity"],
    ],
    "ping_pong_service.py": [
        ["server"],  # the role and the name are required
        ["player", "pp"],  # not a role
        ["client", "a b"],  # invalid service name
        ["server", "pp", "extra"],
        ["--no-such-option", "server", "pp"],
    ],
}


@pytest.mark.parametrize(
    ("example", "args"),
    [(REPO / "examples" / "python" / ex, a) for ex, cases in BAD_ARGS.items() for a in cases],
    ids=lambda v: v.name if isinstance(v, Path) else " ".join(v) or "no-args",
)
def test_bad_arguments(example: Path, args: list[str], tmp_path: Path) -> None:
    pytest.importorskip("numpy")
    r = _run(example, args, tmp_path)
    assert r.returncode == 2, (r.stdout, r.stderr)
    assert r.stderr.startswith("usage: ")
    assert f"{example.name}: error: " in r.stderr
    assert "Traceback" not in r.stderr
    assert list(tmp_path.iterdir()) == []  # nothing was created
