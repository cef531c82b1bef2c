"""What crosses the sandbox boundary: length-prefixed JSON frames, with numpy arrays as raw bytes in base64.

Everything that arrives is an untrusted claim made by code the student controls, so the parent decodes it from
the data alone: plain values (None, bool, int, float, str, lists, dicts with string keys) and numeric arrays
whose dtype, shape and byte count must agree; never pickle, never a type the sender names. A result nested
deeper than MAX_DEPTH or larger than MAX_ITEMS fails its own test as "not plain data"; only a frame that is not
a frame at all (bad length, not JSON) is a WireError, and it ends that one run of that one notebook.

>>> decode_value(encode_value({"ids": [1, 2], "x": np.arange(3, dtype=np.float32)}))["x"]
array([0., 1., 2.], dtype=float32)
"""

from __future__ import annotations

import base64
import json
import struct

import numpy as np

MAX_FRAME = 64 * 1024 * 1024  # one message; a probe result larger than this is refused
MAX_DEPTH = 64
MAX_ITEMS = 1_000_000  # values (list items, dict entries) in one result
ARRAY_KINDS = "biuf"  # bool, signed, unsigned, float: never object arrays
HEADER = struct.Struct(">Q")  # payload length


class WireError(ValueError):
    """A frame that is not a frame (corrupted or too large)."""


class NotPlain(ValueError):
    """A result that is not plain data the judges can look at (too deep, too big, unknown tags)."""


def encode_value(value):
    """Plain data -> JSON-ready data; arrays and dicts are tagged so that a student's dict cannot pose as one."""
    if value is None or type(value) in (bool, int, float, str):
        return value
    if type(value) is list:
        return [encode_value(item) for item in value]
    if type(value) is dict:
        return {"dict": {key: encode_value(item) for key, item in value.items() if type(key) is str}}
    if type(value) is np.ndarray and value.dtype.kind in ARRAY_KINDS:
        array = np.ascontiguousarray(value)
        little = array.dtype.newbyteorder("<")
        return {"array": {"dtype": little.str, "shape": list(array.shape),
                          "data": base64.b64encode(array.astype(little).tobytes()).decode()}}
    if type(value).__name__ == "ProbeError":
        return {"error": str(value.message)}
    raise NotPlain(f"cannot send {type(value).__name__}")


def decode_value(data):
    """JSON data from a frame -> plain data, or a ProbeError saying why it is not plain data."""
    from coursekit.checks.core import ProbeError

    budget = [MAX_ITEMS]
    try:
        return _decode(data, 0, budget)
    except NotPlain as error:
        return ProbeError(f"your code's result is not plain data the grader can judge ({error})")


def _decode(data, depth: int, budget: list[int]):
    if depth > MAX_DEPTH:
        raise NotPlain(f"nested deeper than {MAX_DEPTH} levels")
    budget[0] -= 1
    if budget[0] < 0:
        raise NotPlain(f"more than {MAX_ITEMS} values")
    if data is None or type(data) in (bool, int, float, str):
        return data
    if type(data) is list:
        return [_decode(item, depth + 1, budget) for item in data]
    if type(data) is not dict or len(data) != 1:
        raise NotPlain(f"unexpected {type(data).__name__}")
    (tag, body), = data.items()
    if tag == "dict" and type(body) is dict:
        return {key: _decode(item, depth + 1, budget) for key, item in body.items()}
    if tag == "error" and type(body) is str:
        from coursekit.checks.core import ProbeError
        return ProbeError(body[:500])
    if tag == "array" and type(body) is dict:
        return _decode_array(body)
    raise NotPlain(f"unknown tag {str(tag)[:40]!r}")


def _decode_array(body: dict) -> np.ndarray:
    try:
        dtype = np.dtype(body["dtype"])
        shape = tuple(body["shape"])
        raw = base64.b64decode(body["data"], validate=True)
    except (KeyError, TypeError, ValueError) as error:
        raise NotPlain(f"malformed array: {error}") from None
    if dtype.kind not in ARRAY_KINDS or dtype.hasobject or dtype.fields or dtype.subdtype or not all(
            type(n) is int and n >= 0 for n in shape) or len(shape) > 32:
        raise NotPlain(f"refused array of dtype {dtype} and shape {shape}")
    if int(np.prod(shape, dtype=object)) * dtype.itemsize != len(raw):
        raise NotPlain("array data does not match its shape")
    return np.frombuffer(raw, dtype=dtype).reshape(shape).astype(dtype.newbyteorder("="))


def frame(message: dict) -> bytes:
    """One message as bytes: its length, then JSON."""
    payload = json.dumps(message, allow_nan=True, separators=(",", ":")).encode()
    return HEADER.pack(len(payload)) + payload


class FrameReader:
    """Reassembles frames from chunks read off a pipe; `feed` yields the complete messages (dicts) one by one, so
    the frames before a bad one in the same chunk are delivered before its WireError."""

    def __init__(self, limit: int = MAX_FRAME):
        self.buffer = b""
        self.limit = limit

    def feed(self, chunk: bytes):
        self.buffer += chunk
        while len(self.buffer) >= HEADER.size:
            (size,) = HEADER.unpack_from(self.buffer)
            if size > self.limit:
                raise WireError(f"a frame of {size} bytes is larger than the limit of {self.limit}")
            if len(self.buffer) < HEADER.size + size:
                break
            payload, self.buffer = self.buffer[HEADER.size:HEADER.size + size], self.buffer[HEADER.size + size:]
            try:
                message = json.loads(payload.decode("utf-8"))
            except (UnicodeDecodeError, ValueError, RecursionError) as error:
                raise WireError(f"a frame is not JSON: {str(error)[:80]}") from None
            if type(message) is not dict or type(message.get("type")) is not str:
                raise WireError("a frame is not a message")
            yield message
