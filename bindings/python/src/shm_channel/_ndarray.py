r"""numpy arrays as messages, in NumPy's own ``.npy`` format.

A message written by :meth:`Producer.write_array` is exactly the bytes of a ``.npy``
file, format version 1.0 (2.0 for headers over 64 KiB): the magic ``\x93NUMPY``, the
version bytes, a little-endian header length, a Python-literal dict with ``descr``,
``fortran_order`` and ``shape``, padded with spaces and a newline so the data starts at
a multiple of 64 bytes; then the array's data. Payloads in the ring are 8-byte aligned,
so the data is too, and a consumer views it in place. Any ``.npy`` reader (NumPy, C++'s
cnpy, Rust's npyz...) understands it.
"""

from __future__ import annotations

import io
import math
import struct
from typing import Any

import numpy
import numpy.lib.format as npformat

__all__ = ["array_message", "describe", "encode_array", "view_array"]

_MAGIC = b"\x93NUMPY"
_ALIGN = 64
_CACHE_MAX = 256
_encode_cache: dict[tuple[Any, ...], bytes] = {}
_decode_cache: dict[bytes, tuple[numpy.dtype[Any], tuple[int, ...], str, int]] = {}


def _header(dtype: numpy.dtype[Any], shape: tuple[int, ...], fortran: bool) -> bytes:
    key = (dtype, shape, fortran)
    hit = _encode_cache.get(key)
    if hit is not None:
        return hit
    text = (
        f"{{'descr': {npformat.dtype_to_descr(dtype)!r}, "
        f"'fortran_order': {fortran!r}, 'shape': {shape!r}, }}"
    )
    raw = text.encode("latin1")
    for version, fmt in (((1, 0), "<H"), ((2, 0), "<I")):
        prefix = len(_MAGIC) + 2 + struct.calcsize(fmt)
        pad = -(prefix + len(raw) + 1) % _ALIGN
        body = raw + b" " * pad + b"\n"
        if len(body) < 1 << (8 * struct.calcsize(fmt)):
            header = _MAGIC + bytes(version) + struct.pack(fmt, len(body)) + body
            break
    if len(_encode_cache) >= _CACHE_MAX:
        _encode_cache.clear()
    _encode_cache[key] = header
    return header


def encode_array(array: Any) -> tuple[bytes, numpy.ndarray]:
    """The ``.npy`` header for `array`, and its data as a flat contiguous uint8 array."""
    arr = numpy.asarray(array)
    if arr.dtype.hasobject:
        raise TypeError("arrays of Python objects cannot be sent; use a numeric dtype")
    if arr.flags.c_contiguous:
        fortran = False
        body = arr
    elif arr.flags.f_contiguous:
        fortran = True
        body = arr.T  # C-contiguous view of the same memory
    else:
        fortran = False
        body = numpy.ascontiguousarray(arr)
    header = _header(arr.dtype, arr.shape, fortran)
    flat = body.reshape(-1).view(numpy.uint8) if arr.dtype.itemsize else numpy.empty(0, "u1")
    return header, flat


def array_message(array: Any) -> bytes:
    """`array` as the bytes of one message in the format :meth:`Producer.write_array`
    uses (the content of a ``.npy`` file). For tests and other transports.
    """
    header, flat = encode_array(array)
    return header + flat.tobytes()


def _parse(message: Any, name: str) -> tuple[numpy.dtype[Any], tuple[int, ...], str, int]:
    view = memoryview(message)
    head = bytes(view[:12])
    if head[:6] != _MAGIC or len(head) < 10:
        raise ValueError(
            f"the next message on {name!r} has no .npy header (it was not sent with "
            "write_array); pass dtype= (and shape=) to read raw data. It stays unread"
        )
    major = head[6]
    if major == 1:
        start = 10 + struct.unpack_from("<H", head, 8)[0]
    elif major in (2, 3) and len(head) >= 12:
        start = 12 + struct.unpack_from("<I", head, 8)[0]
    else:
        raise ValueError(f"unsupported .npy format version {major} in a message on {name!r}")
    if start > len(view):
        raise ValueError(f"truncated .npy header in a message on {name!r}; it stays unread")
    key = bytes(view[:start])
    hit = _decode_cache.get(key)
    if hit is not None:
        return hit
    f = io.BytesIO(key)
    version = npformat.read_magic(f)
    if version == (1, 0):
        shape, fortran, dtype = npformat.read_array_header_1_0(f)
    else:
        shape, fortran, dtype = npformat.read_array_header_2_0(f)
    if dtype.hasobject:
        raise ValueError(f"a message on {name!r} declares Python objects; refusing it")
    result = (dtype, tuple(shape), "F" if fortran else "C", start)
    if len(_decode_cache) >= _CACHE_MAX:
        _decode_cache.clear()
    _decode_cache[key] = result
    return result


def _shape(shape: Any) -> tuple[int, ...]:
    """`shape` (an int or a sequence of ints, numpy integers included) as a tuple of ints
    >= 0; TypeError for anything else (floats, strings, bool), ValueError if negative.
    """
    dims = (shape,) if isinstance(shape, (int, numpy.integer)) else shape
    try:
        dims = tuple(dims)
    except TypeError:
        raise TypeError(f"shape must be an int or a tuple of ints, not {shape!r}") from None
    out = []
    for n in dims:
        if isinstance(n, (bool, numpy.bool_)) or not isinstance(n, (int, numpy.integer)):
            raise TypeError(f"shape must be an int or a tuple of ints, not {shape!r}")
        if n < 0:
            raise ValueError(f"shape must not be negative: {shape!r}")
        out.append(int(n))
    return tuple(out)


def describe(
    message: Any, dtype: Any, shape: Any, name: str
) -> tuple[numpy.dtype[Any], tuple[int, ...], str, int]:
    """(dtype, shape, order, data offset) of a message; ValueError if it does not fit."""
    size = memoryview(message).nbytes
    if dtype is None:
        dt, shp, order, offset = _parse(message, name)
        if shape is not None and _shape(shape) != shp:
            raise ValueError(f"the array on {name!r} has shape {shp}, not {shape}")
    else:
        dt = numpy.dtype(dtype)
        order, offset = "C", 0
        if dt.hasobject or dt.itemsize == 0:
            raise TypeError(f"cannot read messages as dtype {dt}")
        if shape is None:
            if size % dt.itemsize:
                raise ValueError(
                    f"the next message on {name!r} is {size} bytes, not a whole number of "
                    f"{dt} items; it stays unread"
                )
            shp = (size // dt.itemsize,)
        else:
            shp = _shape(shape)
    want = math.prod(shp) * dt.itemsize
    if offset + want != size:
        raise ValueError(
            f"the next message on {name!r} is {size} bytes, but {dt} of shape {shp} needs "
            f"{offset + want}; it stays unread"
        )
    return dt, shp, order, offset


def view_array(
    buffer: Any, dtype: numpy.dtype[Any], shape: tuple[int, ...], order: str, offset: int
) -> numpy.ndarray:
    """An array of `dtype` and `shape` viewing `buffer` from `offset`, without a copy."""
    nbytes = math.prod(shape) * dtype.itemsize
    flat = numpy.frombuffer(buffer, numpy.uint8, count=nbytes, offset=offset)
    return flat.view(dtype).reshape(shape, order=order)  # type: ignore[call-overload,no-any-return]
