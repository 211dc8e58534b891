"""Compat channels: seed 002's 16-byte-header byte ring (spec/compat.md).

:class:`CompatProducer` and :class:`CompatConsumer` talk, unchanged, to the C++ and Python
producers and consumers of that project (``cpp_py_shmbuf``), and are the safe side of the
pair: a torn index from the peer's byte-by-byte stores is refused and read again, and the
ring is never overwritten. They are the stream classes (:class:`Producer`,
:class:`Consumer`: write, reserve, write_many, read, read_into, read_many, peek...) opened
with ``SHM_CHANNEL_COMPAT``, with the layout's differences:

- names of at most 63 characters; the segment is ``/dev/shm/<name>`` (where the peer's
  ``shm_open("/<name>")`` looks) unless ``$SHM_CHANNEL_DIR`` points elsewhere;
- capacity: a power of two from 8 bytes to 2 GiB; the largest message is capacity - 4;
- an empty message raises :class:`ValueError` (the peer's consumers stall on one);
- a blocked call polls (no futex word exists): it sleeps up to 2 ms between polls;
- no end-of-stream and no peer liveness: a closed or dead peer looks idle. Instead,
  :class:`SegmentRemoved` once the segment's name was unlinked (a peer producer replaced it,
  or a Python peer's resource tracker removed it) and the ring is drained (consumer) or
  full (producer);
- :class:`CorruptSegment` when the peer's index stays out of range for 2 s, or a record is
  longer than capacity - 4.
"""

from __future__ import annotations

import dataclasses
import re

from . import _errors
from ._channel import Consumer, Producer, _int_arg
from ._errors import SegmentRemoved
from ._lib import ffi, lib

__all__ = ["CompatConsumer", "CompatProducer", "CompatStat", "SegmentRemoved", "compat_unlink"]

_NAME_RE = re.compile(r"/?[A-Za-z0-9_-][A-Za-z0-9._-]*\Z")


def _check_name(name: str) -> bytes:
    if not isinstance(name, str):
        raise TypeError(f"channel name must be a str, not {type(name).__name__}")
    bare = name[1:] if name.startswith("/") else name
    if not _NAME_RE.match(name) or not 1 <= len(bare) <= lib.SHM_CHANNEL_COMPAT_NAME_MAX:
        raise ValueError(
            f"invalid compat channel name {name!r}: use 1 to "
            f"{lib.SHM_CHANNEL_COMPAT_NAME_MAX} characters from [A-Za-z0-9._-], not starting "
            "with '.', optionally after one '/'"
        )
    return name.encode("ascii")


def _check_capacity(capacity: int) -> int:
    capacity = _int_arg(capacity, "capacity")
    lo, hi = lib.SHM_CHANNEL_COMPAT_MIN_CAPACITY, lib.SHM_CHANNEL_COMPAT_MAX_CAPACITY
    if capacity and (capacity < lo or capacity > hi or capacity & (capacity - 1)):
        raise ValueError(
            f"compat capacity must be 0 (any existing, or 1 MiB when creating) or a power of "
            f"two from {lo} to {hi}, not {capacity}"
        )
    return capacity


@dataclasses.dataclass(frozen=True)
class CompatStat:
    """A compat handle's view (``shm_channel_compat_stat_t``): ``head`` and ``tail`` are the
    segment's u32 indices as this handle accepted them, ``torn_loads`` the loads of the
    peer's index refused as out of range (torn), ``msgs``/``bytes`` what this handle wrote
    or read, ``waits`` the calls that found the ring full or empty, ``sleeps`` the sleeps
    between polls, ``segment_gone`` whether the name was found unlinked.
    """

    capacity: int
    head: int
    tail: int
    used: int
    torn_loads: int
    msgs: int
    bytes: int
    waits: int
    sleeps: int
    segment_gone: bool


class _CompatMixin:
    _kind_flags = lib.SHM_CHANNEL_COMPAT
    _check_name = staticmethod(_check_name)
    _check_capacity = staticmethod(_check_capacity)

    def compat_stat(self) -> CompatStat:
        """The view of the compat channel this handle has (see :class:`CompatStat`)."""
        st = ffi.new("shm_channel_compat_stat_t *")
        rc = lib.shm_channel_compat_stat(self._handle(), st)  # type: ignore[attr-defined]
        if rc:
            raise self._error(rc, "compat_stat")  # type: ignore[attr-defined]
        return CompatStat(
            st.capacity,
            st.head,
            st.tail,
            st.used,
            st.torn_loads,
            st.msgs,
            st.bytes,
            st.waits,
            st.sleeps,
            bool(st.segment_gone),
        )


class CompatProducer(_CompatMixin, Producer):
    """The writing end of a compat channel (seed 002's layout).

    ``CompatProducer(name, capacity=0, *, create=True, exclusive=False, replace=False,
    mode=0o600, allow_foreign=False, spin=None)``

    With ``create`` a missing segment is made as the peer's producer makes it (capacity +
    16 bytes), but mode 0o600; an existing one is opened and never unlinked, unless
    ``replace=True``, which first removes whatever has the name, as the peer's producer does
    (a consumer still attached to the old segment is orphaned). The peer's C++ side creates
    mode 0o666 minus umask: pass that ``mode`` or ``allow_foreign=True`` to open its
    segments. Closing marks nothing (the layout has no end-of-stream).
    """

    def __init__(
        self,
        name: str,
        capacity: int = 0,
        *,
        create: bool = True,
        exclusive: bool = False,
        replace: bool = False,
        mode: int = 0o600,
        allow_foreign: bool = False,
        spin: float | None = None,
    ) -> None:
        if replace and not create:
            raise ValueError("replace=True needs create=True")
        if replace:
            self._kind_flags = lib.SHM_CHANNEL_COMPAT | lib.SHM_CHANNEL_COMPAT_REPLACE
        super().__init__(
            name,
            capacity,
            create=create,
            exclusive=exclusive,
            mode=mode,
            allow_foreign=allow_foreign,
            spin=spin,
        )


class CompatConsumer(_CompatMixin, Consumer):
    """The reading end of a compat channel (seed 002's layout).

    ``CompatConsumer(name, capacity=0, *, mode=0o600, allow_foreign=False, spin=None)``

    A consumer never creates (the peer's consumers do not either): the producer must have
    made the segment (:class:`FileNotFoundError` otherwise). Iterating yields messages until
    :class:`SegmentRemoved` (there is no end-of-stream).
    """

    def __init__(
        self,
        name: str,
        capacity: int = 0,
        *,
        mode: int = 0o600,
        allow_foreign: bool = False,
        spin: float | None = None,
    ) -> None:
        super().__init__(
            name, capacity, create=False, mode=mode, allow_foreign=allow_foreign, spin=spin
        )


def compat_unlink(name: str, force: bool = False) -> None:
    """Remove compat channel `name`. Without `force`, only a compat segment that no handle
    of this library is attached to (:class:`ChannelBusy` otherwise; the peer's processes
    cannot be seen). Raises :class:`FileNotFoundError` if there is no such file.
    """
    flags = lib.SHM_CHANNEL_COMPAT | (lib.SHM_CHANNEL_FORCE if force else 0)
    rc = lib.shm_channel_unlink(_check_name(name), flags)
    if rc:
        _errors.raise_error(rc, name, 0, "unlink")
