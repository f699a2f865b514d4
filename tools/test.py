#!/usr/bin/env python3
"""Run apicmap's test suite from a fresh clone with nothing but python3.

Installs the system packages some tests use where it can (root and apt-get available; see
SYSTEM_PACKAGES), creates .venv (once), installs the package with its test extras, then runs pytest
with any arguments given. Usage: python3 tools/test.py [pytest args...]
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import venv
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
VENV = ROOT / ".venv"
STAMP = VENV / ".apicmap-installed"


# Debian package -> the command that shows it is installed, for the tests that need it (they skip,
# with the reason, where it is missing). One line per package that could not be installed.
SYSTEM_PACKAGES = {
    "chromium": "chromium",  # tests/app/test_svg.py renders the SVG pictures in a headless browser
    "qemu-system-x86": "qemu-system-x86_64",  # tests/kernels (booted 6.1 and 6.12), tests/qemu (engine qemu)
    "busybox-static": "busybox",  # the booted kernels' initramfs
    "gcc": "gcc",  # builds the qemu engine's test guest
    "cpio": "cpio",  # tests/kernels/test_initramfs.py: GNU cpio reads the initramfs apicmap writes
    "redis-server": "redis-server",  # tests/fuzz/test_store.py, tests/app/campaign: the shared database on Redis
}


def install_system_packages(packages: dict[str, str] = SYSTEM_PACKAGES) -> list[str]:
    """Install (with apt-get) the packages whose command is missing; idempotent. Returns one line per
    package that could not be installed."""
    missing = [name for name, command in packages.items() if shutil.which(command) is None]
    if not missing:
        return []
    if os.geteuid() != 0 or shutil.which("apt-get") is None:
        why = "not root" if os.geteuid() != 0 else "no apt-get"
        return [f"system package {name}: not installed ({why}); the tests that need it are skipped" for name in missing]
    env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
    problems = []
    for name in missing:
        proc = subprocess.run(["apt-get", "install", "-y", "-q", name], env=env, capture_output=True, text=True)
        if proc.returncode != 0 and "Unable to locate" in proc.stderr:  # stale package lists: update once
            subprocess.run(["apt-get", "update", "-q"], env=env, capture_output=True)
            proc = subprocess.run(["apt-get", "install", "-y", "-q", name], env=env, capture_output=True, text=True)
        if proc.returncode != 0 or shutil.which(packages[name]) is None:
            last = (proc.stderr.strip().splitlines() or ["apt-get failed"])[-1]
            problems.append(f"system package {name}: could not install ({last}); the tests that need it are skipped")
    return problems


def main() -> int:
    for line in install_system_packages():
        print(line, file=sys.stderr)
    python = VENV / "bin" / "python"
    if not python.exists():
        venv.EnvBuilder(with_pip=True).create(VENV)
    pyproject = ROOT / "pyproject.toml"
    if not STAMP.exists() or STAMP.stat().st_mtime < pyproject.stat().st_mtime:
        subprocess.run([str(python), "-m", "pip", "install", "-q", "--disable-pip-version-check",
                        "-e", f"{ROOT}[test]"], check=True)
        STAMP.touch()
    env = dict(os.environ, PYTHONDONTWRITEBYTECODE="1")
    return subprocess.run([str(python), "-m", "pytest", *sys.argv[1:]], cwd=ROOT, env=env).returncode


if __name__ == "__main__":
    raise SystemExit(main())
