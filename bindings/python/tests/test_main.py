"""``python -m shm_channel`` and the ``shm_channel`` console script run the C command-line
tool bundled in the package (docs/cli.md): the same commands, JSON and exit statuses, on
channels this binding made."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

import shm_channel
import shm_channel.__main__ as main_module
from shm_channel.__main__ import cli_path


def _run(*args: str, script: bool = False) -> subprocess.CompletedProcess:
    if script:
        exe = shutil.which("shm_channel", path=str(Path(sys.executable).parent))
        assert exe, "the console script is installed next to the interpreter"
        argv = [exe, *args]
    else:
        argv = [sys.executable, "-m", "shm_channel", *args]
    return subprocess.run(argv, capture_output=True, text=True, timeout=60)


@pytest.mark.skipif(not os.environ.get("SHM_CHANNEL_TEST_INSTALLED"), reason="installed wheel")
def test_the_bundled_program_is_used():
    assert Path(cli_path()) == Path(shm_channel.__file__).parent / "bin" / "shm_channel"


@pytest.mark.skipif(not os.environ.get("SHM_CHANNEL_TEST_INSTALLED"), reason="installed wheel")
def test_the_console_script(name):
    with shm_channel.Producer(name, capacity=4096):
        ls = json.loads(_run("ls", "--json", script=True).stdout)
        assert name in [c["name"] for c in ls["channels"]]
    assert _run("frob", script=True).returncode == 2


def test_same_commands_json_and_exit_statuses(name):
    script = False
    with shm_channel.Producer(name, capacity=4096) as p:
        p.write(b"from python")
        st = json.loads(_run("stat", "--json", name, script=script).stdout)
        assert st["name"] == name and st["kind"] == "stream" and st["capacity"] == 4096
        assert st["msgs_written"] == 1 and st["producer"]["alive"] is True
        ls = json.loads(_run("ls", "--json", script=script).stdout)
        assert name in [c["name"] for c in ls["channels"]]
    r = _run("recv", name, "--format", "json", script=script)
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout)["text"] == "from python"
    assert _run("version", script=script).stdout.strip() == ".".join(
        map(str, shm_channel.library_version)
    )
    assert _run("frob", script=script).returncode == 2
    assert _run("stat", name, script=script).returncode == 1, "the finished stream is gone"


def test_send_from_the_cli_to_a_python_consumer(name):
    with shm_channel.Consumer(name, capacity=4096) as c:
        r = subprocess.run(
            [sys.executable, "-m", "shm_channel", "send", name],
            input=b"a\nbc\n",
            capture_output=True,
            timeout=60,
        )
        assert r.returncode == 0, r.stderr
        assert [c.read(timeout=10), c.read(timeout=10)] == [b"a", b"bc"]


def test_a_missing_program_is_a_clear_error(monkeypatch, tmp_path, capsys):
    missing = tmp_path / "nothing"
    monkeypatch.setenv("SHM_CHANNEL_CLI", str(missing))
    assert cli_path() != str(missing), "a wrong $SHM_CHANNEL_CLI falls back to the others"
    monkeypatch.setattr(main_module, "_candidates", lambda: [missing])
    with pytest.raises(FileNotFoundError, match="SHM_CHANNEL_CLI"):
        cli_path()
    assert main_module.main(["ls"]) == 1
    assert str(missing) in capsys.readouterr().err
