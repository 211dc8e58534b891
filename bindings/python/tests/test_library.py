"""Finding and checking libshm_channel, and what got installed."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

import shm_channel
from conftest import REPO
from shm_channel import _lib


def run_python(code: str, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        env={**os.environ, **env},
        timeout=60,
    )


def test_version() -> None:
    assert shm_channel.library_version[0] == 1
    assert _lib.lib.shm_channel_version() >> 16 == _lib.REQUIRED_VERSION[0]
    assert _lib.ffi.string(_lib.lib.shm_channel_version_string()).decode() == ".".join(
        map(str, shm_channel.library_version)
    )


def test_search_order() -> None:
    where = [w for w, _ in _lib._candidates()]
    order = ["bundled copy", "ctypes.util.find_library", "soname via the dynamic loader"]
    if os.environ.get(_lib.LIBRARY_ENV):
        order.insert(0, f"${_lib.LIBRARY_ENV}")
    assert where == order
    bundled = dict(_lib._candidates())["bundled copy"]
    assert bundled == str(Path(_lib.__file__).with_name(_lib.SONAME))


def test_environment_variable_wins() -> None:
    path = shm_channel.library_path
    if not os.path.isabs(path):
        pytest.skip("the loaded library has no absolute path to name")
    r = run_python("import shm_channel; print(shm_channel.library_path)", SHM_CHANNEL_LIBRARY=path)
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == path


def test_bad_environment_variable_falls_through_and_none_found_lists_all(monkeypatch) -> None:
    monkeypatch.setattr(
        _lib,
        "_candidates",
        lambda: [
            ("$SHM_CHANNEL_LIBRARY", "/nonexistent/libshm_channel.so.1"),
            ("bundled copy", "/nowhere/libshm_channel.so.1"),
            ("ctypes.util.find_library", "(found nothing)"),
            ("soname via the dynamic loader", "libshm_channel_does_not_exist.so.1"),
        ],
    )
    with pytest.raises(OSError, match="cannot load libshm_channel") as e:
        _lib._load()
    text = str(e.value)
    for where in (
        "$SHM_CHANNEL_LIBRARY",
        "/nonexistent/",
        "bundled copy",
        "find_library",
        "libshm_channel_does_not_exist",
        "no such file",
    ):
        assert where in text
    assert text.index("$SHM_CHANNEL_LIBRARY") < text.index("bundled") < text.index("soname")


def test_wrong_library_is_skipped(monkeypatch) -> None:
    good = shm_channel.library_path
    monkeypatch.setattr(
        _lib,
        "_candidates",
        lambda: [
            ("$SHM_CHANNEL_LIBRARY", "libc.so.6"),  # loads, but is not ours
            ("bundled copy", good),
        ],
    )
    _, path = _lib._load()
    assert path == good


def test_version_mismatch_is_refused(monkeypatch) -> None:
    monkeypatch.setattr(_lib, "REQUIRED_VERSION", (2, 0))
    monkeypatch.setattr(_lib, "_candidates", lambda: [("bundled copy", shm_channel.library_path)])
    with pytest.raises(OSError, match=r"version 1\.\d+\.\d+, this binding needs 2\.0"):
        _lib._load()


def test_library_lacking_a_required_function_is_refused(monkeypatch) -> None:
    # A 1.0 library from before shm_channel_detach: close() could not end the role.
    monkeypatch.setattr(_lib, "REQUIRED_FUNCTIONS", ("shm_channel_detach", "shm_channel_nope"))
    monkeypatch.setattr(_lib, "_candidates", lambda: [("bundled copy", shm_channel.library_path)])
    with pytest.raises(OSError, match=r"too old, lacks shm_channel_nope\n"):
        _lib._load()
    assert "shm_channel_detach" in _lib.REQUIRED_FUNCTIONS


def test_import_failure_message_in_a_fresh_interpreter(tmp_path: Path) -> None:
    # A copy of the package without its bundled library, and nothing on the loader's path.
    pkg = Path(shm_channel.__file__).parent
    shutil.copytree(
        pkg, tmp_path / "shm_channel", ignore=shutil.ignore_patterns(_lib.SONAME, "__pycache__")
    )
    env = {k: v for k, v in os.environ.items() if k != "LD_LIBRARY_PATH"}
    env.update(SHM_CHANNEL_LIBRARY=str(tmp_path / "missing.so"), PYTHONPATH=str(tmp_path))
    r = subprocess.run(
        [sys.executable, "-c", "import shm_channel"],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
    )
    if r.returncode == 0:
        pytest.skip("a system-wide copy of the library exists")
    err = r.stderr
    assert "OSError: cannot load libshm_channel; tried, in order:" in err
    for where in (
        "$SHM_CHANNEL_LIBRARY: " + str(tmp_path / "missing.so"),
        "bundled copy",
        "ctypes.util.find_library",
        "soname via the dynamic loader",
    ):
        assert where in err
    assert "set SHM_CHANNEL_LIBRARY" in err


@pytest.mark.skipif(
    not os.environ.get("SHM_CHANNEL_TEST_INSTALLED"),
    reason="only when testing an installed package (run-tests.sh)",
)
def test_running_against_the_installed_package() -> None:
    pkg = Path(shm_channel.__file__).resolve().parent
    assert pkg != REPO / "bindings" / "python" / "src" / "shm_channel", "the source tree"
    assert "site-packages" in pkg.parts, pkg
    assert Path(shm_channel.library_path) == pkg / _lib.SONAME  # the bundled copy
    assert (pkg / "py.typed").exists()
    assert not list(pkg.glob("*.cpython-*.so")), "the wheel must hold no extension module"
