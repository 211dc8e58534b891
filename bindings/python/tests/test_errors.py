"""Every error path of the C library, as the exception a Python user sees."""

from __future__ import annotations

import errno
import os
import struct
from pathlib import Path

import pytest

import shm_channel as sc
from shm_channel import _errors

CAP = 1 << 12


def test_hierarchy() -> None:
    for cls in (
        sc.MessageTooLarge,
        sc.CorruptSegment,
        sc.IncompatibleLayout,
        sc.PeerDied,
        sc.ChannelBusy,
        sc.EndOfStream,
    ):
        assert issubclass(cls, sc.ShmChannelError)
        assert issubclass(cls, OSError)
    assert issubclass(sc.EndOfStream, BrokenPipeError)
    assert issubclass(sc.ChannelClosedError, ValueError)


@pytest.mark.parametrize(
    ("err", "role", "cls"),
    [
        (errno.ENOENT, 2, FileNotFoundError),
        (errno.EEXIST, 1, FileExistsError),
        (errno.EACCES, 1, PermissionError),
        (errno.ETIMEDOUT, 2, TimeoutError),
        (errno.EAGAIN, 2, BlockingIOError),
        (errno.EAGAIN, 1, BlockingIOError),
        (errno.EPIPE, 1, BrokenPipeError),
        (errno.EPIPE, 2, sc.EndOfStream),
        (errno.EINTR, 2, InterruptedError),
        (errno.EMSGSIZE, 1, sc.MessageTooLarge),
        (errno.EBADMSG, 2, sc.CorruptSegment),
        (errno.EPROTO, 2, sc.IncompatibleLayout),
        (errno.EPROTONOSUPPORT, 2, sc.IncompatibleLayout),
        (errno.EPROTOTYPE, 2, sc.IncompatibleLayout),
        (errno.EOWNERDEAD, 2, sc.PeerDied),
        (errno.EOWNERDEAD, 1, sc.PeerDied),
        (errno.EBUSY, 1, sc.ChannelBusy),
        (errno.ENOSPC, 1, OSError),
        (errno.EBADF, 1, OSError),
        (errno.ENOMEM, 1, OSError),
    ],
)
def test_errno_mapping(err: int, role: int, cls: type) -> None:
    exc = _errors.error(-err, "chan", role, "read", size=10, limit=5, capacity=0, mode=0o600)
    assert type(exc) is cls
    assert exc.errno == err
    assert "chan" in str(exc) or err in (errno.EINTR, errno.ENOMEM)
    if isinstance(exc, sc.ShmChannelError):
        assert exc.channel == "chan"


def test_einval_is_a_value_error() -> None:
    exc = _errors.error(-errno.EINVAL, "chan", 1, "open", capacity=4096)
    assert type(exc) is ValueError
    assert "capacity" in str(exc)


def test_no_such_channel(name: str) -> None:
    with pytest.raises(FileNotFoundError, match="create=True"):
        sc.Consumer(name, create=False)
    with pytest.raises(FileNotFoundError):
        sc.stat(name)


def test_exclusive(name: str) -> None:
    with sc.Producer(name, CAP, exclusive=True):
        with pytest.raises(FileExistsError, match="unlink"):
            sc.Consumer(name, CAP, exclusive=True)


def test_role_held(name: str) -> None:
    with sc.Producer(name, CAP), sc.Consumer(name, CAP):
        with pytest.raises(sc.ChannelBusy, match="producer role") as e:
            sc.Producer(name, CAP)
        assert e.value.errno == errno.EBUSY
        with pytest.raises(sc.ChannelBusy, match="consumer role"):
            sc.Consumer(name, CAP)


def test_capacity_mismatch(name: str) -> None:
    with sc.Producer(name, CAP):
        with pytest.raises(ValueError, match="capacity"):
            sc.Consumer(name, CAP * 2)
        sc.Consumer(name, 0).close()


def test_over_permissive_segment_is_refused(name: str) -> None:
    with sc.Producer(name, CAP, mode=0o644):
        with pytest.raises(PermissionError, match="allow_foreign"):
            sc.Consumer(name, CAP)
        sc.Consumer(name, CAP, mode=0o644).close()
        sc.Consumer(name, CAP, allow_foreign=True).close()


def test_not_a_channel(name: str, segment_dir: Path) -> None:
    path = segment_dir / name
    path.write_bytes(b"NOTACHAN" + bytes(4096 + CAP - 8))
    os.chmod(path, 0o600)
    with pytest.raises(sc.IncompatibleLayout, match="not a shm_channel") as e:
        sc.Consumer(name)
    assert e.value.errno == errno.EPROTO


def test_corrupt_positions_while_open(name: str, segment_dir: Path) -> None:
    with sc.Producer(name, CAP) as p, sc.Consumer(name, CAP) as c:
        p.write(b"fine")
        assert c.read() == b"fine"
        # a stray writer puts a record length far beyond max_payload at the read position
        p.write(b"soon corrupt")
        with open(segment_dir / name, "r+b") as f:
            f.seek(256)
            read_pos = struct.unpack("<Q", f.read(8))[0]
            f.seek(4096 + read_pos % CAP)
            f.write(struct.pack("<II", 1 << 30, 1))
        with pytest.raises(sc.CorruptSegment, match="unlink") as e:
            c.read(timeout=0)
        assert e.value.errno == errno.EBADMSG


def test_writer_sees_consumer_close(name: str) -> None:
    with sc.Producer(name, CAP) as p:
        c = sc.Consumer(name, CAP)
        c.close()
        with pytest.raises(BrokenPipeError, match="consumer") as e:
            while True:
                p.write(b"x" * 100, timeout=1)
        assert not isinstance(e.value, sc.EndOfStream)


def test_unlink_bad_name() -> None:
    with pytest.raises(ValueError):
        sc.unlink("../etc/passwd")
