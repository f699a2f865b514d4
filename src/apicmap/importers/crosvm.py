"""Format ``crosvm``: a ``crosvm snapshot take`` directory (or just its ``irqchip`` fragment).

Layout, as crosvm writes it (read in its source):

- Each fragment is one CBOR item (snapshot/src/lib.rs ``SnapshotWriter::write_fragment``,
  ciborium); an ``enc_metadata`` file means the fragments are encrypted (``CryptWriter``).
- ``irqchip`` (vm_control/src/lib.rs, ``write_fragment("irqchip", ...)``) is an
  ``IrqChipSnapshot`` (devices/src/irqchip/x86_64.rs): ``lapic_state`` is one ``LapicState``
  per vCPU index, ``regs``: 64 u32, the first dword of each 16-byte register of KVM's page
  (hypervisor/src/x86_64.rs ``struct LapicState``; so ID is regs[2], TPR regs[8], LDR regs[0xd],
  DFR regs[0xe], SVR regs[0xf]).
- With the in-kernel irqchip, ``chip_specific_state`` is a ``KvmKernelIrqChipSnapshot``
  (devices/src/irqchip/kvm/x86_64.rs) whose ``apic_base`` holds each vCPU's APIC base MSR. The
  split irqchip's (``KvmSplitIrqChipSnapshot``) has only routes; the APIC base is then looked
  up in the vCPU's own fragment ``vcpu/vcpu<i>`` (``VcpuSnapshot.msrs``, MSR 0x1b), and failing
  that must be given as the ``apic_mode`` option.
- crosvm never enables KVM_CAP_X2APIC_API on x86 (its kvm_sys bindings only declare the flags).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from apicmap.encoding.apic_base import ApicMode
from apicmap.errors import InputError
from apicmap.importers.cbor import CborError, loads
from apicmap.importers.common import (
    NO_OPTIONS,
    ImportFormat,
    ImportOptions,
    ImportResult,
    Lack,
    Provenance,
    X2ApicApiFlag,
    derived,
    option,
    read,
)
from apicmap.importers.page import PAGE_SIZE, assemble, flags_from, mode_from_apic_base, vcpu_from_page
from apicmap.kvm.abi import MSR_IA32_APICBASE

LAPIC_REGS = PAGE_SIZE // 16


def _fragment(path: Path) -> Any:
    try:
        data = path.read_bytes()
    except OSError as err:
        raise InputError(str(path), f"cannot read: {err.strerror}") from None
    try:
        return loads(data)
    except CborError as err:
        raise InputError(f"{path} byte {err.offset}", f"not CBOR: {err.problem}",
                         "a crosvm snapshot fragment (one CBOR item)") from None


def page_from_regs(regs: list[int]) -> bytes:
    """KVM's 1 KiB page from crosvm's 64 dwords: crosvm keeps the first 4 bytes of each 16-byte register
    (hypervisor/src/kvm/x86_64.rs ``From<&kvm_lapic_state> for LapicState``), so regs[i] goes back to
    byte 16*i and the other 12 bytes, reserved in the xAPIC page, are zero."""
    page = bytearray(PAGE_SIZE)
    for i, value in enumerate(regs):
        page[16 * i:16 * i + 4] = value.to_bytes(4, "little")
    return bytes(page)


def import_crosvm(source: str | Path, options: ImportOptions = NO_OPTIONS) -> ImportResult:
    path = Path(source)
    root = path if path.is_dir() else path.parent
    if (root / "enc_metadata").exists():
        raise InputError(str(root / "enc_metadata"), "the snapshot is encrypted",
                         "an unencrypted snapshot (crosvm snapshot take without --encrypt)")
    chip_path = root / "irqchip" if path.is_dir() else path
    src = str(chip_path)
    label = chip_path.name
    chip = _fragment(chip_path)
    if not isinstance(chip, dict) or "lapic_state" not in chip:
        raise InputError(f"{src} lapic_state", "missing", "an IrqChipSnapshot map with lapic_state")
    lapics = chip["lapic_state"]
    if not isinstance(lapics, list) or not lapics:
        raise InputError(f"{src} lapic_state", "no LapicState entries", "one LapicState per vCPU")
    specific = chip.get("chip_specific_state")
    bases = specific.get("apic_base") if isinstance(specific, dict) else None
    if bases is not None and (not isinstance(bases, list) or len(bases) != len(lapics)):
        raise InputError(f"{src} chip_specific_state.apic_base", f"{bases!r:.60}",
                         f"a list of {len(lapics)} APIC base values, one per vCPU")
    flags = flags_from(options, (frozenset(), derived(label, "crosvm never enables KVM_CAP_X2APIC_API on x86")),
                       ImportFormat.CROSVM)
    vcpus = []
    lacking: list[Lack] = []
    for i, entry in enumerate(lapics):
        where = f"lapic_state[{i}].regs"
        regs = entry.get("regs") if isinstance(entry, dict) else None
        if not isinstance(regs, list) or len(regs) != LAPIC_REGS or \
                any(isinstance(r, bool) or not isinstance(r, int) or not 0 <= r <= 0xFFFFFFFF for r in regs):
            raise InputError(f"{src} {where}", f"{len(regs) if isinstance(regs, list) else 'no'} registers",
                             f"exactly {LAPIC_REGS} u32 values")
        mode, mode_prov = _mode(i, bases, root, src, options, label)
        if mode_prov.location == "apic_mode" and not lacking:
            lacking.append(Lack(item="APIC base", resolution="not in this snapshot: the apic_mode option"))

        def location(offset: int, _where: str = where) -> str:
            return f"{_where}[{offset // 16}]"

        vcpu, prov = vcpu_from_page(page_from_regs(regs), vcpu_id=i, mode=mode, mode_prov=mode_prov,
                                    use_32bit_ids=X2ApicApiFlag.USE_32BIT_IDS in flags[0], source=src,
                                    location=location, label=label)
        prov["vcpu_id"] = (derived(label, "the index in lapic_state is crosvm's vCPU id, its KVM vcpu_id",
                                           f"lapic_state[{i}]"))
        vcpus.append((vcpu, prov))
    return assemble(ImportFormat.CROSVM, src, vcpus, options=options, flags=flags, lacking=lacking,
                    order_note=derived(label, "vCPU index order: crosvm creates vCPUs 0..n-1 in order"))


def _mode(i: int, bases: list[Any] | None, root: Path, src: str,
          options: ImportOptions, label: str) -> tuple[ApicMode, Provenance]:
    if bases is not None:
        base = bases[i]
        where = f"chip_specific_state.apic_base[{i}]"
        if isinstance(base, bool) or not isinstance(base, int):
            raise InputError(f"{src} {where}", f"bad value {base!r}", "the APIC base MSR, an integer")
        return mode_from_apic_base(base, f"{src} {where}"), read(label, where, base, "EN bit 11, EXTD bit 10")
    vcpu_path = root / "vcpu" / f"vcpu{i}"
    if vcpu_path.exists():
        snap = _fragment(vcpu_path)
        msrs = snap.get("msrs") if isinstance(snap, dict) else None
        if isinstance(msrs, dict) and isinstance(msrs.get(MSR_IA32_APICBASE), int):
            base = msrs[MSR_IA32_APICBASE]
            return (mode_from_apic_base(base, f"{vcpu_path} msrs[0x1b]"),
                    read(f"vcpu/vcpu{i}", "msrs[0x1b]", base, "EN bit 11, EXTD bit 10"))
    if options.apic_mode is not None:
        return options.apic_mode, option("apic_mode", options.apic_mode.value)
    raise InputError("option apic_mode", f"crosvm: vCPU {i}'s APIC base is not in the snapshot (split irqchip, and "
                     f"no MSR 0x1b in {vcpu_path})", "xapic, x2apic, disabled (--apic-mode)")
