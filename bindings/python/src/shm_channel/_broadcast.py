"""Publisher and Subscriber: the two ends of a broadcast channel (kind 2, spec/broadcast.md).

One publisher, any number of subscribers. The publisher never waits; a subscriber reads at
its own pace and, when the publisher laps it, learns exactly how many messages it missed.
Values are typed (spec/topics.md): the type comes from a default value or a type, as in
seed 000's ``Publisher(name, 0.0)``.
"""

from __future__ import annotations

import dataclasses
import errno as _errno
import time
from collections.abc import Iterator
from typing import Any

from . import _errors
from ._channel import (
    _EAGAIN,
    _EINTR,
    _ETIMEDOUT,
    Producer,
    _Block,
    _Busy,
    _Channel,
    _detach,
    _first_wait,
    _in_call,
    _int_arg,
    _Reservation,
    _timeout_ns,
)
from ._errors import EndOfStream
from ._lib import ffi, lib
from ._topic import Codec, codec_for, describe_tag

__all__ = ["BroadcastStat", "Publisher", "SubscriberStat", "Subscriber"]

_PUBLISHER = lib.SHM_CHANNEL_PUBLISHER
_SUBSCRIBER = lib.SHM_CHANNEL_SUBSCRIBER
_c_write = lib.shm_channel_write
_c_recv = lib.shm_channel_recv
_c_read_latest = lib.shm_channel_read_latest
_c_peek = lib.shm_channel_peek
_c_peek_latest = lib.shm_channel_peek_latest
_c_release = lib.shm_channel_release
_c_bstat = lib.shm_channel_broadcast_stat
_c_sub_stat = lib.shm_channel_sub_stat
_cbuffer = ffi.buffer
_from_buffer = ffi.from_buffer
_ESTALE = -_errno.ESTALE
_NOTHING: Any = object()


@dataclasses.dataclass(frozen=True)
class BroadcastStat:
    """A snapshot of a broadcast channel (``shm_channel_broadcast_stat_t``)."""

    pub_seq: int  #: number of the newest published message (0: none yet)
    depth: int  #: messages kept
    max_subscribers: int
    subscribers: int  #: entries attached (dead ones count until reclaimed)
    sleepers: int  #: subscribers asleep waiting for a message
    joins: int
    reclaims: int
    type_tag: str  #: the channel's type tag ("" if untyped)


@dataclasses.dataclass(frozen=True)
class SubscriberStat:
    """One subscriber's counters (``shm_channel_sub_stat_t``)."""

    index: int
    state: int
    alive: bool
    pid: int
    epoch: int
    next_seq: int  #: number of the next message it will read
    delivered: int  #: messages delivered intact since it joined
    missed: int  #: messages skipped or overwritten while held, since it joined
    delivered_bytes: int
    lag: int  #: published messages neither read nor missed yet
    sleeps: int
    last_missed: int  #: own handle: messages skipped just before the last one read


def _bstat(h: Any) -> tuple[int, Any]:
    st = ffi.new("shm_channel_broadcast_stat_t *")
    return _c_bstat(h, st), st


def _bstat_from_c(st: Any) -> BroadcastStat:
    return BroadcastStat(
        int(st.pub_seq),
        int(st.depth),
        int(st.max_subscribers),
        int(st.subscribers),
        int(st.sleepers),
        int(st.joins),
        int(st.reclaims),
        ffi.string(st.type_tag).decode("ascii", "replace"),
    )


def channel_type_tag(name: str, allow_foreign: bool = False) -> str:
    """The type tag of the broadcast channel `name`, read without claiming a role."""
    out = ffi.new("shm_channel_t **")
    flags = lib.SHM_CHANNEL_ALLOW_FOREIGN if allow_foreign else 0
    rc = lib.shm_channel_open_broadcast(
        out, name.encode(), lib.SHM_CHANNEL_OBSERVER, flags, ffi.NULL, 0o600
    )
    if rc:
        _errors.raise_error(rc, name, lib.SHM_CHANNEL_OBSERVER, "open")
    try:
        rc, st = _bstat(out[0])
        if rc:
            _errors.raise_error(rc, name, lib.SHM_CHANNEL_OBSERVER, "stat")
        return _bstat_from_c(st).type_tag
    finally:
        lib.shm_channel_close(out[0])


class _Broadcast(_Channel):
    """What publishers and subscribers share: opening with a type, the snapshots."""

    _flags_extra = 0

    def __init__(
        self,
        name: str,
        type: Any = None,
        *,
        depth: int = 0,
        max_payload: int | None = None,
        max_subscribers: int = 0,
        create: bool = True,
        exclusive: bool = False,
        mode: int = 0o600,
        allow_foreign: bool = False,
        spin: float | None = None,
    ) -> None:
        self._codec: Codec = codec_for(type)
        self._depth_arg = _int_arg(depth, "depth")
        self._max_subs_arg = _int_arg(max_subscribers, "max_subscribers")
        self._max_payload_arg = (
            None if max_payload is None else _int_arg(max_payload, "max_payload")
        )
        if self._depth_arg < 0 or self._max_subs_arg < 0 or (self._max_payload_arg or 0) < 0:
            raise ValueError("depth, max_payload and max_subscribers must be >= 0")
        super().__init__(
            name,
            0,
            create=create,
            exclusive=exclusive,
            mode=mode,
            allow_foreign=allow_foreign,
            spin=spin,
        )
        rc, st = _bstat(self._h)
        if rc:
            raise self._error(rc, "stat")
        self._depth = int(st.depth)
        size = self._codec.size
        if size is not None and size > self._max_payload:
            self.close()
            raise ValueError(
                f"channel {name!r} carries at most {self._max_payload} bytes, less than one "
                f"{describe_tag(self._codec.tag)} value ({size} bytes)"
            )

    def _open(self, out: Any, cname: bytes, flags: int, capacity: int, mode: int) -> None:
        cfg = ffi.new("shm_channel_broadcast_config_t *")
        tag = self._codec.tag.encode("ascii")
        keep = ffi.new("char[]", tag) if tag else ffi.NULL
        cfg.type_tag = keep
        cfg.depth = self._depth_arg
        cfg.max_subscribers = self._max_subs_arg
        flags |= self._flags_extra
        mp = self._max_payload_arg
        rc = -_errno.ENOENT
        if mp is None and flags & lib.SHM_CHANNEL_CREATE and not flags & lib.SHM_CHANNEL_EXCL:
            # An existing channel: any max_payload; a new one: the type's (or 4096).
            cfg.max_payload = 0
            rc = lib.shm_channel_open_broadcast(
                out, cname, self._role, flags & ~lib.SHM_CHANNEL_CREATE, cfg, mode
            )
        if rc == -_errno.ENOENT:
            cfg.max_payload = self._codec.max_payload() if mp is None else mp
            if not flags & lib.SHM_CHANNEL_CREATE:
                cfg.max_payload = mp or 0
            rc = lib.shm_channel_open_broadcast(out, cname, self._role, flags, cfg, mode)
        if rc == -_errno.EMEDIUMTYPE:
            try:
                have = channel_type_tag(self._name, bool(flags & lib.SHM_CHANNEL_ALLOW_FOREIGN))
            except OSError:
                have = "(unreadable)"
            want = self._codec.tag
            exc = _errors.TopicTypeError(
                _errno.EMEDIUMTYPE,
                f"channel {self._name!r} carries {describe_tag(have)}, but this "
                f"{_errors._ROLE_NAMES[self._role]} asked for {describe_tag(want)}",
            )
            exc.channel, exc.have, exc.want = self._name, have, want
            raise exc
        if rc:
            config = (
                f"depth={self._depth_arg}, max_payload={int(cfg.max_payload)}, "
                f"max_subscribers={self._max_subs_arg}"
            )
            _errors.raise_error(rc, self._name, self._role, "open", mode=mode, config=config)

    # ---- properties -------------------------------------------------------------------

    @property
    def depth(self) -> int:
        """How many messages the channel keeps (seed 000's ``buffer_num``)."""
        return self._depth

    @property
    def type_tag(self) -> str:
        """The wire type this handle speaks ("" for raw bytes; spec/topics.md)."""
        return self._codec.tag

    @_in_call
    def broadcast_stat(self) -> BroadcastStat:
        """A snapshot of the channel: newest message number, subscribers, type tag."""
        rc, st = _bstat(self._handle())
        if rc:
            raise self._error(rc, "stat")
        return _bstat_from_c(st)

    @_in_call
    def subscriber_stat(self, index: int = -1) -> SubscriberStat:
        """The counters of subscriber entry `index`; -1 (subscribers only): this handle's
        own exact totals.
        """
        st = ffi.new("shm_channel_sub_stat_t *")
        rc = _c_sub_stat(self._handle(), _int_arg(index, "index"), st)
        if rc:
            raise self._error(rc, "sub_stat")
        return SubscriberStat(
            *(
                int(getattr(st, f))
                for f in ("index", "state", "alive", "pid", "epoch", "next_seq", "delivered")
            ),
            *(
                int(getattr(st, f))
                for f in ("missed", "delivered_bytes", "lag", "sleeps", "last_missed")
            ),
        )

    def __repr__(self) -> str:
        state = "closed" if self._h is None else f"depth={self._depth}"
        tag = self._codec.tag or "untyped"
        return f"<shm_channel.{type(self).__name__} {self._name!r} {tag} {state}>"


class Publisher(_Broadcast):
    """The one writer of a broadcast channel (a topic).

    ``Publisher(name, type=None, *, depth=0, max_payload=None, max_subscribers=0,
    create=True, exclusive=False, mode=0o600, allow_foreign=False)``

    - ``type``: what the topic carries (spec/topics.md): ``None`` (raw bytes, untyped),
      ``bool``, ``int`` (64-bit), ``float``, ``bytes``, ``str``, a ctypes structure class, a
      ``struct.Struct("<...")``, a numpy array (its dtype and shape), or a default value of
      one of those. Subscribers asking for another type get :class:`TopicTypeError`.
    - ``depth``: messages kept (0: any existing, 8 when creating); ``max_payload``: largest
      message (None: any existing; the type's size, or 4096, when creating);
      ``max_subscribers`` (0: any, 256 when creating). Either side may create.

    Publishing never waits: the oldest message is overwritten. One live publisher at a
    time (:class:`ChannelBusy`); after it closes or dies a new one takes over and continues
    the numbering. Closing marks end-of-stream: subscribers read what is held, then
    :class:`EndOfStream`.
    """

    _role = _PUBLISHER
    _reserve_ptr = Producer._reserve_ptr

    def publish(self, value: Any) -> None:
        """Publish one value (of the topic's type; raw bytes: any contiguous buffer)."""
        try:
            self._busy = True  # see Producer.write
            h = self._h
            if h is None:
                raise self._closed_error()
            data = self._codec.encode(value)
            if type(data) is not bytes:
                data = _from_buffer(data)
            size = len(data)
            rc = _c_write(h, data, size, 0)
        finally:
            self._busy = False
            if self._closing:
                _detach(self._claim)
        if rc:
            raise self._error(rc, "write", size=size, limit=self._max_payload)

    write = publish

    def reserve(self, size: int) -> _Reservation:
        """Zero-copy publish of raw bytes: ``with publisher.reserve(n) as view:`` gives a
        writable memoryview of `n` bytes in the oldest slot (that message is gone from
        here on); leaving the block publishes it, an exception drops it.
        """
        size = _int_arg(size, "size")
        if size < 0:
            raise ValueError(f"size must be >= 0, not {size}")
        return _Reservation(self, size, 0)  # type: ignore[arg-type]

    @property
    def subscribers(self) -> int:
        """Subscribers attached now (as the channel records them)."""
        return self.broadcast_stat().subscribers

    def wait_for_subscribers(self, count: int, timeout: float | None = None) -> None:
        """Wait until at least `count` subscribers are attached (polls every millisecond);
        :class:`TimeoutError` after `timeout` seconds.
        """
        ns = _timeout_ns(timeout)
        deadline = None if ns < 0 else time.monotonic() + ns / 1e9
        while self.subscribers < count:
            if deadline is not None and time.monotonic() > deadline:
                raise TimeoutError(
                    _errno.ETIMEDOUT,
                    f"{self.subscribers} of {count} subscribers on {self._name!r} after "
                    f"{timeout} s",
                )
            time.sleep(0.001)


class Subscriber(_Broadcast):
    """One reader of a broadcast channel (a topic).

    ``Subscriber(name, type=None, *, from_oldest=False, depth=0, max_payload=None,
    max_subscribers=0, create=True, exclusive=False, mode=0o600, allow_foreign=False,
    spin=None)``: the arguments are those of :class:`Publisher`; ``from_oldest`` starts at
    the oldest message held instead of the newest.

    - :meth:`recv` waits for the next message in order and returns ``(value, missed)``:
      how many were skipped just before it because the publisher lapped this subscriber.
      Iterating yields the same pairs until end-of-stream.
    - :meth:`latest` returns the newest value and whether it is new to this subscriber
      (seed 000's ``subscribe()``), never waiting.
    - :meth:`peek` / :meth:`peek_latest`: zero-copy views (numpy arrays for array topics);
      leaving the block raises :class:`MessageOverwritten` if the publisher overwrote the
      message while it was held.

    Reads raise :class:`EndOfStream` once the publisher closed and every held message was
    read, :class:`PeerDied` once it died, :class:`BlockingIOError` (timeout 0) or
    :class:`TimeoutError`.
    """

    _role = _SUBSCRIBER

    def __init__(
        self,
        name: str,
        type: Any = None,
        *,
        from_oldest: bool = False,
        **kwargs: Any,
    ) -> None:
        self._flags_extra = lib.SHM_CHANNEL_FROM_OLDEST if from_oldest else 0
        super().__init__(name, type, **kwargs)
        cap = max(1, self._max_payload)
        self._buf = ffi.new("char[]", cap)
        self._cap = cap
        self._data = _cbuffer(self._buf)
        self._lenp = ffi.new("uint64_t[1]")
        self._missedp = ffi.new("uint64_t[1]")
        self._is_newp = ffi.new("int32_t[1]")
        self._ptrp = ffi.new("void **")
        self._peeked: _SubPeek | None = None

    def _decode(self, n: int) -> Any:
        codec = self._codec
        if codec.size is not None and n != codec.size:
            raise ValueError(
                f"a message of {n} bytes on {self._name!r}, but a {describe_tag(codec.tag)} "
                f"value is {codec.size} bytes"
            )
        if codec.tag == "" or codec.tag == "bytes":
            return self._data[:n]
        return codec.decode(self._data[:n])

    @_in_call
    def recv(self, timeout: float | None = None) -> tuple[Any, int]:
        """``(value, missed)``: the next message in order, waiting up to `timeout` seconds
        (None: forever), and how many messages were skipped just before it.
        """
        h = self._handle()
        buf, cap, lenp, missedp = self._buf, self._cap, self._lenp, self._missedp
        first, deadline = _first_wait(timeout)
        rc = _c_recv(h, buf, cap, lenp, missedp, first)
        if rc == _ETIMEDOUT or rc == _EINTR:
            rc = self._wait(lambda ns: _c_recv(h, buf, cap, lenp, missedp, ns), deadline, rc)
        if rc:
            raise self._error(rc, "read", timeout=timeout)
        return self._decode(int(lenp[0])), int(missedp[0])

    def read(self, timeout: float | None = None) -> Any:
        """The next message's value (see :meth:`recv`)."""
        return self.recv(timeout)[0]

    def __iter__(self) -> Iterator[tuple[Any, int]]:
        """``(value, missed)`` for each message, until end-of-stream (then it stops)."""
        recv = self.recv
        while True:
            try:
                item = recv()
            except EndOfStream:
                return
            yield item

    @_in_call
    def latest(self, default: Any = _NOTHING) -> tuple[Any, bool]:
        """``(value, is_new)``: the newest value, and whether this subscriber had not read it
        before; never waits. Before anything was published: ``(default, False)``, or
        :class:`BlockingIOError` without a default. A later :meth:`recv` continues after it.
        """
        h = self._handle()
        buf, cap, lenp = self._buf, self._cap, self._lenp
        for _ in range(100):
            rc = _c_read_latest(h, buf, cap, lenp, self._is_newp, self._missedp)
            if rc == 0:
                return self._decode(int(lenp[0])), bool(self._is_newp[0])
            if rc != _EAGAIN:
                break
            brc, st = _bstat(h)
            if brc or st.pub_seq == 0:
                break  # nothing published yet (else: overwritten during the copy; again)
        if rc == _EAGAIN and default is not _NOTHING:
            return default, False
        raise self._error(rc, "read", timeout=0)

    @property
    def missed(self) -> int:
        """Messages missed since this subscriber joined (exact running total)."""
        return self.subscriber_stat(-1).missed

    @property
    def delivered(self) -> int:
        """Messages delivered intact since this subscriber joined."""
        return self.subscriber_stat(-1).delivered

    def peek(self, timeout: float | None = None) -> _SubPeek:
        """Zero-copy: ``with sub.peek() as (view, missed):`` waits for the next message and
        gives a read-only view of it in place (a numpy array for array topics, else a
        memoryview). Leaving the block releases it: :class:`MessageOverwritten` if the
        publisher overwrote it while held (then it counts as missed). The view must not be
        used after the block.
        """
        _timeout_ns(timeout)
        return _SubPeek(self, timeout, latest=False)

    def peek_latest(self) -> _SubPeek:
        """Zero-copy newest message: ``with sub.peek_latest() as (view, is_new):``, never
        waiting (:class:`BlockingIOError` if nothing was published). Release as :meth:`peek`.
        """
        return _SubPeek(self, 0, latest=True)


class _SubPeek(_Block):
    """The context manager of :meth:`Subscriber.peek` and :meth:`Subscriber.peek_latest`:
    the message is released on leaving, after an exception too (a broadcast keeps nothing
    for a later read).
    """

    __slots__ = ("_latest", "_timeout")
    _undo = _c_release

    def __init__(self, channel: Subscriber, timeout: float | None, latest: bool) -> None:
        self._ch = channel
        self._timeout = timeout
        self._latest = latest
        self._views: list[memoryview] = []

    def __enter__(self) -> tuple[Any, int | bool]:
        ch = self._ch
        with _Busy(ch):
            h = ch._handle()
            ptrp, lenp = ch._ptrp, ch._lenp
            if self._latest:
                rc = _c_peek_latest(h, ptrp, lenp, ch._is_newp, ch._missedp)
                report: int | bool = bool(ch._is_newp[0])
            else:
                first, deadline = _first_wait(self._timeout)
                rc = _c_peek(h, ptrp, lenp, first)
                if rc == _ETIMEDOUT or rc == _EINTR:
                    rc = ch._wait(lambda ns: _c_peek(h, ptrp, lenp, ns), deadline, rc)
                report = 0
            if rc:
                raise ch._error(rc, "read", timeout=self._timeout)
            size = int(lenp[0])
            if not self._latest:
                st = ffi.new("shm_channel_sub_stat_t *")
                _c_sub_stat(h, -1, st)
                report = int(st.last_missed)
            self._views = ch._view(h, ptrp[0], size, readonly=True)
        codec = ch._codec
        if codec.size is not None and size != codec.size:
            self.__exit__(None, None, None)
            raise ValueError(
                f"a message of {size} bytes on {ch._name!r}, but a {describe_tag(codec.tag)} "
                f"value is {codec.size} bytes"
            )
        return codec.view(self._views[0]), report
