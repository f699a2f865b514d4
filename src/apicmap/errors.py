"""Error types. Every user-facing error is one line that names the place and the allowed values."""

from __future__ import annotations

import json

ECHO_LIMIT = 40  # characters of a user's value an error message repeats


def echo(value: object, limit: int = ECHO_LIMIT) -> str:
    """A value as the file format (TOML) writes it, cut to ``limit`` characters: ``true``, ``"text"``,
    ``[1, 2]``, ``{ address = 0xfee00000 }``; ``nothing`` for an absent value."""
    text = _toml(value)
    return text if len(text) <= limit else text[:limit - 3] + "..."


def _toml(value: object) -> str:
    if value is None:
        return "nothing"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value) if -4096 < value < 4096 else f"{value:#x}"
    if isinstance(value, str):
        return json.dumps(value, ensure_ascii=False)
    if isinstance(value, list | tuple):
        return "[" + ", ".join(_toml(v) for v in value) + "]"
    if isinstance(value, dict):
        return "{ " + ", ".join(f"{k} = {_toml(v)}" for k, v in value.items()) + " }"
    return str(value)


class ApicmapError(Exception):
    """Base class for errors apicmap reports to users."""


class InputError(ApicmapError):
    """Bad input: a scenario file, a CLI argument or a register value.

    The CLI prints ``str(err)`` on one line and exits with status 2.
    ``where`` names the place (a file and key, an argument), ``allowed`` what would be accepted.
    """

    def __init__(self, where: str, problem: str, allowed: str | None = None) -> None:
        # A safety net for echoed values: callers echo through ``echo()``, but a message never
        # repeats more than a few dozen characters of input per part.
        where, problem = _cut(where, 160), _cut(problem, 160)
        allowed = None if allowed is None else _cut(allowed, 240)
        self.where = where
        self.problem = problem
        self.allowed = allowed
        text = f"{where}: {problem}"
        if allowed:
            text += f" (allowed: {allowed})"
        super().__init__(text)


class EncodingError(InputError):
    """A register value that cannot be encoded or decoded (reserved bits, out-of-range field)."""


class NotExpressible(ApicmapError):
    """The scenario cannot be run by this engine as written (e.g. an xAPIC-mode IPI source on /dev/kvm).

    Engines raise it instead of silently doing something else.
    """


class KvmUnavailable(ApicmapError):
    """/dev/kvm is absent, not accessible, or lacks a required capability."""


def _cut(text: str, limit: int) -> str:
    text = text.replace("\n", " ")
    return text if len(text) <= limit else text[:limit - 3] + "..."
