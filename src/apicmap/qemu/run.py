"""Boot QEMU (TCG) on the test guest with one job, and read back what the guest reported.

The guest prints one line per interrupt on isa-debugcon (``guest/guest.c``, ``report``):

    I <index> <cpu>:<item>,<item> <cpu>:<item> ...

where an item is ``h<vector>`` (the handler ran), ``p<vector>`` (left pending in the IRR),
either with a ``t`` suffix when the TMR bit was set, or ``n<count>`` (NMIs taken); all numbers
hex. ``X <what> <value>`` is a failure inside the guest, ``D`` the end.
"""

from __future__ import annotations

import itertools
import os
import re
import shutil
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

from apicmap.cache import cache_root
from apicmap.errors import ApicmapError

DEBUGCON_PORT = 0x4E9  # guest.h
DEBUG_EXIT_PORT = 0xF4
EXIT_DONE = 1  # isa-debug-exit: status (0 << 1) | 1 after the guest writes 0
# Single-threaded (round-robin) TCG by default. Multi-threaded TCG runs this guest correctly
# too, but its CPUs wait for each other by spinning on PAUSE: with one host thread per vCPU on
# a small host, every step waits for the host to schedule every vCPU thread (4 vCPUs x 100
# interrupts: 17 s on this 2-core machine). In round-robin mode PAUSE ends the vCPU's turn
# (target/i386/tcg/misc_helper.c helper_pause -> EXCP_INTERRUPT; accel/tcg/tcg-accel-ops-rr.c
# moves to the next vCPU), which makes spinning cheap: the same job takes 1.3 s.
DEFAULT_ACCEL = "tcg,thread=single"
_counter = itertools.count()


class QemuUnavailable(ApicmapError):
    """qemu-system-x86_64 is missing or cannot run."""


class QemuRunError(ApicmapError):
    """QEMU or the guest failed: a hang (timeout), a failure the guest reported, a bad job."""


@dataclass(frozen=True, slots=True)
class Observed:
    """What one CPU showed for one interrupt."""

    cpu: int
    what: str  # "handler", "pending" or "nmi"
    value: int  # the vector, or the NMI count
    tmr: bool = False


@dataclass(frozen=True, slots=True)
class RunResult:
    reports: tuple[tuple[Observed, ...], ...]  # per interrupt, in job order
    seconds: float
    log_dir: Path | None  # kept only on request (APICMAP_KEEP_LOGS)


def find_qemu() -> str | None:
    return os.environ.get("APICMAP_QEMU") or shutil.which("qemu-system-x86_64")


def qemu_version(qemu: str) -> tuple[int, ...]:
    try:
        done = subprocess.run([qemu, "--version"], capture_output=True, text=True, timeout=30, check=False)
    except OSError as err:
        raise QemuUnavailable(f"qemu engine: cannot run {qemu}: {err.strerror}") from None
    match = re.search(r"version (\d+)\.(\d+)(?:\.(\d+))?", done.stdout)
    if done.returncode != 0 or match is None:
        raise QemuUnavailable(f"qemu engine: {qemu} --version said {done.stdout.strip() or done.stderr.strip()!r}")
    return tuple(int(g) for g in match.groups() if g is not None)


_ITEM = re.compile(r"([hp])([0-9a-f]+)(t?)|n([0-9a-f]+)")


def parse_report(line: str) -> tuple[int, tuple[Observed, ...]]:
    fields = line.split()
    index = int(fields[1], 16)
    seen: list[Observed] = []
    for group in fields[2:]:
        cpu_text, _, items = group.partition(":")
        cpu = int(cpu_text, 16)
        for item in items.split(","):
            m = _ITEM.fullmatch(item)
            if m is None:
                raise ValueError(f"bad report item {item!r}")
            if m.group(4) is not None:
                seen.append(Observed(cpu, "nmi", int(m.group(4), 16)))
            else:
                seen.append(Observed(cpu, "handler" if m.group(1) == "h" else "pending", int(m.group(2), 16),
                                     m.group(3) == "t"))
    return index, tuple(seen)


def run_job(qemu: str, guest: Path, ncpu: int, job: bytes, count: int, timeout: float) -> RunResult:
    """Boot once; return the guest's report for each of the ``count`` interrupts in ``job``."""
    log_dir = cache_root() / "runs" / f"{time.strftime('%Y%m%d-%H%M%S')}-{os.getpid()}-{next(_counter)}"
    log_dir.mkdir(parents=True, exist_ok=True)
    job_path, out_path, log_path = log_dir / "job.bin", log_dir / "guest.out", log_dir / "qemu.log"
    job_path.write_bytes(job)
    command = [
        qemu, "-accel", os.environ.get("APICMAP_QEMU_ACCEL", DEFAULT_ACCEL), "-smp", str(ncpu), "-m", "64",
        "-nographic", "-nodefaults", "-no-reboot",
        "-kernel", str(guest), "-initrd", str(job_path),
        "-chardev", f"file,id=apicmap,path={out_path}",
        "-device", f"isa-debugcon,iobase={DEBUGCON_PORT:#x},chardev=apicmap",
        "-device", "pc-testdev",
        "-device", f"isa-debug-exit,iobase={DEBUG_EXIT_PORT:#x},iosize=1",
    ]
    started = time.monotonic()
    with log_path.open("w", encoding="utf-8") as log:
        log.write(" ".join(command) + "\n")
        log.flush()
        try:
            done = subprocess.run(command, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                                  timeout=timeout, check=False)
        except subprocess.TimeoutExpired:
            raise QemuRunError(f"qemu engine: the guest did not finish within {timeout:.0f} s; "
                               f"QEMU log: {log_path}") from None
        except OSError as err:
            raise QemuUnavailable(f"qemu engine: cannot run {qemu}: {err.strerror}; QEMU log: {log_path}") from None
    seconds = time.monotonic() - started
    text = out_path.read_text(encoding="ascii", errors="replace") if out_path.exists() else ""
    lines = text.splitlines()
    failure = next((ln for ln in lines if ln.startswith("X ")), None)
    if failure is not None:
        raise QemuRunError(f"qemu engine: the guest failed: {failure[2:]}; QEMU log: {log_path}")
    if "D" not in lines or done.returncode != EXIT_DONE:
        raise QemuRunError(f"qemu engine: QEMU exited with status {done.returncode} before the guest finished; "
                           f"QEMU log: {log_path}")
    reports: dict[int, tuple[Observed, ...]] = {}
    for line in lines:
        if line.startswith("I "):
            index, seen = parse_report(line)
            reports[index] = seen
    if sorted(reports) != list(range(count)):
        raise QemuRunError(f"qemu engine: the guest reported {len(reports)} of {count} interrupts; "
                           f"QEMU log: {log_path}")
    keep = bool(os.environ.get("APICMAP_KEEP_LOGS"))
    if not keep:
        shutil.rmtree(log_dir, ignore_errors=True)
    return RunResult(tuple(reports[i] for i in range(count)), seconds, log_dir if keep else None)
