"""The 1 KiB local-APIC register page (``struct kvm_lapic_state``) plus the APIC base MSR → a Vcpu.

Shared by every format that carries KVM's page (kvm-lapic, cloud-hypervisor, crosvm), and the
assembly of an ``ImportResult`` shared by all importers.

The page is what ``KVM_GET_LAPIC`` returns (arch/x86/kvm/lapic.c ``kvm_apic_get_state``): the
xAPIC register layout, one 32-bit register per 16 bytes. The APIC mode is not in the page; it
is IA32_APIC_BASE bits 11 (EN) and 10 (EXTD) (SDM Vol. 3A 11.4.4 / 11.12.1).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import replace

from apicmap.domain.vm import DFR_FLAT, MAX_VCPU_ID, MAX_VCPUS, Vcpu, VmState
from apicmap.encoding.apic_base import ApicMode
from apicmap.errors import InputError
from apicmap.importers.common import (
    Basis,
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
from apicmap.kvm.abi import APIC_DFR, APIC_ID, APIC_LDR, APIC_SPIV, APIC_TASKPRI

PAGE_SIZE = 0x400  # KVM_APIC_REG_SIZE, arch/x86/include/uapi/asm/kvm.h
APIC_BASE_EN = 1 << 11
APIC_BASE_EXTD = 1 << 10

VcpuProvenance = dict[str, Provenance]


def u32(page: bytes, offset: int) -> int:
    return int.from_bytes(page[offset:offset + 4], "little")


def mode_from_apic_base(base: int, where: str) -> ApicMode:
    """EN=0: disabled; EN=1 EXTD=0: xAPIC; EN=1 EXTD=1: x2APIC; EXTD without EN is invalid
    (SDM Vol. 3A 11.12.5, "x2APIC State Transitions")."""
    if base < 0 or base > 0xFFFFFFFFFFFFFFFF:
        raise InputError(where, f"bad APIC base {base:#x}", "a 64-bit IA32_APIC_BASE value")
    en, extd = bool(base & APIC_BASE_EN), bool(base & APIC_BASE_EXTD)
    if extd and not en:
        raise InputError(where, f"APIC base {base:#x} has EXTD (bit 10) without EN (bit 11), an invalid state",
                         "EN=0 EXTD=0 (disabled), EN=1 EXTD=0 (xAPIC), EN=1 EXTD=1 (x2APIC)")
    if not en:
        return ApicMode.DISABLED
    return ApicMode.X2APIC if extd else ApicMode.XAPIC


def vcpu_from_page(page: bytes, *, vcpu_id: int, mode: ApicMode, mode_prov: Provenance, use_32bit_ids: bool,
                   source: str, location: Callable[[int], str],
                   label: str | None = None) -> tuple[Vcpu, VcpuProvenance]:
    """One vCPU from its register page. ``location(offset)`` names where a register sits in the source;
    errors name ``source`` (a full path), provenance names ``label`` (the file, relative to the import root).

    In x2APIC mode the ID register's encoding depends on KVM_X2APIC_API_USE_32BIT_IDS
    (arch/x86/kvm/lapic.c ``kvm_apic_state_fixup``): the full 32-bit x2APIC ID with it, the ID
    shifted left by 24 (so only its low 8 bits survive) without it. apicmap's x2APIC ID is the
    vcpu_id, so the register is checked against it rather than trusted.
    """
    if len(page) != PAGE_SIZE:
        raise InputError(f"{source} {location(0)}", f"{len(page)} bytes",
                         f"exactly {PAGE_SIZE} (struct kvm_lapic_state)")
    name = label or source
    prov: VcpuProvenance = {"mode": mode_prov}
    id_reg, ldr, dfr, svr, tpr = (u32(page, off) for off in (APIC_ID, APIC_LDR, APIC_DFR, APIC_SPIV, APIC_TASKPRI))
    prov["sw_enabled"] = read(name, location(APIC_SPIV), svr, "SVR bit 8, APIC software enable")
    prov["tpr"] = read(name, location(APIC_TASKPRI), tpr, "TPR bits 7:0")
    if mode is ApicMode.X2APIC:
        expected = vcpu_id if use_32bit_ids else (vcpu_id << 24) & 0xFFFFFFFF
        if id_reg != expected:
            raise InputError(f"{source} {location(APIC_ID)}",
                             f"x2APIC ID register {id_reg:#010x} does not encode vCPU {vcpu_id} with "
                             f"use_32bit_ids={'on' if use_32bit_ids else 'off'}",
                             f"{expected:#010x} (or another x2apic_api setting)")
        prov["xapic_id"] = read(name, location(APIC_ID), id_reg, "x2APIC ID register, checked against vcpu_id"
                                + ("" if use_32bit_ids else " as ID << 24 (no use_32bit_ids)")
                                + "; x2APIC mode has no xAPIC ID")
        prov["ldr"] = derived(name, "x2APIC mode: the LDR is derived from the x2APIC ID "
                              "(SDM 11.12.10.2); the page's value is not used", location(APIC_LDR), f"0x{ldr:08x}")
        prov["dfr"] = derived(name, "x2APIC mode: there is no DFR", location(APIC_DFR), f"0x{dfr:08x}")
        vcpu = Vcpu(vcpu_id, mode, bool(svr & 0x100), dfr=DFR_FLAT, tpr=tpr & 0xFF)
    else:
        prov["xapic_id"] = read(name, location(APIC_ID), id_reg, "xAPIC ID, bits 31:24")
        prov["ldr"] = read(name, location(APIC_LDR), ldr, "LDR, raw 32 bits")
        prov["dfr"] = read(name, location(APIC_DFR), dfr, "DFR, raw 32 bits")
        vcpu = Vcpu(vcpu_id, mode, bool(svr & 0x100), xapic_id=id_reg >> 24, ldr=ldr, dfr=dfr, tpr=tpr & 0xFF)
    prov["arb_prio"] = Provenance(basis=Basis.DEFAULT, note="KVM does not export apic_arb_prio, and "
                                  "KVM_SET_LAPIC resets it to 0 (arch/x86/kvm/lapic.c kvm_apic_set_state)")
    return vcpu, prov


def flags_from(options: ImportOptions, found: tuple[frozenset[X2ApicApiFlag], Provenance] | None,
               fmt: ImportFormat) -> tuple[frozenset[X2ApicApiFlag], Provenance]:
    """The KVM_CAP_X2APIC_API flags: the option if given, else what the source says, else an error."""
    if options.x2apic_api is not None:
        value = ", ".join(sorted(f.value for f in options.x2apic_api)) or "none"
        chosen = option("x2apic_api", value)
        if found is not None and found[0] != options.x2apic_api:
            chosen = replace(chosen, note=f"the source says {', '.join(sorted(f.value for f in found[0])) or 'none'}: "
                             f"{found[1].describe()}")
        return options.x2apic_api, chosen
    if found is not None:
        return found
    raise InputError("option x2apic_api", f"{fmt.value} does not record the KVM_CAP_X2APIC_API flags the VMM enabled",
                     "x2apic_api = [] or any of use_32bit_ids, disable_broadcast_quirk (--x2apic-api none|LIST)")


def assemble(fmt: ImportFormat, source: str, vcpus: Sequence[tuple[Vcpu, VcpuProvenance]], *,
             options: ImportOptions, flags: tuple[frozenset[X2ApicApiFlag], Provenance],
             order_note: Provenance, lacking: Sequence[Lack] = (), notes: Sequence[str] = (),
             extra: dict[str, str] | None = None,
             found: Mapping[str, tuple[bool, Provenance]] | None = None) -> ImportResult:
    """Put vCPUs (in the format's own creation order) and VM flags together, applying the options.

    ``found``: ``vector_hashing``/``smm`` values the source itself records; options still win.
    """
    found = found or {}
    if not vcpus:
        raise InputError(source, "no vCPUs found")
    if len(vcpus) > MAX_VCPUS:
        raise InputError(source, f"{len(vcpus)} vCPUs", f"at most {MAX_VCPUS} (a scenario's limit)")
    by_id: dict[int, tuple[Vcpu, VcpuProvenance]] = {}
    for vcpu, prov in vcpus:
        if not 0 <= vcpu.vcpu_id <= MAX_VCPU_ID:
            raise InputError(f"{source} {prov.get('vcpu_id', order_note).location or ''}".strip(),
                             f"vCPU id {vcpu.vcpu_id}", f"0..{MAX_VCPU_ID} (KVM_MAX_VCPU_IDS - 1)")
        if vcpu.vcpu_id in by_id:
            raise InputError(f"{source} {prov.get('vcpu_id', order_note).location or ''}".strip(),
                             f"vCPU {vcpu.vcpu_id} appears twice", "each vCPU id once")
        by_id[vcpu.vcpu_id] = (vcpu, prov)
    order = [v.vcpu_id for v, _ in vcpus]
    vm_prov: dict[str, Provenance] = {"creation_order": order_note}
    if options.creation_order is not None:
        if sorted(options.creation_order) != sorted(order):
            raise InputError("option creation_order", f"{list(options.creation_order)} is not an order of the "
                             f"vCPUs found", f"a permutation of {sorted(order)}")
        order = list(options.creation_order)
        vm_prov["creation_order"] = option("creation_order", ",".join(map(str, order)))
    lacks = list(lacking)
    flag_set, flag_prov = flags
    vm_prov["use_32bit_ids"] = flag_prov
    vm_prov["disable_broadcast_quirk"] = flag_prov
    settings: dict[str, bool] = {}
    for key, default, note, hint in (
            ("vector_hashing", True, "kvm.vector_hashing defaults to Y", "--vector-hashing / --no-vector-hashing"),
            ("smm", False, "a VM without SMM support assumed", "--smm / --no-smm")):
        given: bool | None = getattr(options, key)
        if given is not None:
            settings[key] = given
            vm_prov[key] = option(key, str(given).lower())
        elif key in found:
            settings[key], vm_prov[key] = found[key]
        else:
            settings[key] = default
            vm_prov[key] = Provenance(basis=Basis.DEFAULT, note=note)
            lacks.append(Lack(item=key, resolution=f"{str(default).lower()} assumed; set the {key} option ({hint})"))
    vector_hashing, smm = settings["vector_hashing"], settings["smm"]
    lacks.append(Lack(item="arb_prio", resolution="0 (KVM does not export it)"))
    # The imported pages are what KVM_GET_LAPIC returned: writing them back is a round trip (no
    # lapic_id/lapic_ldr of the user's own), and what KVM then holds is the model's to compute.
    for _, prov in by_id.values():
        for name in _KVM_SET_LAPIC_FIELDS:
            prov.setdefault(name, Provenance(basis=Basis.DEFAULT, note=_KVM_SET_LAPIC_NOTE))
    vm = VmState(tuple(by_id[vid][0] for vid in order),
                 use_32bit_ids=X2ApicApiFlag.USE_32BIT_IDS in flag_set,
                 disable_broadcast_quirk=X2ApicApiFlag.DISABLE_BROADCAST_QUIRK in flag_set,
                 vector_hashing=vector_hashing, smm=smm)
    return ImportResult(format=fmt, source=source, vm=vm,
                        vcpu_provenance={vid: by_id[vid][1] for vid in order}, vm_provenance=vm_prov,
                        lacking=tuple(lacks), notes=tuple(notes), extra=dict(extra or {}))


_KVM_SET_LAPIC_FIELDS = ("lapic_id", "lapic_ldr", "x2apic_ldr_reg")
_KVM_SET_LAPIC_NOTE = "the page is written back as read (a KVM_GET_LAPIC/KVM_SET_LAPIC round trip)"


def mode_option(options: ImportOptions, fmt: ImportFormat, why: str) -> tuple[ApicMode, Provenance]:
    if options.apic_mode is None:
        raise InputError("option apic_mode", f"{fmt.value}: {why}", "xapic, x2apic, disabled (--apic-mode)")
    return options.apic_mode, option("apic_mode", options.apic_mode.value)
