"""Files bundled with the package: the conformance corpus, the examples and the catalogue.

``corpus``, ``examples`` and ``catalogue`` here are symbolic links to the repository's top-level
directories (the documented paths), so there is one copy of each file; a built wheel or sdist
holds the files themselves.
"""

from __future__ import annotations

from pathlib import Path

DATA_DIR = Path(__file__).resolve().parent
BUNDLED = ("corpus", "examples", "catalogue")


def bundled_dirs() -> list[Path]:
    """The bundled scenario directories that exist in this installation."""
    return [DATA_DIR / name for name in BUNDLED if (DATA_DIR / name).is_dir()]
