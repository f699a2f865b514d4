"""Output files: checked before the work starts, written atomically (a temporary file, then a rename).

The CLI calls ``check_output_path`` (a report file such as ``--junit``) or ``check_output_dir``
(``--out``) before it runs anything, so an unwritable path is one line and exit status 2, not a
failure after minutes of work; ``atomic_write_text`` leaves either the old file or the new one,
never half of one.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

from apicmap.errors import InputError


def check_output_path(path: str | Path, where: str) -> Path:
    """``path`` can be written as a file: its directory exists and takes a new file, and ``path`` is
    not a directory. Raises ``InputError(where, ...)``; creates nothing."""
    target = Path(path)
    if target.is_dir():
        raise InputError(where, f"{target} is a directory", "a file path")
    parent = target.parent
    if not parent.is_dir():
        raise InputError(where, f"cannot write {target}: directory {parent} does not exist",
                         "a file in an existing, writable directory")
    _probe(parent, target, where)
    if target.exists() and not os.access(target, os.W_OK):
        raise InputError(where, f"cannot write {target}: permission denied", "a writable file")
    return target


def check_output_dir(path: str | Path, where: str) -> Path:
    """``path`` is, or is created as, a directory that takes new files. Raises ``InputError``."""
    target = Path(path)
    if target.exists() and not target.is_dir():
        raise InputError(where, f"{target} exists and is not a directory", "a directory path")
    try:
        target.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise InputError(where, f"cannot create directory {target}: {err.strerror}",
                         "a directory that can be created and written") from None
    _probe(target, target, where)
    return target


def _probe(directory: Path, target: Path, where: str) -> None:
    try:
        fd, name = tempfile.mkstemp(dir=directory, prefix=".apicmap-probe-")
    except OSError as err:
        raise InputError(where, f"cannot write {target}: {err.strerror}",
                         "a path in a writable directory") from None
    os.close(fd)
    os.unlink(name)


def atomic_write_text(path: str | Path, text: str) -> None:
    """Write ``text`` to a temporary file next to ``path``, flush it, then rename it over ``path``."""
    target = Path(path)
    fd, name = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(text)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(name, target)
    except BaseException:
        Path(name).unlink(missing_ok=True)
        raise
