"""shm_channel: messages between processes on one machine, through shared memory.

A stream channel has one :class:`Producer` and one :class:`Consumer`, in any two
processes (C, Python, Rust...), either of which may start first::

    import shm_channel

    with shm_channel.Producer("frames", capacity=32 << 20) as p:
        p.write(b"hello")                  # any buffer: bytes, numpy array, ctypes...

    with shm_channel.Consumer("frames", capacity=32 << 20) as c:
        for message in c:                  # bytes, until the producer closes
            print(message)

Zero-copy: :meth:`Producer.reserve` and :meth:`Consumer.peek` give memoryviews of the
ring itself; :meth:`Consumer.peek_array` a numpy array. Batches:
:meth:`Producer.write_many` and :meth:`Consumer.read_many`.

This package calls the C library ``libshm_channel.so.1`` through cffi in ABI mode (no
compiler needed); it bundles a copy, and :data:`library_path` says which one was loaded
(see :mod:`shm_channel._lib` for the search order).
"""

from __future__ import annotations

# ---- broadcast channels (topics): shm_channel.Publisher / Subscriber; seed 000's API is in
# shm_channel.pubsub. Typed values: spec/topics.md.
from ._broadcast import BroadcastStat, Publisher, Subscriber, SubscriberStat
from ._channel import Consumer, Producer, Stat, channel_dir, stat, unlink
from ._errors import (
    ChannelBusy,
    ChannelClosedError,
    CorruptSegment,
    EndOfStream,
    IncompatibleLayout,
    MessageOverwritten,
    MessageTooLarge,
    PeerDied,
    ShmChannelError,
    TopicTypeError,
)
from ._lib import LIBRARY_ENV, library_path, library_version
from ._service import Client, Request, Server, ServerClosed, ServiceStat, StaleRequest

__version__ = "1.0.0"

#: Smallest and largest ring capacity, in bytes (powers of two).
MIN_CAPACITY = 1024
MAX_CAPACITY = 1 << 40
#: Ring capacity used when a channel is created with capacity 0.
DEFAULT_CAPACITY = 1 << 20


def array_message(array: object) -> bytes:
    """`array` as the bytes of one message in the format :meth:`Producer.write_array`
    writes: the content of a ``.npy`` file (NumPy format 1.0, data 64-byte aligned).
    """
    from ._ndarray import array_message as _array_message

    return _array_message(array)


__all__ = [
    "DEFAULT_CAPACITY",
    "LIBRARY_ENV",
    "MAX_CAPACITY",
    "MIN_CAPACITY",
    "ChannelBusy",
    "ChannelClosedError",
    "Client",
    "Consumer",
    "CorruptSegment",
    "EndOfStream",
    "IncompatibleLayout",
    "MessageTooLarge",
    "PeerDied",
    "Producer",
    "Request",
    "Server",
    "ServerClosed",
    "ServiceStat",
    "ShmChannelError",
    "StaleRequest",
    "Stat",
    # broadcast
    "BroadcastStat",
    "MessageOverwritten",
    "Publisher",
    "Subscriber",
    "SubscriberStat",
    "TopicTypeError",
    "__version__",
    "array_message",
    "channel_dir",
    "library_path",
    "library_version",
    "stat",
    "unlink",
]

# ---- compat channels (spec/compat.md): seed 002's 16-byte-header ring -------------------
from ._compat import (  # noqa: E402
    CompatConsumer,
    CompatProducer,
    CompatStat,
    SegmentRemoved,
    compat_unlink,
)

__all__ += ["CompatConsumer", "CompatProducer", "CompatStat", "SegmentRemoved", "compat_unlink"]
