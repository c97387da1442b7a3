"""JSON in and out of the API and the archive: the hot path of every backup and restore.

orjson does the work (several times the standard library on Kubernetes objects), but only where it
is exact: a document that may hold an integer beyond 64 bits (orjson would read it as a float), and
anything orjson refuses (lone surrogates, floats that overflow), goes through the standard library
instead. Reading refuses NaN, Infinity and numbers too large for a float (no Kubernetes API server
sends them): orjson would write them as null, and everything written here was read here first.
"""

from __future__ import annotations

import json
import math
from typing import Any

import orjson

#: orjson reads an integer beyond 64 bits as a float; any run of 19 digits sends the document to
#: the standard decoder instead (found with translate + `in`, several times faster than a regex; a
#: run inside a string is a false alarm that only costs the slower path)
_DIGITS_AS_ZERO = bytes(0x30 if 0x30 <= b <= 0x39 else 0x20 for b in range(256))
_LONG_RUN = b"0" * 19
_STANDARD = json.JSONEncoder(separators=(",", ":"), allow_nan=False)


def _refuse_constant(name: str) -> Any:
    raise ValueError(f"{name} is not valid JSON")


def _finite_float(text: str) -> float:
    value = float(text)
    if math.isinf(value):
        raise ValueError(f"{text[:20]} does not fit a float")
    return value


def dumps(value: Any) -> bytes:
    """Compact JSON bytes."""
    try:
        return orjson.dumps(value)
    except orjson.JSONEncodeError:
        return _STANDARD.encode(value).encode()


def loads(data: bytes | bytearray | memoryview | str) -> Any:
    """Parse JSON exactly; ValueError when it is not JSON."""
    raw = data.encode("utf-8", "surrogatepass") if isinstance(data, str) else bytes(data)
    if _LONG_RUN not in raw.translate(_DIGITS_AS_ZERO):
        try:
            return orjson.loads(raw)
        except orjson.JSONDecodeError:
            pass
    return json.loads(data if isinstance(data, str) else raw, parse_constant=_refuse_constant, parse_float=_finite_float)
