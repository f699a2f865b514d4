"""Progress of long runs (fuzz, bench, conformance) on stderr, for people watching a terminal.

One rule for every command: progress is shown only when stderr is a terminal and the output is
not ``--json``; with ``rich`` installed it is a rich progress bar, otherwise one plain line
rewritten in place. Nothing is written otherwise, so pipes, files and CI logs stay clean.

Use::

    with progress("conformance", total=len(files), enabled=not args.json) as bar:
        for f in files:
            ...
            bar.advance(status=f.name)

or, for a run bounded by time whose counters live elsewhere, ``ticking(...)``, which redraws
from a background thread twice a second.
"""

from __future__ import annotations

import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Protocol


class Bar(Protocol):
    def advance(self, steps: float = 1, status: str = "") -> None: ...

    def update(self, completed: float, status: str = "") -> None: ...


class _Silent:
    def advance(self, steps: float = 1, status: str = "") -> None:
        pass

    def update(self, completed: float, status: str = "") -> None:
        pass


class _Plain:
    """One line on stderr, rewritten in place at most every ``interval`` seconds."""

    def __init__(self, label: str, total: float | None, interval: float = 0.25) -> None:
        self.label, self.total, self.interval = label, total, interval
        self.completed = 0.0
        self.last = 0.0
        self.width = 0
        self.lock = threading.Lock()

    def advance(self, steps: float = 1, status: str = "") -> None:
        self.update(self.completed + steps, status)

    def update(self, completed: float, status: str = "") -> None:
        with self.lock:
            self.completed = completed
            now = time.monotonic()
            if now - self.last < self.interval:
                return
            self.last = now
            if self.total:
                shown = f"{self.completed:.0f}/{self.total:.0f} ({100 * self.completed / self.total:3.0f}%)"
            else:
                shown = f"{self.completed:.0f}"
            line = f"{self.label}: {shown}" + (f"  {status}" if status else "")
            sys.stderr.write("\r" + line.ljust(self.width))
            self.width = len(line)
            sys.stderr.flush()

    def close(self) -> None:
        if self.width:
            sys.stderr.write("\r" + " " * self.width + "\r")
            sys.stderr.flush()


class _Rich:
    def __init__(self, label: str, total: float | None) -> None:
        from rich.console import Console
        from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

        self.progress = Progress(TextColumn("{task.description}"), BarColumn(), TextColumn("{task.percentage:>3.0f}%"),
                                 TimeElapsedColumn(), TextColumn("{task.fields[status]}"),
                                 console=Console(stderr=True), transient=True)
        self.task = self.progress.add_task(label, total=total, status="")
        self.progress.start()

    def advance(self, steps: float = 1, status: str = "") -> None:
        self.progress.update(self.task, advance=steps, status=status)

    def update(self, completed: float, status: str = "") -> None:
        self.progress.update(self.task, completed=completed, status=status)

    def close(self) -> None:
        self.progress.stop()


def shown(enabled: bool = True) -> bool:
    """Whether progress would be drawn: asked for, and stderr is a terminal."""
    return enabled and sys.stderr.isatty()


def _rich_available() -> bool:
    try:
        import rich.progress  # noqa: F401
    except ImportError:
        return False
    return True


@contextmanager
def progress(label: str, total: float | None = None, *, enabled: bool = True) -> Iterator[Bar]:
    """A progress bar for ``total`` steps (None: a counter), or a silent one (see the module doc)."""
    if not shown(enabled):
        yield _Silent()
        return
    bar: _Rich | _Plain = _Rich(label, total) if _rich_available() else _Plain(label, total)
    try:
        yield bar
    finally:
        bar.close()


@contextmanager
def ticking(label: str, seconds: float, status: Callable[[], str], *, enabled: bool = True) -> Iterator[None]:
    """Progress of a run bounded by ``seconds``: elapsed time against the budget, plus ``status()``
    (read from a background thread, so it must only read counters)."""
    if not shown(enabled):
        yield
        return
    started = time.monotonic()
    stop = threading.Event()
    with progress(label, total=seconds) as bar:
        def tick() -> None:
            while not stop.wait(0.5):
                bar.update(min(time.monotonic() - started, seconds), status())

        thread = threading.Thread(target=tick, daemon=True)
        thread.start()
        try:
            yield
        finally:
            stop.set()
            thread.join()
