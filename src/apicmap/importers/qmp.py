"""A live QEMU through its QMP socket (``qmp:/path/to/socket``).

QMP (docs/interop/qmp-spec.rst in QEMU): after the greeting, ``qmp_capabilities``; then
``query-cpus-fast`` lists each CPU's ``cpu-index`` and ``qom-path``; ``qom-get`` of the CPU's
``apic-id`` property (target/i386/cpu.c) gives its APIC ID; ``human-monitor-command`` runs
``info lapic <apic-id>`` (target/i386/cpu-apic.c / monitor.c ``hmp_info_local_apic``: the
argument is an APIC ID). The text is then read as the ``qemu-info-lapic`` format, with the
APIC IDs from QOM.
"""

from __future__ import annotations

import json
import socket
from dataclasses import dataclass, replace
from typing import Any

from apicmap.errors import InputError
from apicmap.importers.common import NO_OPTIONS, ImportFormat, ImportOptions, ImportResult, Provenance, read
from apicmap.importers.qemu_info_lapic import import_qemu_info_lapic, parse_info_lapic


@dataclass(frozen=True, slots=True, kw_only=True)
class QmpCpu:
    cpu_index: int
    qom_path: str
    apic_id: int
    props: dict[str, int]


@dataclass(frozen=True, slots=True, kw_only=True)
class QmpCapture:
    """What one QMP session read: QEMU's version, the CPUs, and ``info lapic`` for each, concatenated."""

    socket: str
    qemu_version: str
    cpus: tuple[QmpCpu, ...]
    info_lapic: str


class _Qmp:
    def __init__(self, path: str, timeout: float) -> None:
        self.where = f"qmp:{path}"
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.settimeout(timeout)
        try:
            self.sock.connect(path)
        except OSError as err:
            self.sock.close()
            raise InputError(self.where, f"cannot connect: {err.strerror or err}",
                             "a QEMU QMP unix socket (-qmp unix:PATH,server=on,wait=off)") from None
        self.file = self.sock.makefile("rwb")
        self.greeting = self._receive()

    def _receive(self) -> dict[str, Any]:
        while True:
            try:
                line = self.file.readline()
            except OSError as err:
                raise InputError(self.where, f"read failed: {err}") from None
            if not line:
                raise InputError(self.where, "QEMU closed the connection")
            try:
                message = json.loads(line)
            except json.JSONDecodeError as err:
                raise InputError(self.where, f"not a QMP message: {err.msg}", "JSON lines") from None
            if isinstance(message, dict) and "event" not in message:  # events are asynchronous: skip them
                return message

    def execute(self, command: str, **arguments: Any) -> Any:
        request: dict[str, Any] = {"execute": command}
        if arguments:
            request["arguments"] = arguments
        self.file.write(json.dumps(request).encode() + b"\n")
        self.file.flush()
        reply = self._receive()
        if "error" in reply:
            error = reply["error"]
            raise InputError(f"{self.where} {command}", f"QEMU refused: {error.get('desc', error)}")
        return reply.get("return")

    def close(self) -> None:
        self.file.close()
        self.sock.close()


def capture_qmp(path: str, *, timeout: float = 10.0) -> QmpCapture:
    qmp = _Qmp(path, timeout)
    try:
        version = qmp.greeting.get("QMP", {}).get("version", {}).get("qemu", {})
        qmp.execute("qmp_capabilities")
        cpus = []
        texts = []
        for entry in qmp.execute("query-cpus-fast"):
            qom_path = entry["qom-path"]
            apic_id = qmp.execute("qom-get", path=qom_path, property="apic-id")
            if not isinstance(apic_id, int):
                raise InputError(f"{qmp.where} qom-get {qom_path} apic-id", f"bad value {apic_id!r}", "an integer")
            cpus.append(QmpCpu(cpu_index=int(entry["cpu-index"]), qom_path=qom_path, apic_id=apic_id,
                               props={k: int(v) for k, v in entry.get("props", {}).items() if isinstance(v, int)}))
            texts.append(qmp.execute("human-monitor-command", **{"command-line": f"info lapic {apic_id}"}))
    finally:
        qmp.close()
    return QmpCapture(socket=path, qemu_version="{major}.{minor}.{micro}".format(**version) if version else "?",
                      cpus=tuple(cpus), info_lapic="".join(texts))


def import_qmp(source: str, options: ImportOptions = NO_OPTIONS) -> ImportResult:
    path = source.removeprefix("qmp:")
    capture = capture_qmp(path)
    return import_capture(capture, options)


def import_capture(capture: QmpCapture, options: ImportOptions = NO_OPTIONS) -> ImportResult:
    where = f"qmp:{capture.socket}"
    blocks = parse_info_lapic(capture.info_lapic, where)
    by_index = {c.cpu_index: c for c in capture.cpus}
    for block in blocks:
        # "info lapic <apic-id>" picks the CPU by APIC ID; its header names the cpu_index: cross-check.
        if block.cpu_index not in by_index:
            raise InputError(f"{where} info lapic", f"a block for CPU {block.cpu_index}, which query-cpus-fast does "
                             "not list", ", ".join(str(i) for i in sorted(by_index)))
    ids: dict[int, tuple[int, Provenance]] = {
        c.cpu_index: (c.apic_id, read(where, f"qom-get {c.qom_path} apic-id", str(c.apic_id)))
        for c in capture.cpus}
    result = import_qemu_info_lapic(where, options, text=capture.info_lapic, apic_ids=ids)
    extra = dict(result.extra, **{"QEMU": capture.qemu_version,
                                  "commands": "query-cpus-fast; qom-get apic-id; info lapic <apic-id>"})
    return replace(result, format=ImportFormat.QMP, extra=extra)
