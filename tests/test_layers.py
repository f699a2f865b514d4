"""The package layout is the design: imports only run downward, and packages form no cycle.

Ranks follow the data flow in the README ("How it is built"): encodings, then the domain
values, then decoding, then the engines, then what is known about them, then files, fuzzing
and the application.
"""

from __future__ import annotations

import ast
from pathlib import Path

SRC = Path(__file__).resolve().parents[1] / "src" / "apicmap"

RANK = {
    "errors": 0,
    "version": 0,
    "cache": 0,
    "encoding": 1,
    "domain": 2,
    "decode": 3,
    "arch": 4,
    "model": 4,
    "kvm": 4,
    "qemu": 4,
    "profiles": 4,
    "engines": 5,
    "known": 5,
    "explain": 5,
    "kernels": 6,
    "files": 6,
    "data": 6,
    "importers": 7,
    "fuzz": 7,
    "app": 8,
    "pytest_plugin": 8,
    "__init__": 9,
    "__main__": 9,
}


def _unit(module: str) -> str:
    """The top-level unit of ``apicmap.x.y`` (``x``), or ``__init__`` for the package itself."""
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else "__init__"


def _imports() -> list[tuple[str, str, int]]:
    found = []
    for path in SRC.rglob("*.py"):
        rel = path.relative_to(SRC.parent).with_suffix("")
        module = ".".join(rel.parts)
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and node.module and node.level == 0 \
                    and node.module.startswith("apicmap"):
                found.append((module, node.module, node.lineno))
            elif isinstance(node, ast.ImportFrom) and node.level:
                found.append((module, "<relative>", node.lineno))
    return found


def test_every_unit_has_a_rank() -> None:
    units = {_unit(".".join(p.relative_to(SRC.parent).with_suffix("").parts)) for p in SRC.rglob("*.py")}
    assert units <= set(RANK), sorted(units - set(RANK))


def test_imports_are_absolute_and_run_downward() -> None:
    upward = []
    for importer, imported, line in _imports():
        assert imported != "<relative>", f"{importer}:{line}: use an absolute import"
        a, b = _unit(importer), _unit(imported)
        if a != b and RANK[a] < RANK[b]:
            upward.append(f"{importer}:{line} imports {imported}")
    assert not upward, "\n".join(upward)


def test_units_form_no_cycle() -> None:
    edges: dict[str, set[str]] = {}
    for importer, imported, _ in _imports():
        a, b = _unit(importer), _unit(imported)
        if a != b:
            edges.setdefault(a, set()).add(b)

    def reaches(start: str, goal: str, seen: set[str]) -> bool:
        return any(nxt == goal or (nxt not in seen and reaches(nxt, goal, seen | {nxt}))
                   for nxt in edges.get(start, ()))

    cycles = [f"{a} <-> {b}" for a, targets in edges.items() for b in targets if reaches(b, a, {b})]
    assert not cycles, cycles
