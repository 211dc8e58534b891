"""Exceptions, and the one place that turns a negative errno into one."""

from __future__ import annotations

import errno as _errno
from typing import NoReturn

from ._lib import ffi, lib

__all__ = [
    "ChannelBusy",
    "ChannelClosedError",
    "CorruptSegment",
    "EndOfStream",
    "IncompatibleLayout",
    "MessageTooLarge",
    "MessageOverwritten",
    "PeerDied",
    "ShmChannelError",
    "TopicTypeError",
]


class ShmChannelError(OSError):
    """Base class of the failures that have no built-in :class:`OSError` subclass.

    Like every :class:`OSError`, it carries ``errno`` (the C library's error, positive)
    and ``strerror``. The attribute ``channel`` names the channel concerned.
    """

    channel: str | None = None


class MessageTooLarge(ShmChannelError):
    """A message does not fit: larger than the channel's ``max_payload`` (writing), or
    larger than the buffer given to :meth:`Consumer.read_into` (reading; the message stays
    unread). ``size`` is the message's size and ``limit`` the most that fits, in bytes.
    """

    size: int = 0
    limit: int = 0


class CorruptSegment(ShmChannelError):
    """The shared segment holds an out-of-range header field, position or record.

    Stop both sides and remove the channel with ``shm_channel.unlink(name, force=True)``.
    """


class IncompatibleLayout(ShmChannelError):
    """The segment is not a shm_channel stream this library can read: bad magic
    (``EPROTO``), an unsupported layout major version (``EPROTONOSUPPORT``), or another
    kind of channel (``EPROTOTYPE``).
    """


class PeerDied(ShmChannelError):
    """The process at the other end died without closing.

    For a consumer this comes only after every message the producer committed was read;
    a new producer may attach and continue the stream. For a producer it means the ring
    is full and its consumer died; a new consumer resumes where the old one stopped.
    """


class ChannelBusy(ShmChannelError):
    """The role is held by another live handle (``EBUSY``), or a reservation is still
    outstanding on this one.
    """


class EndOfStream(BrokenPipeError, ShmChannelError):
    """The producer closed the channel and every message has been read.

    Also a :class:`BrokenPipeError`. Iterating over a :class:`Consumer` stops quietly
    at this point instead of raising it.
    """


# ---- broadcast channels (publish/subscribe) ----------------------------------------------


class TopicTypeError(ShmChannelError, TypeError):
    """The broadcast channel carries another type than the one asked for
    (``EMEDIUMTYPE``). ``have`` is the channel's type tag, ``want`` the one asked for
    (spec/topics.md); also a :class:`TypeError`.
    """

    have: str = ""
    want: str = ""


class MessageOverwritten(ShmChannelError):
    """A zero-copy view of a broadcast message was overwritten by the publisher while it
    was held (``ESTALE``): what was read of it may be torn, and it counts as missed.
    """


class ChannelClosedError(ValueError):
    """The channel object was closed (like I/O on a closed file, a :class:`ValueError`)."""


_ROLE_NAMES = {1: "producer", 2: "consumer", 3: "observer", 4: "publisher", 5: "subscriber"}


def _message(err: int, name: str, role: int, op: str, extra: dict[str, object]) -> str:
    """What went wrong with channel `name`, and what to do about it."""
    who = _ROLE_NAMES.get(role, "handle")
    if role in (4, 5):
        text = _broadcast_message(err, name, role, op, extra)
        if text:
            return text
    if err == _errno.ENOENT:
        return (
            f"no channel named {name!r} in {ffi.string(lib.shm_channel_dir()).decode()}: "
            "start the other side first, or open with create=True"
        )
    if err == _errno.EEXIST:
        return (
            f"channel {name!r} already exists and exclusive=True was asked: pick another "
            f"name, or remove the old one with shm_channel.unlink({name!r})"
        )
    if err == _errno.EBUSY:
        if op == "open":
            return (
                f"the {who} role of {name!r} is held by another live handle (in this or "
                "another process): close that one first, or use another channel name"
            )
        if op == "unlink":
            return f"channel {name!r} is in use; pass force=True to remove its name anyway"
        return f"a reserve() block is still open on {name!r}: finish it before writing again"
    if err in (_errno.EACCES, _errno.EPERM):
        mode = extra.get("mode")
        what = f"mode={mode:#o}" if isinstance(mode, int) else "the mode asked"
        return (
            f"permission denied for channel {name!r}: it belongs to another user or is "
            f"more permissive than {what}; pass allow_foreign=True only if you trust "
            "whoever created it"
        )
    if err == _errno.ENOSPC:
        return (
            f"not enough shared memory to create {name!r} with a ring of "
            f"{extra.get('capacity')} bytes: free space in the segment directory "
            "(df -h /dev/shm) or ask for a smaller capacity"
        )
    if err == _errno.EPROTO:
        return f"{name!r} is not a shm_channel segment (bad magic): use another name"
    if err == _errno.EPROTONOSUPPORT:
        return (
            f"{name!r} was made with a segment layout this library does not support: "
            "use the same major version of shm_channel on both sides"
        )
    if err == _errno.EPROTOTYPE:
        return f"{name!r} is not a stream channel"
    if err == _errno.EBADMSG:
        return (
            f"channel {name!r} is corrupt (a header field, position or record is out of "
            f"range): stop both sides and remove it with shm_channel.unlink({name!r}, "
            "force=True)"
        )
    if err == _errno.ETIMEDOUT:
        if op == "open":
            return f"channel {name!r} never finished initialising; remove it if it is stale"
        return f"timed out after {extra.get('timeout')} s waiting on {name!r}"
    if err == _errno.EAGAIN:
        if role == 1:
            return f"the ring of {name!r} is full (timeout=0): retry later, or pass a timeout"
        return f"no message is ready on {name!r} (timeout=0): retry later, or pass a timeout"
    if err == _errno.EMSGSIZE:
        if role == 1:
            return (
                f"a message of {extra.get('size')} bytes is larger than the "
                f"{extra.get('limit')}-byte maximum of {name!r}; use a channel with a larger "
                "capacity (the largest message is capacity/2 - 8 bytes)"
            )
        return (
            f"the next message on {name!r} is {extra.get('size')} bytes, more than the "
            f"{extra.get('limit')}-byte buffer given; it stays unread: pass a buffer of at "
            "least that size"
        )
    if err == _errno.EPIPE:
        if role == 1:
            return (
                f"the consumer of {name!r} closed the channel and the ring is full: nobody "
                "will read further messages"
            )
        return f"end of stream: the producer closed {name!r} and every message was read"
    if err == _errno.EOWNERDEAD:
        if role == 1:
            return (
                f"the consumer of {name!r} died and the ring is full; a new consumer "
                "resumes after the last message the old one released"
            )
        return (
            f"the producer of {name!r} died; every message it committed has been read. "
            "A restarted producer continues the stream"
        )
    if err == _errno.EBADF:
        return f"this call is not allowed for a {who} of {name!r}"
    if err == _errno.EINVAL:
        if op == "open":
            return (
                f"invalid argument opening {name!r}: if it already exists, its capacity may "
                f"differ from capacity={extra.get('capacity')} (pass 0 to accept any)"
            )
        return f"invalid argument for {op} on {name!r}"
    return str(ffi.string(lib.shm_channel_strerror(-err)).decode())


def _broadcast_message(err: int, name: str, role: int, op: str, extra: dict[str, object]) -> str:
    """The texts that differ for a publisher (role 4) or subscriber (role 5); "" = as streams."""
    if err == _errno.EPROTOTYPE:
        return f"{name!r} is not a broadcast channel (it is a stream or another kind)"
    if err == _errno.EUSERS:
        return (
            f"every subscriber entry of {name!r} is held by a live subscriber: close one, or "
            "create the channel with a larger max_subscribers"
        )
    if err == _errno.ESTALE:
        return (
            f"the publisher of {name!r} overwrote the message while its view was held: what "
            "was read of it may be torn (it counts as missed); copy sooner or use a larger depth"
        )
    if err == _errno.EINVAL and op == "open":
        return (
            f"invalid argument opening {name!r}: if it already exists, its depth, max_payload "
            f"or max_subscribers differ from those asked ({extra.get('config')}); pass 0 to "
            "accept any"
        )
    if err == _errno.EBUSY and op == "open" and role == 4:
        return (
            f"{name!r} already has a live publisher (in this or another process): close that "
            "one first; a new publisher takes over after it closes or dies"
        )
    if err == _errno.EAGAIN and role == 5:
        return f"nothing new on {name!r} (timeout=0): retry later, or pass a timeout"
    if err == _errno.EPIPE:
        return f"end of stream: the publisher closed {name!r} and every held message was read"
    if err == _errno.EOWNERDEAD:
        return (
            f"the publisher of {name!r} died; every message it published was read. A new "
            "publisher may take over and continue the numbering"
        )
    if err == _errno.EMSGSIZE and role == 4:
        return (
            f"a message of {extra.get('size')} bytes is larger than the "
            f"{extra.get('limit')}-byte max_payload of {name!r}"
        )
    if err == _errno.EBADF:
        return f"this call is not allowed for a {_ROLE_NAMES[role]} of {name!r}"
    return ""


_CLASSES: dict[int, type[OSError]] = {
    _errno.EMSGSIZE: MessageTooLarge,
    _errno.EBADMSG: CorruptSegment,
    _errno.EPROTO: IncompatibleLayout,
    _errno.EPROTONOSUPPORT: IncompatibleLayout,
    _errno.EPROTOTYPE: IncompatibleLayout,
    _errno.EOWNERDEAD: PeerDied,
    _errno.EBUSY: ChannelBusy,
    _errno.EMEDIUMTYPE: TopicTypeError,
    _errno.ESTALE: MessageOverwritten,
}


def error(rc: int, name: str, role: int = 0, op: str = "", **extra: object) -> Exception:
    """The exception for the C library's return value `rc` (a negative errno)."""
    err = -rc
    text = _message(err, name, role, op, extra)
    cls: type[Exception]
    if err == _errno.EPIPE and role != 1:
        cls = EndOfStream
    elif err == _errno.EINVAL:
        return ValueError(text)
    else:
        # OSError(errno, text) itself picks the built-in subclass (FileNotFoundError, ...).
        cls = _CLASSES.get(err, OSError)
    exc = cls(err, text)
    if isinstance(exc, ShmChannelError):
        exc.channel = name
    if isinstance(exc, MessageTooLarge):
        exc.size = int(extra.get("size", 0))  # type: ignore[call-overload]
        exc.limit = int(extra.get("limit", 0))  # type: ignore[call-overload]
    return exc


def raise_error(rc: int, name: str, role: int = 0, op: str = "", **extra: object) -> NoReturn:
    """Raise :func:`error`."""
    raise error(rc, name, role, op, **extra)


# ---- compat channels (spec/compat.md) ---------------------------------------------------


class SegmentRemoved(ShmChannelError):
    """Compat channel: the segment's name was unlinked (a peer producer replaced it, or a
    Python peer's resource tracker removed it), and for a consumer everything left in it was
    read, for a producer its ring is full. Open the channel again to follow a new segment.
    """


_CLASSES[_errno.EIDRM] = SegmentRemoved
