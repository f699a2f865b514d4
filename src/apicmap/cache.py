"""Where apicmap keeps what it builds and downloads: ``$APICMAP_CACHE``, else
``$XDG_CACHE_HOME/apicmap``, else ``~/.cache/apicmap`` (the XDG Base Directory convention).

Booted kernels (``kernels/``), the QEMU engine's test guest (``qemu/``) and the fuzzer's example
database (``fuzz/``) all live under it."""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path


def cache_root(environ: Mapping[str, str] | None = None) -> Path:
    env = os.environ if environ is None else environ
    if env.get("APICMAP_CACHE"):
        return Path(env["APICMAP_CACHE"]).expanduser()
    if env.get("XDG_CACHE_HOME"):
        return Path(env["XDG_CACHE_HOME"]).expanduser() / "apicmap"
    return Path(env.get("HOME") or Path.home()).expanduser() / ".cache" / "apicmap"
