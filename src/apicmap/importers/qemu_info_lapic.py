"""Format ``qemu-info-lapic``: the text of QEMU's HMP ``info lapic`` (one block per CPU).

QEMU prints it in ``x86_cpu_dump_local_apic_state`` (target/i386/cpu-dump.c): a header
``dumping local APIC state for CPU <cpu_index>``, the LVT, timer, ``SPIV``, ICR, ESR, ISR and
IRR lines, and ``APR .. TPR .. DFR .. LDR .. PPR ..``. DFR and LDR are QEMU's 8-bit fields
``dest_mode`` (DFR >> 28) and ``log_dest`` (LDR >> 24) (hw/intc/apic_common.c; under KVM,
hw/i386/kvm/apic.c ``kvm_get_apic_state``). The text has neither the APIC ID nor the APIC mode:
the APIC IDs come from ``apic_ids`` (by cpu_index), ``topology`` (QEMU's numbering) or, live,
from QOM; the mode from ``apic_mode``. Under KVM, QEMU's vcpu_id is the APIC ID
(target/i386/kvm/kvm.c ``kvm_arch_vcpu_id``).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from apicmap.domain.vm import Vcpu
from apicmap.encoding.apic_base import ApicMode
from apicmap.errors import InputError
from apicmap.importers.common import (
    NO_OPTIONS,
    Basis,
    ImportFormat,
    ImportOptions,
    ImportResult,
    Lack,
    Provenance,
    derived,
    option,
    read,
)
from apicmap.importers.page import assemble, flags_from, mode_option

_HEADER = re.compile(r"^dumping local APIC state for CPU\s+(\d+)\s*$")
_SPIV = re.compile(r"^SPIV\s+0x([0-9a-fA-F]+)\b")
# No space before PPR in some QEMU versions when the DFR is not cluster: match on the fields.
_LAST = re.compile(r"^APR 0x([0-9a-fA-F]+) TPR 0x([0-9a-fA-F]+) DFR 0x([0-9a-fA-F]+) "
                   r"LDR 0x([0-9a-fA-F]+)(?:\(cluster [^)]*\))?\s*PPR 0x([0-9a-fA-F]+)")


@dataclass(frozen=True, slots=True, kw_only=True)
class LapicBlock:
    """One CPU's block: its cpu_index and the registers that matter for routing, with line numbers."""

    cpu_index: int
    header_line: int
    svr: int
    svr_line: int
    tpr: int
    dest_mode: int
    log_dest: int
    last_line: int


def parse_info_lapic(text: str, where: str) -> list[LapicBlock]:
    blocks: list[LapicBlock] = []
    current: dict[str, int] = {}

    def close() -> None:
        if not current:
            return
        for key, name in (("svr", "SPIV"), ("tpr", "APR/TPR/DFR/LDR")):
            if key not in current:
                raise InputError(f"{where} line {current['header']}",
                                 f"the block for CPU {current['cpu']} has no {name} line", "complete info lapic blocks")
        blocks.append(LapicBlock(cpu_index=current["cpu"], header_line=current["header"], svr=current["svr"],
                                 svr_line=current["svr_line"], tpr=current["tpr"], dest_mode=current["dfr"],
                                 log_dest=current["ldr"], last_line=current["last_line"]))
        current.clear()

    for number, line in enumerate(text.splitlines(), start=1):
        line = line.strip()
        if m := _HEADER.match(line):
            close()
            current.update(cpu=int(m.group(1)), header=number)
        elif m := _SPIV.match(line):
            if not current:
                raise InputError(f"{where} line {number}", "SPIV outside a CPU block",
                                 "blocks starting with 'dumping local APIC state for CPU N'")
            current.update(svr=int(m.group(1), 16), svr_line=number)
        elif m := _LAST.match(line):
            if not current:
                raise InputError(f"{where} line {number}", "TPR/DFR/LDR outside a CPU block",
                                 "blocks starting with 'dumping local APIC state for CPU N'")
            current.update(tpr=int(m.group(2), 16), dfr=int(m.group(3), 16), ldr=int(m.group(4), 16),
                           last_line=number)
    close()
    if not blocks:
        raise InputError(where, "no 'dumping local APIC state for CPU N' block",
                         "the output of QEMU's HMP info lapic")
    seen: set[int] = set()
    for b in blocks:
        if b.cpu_index in seen:
            raise InputError(f"{where} line {b.header_line}", f"CPU {b.cpu_index} appears twice", "one block per CPU")
        seen.add(b.cpu_index)
        if b.dest_mode > 0xF or b.log_dest > 0xFF or b.tpr > 0xFF:
            raise InputError(f"{where} line {b.last_line}", "DFR/LDR/TPR out of range",
                             "DFR 0x0..0xf (DFR >> 28), LDR 0x00..0xff (LDR >> 24), TPR 0x00..0xff")
    return blocks


def import_qemu_info_lapic(source: str | Path, options: ImportOptions = NO_OPTIONS, *,
                           text: str | None = None,
                           apic_ids: Mapping[int, tuple[int, Provenance]] | None = None) -> ImportResult:
    """``text`` with ``apic_ids`` (cpu_index → (APIC ID, where it came from)) is the live QMP path."""
    where = str(source)
    if text is None:
        try:
            text = Path(source).read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as err:
            raise InputError(where, f"cannot read as text: {err}", "the output of QEMU's HMP info lapic") from None
    blocks = parse_info_lapic(text, where)
    mode, mode_prov = mode_option(options, ImportFormat.QEMU_INFO_LAPIC, "info lapic does not show the APIC mode "
                                  "(IA32_APIC_BASE)")
    flags = flags_from(options, None, ImportFormat.QEMU_INFO_LAPIC)
    lacking = [Lack(item="apic mode", resolution=f"option apic_mode = {mode.value}")]
    label = where if where.startswith("qmp:") else Path(where).name
    vcpus = []
    for b in sorted(blocks, key=lambda blk: blk.cpu_index):
        apic_id, id_prov = _apic_id(b.cpu_index, options, apic_ids, where)
        if mode is not ApicMode.X2APIC and apic_id > 0xFF:
            raise InputError(f"{where} line {b.header_line}",
                             f"APIC ID {apic_id} for CPU {b.cpu_index} in {mode.value} mode",
                             "an 8-bit APIC ID, or apic_mode x2apic")
        prov: dict[str, Provenance] = {"vcpu_id": id_prov, "mode": mode_prov,
                                       "sw_enabled": read(label, f"line {b.svr_line} SPIV", b.svr, "bit 8")}
        prov["tpr"] = read(label, f"line {b.last_line} TPR", b.tpr, width=2)
        prov["arb_prio"] = Provenance(basis=Basis.DEFAULT, note="not in info lapic")
        if mode is ApicMode.X2APIC:
            prov["ldr"] = derived(label, "x2APIC mode: derived from the x2APIC ID; QEMU shows only LDR[31:24]",
                                  f"line {b.last_line} LDR", f"0x{b.log_dest:02x}")
            prov["xapic_id"] = derived(label, "x2APIC mode has no xAPIC ID")
            prov["dfr"] = derived(label, "x2APIC mode has no DFR", f"line {b.last_line} DFR", f"0x{b.dest_mode:02x}")
            vcpu = Vcpu(apic_id, mode, bool(b.svr & 0x100), tpr=b.tpr)
        else:
            prov["xapic_id"] = derived(label, "the APIC ID (QEMU's vcpu_id is the APIC ID)", id_prov.location,
                                       f"0x{apic_id:02x}")
            prov["ldr"] = read(label, f"line {b.last_line} LDR", b.log_dest, "log_dest = LDR[31:24]", width=2)
            prov["dfr"] = read(label, f"line {b.last_line} DFR", b.dest_mode, "dest_mode = DFR[31:28]; "
                               "bits 27:0 read as ones", width=2)
            vcpu = Vcpu(apic_id, mode, bool(b.svr & 0x100), xapic_id=apic_id, ldr=b.log_dest << 24,
                        dfr=(b.dest_mode << 28) | 0x0FFFFFFF, tpr=b.tpr)
        vcpus.append((vcpu, prov))
    return assemble(ImportFormat.QEMU_INFO_LAPIC, where, vcpus, options=options, flags=flags, lacking=lacking,
                    order_note=derived(label, "ascending cpu_index: QEMU creates its CPUs in cpu_index order"))


def _apic_id(cpu_index: int, options: ImportOptions, live: Mapping[int, tuple[int, Provenance]] | None,
             where: str) -> tuple[int, Provenance]:
    if live is not None:
        if cpu_index not in live:
            raise InputError(where, f"no APIC ID for CPU {cpu_index}", "a CPU that query-cpus-fast lists")
        return live[cpu_index]
    if options.apic_ids is not None:
        if cpu_index >= len(options.apic_ids):
            raise InputError("option apic_ids", f"no entry for cpu_index {cpu_index}",
                             f"at least {cpu_index + 1} APIC IDs, by cpu_index")
        return options.apic_ids[cpu_index], option("apic_ids", f"[{cpu_index}] = {options.apic_ids[cpu_index]}")
    if options.topology is not None:
        t = options.topology
        return t.apic_id(cpu_index), derived("option topology", f"x86_apicid_from_cpu_idx({cpu_index}) for "
                                             f"sockets={t.sockets} dies={t.dies} cores={t.cores} threads={t.threads}")
    raise InputError("option apic_ids", "qemu-info-lapic: info lapic does not print the APIC ID",
                     "apic_ids by cpu_index (--apic-ids 0,1,2,3) or topology (--topology sockets=1,cores=4), "
                     "or read QEMU live with qmp:/path/to/socket")
