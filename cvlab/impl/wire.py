"""Messages between cvlab and an impl= worker, without pickle in either direction.

A message is a tree of None, bool, int, float, str, lists, dicts with str keys and numpy
arrays of numbers or booleans. It travels as one byte string:

    4 bytes   length L of the header (big-endian)
    L bytes   the header: JSON {"body": <tree>, "arrays": [[<dtype>, <shape>], ...]}, where
              each array of the tree is {"__array__": <its index>}
    then      the bytes of each array (C order), in order

Decoding builds only those types (np.frombuffer of a numeric dtype: nothing is unpickled):
a worker (or anything else on the other end) can send
wrong values but no objects, and the parent checks what it needs of each value (shapes,
dtypes) where it uses it. Tuples arrive as lists; numpy scalars are sent as Python numbers.
"""

from __future__ import annotations

import json
import math
import struct
from typing import Any

import numpy as np

ARRAY_KEY = "__array__"
HEADER = struct.Struct(">I")
NUMERIC_KINDS = "biuf"  # bool, signed and unsigned integers, floats


class WireError(ValueError):
    """A value that cannot be sent (an object, a complex array), or bytes that are not a
    message."""


def encode(message: Any) -> bytes:
    """The bytes of `message` (a tree of plain values and numeric arrays)."""
    arrays: list[np.ndarray] = []
    body = _plain(message, arrays)
    layout = [[array.dtype.str, list(array.shape)] for array in arrays]
    header = json.dumps({"body": body, "arrays": layout}).encode()
    return b"".join([HEADER.pack(len(header)), header, *(a.tobytes() for a in arrays)])


def decode(data: bytes) -> Any:
    """The message in `data` (WireError when the bytes are not one)."""
    try:
        (length,) = HEADER.unpack_from(data, 0)
        header = json.loads(data[HEADER.size:HEADER.size + length].decode())
        offset = HEADER.size + length
        arrays = []
        for dtype, shape in header["arrays"]:
            array = _read_array(data, offset, dtype, shape)
            offset += array.nbytes
            arrays.append(array)
        if offset != len(data):
            raise WireError(f"{len(data) - offset} bytes too many")
        return _rebuild(header["body"], arrays)
    except WireError:
        raise
    except Exception as err:  # noqa: BLE001 - any malformed input is one kind of error
        raise WireError(f"not a message ({type(err).__name__}: {err})") from None


def _read_array(data: bytes, offset: int, dtype: str, shape: list[int]) -> np.ndarray:
    kind = np.dtype(str(dtype))
    if kind.kind not in NUMERIC_KINDS or kind.fields is not None or kind.subdtype is not None:
        raise WireError(f"an array of dtype {dtype} is not allowed")
    dims = tuple(int(d) for d in shape)
    count = int(np.prod(dims, dtype=np.int64))
    if min(dims, default=0) < 0 or offset + count * kind.itemsize > len(data):
        raise WireError(f"an array of shape {dims} does not fit the message")
    return np.frombuffer(data, dtype=kind, count=count, offset=offset).reshape(dims).copy()


def _plain(value: Any, arrays: list[np.ndarray]) -> Any:
    """The JSON tree of `value`, its arrays appended to `arrays`."""
    if value is None or isinstance(value, (bool, str)):
        return value
    if isinstance(value, (int, np.integer)) and not isinstance(value, np.bool_):
        return int(value)
    if isinstance(value, (float, np.floating)):
        return _float(float(value))
    if isinstance(value, np.bool_):
        return bool(value)
    if isinstance(value, np.ndarray):
        if value.dtype.kind not in NUMERIC_KINDS:
            raise WireError(f"an array of dtype {value.dtype} cannot be sent")
        arrays.append(value)
        return {ARRAY_KEY: len(arrays) - 1}
    if isinstance(value, (list, tuple)):
        return [_plain(item, arrays) for item in value]
    if isinstance(value, dict):
        if not all(isinstance(key, str) for key in value) or ARRAY_KEY in value:
            raise WireError("a dict to send must have str keys (and no key __array__)")
        return {key: _plain(item, arrays) for key, item in value.items()}
    raise WireError(f"a {type(value).__name__} cannot be sent")


def _float(value: float) -> Any:
    """JSON has no inf or nan: those travel as strings."""
    return value if math.isfinite(value) else {"__float__": repr(value)}


def _rebuild(node: Any, arrays: list[np.ndarray]) -> Any:
    if isinstance(node, list):
        return [_rebuild(item, arrays) for item in node]
    if isinstance(node, dict):
        if set(node) == {ARRAY_KEY}:
            return arrays[int(node[ARRAY_KEY])]
        if set(node) == {"__float__"}:
            return float(node["__float__"])
        return {str(key): _rebuild(item, arrays) for key, item in node.items()}
    if node is None or isinstance(node, (bool, int, float, str)):
        return node
    raise WireError(f"unexpected {type(node).__name__} in a message")
