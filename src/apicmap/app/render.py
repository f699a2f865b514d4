"""Tables for people: rich when installed, aligned plain text otherwise (no dependency needed)."""

from __future__ import annotations

import shutil
import sys
from collections.abc import Sequence


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


def plain_table(title: str, headers: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    width = shutil.get_terminal_size((160, 24)).columns
    cols = list(zip(*([list(headers)] + [list(r) for r in rows]), strict=True))
    widths = [max(len(c) for c in col) for col in cols]
    # Let the last column wrap rather than overflow the terminal.
    fixed = sum(widths[:-1]) + 3 * (len(widths) - 1)
    widths[-1] = max(20, min(widths[-1], width - fixed))

    def line(cells: Sequence[str]) -> list[str]:
        last = cells[-1]
        chunks = [last[i:i + widths[-1]] for i in range(0, max(len(last), 1), widths[-1])] or [""]
        out = [" | ".join(c.ljust(w) for c, w in zip([*cells[:-1], chunks[0]], widths, strict=True))]
        pad = " | ".join(" " * w for w in widths[:-1])
        out += [f"{pad} | {chunk}" for chunk in chunks[1:]]
        return out

    lines = [title, *line(headers), "-+-".join("-" * w for w in widths)]
    for row in rows:
        lines += line(row)
    return "\n".join(lines)


def vcpu_set(ids: Sequence[int]) -> str:
    return "{" + ", ".join(str(i) for i in ids) + "}"
