"""A small CBOR (RFC 8949) reader and writer, enough for crosvm's snapshot fragments.

crosvm writes each snapshot fragment with ``ciborium::into_writer`` (snapshot/src/lib.rs
``SnapshotWriter::write_fragment``). serde maps structs to CBOR maps with text keys, sequences
to arrays, unit enum variants to text. This reader handles every major type (indefinite
lengths and tags included) and rejects anything malformed with the byte offset.
"""

from __future__ import annotations

import struct
from typing import Any


class CborError(ValueError):
    def __init__(self, offset: int, problem: str) -> None:
        self.offset = offset
        self.problem = problem
        super().__init__(f"offset {offset}: {problem}")


_SIMPLE = {20: False, 21: True, 22: None, 23: None}
_BREAK = object()


class _Reader:
    def __init__(self, data: bytes) -> None:
        self.data = data
        self.pos = 0

    def take(self, n: int) -> bytes:
        if self.pos + n > len(self.data):
            raise CborError(self.pos, f"truncated: {n} more bytes needed, {len(self.data) - self.pos} left")
        chunk = self.data[self.pos:self.pos + n]
        self.pos += n
        return chunk

    def argument(self, info: int, start: int) -> int | None:
        if info < 24:
            return info
        if info in (24, 25, 26, 27):
            return int.from_bytes(self.take(1 << (info - 24)), "big")
        if info == 31:
            return None  # indefinite length
        raise CborError(start, f"reserved additional information {info}")

    def item(self, depth: int = 0) -> Any:
        if depth > 256:
            raise CborError(self.pos, "nested too deeply")
        start = self.pos
        head = self.take(1)[0]
        major, info = head >> 5, head & 0x1F
        if major == 7:
            return self._simple(info, start)
        n = self.argument(info, start)
        if major == 0:
            return self._definite(n, start)
        if major == 1:
            return -1 - self._definite(n, start)
        if major in (2, 3):
            raw = self._chunks(major, n, depth) if n is None else self.take(n)
            if major == 2:
                return raw
            try:
                return raw.decode("utf-8")
            except UnicodeDecodeError:
                raise CborError(start, "text string is not UTF-8") from None
        if major == 4:
            items: list[Any] = []
            while n is None or len(items) < n:
                value = self.item(depth + 1)
                if value is _BREAK:
                    if n is not None:
                        raise CborError(start, "break inside a definite-length array")
                    break
                items.append(value)
            return items
        if major == 5:
            out: dict[Any, Any] = {}
            count = 0
            while n is None or count < n:
                key = self.item(depth + 1)
                if key is _BREAK:
                    if n is not None:
                        raise CborError(start, "break inside a definite-length map")
                    break
                if isinstance(key, (list, dict)):
                    raise CborError(start, "a map key that is an array or a map")
                out[key] = self.item(depth + 1)
                count += 1
            return out
        # major 6: a tag; the tagged value stands for itself here
        self._definite(n, start)
        return self.item(depth + 1)

    def _definite(self, n: int | None, start: int) -> int:
        if n is None:
            raise CborError(start, "indefinite length on an integer or tag")
        return n

    def _chunks(self, major: int, n: int | None, depth: int) -> bytes:
        parts: list[bytes] = []
        while True:
            start = self.pos
            value = self.item(depth + 1)
            if value is _BREAK:
                return b"".join(parts)
            if not isinstance(value, (bytes, str)) or (major == 2) != isinstance(value, bytes):
                raise CborError(start, "a chunk of the wrong type in an indefinite string")
            parts.append(value if isinstance(value, bytes) else value.encode())

    def _simple(self, info: int, start: int) -> Any:
        if info in _SIMPLE:
            return _SIMPLE[info]
        if info == 25:
            return struct.unpack(">e", self.take(2))[0]
        if info == 26:
            return struct.unpack(">f", self.take(4))[0]
        if info == 27:
            return struct.unpack(">d", self.take(8))[0]
        if info == 31:
            return _BREAK
        if info == 24:
            return self.take(1)[0]
        if info < 20:
            return info
        raise CborError(start, f"reserved simple value {info}")


def loads(data: bytes) -> Any:
    """One CBOR data item; trailing bytes are an error."""
    reader = _Reader(data)
    value = reader.item()
    if value is _BREAK:
        raise CborError(0, "a break code outside an indefinite item")
    if reader.pos != len(data):
        raise CborError(reader.pos, f"{len(data) - reader.pos} trailing bytes after the data item")
    return value


def _head(major: int, n: int) -> bytes:
    if n < 24:
        return bytes([major << 5 | n])
    for info, size in ((24, 1), (25, 2), (26, 4), (27, 8)):
        if n < 1 << (8 * size):
            return bytes([major << 5 | info]) + n.to_bytes(size, "big")
    raise ValueError(f"integer {n} does not fit CBOR")


def dumps(value: Any) -> bytes:
    """Canonical-length CBOR for None, bool, int, float, str, bytes, list/tuple and dict."""
    if value is None:
        return b"\xf6"
    if isinstance(value, bool):
        return b"\xf5" if value else b"\xf4"
    if isinstance(value, int):
        return _head(0, value) if value >= 0 else _head(1, -1 - value)
    if isinstance(value, float):
        return b"\xfb" + struct.pack(">d", value)
    if isinstance(value, str):
        raw = value.encode()
        return _head(3, len(raw)) + raw
    if isinstance(value, bytes):
        return _head(2, len(value)) + value
    if isinstance(value, (list, tuple)):
        return _head(4, len(value)) + b"".join(dumps(v) for v in value)
    if isinstance(value, dict):
        return _head(5, len(value)) + b"".join(dumps(k) + dumps(v) for k, v in value.items())
    raise TypeError(f"cannot encode {type(value).__name__}")
