"""Import a real VM's interrupt-routing state: ``import_source(format, source, options)``.

Each importer returns an ``ImportResult``: a ``VmState``, the provenance of every vCPU value
(file and offset or key), and what the source lacked; ``scenario_from_import`` writes it as a
scenario file every engine runs. Formats: see ``ImportFormat`` and docs in each module.
"""

from __future__ import annotations

from pathlib import Path

from apicmap.errors import InputError
from apicmap.importers.common import (
    NO_OPTIONS,
    Basis,
    ImportFormat,
    ImportOptions,
    ImportResult,
    Lack,
    LinuxApicDriver,
    Provenance,
    Topology,
    X2ApicApiFlag,
)
from apicmap.importers.writer import ImportedCase, scenario_from_import

FORMAT_NAMES = tuple(f.value for f in ImportFormat)


def import_source(fmt: ImportFormat | str, source: str | Path,
                  options: ImportOptions = NO_OPTIONS) -> ImportResult:
    """Read ``source`` in format ``fmt``. A ``qmp:/path`` source reads a live QEMU."""
    if isinstance(fmt, str):
        try:
            fmt = ImportFormat(fmt)
        except ValueError:
            raise InputError("import FORMAT", f"unknown format {fmt!r}", ", ".join(FORMAT_NAMES)) from None
    text = str(source)
    if fmt is ImportFormat.QMP or (fmt is ImportFormat.QEMU_INFO_LAPIC and text.startswith("qmp:")):
        from apicmap.importers.qmp import import_qmp

        return import_qmp(text, options)
    if fmt is ImportFormat.KVM_LAPIC:
        from apicmap.importers.kvm_lapic import import_kvm_lapic

        return import_kvm_lapic(source, options)
    if fmt is ImportFormat.CLOUD_HYPERVISOR:
        from apicmap.importers.cloud_hypervisor import import_cloud_hypervisor

        return import_cloud_hypervisor(source, options)
    if fmt is ImportFormat.CROSVM:
        from apicmap.importers.crosvm import import_crosvm

        return import_crosvm(source, options)
    if fmt is ImportFormat.QEMU_INFO_LAPIC:
        from apicmap.importers.qemu_info_lapic import import_qemu_info_lapic

        return import_qemu_info_lapic(source, options)
    from apicmap.importers.linux_guest import import_linux_guest

    return import_linux_guest(source, options)


__all__ = [
    "FORMAT_NAMES", "NO_OPTIONS", "Basis", "ImportFormat", "ImportOptions", "ImportResult", "ImportedCase",
    "Lack", "LinuxApicDriver", "Provenance", "Topology", "X2ApicApiFlag", "import_source", "scenario_from_import",
]
