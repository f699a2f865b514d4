"""The agent protocol: one JSON object per line, each way.

Request: ``{"id": N, "op": "hello" | "prepare" | "deliver" | "close" | "shutdown", ...}``.
Reply: ``{"id": N, "ok": true, "result": ...}`` or ``{"id": N, "ok": false, "error": {...}}``
(``wire.encode_error``). Requests are answered one at a time, in order.
"""

from __future__ import annotations

import json
from typing import Any

OPS = ("hello", "prepare", "deliver", "close", "shutdown")
MAX_LINE = 64 * 1024 * 1024


def encode_line(message: dict[str, Any]) -> bytes:
    return json.dumps(message, separators=(",", ":")).encode() + b"\n"


class LineBuffer:
    """Bytes in, complete lines out (without the newline)."""

    def __init__(self) -> None:
        self._pending = bytearray()

    def feed(self, data: bytes) -> list[bytes]:
        self._pending += data
        if len(self._pending) > MAX_LINE:
            raise ValueError("line longer than the protocol allows")
        *lines, rest = self._pending.split(b"\n")
        self._pending = bytearray(rest)
        return [bytes(line) for line in lines if line.strip()]
