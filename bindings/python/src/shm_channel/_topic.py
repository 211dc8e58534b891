"""Typed values on a broadcast channel: the wire type (type tag and payload) of each Python
type, as spec/topics.md defines them (normative there; this module is one implementation).

A :class:`Codec` turns values into payloads and back. :func:`codec_for` picks one from a
description: a default value (as seed 000's ``Publisher(name, 0.0)``), a type (``float``,
a ctypes structure class), a :class:`struct.Struct`, a numpy array (its dtype and shape),
or ``None`` for raw bytes on an untyped channel.
"""

from __future__ import annotations

import ctypes
import math
import operator
import re
import struct
from typing import Any

__all__ = ["Codec", "canonical_struct_format", "codec_for", "describe_tag"]

#: Default max_payload of a channel of variable-size values (bytes, str, untyped).
VARIABLE_MAX_PAYLOAD = 4096
_I64_MIN = -(1 << 63)
_I64_MAX = (1 << 63) - 1
_STRUCT_TOKEN = re.compile(r"(\d*)([xcbB?hHiIlLqQefdsp])")
_SAME_CODE = {"l": "i", "L": "I"}  # standard sizes: l and L are 4 bytes, as i and I


class Codec:
    """The wire type of one kind of value: `tag` (the channel's type tag, "" = untyped),
    `size` (the payload size, or None when it varies) and the two conversions.
    """

    tag = ""
    size: int | None = None
    what = "raw bytes"  # for error messages

    def encode(self, value: Any) -> Any:
        """A contiguous buffer holding the payload of `value`."""
        return value

    def decode(self, payload: Any) -> Any:
        """The value in `payload` (bytes or a memoryview)."""
        return bytes(payload)

    def view(self, payload: memoryview) -> Any:
        """A zero-copy view of the payload for a peek: a memoryview, or a numpy array."""
        return payload

    def max_payload(self) -> int:
        return self.size if self.size is not None else VARIABLE_MAX_PAYLOAD

    def __repr__(self) -> str:
        return f"<shm_channel codec {self.tag or '(untyped)'}>"


class _Bytes(Codec):
    tag = "bytes"
    what = "bytes"

    def encode(self, value: Any) -> Any:
        if isinstance(value, str):
            raise TypeError("a bytes topic carries bytes-like values, not str (encode it)")
        return value


class _Str(Codec):
    tag = "str"
    what = "str"

    def encode(self, value: Any) -> Any:
        if not isinstance(value, str):
            raise TypeError(f"a str topic carries str values, not {type(value).__name__}")
        return value.encode("utf-8")

    def decode(self, payload: Any) -> Any:
        return bytes(payload).decode("utf-8")


class _Bool(Codec):
    tag = "bool"
    size = 1
    what = "bool"

    def encode(self, value: Any) -> Any:
        if isinstance(value, bool) or type(value).__name__ == "bool_":
            return b"\x01" if value else b"\x00"
        raise TypeError(f"a bool topic carries True or False, not {type(value).__name__}")

    def decode(self, payload: Any) -> Any:
        b = payload[0]
        if b > 1:
            raise ValueError(f"a bool payload must be 0 or 1, not {b} (spec/topics.md)")
        return b == 1


_pack_q = struct.Struct("<q").pack
_unpack_q = struct.Struct("<q").unpack_from
_pack_d = struct.Struct("<d").pack
_unpack_d = struct.Struct("<d").unpack_from


class _I64(Codec):
    tag = "i64"
    size = 8
    what = "int"

    def encode(self, value: Any) -> Any:
        if type(value) is not int:
            if isinstance(value, (bool, float)) or not hasattr(value, "__index__"):
                raise TypeError(f"an int topic carries ints, not {type(value).__name__}")
            value = operator.index(value)
        if not _I64_MIN <= value <= _I64_MAX:
            raise OverflowError(
                f"{value} does not fit an int topic's wire type, a 64-bit signed integer "
                f"({_I64_MIN} .. {_I64_MAX})"
            )
        return _pack_q(value)

    def decode(self, payload: Any) -> Any:
        return _unpack_q(payload)[0]


class _F64(Codec):
    tag = "f64"
    size = 8
    what = "float"

    def encode(self, value: Any) -> Any:
        if type(value) is not float:
            if isinstance(value, (bool, str, bytes)):
                raise TypeError(f"a float topic carries numbers, not {type(value).__name__}")
            try:
                value = float(value)
            except TypeError:
                raise TypeError(
                    f"a float topic carries numbers, not {type(value).__name__}"
                ) from None
        return _pack_d(value)

    def decode(self, payload: Any) -> Any:
        return _unpack_d(payload)[0]


def canonical_struct_format(fmt: str) -> str:
    """`fmt` (a struct format starting with '<') in the canonical form of spec/topics.md:
    no spaces, runs of one code merged with a count (counts of 1 left out), ``l``/``L``
    written ``i``/``I``. ValueError for anything else.
    """
    if not isinstance(fmt, str) or not fmt.startswith("<"):
        raise ValueError(
            f"a struct format for a topic must start with '<' (little-endian, standard "
            f"sizes, no implicit padding), not {fmt!r}"
        )
    body = fmt[1:].replace(" ", "")
    items: list[list[Any]] = []
    pos = 0
    for m in _STRUCT_TOKEN.finditer(body):
        if m.start() != pos:
            break
        pos = m.end()
        count = int(m.group(1)) if m.group(1) else 1
        code = _SAME_CODE.get(m.group(2), m.group(2))
        if code in "sp" or not items or items[-1][1] != code or items[-1][1] in "sp":
            items.append([count, code])
        else:
            items[-1][0] += count
    if pos != len(body):
        raise ValueError(f"unsupported struct format {fmt!r} for a topic (at {body[pos:]!r})")
    out = "<" + "".join(f"{c}{k}" if c != 1 or k in "sp" else k for c, k in items if c or k in "sp")
    struct.calcsize(out)  # raises struct.error for anything struct does not accept
    return out


class _Struct(Codec):
    what = "struct"

    def __init__(self, fmt: str) -> None:
        self.fmt = canonical_struct_format(fmt)
        self.tag = "struct:" + self.fmt
        self._s = struct.Struct(self.fmt)
        self.size = self._s.size

    def encode(self, value: Any) -> Any:
        try:
            return self._s.pack(*value)
        except struct.error as e:
            raise TypeError(f"{value!r} does not fit the topic's format {self.fmt}: {e}") from None

    def decode(self, payload: Any) -> Any:
        return self._s.unpack_from(payload)


_CTYPE_CODES = {
    ctypes.c_bool: "?",
    ctypes.c_char: "c",
    ctypes.c_int8: "b",
    ctypes.c_uint8: "B",
    ctypes.c_int16: "h",
    ctypes.c_uint16: "H",
    ctypes.c_int32: "i",
    ctypes.c_uint32: "I",
    ctypes.c_int64: "q",
    ctypes.c_uint64: "Q",
    ctypes.c_float: "f",
    ctypes.c_double: "d",
}
_SIGNED_BY_SIZE = {1: "b", 2: "h", 4: "i", 8: "q"}
_UNSIGNED_BY_SIZE = {1: "B", 2: "H", 4: "I", 8: "Q"}


def _ctype_items(t: Any, out: list[tuple[int, str]], base: int, cls: Any) -> None:
    """Append (offset, code) for every scalar of ctypes type `t` placed at `base`."""
    if isinstance(t, type) and issubclass(t, ctypes.Structure):
        if getattr(t, "_swappedbytes_", None) is not None or t.__name__.startswith("BigEndian"):
            raise TypeError(f"{cls.__name__}: big-endian structures are not a topic type")
        for field in t._fields_:
            fname, ftype = field[0], field[1]
            if len(field) > 2:
                raise TypeError(f"{cls.__name__}.{fname}: bit fields are not a topic type")
            _ctype_items(ftype, out, base + getattr(t, fname).offset, cls)
        return
    if isinstance(t, type) and issubclass(t, ctypes.Array):
        step = ctypes.sizeof(t._type_)
        for k in range(t._length_):
            _ctype_items(t._type_, out, base + k * step, cls)
        return
    code = _CTYPE_CODES.get(t)
    if code is None and isinstance(t, type) and issubclass(t, ctypes._SimpleCData):
        tc = getattr(t, "_type_", "")
        size = ctypes.sizeof(t)
        if tc in "bhilq":
            code = _SIGNED_BY_SIZE.get(size)
        elif tc in "BHILQ":
            code = _UNSIGNED_BY_SIZE.get(size)
        elif tc in "fd?c":
            code = tc
    if code is None:
        raise TypeError(
            f"{cls.__name__}: field type {getattr(t, '__name__', t)} is not a topic type "
            "(numbers, bool, char, arrays and nested structures only; no pointers)"
        )
    out.append((base, code))


def ctypes_format(cls: Any) -> str:
    """The explicit-padding '<' struct format of a ctypes structure's layout."""
    items: list[tuple[int, str]] = []
    _ctype_items(cls, items, 0, cls)
    fmt = "<"
    pos = 0
    for offset, code in items:
        if offset > pos:
            fmt += f"{offset - pos}x"
        fmt += code
        pos = offset + struct.calcsize("<" + code)
    total = ctypes.sizeof(cls)
    if total > pos:
        fmt += f"{total - pos}x"
    return canonical_struct_format(fmt)


class _Ctypes(_Struct):
    def __init__(self, cls: Any) -> None:
        super().__init__(ctypes_format(cls))
        if self.size != ctypes.sizeof(cls):
            raise TypeError(f"{cls.__name__}: layout not expressible as a struct format")
        self.cls = cls
        self.what = cls.__name__

    def encode(self, value: Any) -> Any:
        if not isinstance(value, self.cls):
            raise TypeError(
                f"this topic carries {self.cls.__name__} values, not {type(value).__name__}"
            )
        return value

    def decode(self, payload: Any) -> Any:
        return self.cls.from_buffer_copy(payload)


class _Ndarray(Codec):
    what = "ndarray"

    def __init__(self, dtype: Any, shape: tuple[int, ...]) -> None:
        import numpy

        self._np = numpy
        self.dtype = numpy.dtype(dtype)
        if self.dtype.hasobject or self.dtype.fields is not None or self.dtype.subdtype:
            raise TypeError(f"dtype {self.dtype} is not a topic type (plain numeric dtypes only)")
        self.shape = tuple(int(n) for n in shape)
        dims = "x".join(str(n) for n in self.shape) if self.shape else "scalar"
        self.tag = f"ndarray:{self.dtype.str}:{dims}"
        if len(self.tag) > 120:
            raise ValueError(f"the type tag {self.tag!r} is longer than 120 bytes")
        self.size = math.prod(self.shape) * self.dtype.itemsize

    def encode(self, value: Any) -> Any:
        np = self._np
        arr = np.asarray(value)
        if arr.shape != self.shape or arr.dtype != self.dtype:
            raise TypeError(
                f"this topic carries {self.dtype} arrays of shape {self.shape}, not "
                f"{arr.dtype} of shape {arr.shape}"
            )
        return np.ascontiguousarray(arr)

    def decode(self, payload: Any) -> Any:
        return self._np.frombuffer(payload, self.dtype).reshape(self.shape).copy()

    def view(self, payload: memoryview) -> Any:
        return self._np.frombuffer(payload, self.dtype).reshape(self.shape)


_FIXED = {bool: _Bool(), int: _I64(), float: _F64(), bytes: _Bytes(), str: _Str()}


def codec_for(spec: Any) -> Codec:
    """The codec described by `spec`: None (untyped raw bytes), a Codec, a type (bool, int,
    float, bytes, str, a ctypes structure class), a default value of one of those (an
    instance), a :class:`struct.Struct` (its format), or a numpy array (its dtype and shape).
    """
    if spec is None:
        return Codec()
    if isinstance(spec, Codec):
        return spec
    if isinstance(spec, type):
        if spec in _FIXED:
            return _FIXED[spec]
        if issubclass(spec, ctypes.Structure):
            return _Ctypes(spec)
        if spec is bytearray or spec is memoryview:
            return _FIXED[bytes]
    else:
        if isinstance(spec, bool):
            return _FIXED[bool]
        for t in (int, float, str):
            if type(spec) is t:
                return _FIXED[t]
        if isinstance(spec, (bytes, bytearray, memoryview)):
            return _FIXED[bytes]
        if isinstance(spec, struct.Struct):
            return _Struct(spec.format)
        if isinstance(spec, ctypes.Structure):
            return _Ctypes(type(spec))
        mod = type(spec).__module__
        if mod == "numpy":
            import numpy

            if isinstance(spec, numpy.ndarray):
                return _Ndarray(spec.dtype, spec.shape)
            if isinstance(spec, numpy.bool_):
                return _FIXED[bool]
            if isinstance(spec, numpy.integer):
                return _FIXED[int]
            if isinstance(spec, numpy.floating):
                return _FIXED[float]
        if isinstance(spec, int):
            return _FIXED[int]
        if isinstance(spec, float):
            return _FIXED[float]
    raise TypeError(
        f"cannot carry {spec!r} on a topic: use bool, int, float, bytes, str, a ctypes "
        "structure, a struct.Struct('<...') or a numpy array (or None for raw bytes)"
    )


def codec_for_tag(tag: str) -> Codec:
    """The codec of a channel's type tag (for tools and interop peers)."""
    if tag == "":
        return Codec()
    for c in _FIXED.values():
        if c.tag == tag:
            return c
    if tag.startswith("struct:"):
        return _Struct(tag[7:])
    if tag.startswith("ndarray:"):
        _, dtype, dims = tag.split(":", 2)
        shape = () if dims == "scalar" else tuple(int(n) for n in dims.split("x"))
        return _Ndarray(dtype, shape)
    raise ValueError(f"unknown type tag {tag!r} (spec/topics.md)")


def describe_tag(tag: str) -> str:
    """`tag` for an error message: its Python type where it has one."""
    names = {"bool": "bool", "i64": "int", "f64": "float", "bytes": "bytes", "str": "str"}
    if not tag:
        return "untyped raw bytes"
    py = names.get(tag)
    return f"{tag} ({py})" if py else tag
