"""The golden segment images of spec/vectors/, read through the binding.

For each NAME.bin: copy it into the segment directory under a fresh name, mode 0600; open it
as a consumer without creating it and with capacity 0; expect ``open ok`` or ``open ERRNAME``;
then read without waiting, comparing each ``msg <hex>`` (``msg -`` is an empty message);
finally expect ``end ERRNAME`` from the next read (spec/vectors/README.md)."""

from __future__ import annotations

import errno
import os
import shutil
from pathlib import Path

import pytest

import shm_channel as sc
from conftest import REPO

VECTORS = REPO / "spec" / "vectors"
BINS = sorted(VECTORS.glob("*.bin"))


def errname(exc: BaseException) -> str:
    if isinstance(exc, ValueError) and not isinstance(exc, OSError):
        return "EINVAL"
    assert isinstance(exc, OSError) and exc.errno, f"no errno on {exc!r}"
    return errno.errorcode[exc.errno]


def expectations(path: Path) -> list[tuple[str, str]]:
    lines = []
    for line in path.read_text().splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            verb, _, arg = line.partition(" ")
            lines.append((verb, arg.strip()))
    return lines


def test_vectors_exist() -> None:
    assert len(BINS) >= 10, f"no golden vectors in {VECTORS}"
    for b in BINS:
        assert b.with_suffix(".expect").exists(), f"{b.name} has no .expect"


@pytest.mark.parametrize("vector", BINS, ids=[b.stem for b in BINS])
def test_vector(vector: Path, name: str, segment_dir: Path) -> None:
    expect = expectations(vector.with_suffix(".expect"))
    assert expect[0][0] == "open" and expect[-1][0] in ("end", "open")
    target = segment_dir / name
    shutil.copyfile(vector, target)
    os.chmod(target, 0o600)

    verb, want = expect[0]
    try:
        c = sc.Consumer(name, 0, create=False)
    except Exception as e:
        assert want == errname(e), f"open: expected {want}, got {e!r}"
        assert len(expect) == 1
        return
    assert want == "ok", f"open: expected {want}, but it opened"
    with c:
        for verb, want in expect[1:]:
            if verb == "msg":
                data = c.read(timeout=0)
                assert data == (b"" if want == "-" else bytes.fromhex(want))
            elif verb == "end":
                with pytest.raises(Exception) as e:
                    c.read(timeout=0)
                assert errname(e.value) == want, f"end: expected {want}, got {e.value!r}"
            else:
                raise AssertionError(f"unknown line {verb} {want}")
