"""Producer and Consumer: the two ends of a stream channel."""

from __future__ import annotations

import atexit
import contextlib
import ctypes
import dataclasses
import errno as _errno
import functools
import numbers
import operator
import os
import re
import struct
import sys
import time
import warnings
import weakref
from array import array
from bisect import bisect_right
from collections.abc import Callable, Iterable, Iterator
from itertools import accumulate, chain
from types import TracebackType
from typing import TYPE_CHECKING, Any, TypeVar

from . import _errors
from ._errors import ChannelClosedError, EndOfStream
from ._lib import ffi, lib

if TYPE_CHECKING:
    import numpy as np
    import numpy.typing as npt
    from typing_extensions import Buffer, Self
else:
    Buffer = Any
    Self = Any

__all__ = [
    "Consumer",
    "Producer",
    "Stat",
    "channel_dir",
    "stat",
    "unlink",
]

# A blocking call is made of C calls that each wait at most this long, so that Python can
# run signal handlers (Ctrl-C) and notice close() from another thread in between.
_SLICE_NS = 100_000_000
# Timeouts from this many seconds up (about 292 years, the most an int64 of ns holds), and
# math.inf, wait forever, as None does.
_FOREVER_S = ((1 << 63) - 1) // 1_000_000_000
_MAX_SPIN_S = 10
_ETIMEDOUT = -_errno.ETIMEDOUT
_EINTR = -_errno.EINTR
_EMSGSIZE = -_errno.EMSGSIZE
_EAGAIN = -_errno.EAGAIN
_INT32_MAX = (1 << 31) - 1
_BYTES_TYPES = {bytes, bytearray}
_READ_SCRATCH = 64 * 1024
_BATCH_SCRATCH = 64 * 1024
_WRITE_CHUNK = 64 * 1024
# Iteration takes (holds) up to this many messages per C call, and at most _BATCH_SCRATCH
# bytes of them (at least one message). This is also the bound on what a consumer killed
# inside the loop redelivers (spec/README.md §5.5 "Batch peek"; the README and __iter__ say
# it): 1024 rather than 256 since issue 14 (64 B messages: ~10% less per message).
_ITER_BATCH = 1024

_PRODUCER = lib.SHM_CHANNEL_PRODUCER
_CONSUMER = lib.SHM_CHANNEL_CONSUMER
_OBSERVER = lib.SHM_CHANNEL_OBSERVER

_NAME_RE = re.compile(r"/?[A-Za-z0-9_-][A-Za-z0-9._-]*\Z")

_c_write = lib.shm_channel_write
_c_write_batch = lib.shm_channel_write_batch
_c_read = lib.shm_channel_read
_c_read_batch = lib.shm_channel_read_batch
_c_peek = lib.shm_channel_peek
_c_release = lib.shm_channel_release
_c_reserve = lib.shm_channel_reserve
_c_commit = lib.shm_channel_commit
_c_abort = lib.shm_channel_abort
_c_detach = lib.shm_channel_detach
# The batch peek and the mapping window (library 1.0 since issue 14): None in an older one,
# whose callers take the per-message paths instead.
_c_peek_batch = getattr(lib, "shm_channel_peek_batch", None)
_c_release_n = getattr(lib, "shm_channel_release_n", None)
_c_mapping = getattr(lib, "shm_channel_mapping", None)


def _try_write_compat(h: Any, data: Any, size: int) -> int:
    return _c_write(h, data, size, 0)  # type: ignore[no-any-return]


def _try_read_compat(h: Any, buf: Any, cap: int) -> int:
    lenp = ffi.new("uint64_t *")
    rc: int = _c_read(h, buf, cap, lenp, 0)
    return rc or int(lenp[0])


# One try with fewer arguments (library 1.0 since issue 14; cffi's ABI mode pays for each
# argument): write() and read() make the waiting call only when it returns -EAGAIN. With an
# older library, the same call with timeout 0 (the functions above), with the same results.
_c_try_write = getattr(lib, "shm_channel_try_write", None) or _try_write_compat
_c_try_read = getattr(lib, "shm_channel_try_read", None) or _try_read_compat

_ERANGE = -_errno.ERANGE


def _try_zc_compat(h: Any, arg: int) -> int:
    return _ERANGE  # "use the pointer call": the stream blocks' waiting path


# One-try zero copy (library 1.0 since issue 14): reserve/peek returning the view's offset in
# the handle's mapping, so that a block slices the window without a pointer out-parameter.
# -EAGAIN (not ready) and -ERANGE (not in the mapping; with an older library always) go on
# with the waiting pointer call.
_c_try_reserve = getattr(lib, "shm_channel_try_reserve", None) or _try_zc_compat
_c_try_peek = getattr(lib, "shm_channel_try_peek", None) or _try_zc_compat

_EOPNOTSUPP = -_errno.EOPNOTSUPP
_from_buffer = ffi.from_buffer
_unpack = ffi.unpack
_struct_unpack_from = struct.unpack_from
_count_of = operator.countOf
_u64_bytes = struct.Struct("=Q").pack
_cbuffer = ffi.buffer
_monotonic_ns = time.monotonic_ns

_T = TypeVar("_T", bound=ctypes.Structure)
_F = TypeVar("_F", bound=Callable[..., Any])


def _seconds(value: float, what: str) -> float:
    """`value` if it is a real number (int, float, numpy floating...); TypeError for
    anything else, bool and numeric strings included.
    """
    t = type(value)
    if t is float or t is int:
        return value
    if t is bool or not isinstance(value, numbers.Real):
        raise TypeError(f"{what} must be a number of seconds, not {t.__name__}")
    return float(value)


def _timeout_ns(timeout: float | None) -> int:
    """A timeout in seconds to the C library's nanoseconds, -1 meaning forever.

    None, math.inf and anything from _FOREVER_S up wait forever; 0 never waits. Negative
    numbers and NaN raise ValueError, anything but a real number TypeError.
    """
    if timeout is None:
        return -1
    timeout = _seconds(timeout, "timeout")
    if not timeout >= 0:  # also NaN
        raise ValueError(
            f"timeout must be None (or math.inf) to wait forever, or a number of seconds "
            f">= 0, not {timeout!r}"
        )
    if timeout >= _FOREVER_S:
        return -1
    return int(timeout * 1e9)


def _first_wait(timeout: float | None) -> tuple[int, int | None]:
    """(ns for the first C call, deadline for the rest or None) of a blocking call."""
    ns = _timeout_ns(timeout)
    if ns < 0:
        return _SLICE_NS, None
    start = _monotonic_ns()
    return (ns if ns < _SLICE_NS else _SLICE_NS), start + ns


def _int_arg(value: int, what: str) -> int:
    """`value` as an int: ints and what has __index__ (numpy integers); TypeError for
    anything else, floats, numeric strings and bool included.
    """
    if type(value) is int:
        return value
    if isinstance(value, bool):
        raise TypeError(f"{what} must be an int, not bool")
    try:
        return operator.index(value)
    except TypeError:
        raise TypeError(f"{what} must be an int, not {type(value).__name__}") from None


def _check_name(name: str) -> bytes:
    if not isinstance(name, str):
        raise TypeError(f"channel name must be a str, not {type(name).__name__}")
    bare = name[1:] if name.startswith("/") else name
    if not _NAME_RE.match(name) or not 1 <= len(bare) <= lib.SHM_CHANNEL_NAME_MAX:
        raise ValueError(
            f"invalid channel name {name!r}: use 1 to {lib.SHM_CHANNEL_NAME_MAX} characters "
            "from [A-Za-z0-9._-], not starting with '.', optionally after one '/'"
        )
    return name.encode("ascii")


def _check_capacity(capacity: int) -> int:
    capacity = _int_arg(capacity, "capacity")
    if capacity and (
        capacity < lib.SHM_CHANNEL_MIN_CAPACITY
        or capacity > lib.SHM_CHANNEL_MAX_CAPACITY
        or capacity & (capacity - 1)
    ):
        raise ValueError(
            f"capacity must be 0 (any existing, or the default when creating) or a power of "
            f"two from {lib.SHM_CHANNEL_MIN_CAPACITY} to {lib.SHM_CHANNEL_MAX_CAPACITY}, "
            f"not {capacity}"
        )
    return capacity


def _release_views(views: list[memoryview]) -> None:
    """Release the memoryviews handed out for one message, so that using them later raises
    ValueError. One with an export cannot be released; whatever holds the export also
    holds the mapping alive (see _Keep), so it stays safe, only stale.
    """
    for view in views:
        with contextlib.suppress(BufferError):
            view.release()


class _Keep:
    """Destructor of the cdata behind each view of a message: while any view, or any array
    or memoryview made from one, exists, it holds the channel's handle (and so the mapping)
    alive, and counts itself in `live`.
    """

    __slots__ = ("_h", "_live")

    def __init__(self, h: Any, live: list[int]) -> None:
        self._h = h
        self._live = live
        live[0] += 1

    def __call__(self, _ptr: Any) -> None:
        self._live[0] -= 1


# A handle's window on its mapping: (memoryview, start address, length).
_NO_WINDOW: tuple[Any, int, int] = (None, 0, 0)


def _detach(claim: list[Any]) -> None:
    """End the role of the handle in `claim`, if nobody did yet (list.pop is atomic)."""
    try:
        h = claim.pop()
    except IndexError:
        return
    _c_detach(h)
    if sys.getrefcount(h) <= 2:  # only `h` here and getrefcount's argument
        ffi.release(h)  # nothing refers to the mapping any more: unmap it now


class _Busy:
    """``with _Busy(channel):`` brackets C calls on the channel's handle: the call is marked
    (``_busy``) before it looks at the handle, and if close() came from another thread
    meanwhile, this thread, the last to use the handle, ends its role on the way out (see
    _Channel.close()).

    Not on the hottest paths (Producer.write, Consumer.read, the stream reserve/peek blocks,
    iteration): there the same lines are written out by hand, since this context manager
    costs an object and two Python calls, 150-300 ns a call (timeit, against 40 ns for the
    written-out try/finally), a fifth of a whole write or read.
    """

    __slots__ = ("_ch",)

    def __init__(self, channel: Any) -> None:
        self._ch = channel

    def __enter__(self) -> None:
        self._ch._busy = True

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        ch = self._ch
        ch._busy = False
        if ch._closing:
            _detach(ch._claim)


class _Block:
    """What every reserve and peek block (``with channel.reserve(n) as view:``, of every
    kind) does on leaving: release the views it handed out (using one later raises
    ValueError), then, marked busy as any C call (see _Busy), finish the message: commit
    _size bytes (a reservation: _reserves) or release it (a peek); after an exception,
    _undo it instead (abort; release; None keeps a peeked message for the next read). A
    reservation left after close() raises ChannelClosedError (close() dropped it); a
    peek's message just stays for the next consumer. A C error is raised as _failed
    makes it.

    The C calls are the same for every kind (shm_channel_commit, _abort, _release). The
    marking is written out rather than `with _Busy(ch)`: stream reserve/peek are hot.
    """

    __slots__ = ("_ch", "_size", "_views")
    _reserves = False
    _undo: Any = None
    # A stream block is reused by its channel (one object per handle, see Producer.reserve):
    # it forgets the channel on leaving (so it holds no cycle), which marks it free again.
    _reused = False

    def _failed(self, ch: Any, rc: int) -> Exception:
        return ch._error(rc, "commit" if self._reserves else "release")  # type: ignore[no-any-return]

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        ch = self._ch
        if self._reused:
            self._ch = None
        views = self._views
        if views:
            self._views = ()
            for view in views:
                try:  # noqa: SIM105 (faster than contextlib.suppress)
                    view.release()
                except BufferError:
                    pass  # exported (numpy): whatever holds it holds the mapping alive
        if exc_type is not None and self._undo is None:
            return  # a peeked message stays for the next read
        try:
            ch._busy = True
            h = ch._h
            if h is None:
                if exc_type is None and self._reserves:
                    raise ch._closed_error()  # close() dropped the reservation
                return
            if exc_type is not None:
                self._undo(h)
                return
            rc = _c_commit(h, self._size) if self._reserves else _c_release(h)
        finally:
            ch._busy = False
            if ch._closing:
                _detach(ch._claim)
        if rc:
            raise self._failed(ch, rc)


def _in_call(method: _F) -> _F:
    """Mark a method as making C calls on the handle (see _Channel.close()): the method
    must take the handle (self._handle()) inside, after the mark is set.
    """

    @functools.wraps(method)
    def marked(self: _Channel, *args: Any, **kwargs: Any) -> Any:
        with _Busy(self):
            return method(self, *args, **kwargs)

    return marked  # type: ignore[return-value]


def _make_finalizer(pid: int) -> Any:
    def close_handle(handle: Any) -> None:
        # A forked child shares the parent's locks through the inherited descriptor:
        # closing there would end the parent's stream. Only the opener closes.
        if os.getpid() == pid:
            lib.shm_channel_close(handle)

    return close_handle


_live_channels: weakref.WeakSet[_Channel] = weakref.WeakSet()


def _after_fork_in_child() -> None:
    for channel in list(_live_channels):
        channel._forget_after_fork()


def _close_all_at_exit() -> None:
    # Producers still open at exit end their streams cleanly, rather than leaving the
    # consumer to find the producer dead.
    channels = list(_live_channels)
    for channel in channels:
        channel.close()
    # A call blocked in a (daemon) thread ends its role as it returns, within one wait
    # slice: give it that time before the interpreter stops running threads.
    deadline = _monotonic_ns() + 5 * _SLICE_NS
    for channel in channels:
        while channel._claim and _monotonic_ns() < deadline:
            time.sleep(0.001)


os.register_at_fork(after_in_child=_after_fork_in_child)
atexit.register(_close_all_at_exit)


@dataclasses.dataclass(frozen=True)
class Stat:
    """A snapshot of a channel's header counters (``shm_channel_stat_t``).

    Positions and counters are free-running 64-bit numbers. ``producer_state`` and
    ``consumer_state`` are 0 (never attached), 1 (attached, alive or died) or 2 (closed;
    for the producer this is end-of-stream). ``*_alive`` say whether a live process holds
    the role now. ``empty_events`` and ``full_events`` count C calls that had to wait;
    a blocking Python call is made of C calls of at most 0.1 s each, so an idle wait
    adds up to ten a second.
    """

    kind: int
    layout_major: int
    layout_minor: int
    capacity: int
    max_payload: int
    write_pos: int
    read_pos: int
    used: int
    msgs_written: int
    bytes_written: int
    msgs_read: int
    bytes_read: int
    full_events: int
    empty_events: int
    producer_wakes: int
    consumer_wakes: int
    producer_sleeps: int
    consumer_sleeps: int
    producer_state: int
    consumer_state: int
    producer_epoch: int
    consumer_epoch: int
    producer_alive: bool
    consumer_alive: bool
    in_use: bool
    creator_pid: int
    created_ns: int


_STAT_FIELDS = [f.name for f in dataclasses.fields(Stat)]
_STAT_BOOLS = {"producer_alive", "consumer_alive", "in_use"}


def _stat_from_c(st: Any) -> Stat:
    values = {f: getattr(st, f) for f in _STAT_FIELDS}
    for f in _STAT_BOOLS:
        values[f] = bool(values[f])
    return Stat(**values)


class _Channel:
    """What producers and consumers share: opening, closing, waiting, errors."""

    _role = 0
    # What a kind of channel changes in __init__ (the compat classes: _compat.py).
    _kind_flags = 0
    _check_name = staticmethod(_check_name)
    _check_capacity = staticmethod(_check_capacity)
    _h: Any = None
    _read_state: Any = None
    _closing = False
    _busy = False
    _claim: list[Any] = []  # noqa: RUF012 (replaced per instance)
    _window: tuple[Any, int, int] = _NO_WINDOW
    _zc_block: Any = None  # the reused stream reserve/peek block (Producer, Consumer)

    def __init__(
        self,
        name: str,
        capacity: int = 0,
        *,
        create: bool = True,
        exclusive: bool = False,
        mode: int = 0o600,
        allow_foreign: bool = False,
        spin: float | None = None,
    ) -> None:
        cname = self._check_name(name)
        capacity = self._check_capacity(capacity)
        if exclusive and not create:
            raise ValueError("exclusive=True needs create=True")
        mode = _int_arg(mode, "mode")
        if not 0 < mode <= 0o777:
            raise ValueError(f"mode must be permission bits such as 0o600, not {mode!r}")
        self._name = name
        self._closing = False
        self._live_views = [0]
        flags = self._kind_flags
        if create:
            flags |= lib.SHM_CHANNEL_CREATE
        if exclusive:
            flags |= lib.SHM_CHANNEL_EXCL
        if allow_foreign:
            flags |= lib.SHM_CHANNEL_ALLOW_FOREIGN
        out = ffi.new("shm_channel_t **")
        self._open(out, cname, flags, capacity, mode)
        # The handle closes when the last reference to this cdata goes: normally in
        # close(), but later if a call in another thread, or a view of a message that
        # the user kept, still holds it; so no C call ever runs on a closed handle.
        self._h = ffi.gc(out[0], _make_finalizer(os.getpid()))
        # Whoever takes the handle out of this list detaches it (ends the role), once.
        self._claim = [self._h]
        # The same pointer as a plain cdata, for the hottest calls: cffi converts it ~35 ns
        # faster than the ffi.gc one. Used only while a local holds self._h (the handle).
        self._hp = ffi.cast("shm_channel_t *", self._h)
        self._capacity = int(lib.shm_channel_capacity(self._h))
        self._max_payload = int(lib.shm_channel_max_payload(self._h))
        # Where reserve and peek put the message's address: read as an int, directly.
        self._addrp = ffi.new("uintptr_t[1]")
        self._addrpp = ffi.cast("void **", self._addrp)
        _live_channels.add(self)
        if spin is not None:
            self.set_spin(spin)

    def _open(self, out: Any, cname: bytes, flags: int, capacity: int, mode: int) -> None:
        """Open the C handle into out[0], or raise. Other kinds of channel override it."""
        rc = lib.shm_channel_open(out, cname, self._role, flags, capacity, mode)
        if rc:
            _errors.raise_error(rc, self._name, self._role, "open", capacity=capacity, mode=mode)

    # ---- lifetime ---------------------------------------------------------------------

    def close(self) -> None:
        """Close the channel; calling it again does nothing.

        The role ends at once, whatever else still refers to the channel (an exception's
        traceback, say): a producer's close marks end-of-stream (its consumer reads what is
        left, then sees :class:`EndOfStream`), a new producer or consumer may open, and the
        last handle to close a finished stream removes its name. A call blocked in another
        thread stops within 0.1 s with :class:`ChannelClosedError`, and the role ends when
        it does (the C handle is used by one thread at a time, and that thread ends it).

        A view of a peeked or reserved message still referenced (a numpy array made from
        one, say) stays readable and never crashes, but no longer shows the channel: it
        sees a private copy-on-write image of the ring, whose memory stays mapped until the
        view is freed (a :class:`ResourceWarning` says so).
        """
        if self._h is None:
            return
        # Announce the close before looking for a call in flight; a call announces itself
        # (_busy) before looking at the handle. Under the GIL one of the two sees the
        # other, so the handle is detached either here (no call in flight, and none starts)
        # or by the calling thread when its C call returns; never while one runs.
        self._closing = True
        self._h = None
        self._read_state = None
        self._window = _NO_WINDOW  # before _detach: the window holds the handle
        if not self._busy:
            # No call in flight, and none starts: this thread has the handle to itself.
            self._release_held()
            _detach(self._claim)
        if self._live_views[0] > 0:
            warnings.warn(
                f"{type(self).__name__} {self._name!r} closed while {self._live_views[0]} "
                "view(s) of a peeked or reserved message are still referenced (a numpy "
                "array made from one, say); they stay readable, but see a private copy of "
                "the ring, kept in memory until they are freed. Copy what you keep inside "
                "the with block",
                ResourceWarning,
                stacklevel=2,
            )

    def _forget_after_fork(self) -> None:
        # The child shares the parent's locks: it must neither detach nor close.
        self._closing = True
        self._h = None
        self._read_state = None
        self._window = _NO_WINDOW
        self._claim = []

    @property
    def closed(self) -> bool:
        """True once :meth:`close` was called."""
        return self._h is None

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def __repr__(self) -> str:
        state = "closed" if self._h is None else f"capacity={self._capacity}"
        return f"<shm_channel.{type(self).__name__} {self._name!r} {state}>"

    def __reduce__(self) -> Any:
        raise TypeError(
            f"a {type(self).__name__} cannot be pickled or sent to another process: "
            "open the channel by name there"
        )

    # ---- properties -------------------------------------------------------------------

    @property
    def name(self) -> str:
        """The channel's name."""
        return self._name

    @property
    def capacity(self) -> int:
        """Bytes in the ring."""
        return self._capacity

    @property
    def max_payload(self) -> int:
        """The largest message this channel carries, in bytes (capacity/2 - 8)."""
        return self._max_payload

    def stat(self) -> Stat:
        """A snapshot of the channel's counters and peer states."""
        st = ffi.new("shm_channel_stat_t *")
        with _Busy(self):
            rc = lib.shm_channel_stat(self._handle(), st)
        if rc:
            raise self._error(rc, "stat")
        return _stat_from_c(st)

    def set_spin(self, seconds: float) -> None:
        """Set how long a blocking call spins before sleeping: a number of seconds from 0
        to 10 (default 20 µs; 0 sleeps at once). Spinning costs CPU but wakes in well
        under a microsecond.
        """
        value = _seconds(seconds, "spin")
        if not 0 <= value <= _MAX_SPIN_S:  # also NaN
            raise ValueError(f"spin must be from 0 to {_MAX_SPIN_S} seconds, not {seconds!r}")
        ns = int(value * 1e9)
        with _Busy(self):
            rc = lib.shm_channel_set_spin(self._handle(), ns)
        if rc:
            raise self._error(rc, "set_spin")

    # ---- internals ----------------------------------------------------------------------

    def _handle(self) -> Any:
        h = self._h
        if h is None:
            raise self._closed_error()
        return h

    def _closed_error(self) -> ChannelClosedError:
        return ChannelClosedError(f"{type(self).__name__} {self._name!r} is closed")

    def _error(self, rc: int, op: str, **extra: object) -> Exception:
        if self._closing:
            # close() in another thread won the race: the handle answered -EBADF.
            return self._closed_error()
        return _errors.error(
            rc, self._name, self._role, op, timeout=extra.pop("timeout", None), **extra
        )

    def _wait(self, call: Any, deadline: int | None, rc: int) -> int:
        """Go on with a blocking call after its first C call returned `rc`.

        `call(ns)` makes one C call waiting at most `ns`; `deadline` is a monotonic_ns()
        time, or None for no limit. Waits are sliced so that Python runs signal handlers
        (a KeyboardInterrupt propagates from here) and sees close() from another thread;
        after -EINTR the call is retried with the time left (PEP 475).
        """
        while rc == _ETIMEDOUT or rc == _EINTR:
            if self._closing:
                raise self._closed_error()
            if deadline is None:
                ns = _SLICE_NS
            else:
                ns = deadline - _monotonic_ns()
                if ns <= 0:
                    return _ETIMEDOUT
                if ns > _SLICE_NS:
                    ns = _SLICE_NS
            rc = call(ns)
        return rc

    def _view(self, h: Any, ptr: Any, size: int, readonly: bool) -> list[memoryview]:
        # The buffer keeps alive a cdata whose destructor holds the handle: the mapping
        # stays while any view of it, or array made from one, exists.
        keep = ffi.gc(ffi.cast("char *", ptr), _Keep(h, self._live_views))
        base = memoryview(_cbuffer(keep, size))
        return [base.toreadonly(), base] if readonly else [base]

    def _release_held(self) -> None:
        """At close, with no call in flight: give back what a call left held (Consumer)."""

    def _slice_at(self, h: Any, off: int, size: int, readonly: bool) -> memoryview:
        """_slice_slow for a view at offset `off` of the handle's mapping (the one-try
        zero-copy calls return offsets): the window is built first if there is none yet.
        """
        win, start, length = self._window
        if win is None:
            win, start, length = self._make_window(h, readonly)
            if win is None:
                raise self._error(-_errno.EINVAL, "mapping")
        if off + size <= length:
            return win[off : off + size]  # type: ignore[no-any-return]
        return self._slice_slow(h, start + off, size, readonly)

    def _make_window(self, h: Any, readonly: bool) -> tuple[Any, int, int]:
        """(window, start address, length) of the handle's whole mapping, kept as
        self._window unless close() has begun; (None, 0, 0) if the library cannot say.
        """
        basep = ffi.new("void **")
        lenp = ffi.new("uint64_t *")
        if _c_mapping is None or _c_mapping(h, basep, lenp) != 0:
            return None, 0, 0
        start = int(ffi.cast("uintptr_t", basep[0]))
        length = int(lenp[0])
        keep = ffi.gc(ffi.cast("char *", start), _Keep(h, self._live_views))
        win = memoryview(_cbuffer(keep, length))
        if readonly:
            win = win.toreadonly()
        if not self._closing:  # a window kept after close() would hold the handle
            self._window = (win, start, length)
        return win, start, length

    def _slice_slow(self, h: Any, addr: int, size: int, readonly: bool) -> memoryview:
        """A view of `size` bytes at `addr`, for a message outside the handle's window: the
        first one (the window is built now) or one that is not in the mapping at all (a
        compat message split at the wrap is handed out as a copy).

        The window is one memoryview over the handle's whole mapping (shm_channel_mapping),
        built once, whose cffi buffer has a _Keep: the handle, and so the mapping, stays
        alive (and counted in _live_views) while the window or any unreleased view of it
        exists, a slice still in its block or one that numpy made from it. close() drops
        the window first, so what it still counts was leaked. A slice is released at the
        end of its block, as the per-message views are.
        """
        win, start, length = self._window
        if win is None:
            win, start, length = self._make_window(h, readonly)
        off = addr - start
        if win is not None and off >= 0 and off + size <= length:
            return win[off : off + size]  # type: ignore[no-any-return]
        return self._view(h, ffi.cast("char *", addr), size, readonly)[0]


class Producer(_Channel):
    """The writing end of a stream channel.

    ``Producer(name, capacity=0, *, create=True, exclusive=False, mode=0o600,
    allow_foreign=False, spin=None)``

    - ``capacity``: ring bytes, a power of two from 1 KiB to 1 TiB; 0 accepts an existing
      channel's and creates 1 MiB. The largest message is capacity/2 - 8 bytes. Both sides
      must agree, since either may create the channel.
    - ``create``: create the channel if it does not exist; ``exclusive``: fail with
      :class:`FileExistsError` if it does.
    - ``mode``: permission bits of a new segment. An existing one that is more permissive,
      or owned by another user, is refused (:class:`PermissionError`) unless
      ``allow_foreign=True``.
    - ``spin``: seconds a blocking call spins before sleeping (see :meth:`set_spin`).

    Only one live producer may hold a channel (:class:`ChannelBusy` otherwise). Closing it
    (or leaving its ``with`` block) marks end-of-stream. Timeouts are in seconds (any real
    number): ``None`` or ``math.inf`` waits forever and ``0`` never waits; a negative one or
    NaN raises :class:`ValueError`, a non-number (``bool`` too) :class:`TypeError`. Whole
    numbers (``capacity``, ``mode``, sizes) must be ints or have ``__index__`` (numpy
    integers): :class:`TypeError` otherwise, :class:`ValueError` out of range. An object
    may be shared by threads, but one thread at a time must use it (:meth:`close` excepted).
    """

    _role = _PRODUCER

    def write(self, data: Buffer, timeout: float | None = None) -> None:
        """Copy one message (any contiguous buffer: bytes, bytearray, memoryview, numpy
        array, ctypes object) into the ring, waiting up to `timeout` for room.

        Raises :class:`BlockingIOError` (timeout 0, ring full), :class:`TimeoutError`,
        :class:`MessageTooLarge`, :class:`BrokenPipeError` (the consumer closed and the ring
        is full) or :class:`PeerDied` (the consumer died and the ring is full).
        """
        try:
            # Every C call on the handle is made between `_busy = True` and the finally
            # clause, and looks at the handle only after setting it (see close()).
            self._busy = True
            h = self._h
            if h is None:
                raise self._closed_error()
            if type(data) is not bytes:
                data = _from_buffer(data)
            size = len(data)  # type: ignore[arg-type]
            if timeout is None:
                # One try first (3 arguments: cffi's cost grows with them), then the wait.
                rc = _c_try_write(self._hp, data, size)
                if rc == 0:
                    return
                if rc == _EAGAIN:
                    rc = _c_write(h, data, size, _SLICE_NS)
                    if rc == _ETIMEDOUT or rc == _EINTR:
                        rc = self._wait(lambda ns: _c_write(h, data, size, ns), None, rc)
            else:
                first, deadline = _first_wait(timeout)
                rc = _c_write(h, data, size, first)
                if rc == _ETIMEDOUT or rc == _EINTR:
                    rc = self._wait(lambda ns: _c_write(h, data, size, ns), deadline, rc)
        finally:
            self._busy = False
            if self._closing:
                _detach(self._claim)
        if rc:
            raise self._error(rc, "write", size=size, limit=self._max_payload, timeout=timeout)

    @_in_call
    def write_many(self, messages: Iterable[Buffer], timeout: float | None = None) -> int:
        """Write several messages in order, with few C calls (about one per 64 KiB).

        Returns how many were written: all of them, unless `timeout` ran out first (then
        the rest were not written). Raises, as :meth:`write` does, if not even the first
        could be written. Every message is checked against :attr:`max_payload` before any
        is written; an error after some were written (the consumer died or closed) is
        raised with the count in its ``written`` attribute.
        """
        h = self._handle()
        msgs = messages if isinstance(messages, (list, tuple)) else list(messages)
        count = len(msgs)
        if count == 0:
            return 0
        # len() is the size in bytes of bytes and bytearray only (countOf: all bytes, the
        # usual case, checked at C speed).
        if _count_of(map(type, msgs), bytes) == count or set(map(type, msgs)) <= _BYTES_TYPES:
            lens = array("Q", map(len, msgs))
        else:
            lens = array("Q", [memoryview(m).nbytes for m in msgs])
        total = sum(lens)
        if total > self._max_payload:  # else none of them can be too large
            biggest = max(lens)
            if biggest > self._max_payload:
                raise self._error(_EMSGSIZE, "write", size=biggest, limit=self._max_payload)
        # Join the messages a chunk of about _WRITE_CHUNK bytes at a time: one C call per
        # chunk (or per ring-full), and a working set that stays in the CPU cache.
        if total <= _WRITE_CHUNK:
            bounds = [count]
        else:
            ends = list(accumulate(lens))
            bounds = []
            i = 0
            while i < count:
                limit = (ends[i - 1] if i else 0) + _WRITE_CHUNK
                i = max(bisect_right(ends, limit, i), i + 1)
                bounds.append(i)
        lens_c = _from_buffer("uint64_t[]", lens)
        first, deadline = _first_wait(timeout)
        hp = self._hp  # while h holds the handle
        done = 0
        for end in bounds:
            base = _from_buffer(b"".join(msgs[done:end]))
            offset = 0
            while done < end:
                n = min(end - done, _INT32_MAX)
                ptr = base + offset if offset else base
                lp = lens_c + done if done else lens_c
                if done and deadline is not None:
                    first = min(max(0, deadline - _monotonic_ns()), _SLICE_NS)
                rc = _c_write_batch(hp, ptr, lp, n, first)
                if rc == _ETIMEDOUT or rc == _EINTR:
                    rc = self._wait(
                        lambda ns, p=ptr, l_=lp, k=n: _c_write_batch(h, p, l_, k, ns),
                        deadline,
                        rc,
                    )
                if rc < 0:
                    if done and (rc == _ETIMEDOUT or rc == _EAGAIN):
                        return done
                    exc = self._error(
                        rc, "write", size=lens[done], limit=self._max_payload, timeout=timeout
                    )
                    exc.written = done  # type: ignore[attr-defined]
                    raise exc
                if done + rc < end:
                    offset += sum(lens[done : done + rc])
                done += rc
        return done

    def reserve(self, size: int, timeout: float | None = None) -> _StreamReservation:
        """Zero-copy write: ``with producer.reserve(n) as view:`` waits for room for `n`
        bytes and yields a writable memoryview of them inside the ring. Fill it; leaving the
        block publishes the message, and an exception inside it drops the message instead.

        The view is released at the end of the block. Anything made from it (a numpy
        array, say) must not be used afterwards: it would write into the ring.
        """
        if type(size) is not int:
            size = _int_arg(size, "size")
        if size < 0:
            raise ValueError(f"size must be >= 0, not {size}")
        if timeout is not None:
            _timeout_ns(timeout)  # checked now, not at the with statement
        blk = self._zc_block
        if blk is not None and blk._ch is None:  # free: reused (no object per block)
            blk._ch = self
            blk._size = size
            blk._timeout = timeout
            return blk
        blk = _StreamReservation(self, size, timeout)
        self._zc_block = blk  # (one never entered stays in use: it is just not reused)
        return blk

    @_in_call
    def write_array(self, array: npt.ArrayLike, timeout: float | None = None) -> None:
        """Write a numpy array as one message: a ``.npy`` header (dtype, shape, order)
        followed by its data, copied once, straight into the ring.

        The format is NumPy's own ``.npy`` format, version 1.0: a saved message loads with
        ``numpy.load``, and the data starts at a multiple of 64 bytes. Read it with
        :meth:`Consumer.read_array` or :meth:`Consumer.peek_array`.
        """
        from ._ndarray import encode_array

        header, body = encode_array(array)
        size = len(header) + body.nbytes
        h = self._handle()
        ptr = self._reserve_ptr(h, size, timeout)
        try:
            ffi.memmove(ptr, header, len(header))
            if body.nbytes:
                ffi.memmove(ptr + len(header), body, body.nbytes)
        except BaseException:
            _c_abort(h)
            raise
        rc = _c_commit(h, size)
        if rc:
            raise self._error(rc, "commit")

    def _reserve_ptr(self, h: Any, size: int, timeout: float | None) -> Any:
        # The caller marks the call (_busy).
        if size > self._max_payload:
            raise self._error(_EMSGSIZE, "reserve", size=size, limit=self._max_payload)
        pp = ffi.new("void **")
        first, deadline = _first_wait(timeout)
        rc = _c_reserve(h, size, pp, first)
        if rc == _ETIMEDOUT or rc == _EINTR:
            rc = self._wait(lambda ns: _c_reserve(h, size, pp, ns), deadline, rc)
        if rc:
            raise self._error(rc, "reserve", size=size, limit=self._max_payload, timeout=timeout)
        return ffi.cast("char *", pp[0])


class _StreamReservation(_Block):
    """The context manager returned by :meth:`Producer.reserve`: the view is a slice of the
    handle's window on its mapping (see _Channel._slice). The producer reuses one such
    object: reserve() hands it out again once its block has ended (a block entered once).
    """

    __slots__ = ("_timeout",)
    _reserves = True
    _undo = _c_abort
    _reused = True

    def __init__(self, channel: Producer, size: int, timeout: float | None) -> None:
        self._ch = channel
        self._size = size
        self._timeout = timeout
        self._views: tuple[memoryview, ...] = ()

    def __enter__(self) -> memoryview:
        ch = self._ch
        if ch is None:
            raise ValueError("a reserve() block can be entered once: call reserve() again")
        size = self._size
        # Written out rather than `with _Busy(ch)` (see _Busy): this is a hot path.
        try:
            ch._busy = True
            h = ch._h
            if h is None:
                raise ch._closed_error()
            if size > ch._max_payload:
                raise ch._error(_EMSGSIZE, "reserve", size=size, limit=ch._max_payload)
            off = _c_try_reserve(h, size)
            if off >= 0:
                win, _, length = ch._window  # _Channel._slice, inline
                if off + size <= length:
                    view = win[off : off + size]
                else:
                    view = ch._slice_at(h, off, size, False)
            else:
                view = self._wait(ch, h, size, off)
        finally:
            ch._busy = False
            if ch._closing:
                _detach(ch._claim)
        self._views = (view,)
        return view

    def _wait(self, ch: Any, h: Any, size: int, rc: int) -> memoryview:
        """The waiting reserve, after the one try found no room (or an older library)."""
        if rc != _EAGAIN and rc != _ERANGE:
            raise ch._error(rc, "reserve", size=size, limit=ch._max_payload)
        pp = ch._addrpp
        timeout = self._timeout
        first, deadline = _first_wait(timeout)
        rc = _c_reserve(h, size, pp, first)
        if rc == _ETIMEDOUT or rc == _EINTR:
            rc = ch._wait(lambda ns: _c_reserve(h, size, pp, ns), deadline, rc)
        if rc:
            raise ch._error(rc, "reserve", size=size, limit=ch._max_payload, timeout=timeout)
        return ch._slice_slow(h, ch._addrp[0], size, False)

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        # _Block.__exit__ for the common case (no exception, the channel open, one view),
        # with nothing looked up twice: this is a hot path. Anything else goes there.
        # Written out in _StreamReservation and _StreamPeek, each with its own C call: one
        # shared exit choosing by _reserves measured 400-500 ns slower a reserve+peek pair.
        ch = self._ch
        if exc_type is not None or ch._h is None:
            return _Block.__exit__(self, exc_type, exc, tb)
        self._ch = None
        (view,) = self._views
        self._views = ()
        try:  # noqa: SIM105 (faster than contextlib.suppress)
            view.release()
        except BufferError:
            pass  # exported (numpy): whatever holds it holds the mapping alive
        try:
            ch._busy = True
            rc = _c_commit(ch._h, self._size)
        finally:
            ch._busy = False
            if ch._closing:
                _detach(ch._claim)
        if rc:
            raise self._failed(ch, rc)


class _Reservation(_StreamReservation):
    """The context manager returned by :meth:`Publisher.reserve` (per-message views)."""

    __slots__ = ()
    _reused = False
    __exit__ = _Block.__exit__  # (per-message views: not the one-view fast path)

    def __enter__(self) -> memoryview:
        ch = self._ch
        with _Busy(ch):
            h = ch._handle()
            ptr = ch._reserve_ptr(h, self._size, self._timeout)
            self._views = ch._view(h, ptr, self._size, readonly=False)
        return self._views[0]


class Consumer(_Channel):
    """The reading end of a stream channel.

    ``Consumer(name, capacity=0, *, create=True, exclusive=False, mode=0o600,
    allow_foreign=False, spin=None)``: the arguments are those of :class:`Producer`.

    Only one live consumer may hold a channel; a new one resumes after the last message
    the previous one released. Iterating over a consumer yields each message as bytes
    until end-of-stream. Timeouts and whole numbers are checked as :class:`Producer` says:
    ``None`` or ``math.inf`` waits forever and ``0`` never waits. Reads raise
    :class:`EndOfStream` (a :class:`BrokenPipeError`) once the producer
    closed and everything was read, :class:`PeerDied` once the producer died and
    everything it committed was read, :class:`BlockingIOError` (timeout 0) or
    :class:`TimeoutError` when nothing came in time.
    """

    _role = _CONSUMER
    # Set before __init__ runs: Consumer(spin=...) calls set_spin(), whose _handle() looks.
    _held: tuple[list[bytes], Iterator[bytes]] | None = None

    def __init__(
        self,
        name: str,
        capacity: int = 0,
        *,
        create: bool = True,
        exclusive: bool = False,
        mode: int = 0o600,
        allow_foreign: bool = False,
        spin: float | None = None,
    ) -> None:
        super().__init__(
            name,
            capacity,
            create=create,
            exclusive=exclusive,
            mode=mode,
            allow_foreign=allow_foreign,
            spin=spin,
        )
        cap = min(_READ_SCRATCH, self._max_payload)
        scratch = ffi.new("char[]", cap)
        self._lenp = ffi.new("uint64_t[1]")
        self._lenq = memoryview(_cbuffer(self._lenp)).cast("Q")  # *_lenp, read cheaply
        # What read() needs, in one attribute (None once closed): slicing the cffi buffer
        # and indexing a memoryview of the length are the cheapest ways out of cffi.
        self._read_state: Any = (
            self._h,
            scratch,
            cap,
            self._lenp,
            _cbuffer(scratch),
            memoryview(_cbuffer(self._lenp)).cast("Q"),
            self._hp,
        )
        self._ptrp = ffi.new("void **")
        self._batch_cap = 0
        self._batch_count = 0
        self._batch: Any = None
        self._batch_lens: Any = None
        # The batch peek (_take): whether this kind has it, its arrays, and what iteration
        # holds: (messages, their iterator), or None.
        self._batch_peek = _c_peek_batch is not None
        self._pb_count = 0
        self._pb_ptrs: Any = None
        self._pb_addrs: Any = None
        self._pb_lens: Any = None
        self._pb_formats: dict[tuple[int, int], struct.Struct] = {}
        self._pb_same: dict[tuple[int, int], bytes] = {}
        self._mapbytes: Any = None
        self._held: tuple[list[bytes], Iterator[bytes]] | None = None
        self._saved_state = self._read_state

    def read(self, timeout: float | None = None) -> bytes:
        """The next message, as bytes (one copy out of the ring)."""
        try:
            self._busy = True  # see Producer.write
            state = self._read_state
            if state is None:  # closed, or iteration holds a batch
                self._handle()  # raises, or gives back what iteration handed out
                state = self._saved_state
            h, buf, cap, lenp, data, size, hp = state
            if timeout is None:
                # One try first (3 arguments, the length returned), then the wait.
                n = _c_try_read(hp, buf, cap)
                if n >= 0:
                    return data[:n]  # type: ignore[no-any-return]
                rc = n
                if rc == _EAGAIN:
                    rc = _c_read(h, buf, cap, lenp, _SLICE_NS)
                    if rc == 0:
                        return data[: size[0]]  # type: ignore[no-any-return]
                deadline = None
            else:
                first, deadline = _first_wait(timeout)
                rc = _c_read(h, buf, cap, lenp, first)
            if rc == _ETIMEDOUT or rc == _EINTR:
                rc = self._wait(lambda ns: _c_read(h, buf, cap, lenp, ns), deadline, rc)
            if rc == 0:
                return data[: size[0]]  # type: ignore[no-any-return]
            if rc == _EMSGSIZE:
                # Larger than the scratch buffer: it is peeked now; copy it out directly.
                ptrp = self._ptrp
                rc = _c_peek(h, ptrp, lenp, 0)
                if rc == 0:
                    whole: bytes = _cbuffer(ptrp[0], lenp[0])[:]
                    rc = _c_release(h)
                    if rc == 0:
                        return whole
        finally:
            self._busy = False
            if self._closing:
                _detach(self._claim)
        raise self._error(rc, "read", timeout=timeout)

    @_in_call
    def read_into(self, buffer: Buffer, timeout: float | None = None) -> int:
        """Copy the next message into `buffer` (any writable contiguous buffer: bytearray,
        memoryview, numpy array, ctypes object) and return its size in bytes.

        If it is larger than the buffer, :class:`MessageTooLarge` says how large (``size``)
        and the message stays unread.
        """
        h = self._handle()
        dst = _from_buffer(buffer, require_writable=True)
        cap = len(dst)
        lenp = self._lenp
        first, deadline = _first_wait(timeout)
        rc = _c_read(h, dst, cap, lenp, first)
        if rc == _ETIMEDOUT or rc == _EINTR:
            rc = self._wait(lambda ns: _c_read(h, dst, cap, lenp, ns), deadline, rc)
        if rc:
            raise self._error(rc, "read", size=lenp[0], limit=cap, timeout=timeout)
        return int(lenp[0])

    @_in_call
    def read_many(self, max_count: int = 1024, timeout: float | None = None) -> list[bytes]:
        """Up to `max_count` messages, as a list of bytes, in one C call (and one to release).

        Waits up to `timeout` for the first message, then takes those that are ready and
        fit in 64 KiB (a first message larger than that comes alone), without waiting more.
        Raises as :meth:`read` does when there is none.
        """
        h = self._handle()
        max_count = _int_arg(max_count, "max_count")
        if max_count <= 0:
            if max_count == 0:
                return []
            raise ValueError(f"max_count must be >= 0, not {max_count}")
        max_count = min(max_count, _INT32_MAX)
        if self._batch_peek:
            msgs = self._take(h, max_count, timeout)
            if msgs is not None:
                # Copied out: every one is handed over now, so all are released.
                rc = _c_release_n(self._hp, len(msgs))
                if rc:
                    raise self._error(rc, "release")
                return msgs
        if self._batch_count < max_count:
            self._batch_count = max(max_count, 64)
            self._batch_lens = ffi.new("uint64_t[]", self._batch_count)
        if self._batch is None:
            # 64 KiB (or the ring, if smaller): a batch's copies stay in the CPU cache, and its
            # bytes objects few enough that the allocator reuses their memory.
            self._batch_cap = min(_BATCH_SCRATCH, self._capacity)
            self._batch = ffi.new("char[]", self._batch_cap)
        lens = self._batch_lens
        first, deadline = _first_wait(timeout)
        buf, cap = self._batch, self._batch_cap
        rc = _c_read_batch(h, buf, cap, lens, max_count, first)
        if rc == _ETIMEDOUT or rc == _EINTR:
            rc = self._wait(
                lambda ns: _c_read_batch(h, buf, cap, lens, max_count, ns), deadline, rc
            )
        if rc == _EMSGSIZE:
            # The first message is larger than the buffer: it comes alone, in one its size.
            cap = int(lens[0])
            buf = ffi.new("char[]", cap)
            rc = _c_read_batch(h, buf, cap, lens, 1, 0)
        if rc < 0:
            raise self._error(rc, "read", timeout=timeout)
        sizes = _unpack(lens, rc)
        used = sum(sizes)
        mem = _cbuffer(buf, used)
        if rc == 1:
            return [mem[:]]
        if sizes.count(sizes[0]) == rc:
            # All the same size, as fixed-size records are: split at C speed (the struct
            # module caches the compiled format).
            return list(_struct_unpack_from(f"{sizes[0]}s" * rc, mem))
        # Small messages: one copy out, then cheap bytes slices; large ones: slice the
        # buffer directly (one copy each).
        raw = mem[:] if used < 512 * rc else mem
        out = []
        offset = 0
        for size in sizes:
            out.append(raw[offset : offset + size])
            offset += size
        return out

    def peek(self, timeout: float | None = None) -> _StreamPeek:
        """Zero-copy read: ``with consumer.peek() as view:`` waits for the next message and
        yields a read-only memoryview of it in place, in the ring.

        Leaving the block releases the message to the producer; if the block raises, the
        message stays, and the next read returns it again. The view is released at the end
        of the block; arrays made from it (``numpy.frombuffer(view, ...)``) must not be
        used afterwards, as the producer reuses the space.
        """
        if timeout is not None:
            _timeout_ns(timeout)  # checked now, not at the with statement
        blk = self._zc_block
        if blk is not None and blk._ch is None:  # free: reused (no object per block)
            blk._ch = self
            blk._timeout = timeout
            return blk
        blk = _StreamPeek(self, timeout)
        self._zc_block = blk  # (one never entered stays in use: it is just not reused)
        return blk

    @_in_call
    def read_array(
        self,
        dtype: npt.DTypeLike | None = None,
        shape: tuple[int, ...] | int | None = None,
        timeout: float | None = None,
    ) -> np.ndarray:
        """The next message as a new numpy array (one copy out of the ring).

        Without `dtype`, the message must be one written by :meth:`Producer.write_array`
        (a ``.npy`` header, then the data). With `dtype` (and optionally `shape`), the
        message is raw data of that type, as a C producer sends it. A message that does not
        fit the description raises :class:`ValueError` and stays unread.
        """
        import numpy

        from ._ndarray import describe, view_array

        h = self._handle()
        ptr, size = self._peek_ptr(h, timeout)
        dt, shp, order, offset = describe(_cbuffer(ptr, size), dtype, shape, self._name)
        data = numpy.empty(size - offset, numpy.uint8)
        if data.nbytes:
            ffi.memmove(data, ptr + offset, data.nbytes)
        out = view_array(data, dt, shp, order, 0)
        rc = _c_release(h)
        if rc:
            raise self._error(rc, "release")
        return out

    def peek_array(
        self,
        dtype: npt.DTypeLike | None = None,
        shape: tuple[int, ...] | int | None = None,
        timeout: float | None = None,
    ) -> _PeekArray:
        """Zero-copy numpy read: ``with consumer.peek_array() as a:`` yields a read-only
        array viewing the next message in place; leaving the block releases the message.

        `dtype` and `shape` as in :meth:`read_array`. The array must not be used after the
        block (copy what you keep: ``a.copy()``).
        """
        _timeout_ns(timeout)
        return _PeekArray(self, timeout, dtype, shape)

    @_in_call
    def read_struct(self, cls: type[_T], timeout: float | None = None) -> _T:
        """The next message as a new instance of the ctypes type `cls` (a Structure, an
        array type...), which must be exactly as large as the message; a message of another
        size raises :class:`ValueError` and stays unread. Write one with
        ``producer.write(instance)``.
        """
        h = self._handle()
        ptr, size = self._peek_ptr(h, timeout)
        want = ctypes.sizeof(cls)
        if size != want:
            raise ValueError(
                f"the next message on {self._name!r} is {size} bytes, but {cls.__name__} is "
                f"{want}; it stays unread (read() it to skip it)"
            )
        obj = cls.from_buffer_copy(_cbuffer(ptr, size))
        rc = _c_release(h)
        if rc:
            raise self._error(rc, "release")
        return obj

    def __iter__(self) -> Iterator[bytes]:
        """Each message, as bytes, until end-of-stream (then iteration stops).

        Messages are taken a batch at a time (up to 1024 messages and 64 KiB, at least one
        message), peeked in place and copied out, in one C call; the loop's messages are
        released when it takes the next batch, when it ends (``break``, an exception) and
        before any other call on this consumer, so that a message the loop was not handed
        is never lost. The cost: a consumer process that dies inside the loop has released
        none of its current batch, and the next consumer gets that batch again, so up to
        1024 messages (64 KiB) this one was already handed (:meth:`read` redelivers at most the one
        message a dying consumer had peeked).
        """
        # The loop's next() is chain's, in C, over each batch's list iterator: Python code
        # (_batches) runs once a batch, not once a message.
        return chain.from_iterable(self._batches())

    def _batches(self) -> Iterator[Iterable[bytes]]:
        """The iterators of __iter__'s batches; each is held (self._held) from the moment
        it is handed to chain until the next batch is taken, or the loop ends (chain, and
        with it this generator, is freed: its finally clause gives the handed ones back).
        """
        try:
            while self._batch_peek:
                with _Busy(self):
                    h = self._handle()  # releases what the loop was handed
                    try:
                        msgs = self._take(h, _ITER_BATCH, None)
                    except EndOfStream:
                        return
                    if msgs is None:  # no batch peek for this kind of channel
                        break
                    if self._closing:  # close() came during the wait: the role ends
                        raise self._closed_error()
                    it = iter(msgs)
                    self._held = (msgs, it)
                    self._read_state = None  # read() gives back the loop's messages first
                yield it
        finally:
            if self._held is not None and self._h is not None:
                with _Busy(self):
                    self._handle()
        read = self.read  # one message per call (a compat channel, an older library)
        while True:
            try:
                data = read()
            except EndOfStream:
                return
            yield (data,)

    def _handle(self) -> Any:
        h = self._h
        if h is None:
            raise self._closed_error()
        if self._held is not None:
            self._settle(h)
        return h

    def _settle(self, h: Any) -> None:
        """Release the messages iteration handed out of the batch it holds; the others are
        no longer held (the next read returns them). Made inside a marked call.
        """
        held = self._held
        if held is None:
            return
        self._held = None
        msgs, it = held
        handed = len(msgs) - operator.length_hint(it)
        msgs.clear()  # the loop yields none of the rest: they come again from the ring
        if not self._closing:
            self._read_state = self._saved_state
        if handed:
            rc = _c_release_n(h, handed)
            if rc:
                raise self._error(rc, "release")

    def _release_held(self) -> None:
        if self._held is not None and self._claim:
            with contextlib.suppress(Exception):
                self._settle(self._claim[0])

    def _forget_after_fork(self) -> None:
        super()._forget_after_fork()
        self._held = None

    def _take(self, h: Any, max_count: int, timeout: float | None) -> list[bytes] | None:
        """Up to `max_count` messages (and at most _BATCH_SCRATCH bytes of them, at least
        one message) as bytes, peeked with one shm_channel_peek_batch call: copied out of
        the ring, but NOT released (the caller releases them, with shm_channel_release_n,
        once they are handed over). None if this kind of channel has no batch peek.
        Made inside a marked call.
        """
        if max_count > self._pb_count:
            # No more records fit in the ring than capacity / 8 (each takes 8 bytes or more).
            n = min(max(max_count, 64), self._capacity // 8)
            self._pb_ptrs = ffi.new("const void *[]", n)
            self._pb_addrs = ffi.cast("uintptr_t *", self._pb_ptrs)
            self._pb_lens = ffi.new("uint64_t[]", n)
            self._pb_count = n
        if max_count > self._pb_count:
            max_count = self._pb_count
        ptrs, lens = self._pb_ptrs, self._pb_lens
        if timeout is None:
            rc = _c_peek_batch(self._hp, ptrs, lens, max_count, _SLICE_NS)
            deadline = None
        else:
            first, deadline = _first_wait(timeout)
            rc = _c_peek_batch(h, ptrs, lens, max_count, first)
        if rc == _ETIMEDOUT or rc == _EINTR:
            rc = self._wait(lambda ns: _c_peek_batch(h, ptrs, lens, max_count, ns), deadline, rc)
        if rc < 0:
            if rc == _EOPNOTSUPP:
                self._batch_peek = False
                return None
            raise self._error(rc, "read", timeout=timeout)
        # Equal sizes (fixed-size records), within 64 KiB: the lengths compared as one block
        # of bytes against the cached pattern, no Python int per message.
        size0 = lens[0]
        same = False
        if rc > 1 and size0 * rc <= _BATCH_SCRATCH:
            pattern = self._pb_same.get((size0, rc))
            if pattern is None:
                if len(self._pb_same) > 64:
                    self._pb_same.clear()
                pattern = self._pb_same[size0, rc] = _u64_bytes(size0) * rc
            same = _cbuffer(lens, 8 * rc)[:] == pattern
        sizes = [size0] * rc if same else _unpack(lens, rc)
        if not same and rc > 1 and sum(sizes) > _BATCH_SCRATCH:
            # A batch's copies stay in the CPU cache: cut at 64 KiB (the first always comes).
            total = 0
            for i, size in enumerate(sizes):
                total += size
                if total > _BATCH_SCRATCH and i:
                    rc = i
                    break
            del sizes[rc:]
        addrs = self._pb_addrs
        addr0 = addrs[0]
        win, start, length = self._window
        if win is None:
            self._make_window(h, True)
            win, start, length = self._window
            if win is None:  # closing, or no window: copy each message from its address
                return [_cbuffer(ptrs[i], n)[:] for i, n in enumerate(sizes)]
        mb = self._mapbytes
        if mb is None:
            # Bytes straight out of the mapping: a cffi buffer (slicing one gives bytes),
            # only used inside marked calls, while the window holds the mapping.
            mb = self._mapbytes = _cbuffer(ffi.cast("char *", start), length)
        first_off = addr0 - start
        if rc == 1:
            return [mb[first_off : first_off + size0]]
        stride = 8 + ((size0 + 7) & ~7)
        if (same or sizes.count(size0) == rc) and addrs[rc - 1] - addr0 == stride * (rc - 1):
            # Equal sizes, back to back (no wrap in between), as fixed-size records are:
            # split at C speed by one compiled struct format.
            fmt = self._pb_formats.get((size0, rc))
            if fmt is None:
                if len(self._pb_formats) > 64:
                    self._pb_formats.clear()
                pad = f"{size0}s{stride - size0}x"
                fmt = self._pb_formats[size0, rc] = struct.Struct(pad * (rc - 1) + f"{size0}s")
            if first_off >= 0 and first_off + fmt.size <= length:
                return list(fmt.unpack_from(mb, first_off))
        return [mb[a - start : a - start + n] for a, n in zip(_unpack(addrs, rc), sizes)]

    def _peek_ptr(self, h: Any, timeout: float | None) -> tuple[Any, int]:
        # The caller marks the call (_busy).
        ptrp, lenp = self._ptrp, self._lenp
        first, deadline = _first_wait(timeout)
        rc = _c_peek(h, ptrp, lenp, first)
        if rc == _ETIMEDOUT or rc == _EINTR:
            rc = self._wait(lambda ns: _c_peek(h, ptrp, lenp, ns), deadline, rc)
        if rc:
            raise self._error(rc, "read", timeout=timeout)
        return ffi.cast("char *", ptrp[0]), int(lenp[0])


class _StreamPeek(_Block):
    """The context manager returned by :meth:`Consumer.peek`: the view is a read-only slice
    of the handle's window on its mapping (see _Channel._slice). The consumer reuses one
    such object: peek() hands it out again once its block has ended (a block entered once).
    """

    __slots__ = ("_timeout",)
    _reused = True

    def __init__(self, channel: Consumer, timeout: float | None) -> None:
        self._ch = channel
        self._timeout = timeout
        self._views: tuple[memoryview, ...] | list[memoryview] = ()

    def __enter__(self) -> memoryview:
        ch = self._ch
        if ch is None:
            raise ValueError("a peek() block can be entered once: call peek() again")
        # Written out rather than `with _Busy(ch)` (see _Busy): this is a hot path.
        try:
            ch._busy = True
            h = ch._h
            if h is None:
                raise ch._closed_error()
            if ch._held is not None:
                ch._settle(h)
            off = _c_try_peek(h, ch._lenp)
            if off >= 0:
                size = ch._lenq[0]
                win, _, length = ch._window  # _Channel._slice, inline
                if off + size <= length:
                    view = win[off : off + size]
                else:
                    view = ch._slice_at(h, off, size, True)
            else:
                view = self._wait(ch, h, off)
        finally:
            ch._busy = False
            if ch._closing:
                _detach(ch._claim)
        self._views = (view,)
        return view

    def _wait(self, ch: Any, h: Any, rc: int) -> memoryview:
        """The waiting peek, after the one try found nothing (or an older library, or a
        message outside the mapping, which that try left peeked: this peek returns it).
        """
        if rc != _EAGAIN and rc != _ERANGE:
            raise ch._error(rc, "read", timeout=self._timeout)
        pp, lenp = ch._addrpp, ch._lenp
        timeout = self._timeout
        first, deadline = _first_wait(timeout)
        rc = _c_peek(h, pp, lenp, first)
        if rc == _ETIMEDOUT or rc == _EINTR:
            rc = ch._wait(lambda ns: _c_peek(h, pp, lenp, ns), deadline, rc)
        if rc:
            raise ch._error(rc, "read", timeout=timeout)
        return ch._slice_slow(h, ch._addrp[0], lenp[0], True)

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        # _Block.__exit__ for the common case (no exception, the channel open, one view),
        # with nothing looked up twice: this is a hot path. Anything else goes there.
        # Written out in _StreamReservation and _StreamPeek, each with its own C call: one
        # shared exit choosing by _reserves measured 400-500 ns slower a reserve+peek pair.
        ch = self._ch
        if exc_type is not None or ch._h is None:
            return _Block.__exit__(self, exc_type, exc, tb)
        self._ch = None
        (view,) = self._views
        self._views = ()
        try:  # noqa: SIM105 (faster than contextlib.suppress)
            view.release()
        except BufferError:
            pass  # exported (numpy): whatever holds it holds the mapping alive
        try:
            ch._busy = True
            rc = _c_release(ch._h)
        finally:
            ch._busy = False
            if ch._closing:
                _detach(ch._claim)
        if rc:
            raise self._failed(ch, rc)


class _Peek(_StreamPeek):
    """The context manager behind :meth:`Consumer.peek_array` (per-message views)."""

    __slots__ = ()
    _reused = False
    __exit__ = _Block.__exit__  # (per-message views: not the one-view fast path)

    def __enter__(self) -> memoryview:
        ch = self._ch
        with _Busy(ch):
            h = ch._handle()
            ptr, size = ch._peek_ptr(h, self._timeout)
            self._views = ch._view(h, ptr, size, readonly=True)
        return self._views[0]


class _PeekArray(_Peek):
    """The context manager returned by :meth:`Consumer.peek_array`."""

    __slots__ = ("_dtype", "_shape")

    def __init__(self, channel: Consumer, timeout: float | None, dtype: Any, shape: Any) -> None:
        super().__init__(channel, timeout)
        self._dtype = dtype
        self._shape = shape

    def __enter__(self) -> np.ndarray:  # type: ignore[override]
        from ._ndarray import describe, view_array

        view = super().__enter__()
        try:
            dt, shape, order, offset = describe(view, self._dtype, self._shape, self._ch._name)
        except BaseException:
            self.__exit__(*sys.exc_info())
            raise
        return view_array(view, dt, shape, order, offset)


def unlink(name: str, force: bool = False) -> None:
    """Remove channel `name`. Without `force`, only when no live handle is attached
    (:class:`ChannelBusy` otherwise); handles still open keep working on the removed
    segment. Raises :class:`FileNotFoundError` if there is no such channel.
    """
    rc = lib.shm_channel_unlink(_check_name(name), lib.SHM_CHANNEL_FORCE if force else 0)
    if rc:
        _errors.raise_error(rc, name, 0, "unlink")


def stat(name: str, *, allow_foreign: bool = False) -> Stat:
    """A snapshot of channel `name`'s counters, taken without claiming a role (as the
    ``shm_channel`` command-line tool does).
    """
    out = ffi.new("shm_channel_t **")
    flags = lib.SHM_CHANNEL_ALLOW_FOREIGN if allow_foreign else 0
    rc = lib.shm_channel_open(out, _check_name(name), _OBSERVER, flags, 0, 0o600)
    if rc:
        _errors.raise_error(rc, name, _OBSERVER, "open", capacity=0, mode=0o600)
    try:
        st = ffi.new("shm_channel_stat_t *")
        rc = lib.shm_channel_stat(out[0], st)
        if rc:
            _errors.raise_error(rc, name, _OBSERVER, "stat")
        return _stat_from_c(st)
    finally:
        lib.shm_channel_close(out[0])


def channel_dir() -> str:
    """The directory channels live in: ``$SHM_CHANNEL_DIR`` if set, else ``/dev/shm``."""
    return str(ffi.string(lib.shm_channel_dir()).decode())
