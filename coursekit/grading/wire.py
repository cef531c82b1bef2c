"""What crosses the sandbox boundary: length-prefixed JSON frames, with numpy arrays as raw bytes in base64.

Never pickle: unpickling runs code. The parent decodes each frame with `decode`, which accepts only the plain data
that probes return (None, bool, int, float, str, lists, dicts with string keys, numeric arrays) and refuses
anything else, so a forged or corrupted frame is an error, never a value.

>>> decode_value(encode_value({"ids": [1, 2], "x": np.arange(3, dtype=np.float32)}))["x"]
array([0., 1., 2.], dtype=float32)
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import struct

import numpy as np

MAX_FRAME = 64 * 1024 * 1024  # one message; a probe result larger than this is refused
MAX_DEPTH = 64
ARRAY_KINDS = "biuf"  # bool, signed, unsigned, float: never object arrays
HEADER = struct.Struct(">Q32s")  # payload length, sha256(key + payload)


class WireError(ValueError):
    """A frame that is not valid plain data (corrupted, forged or too large)."""


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
        return {"array": {"dtype": array.dtype.newbyteorder("<").str, "shape": list(array.shape),
                          "data": base64.b64encode(array.astype(array.dtype.newbyteorder("<")).tobytes()).decode()}}
    if type(value).__name__ == "ProbeError":
        return {"error": str(value.message)}
    raise WireError(f"cannot send {type(value).__name__}")


def decode_value(data, depth: int = 0):
    """JSON data from a frame -> plain data; raises WireError on anything unexpected."""
    if depth > MAX_DEPTH:
        raise WireError("nested too deeply")
    if data is None or type(data) in (bool, int, float, str):
        return data
    if type(data) is list:
        return [decode_value(item, depth + 1) for item in data]
    if type(data) is not dict or len(data) != 1:
        raise WireError(f"unexpected {type(data).__name__} in a frame")
    (tag, body), = data.items()
    if tag == "dict" and type(body) is dict:
        return {key: decode_value(item, depth + 1) for key, item in body.items()}
    if tag == "error" and type(body) is str:
        from coursekit.checks.core import ProbeError
        return ProbeError(body)
    if tag == "array" and type(body) is dict:
        return _decode_array(body)
    raise WireError(f"unknown tag {tag!r}")


def _decode_array(body: dict) -> np.ndarray:
    try:
        dtype = np.dtype(body["dtype"])
        shape = tuple(body["shape"])
        raw = base64.b64decode(body["data"], validate=True)
    except (KeyError, TypeError, ValueError) as error:
        raise WireError(f"malformed array: {error}") from None
    if dtype.kind not in ARRAY_KINDS or dtype.hasobject or not all(type(n) is int and n >= 0 for n in shape):
        raise WireError(f"refused array of dtype {dtype} and shape {shape}")
    if int(np.prod(shape, dtype=object)) * dtype.itemsize != len(raw):
        raise WireError("array data does not match its shape")
    return np.frombuffer(raw, dtype=dtype).reshape(shape).astype(dtype.newbyteorder("="))


def frame(message: dict, key: bytes, sha256=hashlib.sha256) -> bytes:
    """One message as bytes: its length and a MAC with the run's secret key, then JSON.

    The key reaches the child in a file it deletes before student code runs; junk or forged frames written to
    the channel by student code fail the MAC and stop the grading of that notebook.
    """
    payload = json.dumps(message, allow_nan=True, separators=(",", ":")).encode()
    return HEADER.pack(len(payload), sha256(key + payload).digest()) + payload


class FrameReader:
    """Reassembles frames from chunks read off a pipe; `feed` returns the complete messages (dicts)."""

    def __init__(self, key: bytes, limit: int = MAX_FRAME):
        self.buffer = b""
        self.key, self.limit = key, limit

    def feed(self, chunk: bytes) -> list[dict]:
        self.buffer += chunk
        messages = []
        while len(self.buffer) >= HEADER.size:
            size, mac = HEADER.unpack_from(self.buffer)
            if size > self.limit:
                raise WireError(f"a frame of {size} bytes is larger than the limit of {self.limit}")
            if len(self.buffer) < HEADER.size + size:
                break
            payload, self.buffer = self.buffer[HEADER.size:HEADER.size + size], self.buffer[HEADER.size + size:]
            if not hmac.compare_digest(mac, hashlib.sha256(self.key + payload).digest()):
                raise WireError("a frame does not carry the run's key (forged or corrupted)")
            try:
                message = json.loads(payload.decode("utf-8"))
            except (UnicodeDecodeError, ValueError, RecursionError) as error:
                raise WireError(f"a frame is not JSON: {error}") from None
            if type(message) is not dict or type(message.get("type")) is not str:
                raise WireError("a frame is not a message")
            messages.append(message)
        return messages
