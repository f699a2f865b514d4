"""Error types. Every user-facing error is one line that names the place and the allowed values."""

from __future__ import annotations


class ApicmapError(Exception):
    """Base class for errors apicmap reports to users."""


class InputError(ApicmapError):
    """Bad input: a scenario file, a CLI argument or a register value.

    The CLI prints ``str(err)`` on one line and exits with status 2.
    ``where`` names the place (a file and key, an argument), ``allowed`` what would be accepted.
    """

    def __init__(self, where: str, problem: str, allowed: str | None = None) -> None:
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
