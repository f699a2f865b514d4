"""Start a real QEMU (TCG, firmware only) with a QMP socket, for the qemu-info-lapic and QMP tests.

Run as a script to (re)write the fixture ``tests/importers/data/qemu-7.2-tcg-smp4/``::

    python tests/importers/qemu_capture.py tests/importers/data/qemu-7.2-tcg-smp4 4
    python tests/importers/qemu_capture.py tests/importers/data/qemu-7.2-tcg-2s3c 6,sockets=2,cores=3
"""

from __future__ import annotations

import contextlib
import json
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

QEMU = "qemu-system-x86_64"


def qemu_available() -> bool:
    return shutil.which(QEMU) is not None


def qemu_command(sock: Path, smp: str) -> list[str]:
    return [QEMU, "-accel", "tcg", "-smp", smp, "-nographic", "-nodefaults", "-display", "none",
            "-qmp", f"unix:{sock},server=on,wait=off"]


@contextlib.contextmanager
def running_qemu(smp: str = "4", settle: float = 2.0) -> Iterator[Path]:
    """A QEMU idling in its firmware; yields the QMP socket path. ``settle``: seconds for SeaBIOS to
    bring the APs up (it sends INIT-SIPI-SIPI and parks them), so the state is stable."""
    with tempfile.TemporaryDirectory() as tmp:
        sock = Path(tmp) / "qmp.sock"
        proc = subprocess.Popen(qemu_command(sock, smp), stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                stderr=subprocess.PIPE)
        try:
            deadline = time.monotonic() + 20
            while not sock.exists():
                if proc.poll() is not None or time.monotonic() > deadline:
                    err = proc.stderr.read().decode() if proc.stderr else ""
                    raise RuntimeError(f"QEMU did not open its QMP socket: {err}")
                time.sleep(0.05)
            time.sleep(settle)
            yield sock
        finally:
            proc.terminate()
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


def main(argv: list[str]) -> int:
    from apicmap.importers.qmp import capture_qmp

    out = Path(argv[0])
    smp = argv[1] if len(argv) > 1 else "4"
    out.mkdir(parents=True, exist_ok=True)
    with running_qemu(smp) as sock:
        capture = capture_qmp(str(sock))
    (out / "info-lapic.txt").write_text(capture.info_lapic, encoding="utf-8")
    cpus = [{"cpu-index": c.cpu_index, "qom-path": c.qom_path, "apic-id": c.apic_id, "props": c.props}
            for c in capture.cpus]
    (out / "cpus.json").write_text(json.dumps({"qemu": capture.qemu_version, "cpus": cpus}, indent=1) + "\n",
                                   encoding="utf-8")
    print(" ".join(qemu_command(Path("SOCK"), smp)))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
