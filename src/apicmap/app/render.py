"""Text for people: tables (rich when installed, aligned plain text otherwise), compact vCPU sets,
and cells that never show a Python value (``None`` is ``-``, ``True`` is ``true``)."""

from __future__ import annotations

import shutil
import sys
import textwrap
from collections.abc import Iterable, Sequence


def _rich_available() -> bool:
    try:
        import rich  # noqa: F401
    except ImportError:
        return False
    return True


def print_table(title: str, headers: Sequence[str], rows: Sequence[Sequence[str]]) -> None:
    if _rich_available() and sys.stdout.isatty():
        from rich.console import Console
        from rich.table import Table

        table = Table(title=title, show_lines=False)
        for header in headers:
            table.add_column(header, overflow="fold")
        for row in rows:
            table.add_row(*row)
        Console().print(table)
        return
    print(plain_table(title, headers, rows))


def plain_table(title: str, headers: Sequence[str], rows: Sequence[Sequence[str]], width: int | None = None) -> str:
    """Aligned columns; the last one wraps on word boundaries; no line ends in spaces."""
    width = width or shutil.get_terminal_size((160, 24)).columns
    cols = list(zip(*([list(headers)] + [list(r) for r in rows]), strict=True))
    widths = [max(len(c) for c in col) for col in cols]
    # Let the last column wrap rather than overflow the terminal.
    fixed = sum(widths[:-1]) + 3 * (len(widths) - 1)
    widths[-1] = max(20, min(widths[-1], width - fixed))

    def line(cells: Sequence[str]) -> list[str]:
        chunks = textwrap.wrap(cells[-1], widths[-1], break_long_words=True, break_on_hyphens=False) or [""]
        out = [" | ".join(c.ljust(w) for c, w in zip([*cells[:-1], chunks[0]], widths, strict=True)).rstrip()]
        pad = " | ".join(" " * w for w in widths[:-1])
        out += [f"{pad} | {chunk}".rstrip() for chunk in chunks[1:]]
        return out

    lines = [title, *line(headers), "-+-".join("-" * w for w in widths)]
    for row in rows:
        lines += line(row)
    return "\n".join(lines)


def ranges(ids: Iterable[int]) -> list[tuple[int, int]]:
    """Sorted, de-duplicated ids as inclusive runs: [1, 3, 4, 5] -> [(1, 1), (3, 5)]."""
    runs: list[tuple[int, int]] = []
    for i in sorted(set(ids)):
        if runs and i == runs[-1][1] + 1:
            runs[-1] = (runs[-1][0], i)
        else:
            runs.append((i, i))
    return runs


def vcpu_set(ids: Iterable[int]) -> str:
    """``{0-1023}``, ``{1, 3-5}``, ``{}``: runs of three or more consecutive ids as ranges."""
    parts: list[str] = []
    for first, last in ranges(ids):
        if last - first >= 2:
            parts.append(f"{first}-{last}")
        else:
            parts += [str(i) for i in range(first, last + 1)]
    return "{" + ", ".join(parts) + "}"


def parse_vcpu_list(text: str, where: str) -> frozenset[int]:
    """``3``, ``1,3-5``: the inverse of ``vcpu_set`` (without braces)."""
    from apicmap.errors import InputError

    ids: set[int] = set()
    for part in text.split(","):
        part = part.strip()
        first, dash, last = part.partition("-")
        try:
            lo = int(first, 0)
            hi = int(last, 0) if dash else lo
        except ValueError:
            raise InputError(where, f"cannot read {part!r}", "vCPU ids and ranges, e.g. 3 or 1,3-5") from None
        if lo < 0 or hi < lo:
            raise InputError(where, f"bad range {part!r}", "vCPU ids and ranges, e.g. 3 or 1,3-5") from None
        ids.update(range(lo, hi + 1))
    return frozenset(ids)


def cell(value: object) -> str:
    """A table cell for any value: ``-`` for None, ``true``/``false``, lists joined with commas."""
    if value is None:
        return "-"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, list | tuple | set | frozenset):
        return ", ".join(cell(v) for v in value) or "-"
    return str(value)


def wrap(text: str, width: int, indent: str) -> str:
    """``text`` wrapped on word boundaries, continuation lines indented by ``indent``."""
    return "\n".join(textwrap.wrap(text, width, subsequent_indent=indent, break_on_hyphens=False,
                                   break_long_words=False)) or text
