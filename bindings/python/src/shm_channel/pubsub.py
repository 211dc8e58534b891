"""Seed 000's ``shm_pub_sub`` API over shm_channel broadcast channels.

A program written for seed 000 runs unchanged after one import line::

    import shm_channel.pubsub as shm_pub_sub

    pub = shm_pub_sub.Publisher("temperature_sensor", 0.0, 5)   # name, default, buffer_num
    pub.publish(21.5)

    sub = shm_pub_sub.Subscriber("temperature_sensor", 0.0)
    value, is_success = sub.subscribe()   # newest value; is_success: new to this subscriber

The type comes from ``default_value``: bool, int (64-bit), float as in seed 000, and also
bytes, str, a ctypes structure, a ``struct.Struct("<...")`` or a numpy array (spec/topics.md).
``buffer_num`` is the channel's depth (messages kept). A subscriber started before its
publisher gets ``(default_value, False)`` until the publisher appears; one of another type
gets :class:`shm_channel.TopicTypeError` naming both types.

Names: seed 000 allows ``/`` inside topic names ("robot/sensors/lidar"); shm_channel names
do not, so each ``/`` after the first character becomes ``.`` ("robot.sensors.lidar"),
the name other languages use. For a blocking wait, iteration with missed counts and
zero-copy views, use :class:`shm_channel.Subscriber` (``.channel`` of these objects).
"""

from __future__ import annotations

from typing import Any

from ._broadcast import Publisher as _Publisher
from ._broadcast import Subscriber as _Subscriber
from ._topic import codec_for

__all__ = ["Publisher", "Subscriber", "channel_name"]


def channel_name(name: str) -> str:
    """The shm_channel name of seed 000's topic `name` ('/' inside it becomes '.')."""
    if not isinstance(name, str):
        raise TypeError(f"topic name must be a str, not {type(name).__name__}")
    return name[:1] + name[1:].replace("/", ".")


class Publisher:
    """``Publisher(name, default_value, buffer_num=3)``: publishes values of
    ``default_value``'s type on topic `name`, keeping the newest `buffer_num`.
    """

    def __init__(self, name: str, default_value: Any, buffer_num: int = 3) -> None:
        codec = codec_for(default_value)
        self.channel = _Publisher(channel_name(name), codec, depth=buffer_num)
        self._publish = self.channel.publish

    def publish(self, data: Any) -> None:
        """Publish `data` to every subscriber at once (never waits)."""
        self._publish(data)

    def close(self) -> None:
        """End the topic (subscribers keep the last value); also at exit."""
        self.channel.close()

    def __enter__(self) -> Publisher:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class Subscriber:
    """``Subscriber(name, default_value)``: reads topic `name` (values of
    ``default_value``'s type).
    """

    def __init__(self, name: str, default_value: Any) -> None:
        self._name = channel_name(name)
        self._codec = codec_for(default_value)
        self._default = default_value
        self.channel: _Subscriber | None = None
        self._attach()

    def _attach(self) -> bool:
        try:
            self.channel = _Subscriber(self._name, self._codec, create=False)
        except FileNotFoundError:
            return False  # no publisher yet: seed 000's subscribe() returns (default, False)
        return True

    def subscribe(self) -> tuple[Any, bool]:
        """``(data, is_success)``: the newest value, and True only if it is new to this
        subscriber; ``(default_value, False)`` before anything was published.
        """
        ch = self.channel
        if ch is None:
            if not self._attach():
                return self._default, False
            ch = self.channel
            assert ch is not None
        return ch.latest(self._default)

    def close(self) -> None:
        """Leave the topic."""
        if self.channel is not None:
            self.channel.close()

    def __enter__(self) -> Subscriber:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
