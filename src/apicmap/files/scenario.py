"""Scenario files (TOML): a VM state and the interrupts to judge against it.

Format: docs/scenario.md; the keys: ``files/keys.py`` (from which the JSON Schema
src/apicmap/files/schema/scenario.schema.json is generated). Every error names the file and key,
the bad value and what is allowed (``InputError``).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from apicmap.domain.message import IcrInjection, Injection, IoapicInjection, MsiInjection, SelfIpiInjection
from apicmap.domain.vm import DFR_CLUSTER, DFR_FLAT, MAX_VCPUS, Vcpu, VmState
from apicmap.encoding.apic_base import ApicMode
from apicmap.encoding.icr import Icr
from apicmap.encoding.ioapic import RedirectionEntry
from apicmap.encoding.kinds import DeliveryMode, DestMode, Shorthand, Trigger
from apicmap.encoding.msi import encode_kvm_msi, ext_dest_to_kvm
from apicmap.errors import EncodingError, InputError, echo
from apicmap.files.keys import (
    FIELD_KEYS,
    HISTORY_KEYS,
    INTERRUPT_KEYS,
    KERNEL_EXPECTATION_KEYS,
    MSI_FIELDS,
    RAW_KEYS,
    SCENARIO,
    VCPU_KEYS,
    VIA_NAMES,
    VM_KEYS,
    X2APIC_API_FLAGS,
)
from apicmap.files.spec import Section, Table, read_toml, validate
from apicmap.model.policy import parse_release, policy_for_release

__all__ = ["VIA_NAMES", "X2APIC_API_FLAGS", "InterruptCase", "KernelExpectation", "Scenario", "load_scenario",
           "parse_scenario"]


@dataclass(frozen=True, slots=True)
class KernelExpectation:
    """``expect_kernels`` entry: from release ``since`` on (until the next entry), KVM gives this."""

    since: tuple[int, int, int]
    expect: tuple[int, ...] | None
    expect_return: int | None
    # Stable releases of older series that carry the change (backports): the entry holds from
    # each of them on, within its series.
    stable: tuple[tuple[int, int, int], ...] = ()

    def applies_to(self, release: tuple[int, int, int]) -> bool:
        return self.since <= release or any(s[:2] == release[:2] and s <= release for s in self.stable)


@dataclass(frozen=True, slots=True)
class InterruptCase:
    index: int  # 1-based position among [[interrupt]]
    name: str
    injection: Injection
    expect: tuple[int, ...] | None = None
    expect_arch: tuple[int, ...] | None = None
    expect_return: int | None = None
    expect_kernels: tuple[KernelExpectation, ...] = ()

    def expectation_at(self, release: tuple[int, int, int]) -> KernelExpectation | None:
        """The ``expect_kernels`` entry that covers ``release`` (None: none, or no such key)."""
        found = None
        for entry in self.expect_kernels:
            if entry.applies_to(release):
                found = entry
        return found

    def expected_for(self, engine: str) -> tuple[int, ...] | None:
        """``expect`` describes KVM; the ``arch`` engine is checked only against ``expect_arch``
        (the architecture differs from KVM too often for one to stand in for the other)."""
        if engine == "arch":
            return self.expect_arch
        return self.expect


@dataclass(frozen=True, slots=True)
class Scenario:
    path: str
    vm: VmState
    kernel: str | None
    interrupts: tuple[InterruptCase, ...]
    description: str = ""


def load_scenario(path: str | Path) -> Scenario:
    return parse_scenario(read_toml(path), str(path))


def parse_scenario(document: Mapping[str, Any], where: str = "<scenario>") -> Scenario:
    _only_sections(document, SCENARIO, where)
    vm_table = validate(document.get("vm", {}), VM_KEYS, f"{where}: [vm]")
    kernel = vm_table.get("kernel")
    if kernel is not None:
        policy_for_release(kernel, vm_table.at("kernel"))  # validate now
    flags = vm_table.get("x2apic_api")
    vcpus = _build_vcpus(document, vm_table, where)
    vm = VmState(
        vcpus,
        use_32bit_ids="use_32bit_ids" in flags,
        disable_broadcast_quirk="disable_broadcast_quirk" in flags,
        vector_hashing=vm_table.get("vector_hashing"),
        smm=vm_table.get("smm"),
        kvm_smm=vm_table.get("kvm_smm"),
    )
    for v in vm.vcpus:
        if vm.use_32bit_ids and v.lapic_id is not None and v.lapic_id != v.vcpu_id:
            raise InputError(f"{where}: [[vcpu]] vcpu_id={v.vcpu_id} lapic_id",
                             f"0x{v.lapic_id:x}: with use_32bit_ids KVM_SET_LAPIC fails (EINVAL) unless it is "
                             "the vcpu_id", f"{v.vcpu_id}, or omit it")
    if "history" in document:
        validate(document["history"], HISTORY_KEYS, f"{where}: [history]")
    raw_interrupts = _array(document, "interrupt", where)
    cases = tuple(_build_interrupt(entry, i + 1, vm, where) for i, entry in enumerate(raw_interrupts))
    return Scenario(where, vm, kernel, cases, vm_table.get("description"))


def _only_sections(document: Mapping[str, Any], sections: tuple[Section, ...], where: str) -> None:
    names = [section.name for section in sections]
    for key in document:
        if key not in names:
            raise InputError(f"{where}: {key}", "unknown table", ", ".join(s.title for s in sections))


def _array(document: Mapping[str, Any], name: str, where: str) -> list[Any]:
    entries = document.get(name, [])
    if not isinstance(entries, list):
        raise InputError(f"{where}: {name}", "must be an array of tables", f"[[{name}]] entries")
    return entries


# --- vCPUs ------------------------------------------------------------------------------------


def _build_vcpus(document: Mapping[str, Any], vm_table: Table, where: str) -> tuple[Vcpu, ...]:
    count = vm_table.get("vcpus")
    default_mode = ApicMode(vm_table.get("mode"))
    entries = [validate(entry, VCPU_KEYS, f"{where}: [[vcpu]] #{i + 1}")
               for i, entry in enumerate(_array(document, "vcpu", where))]
    explicit = [t for t in entries if "vcpu_id" in t]
    if explicit and len(explicit) != len(entries):
        missing = next(t for t in entries if "vcpu_id" not in t)
        raise InputError(missing.at("vcpu_id"), "missing, while other [[vcpu]] entries give one",
                         "vcpu_id in every [[vcpu]] entry, or in none (then the N-th entry is vCPU N-1)")
    order: list[int] = list(range(count or 0))
    overrides: dict[int, Table] = {}
    for position, table in enumerate(entries):
        vcpu_id = table.get("vcpu_id", position)
        if vcpu_id in overrides:
            raise InputError(table.at("vcpu_id"), f"vCPU {vcpu_id} is described twice", "each vcpu_id once")
        overrides[vcpu_id] = table
        if vcpu_id not in order:
            order.append(vcpu_id)  # beyond [vm] vcpus: created after the default ones
    if not order:
        raise InputError(f"{where}: [vm] vcpus", "the VM has no vCPUs", "vcpus = N or [[vcpu]] entries")
    if len(order) > MAX_VCPUS:
        raise InputError(f"{where}: [vm] vcpus", f"{len(order)} vCPUs", f"1..{MAX_VCPUS} vCPUs in all")
    empty = Table(f"{where}: [vm]", {}, VCPU_KEYS)
    return tuple(_build_vcpu(vid, overrides.get(vid, empty), default_mode) for vid in order)


def _build_vcpu(vcpu_id: int, table: Table, default_mode: ApicMode) -> Vcpu:
    mode = ApicMode(table.get("mode", default_mode.value))
    if mode is ApicMode.X2APIC:
        for key in ("ldr", "ldr_register", "dfr"):
            if key in table:
                raise InputError(table.at(key), "x2APIC mode has no writable LDR/DFR "
                                 "(the LDR is derived from vcpu_id)", "omit it for x2apic vCPUs")
        if "apic_id" in table and table.get("apic_id") != vcpu_id & 0xFF:
            raise InputError(table.at("apic_id"), "the APIC ID is the x2APIC ID (vcpu_id) in x2APIC mode",
                             f"omit it, or {vcpu_id & 0xFF}")
    if "ldr" in table and "ldr_register" in table:
        raise InputError(table.at("ldr"), "give ldr (8-bit logical ID) or ldr_register (raw), not both")
    ldr = table.get("ldr_register") if "ldr_register" in table else table.get("ldr") << 24
    for key in ("lapic_id", "lapic_ldr"):
        if key in table and mode is not ApicMode.X2APIC:
            raise InputError(table.at(key), "only for x2APIC-mode vCPUs (the xAPIC page takes apic_id/ldr)",
                             'omit it, or mode = "x2apic"')
    dfr_value = table.get("dfr")
    dfr: int = {"flat": DFR_FLAT, "cluster": DFR_CLUSTER}[dfr_value] if isinstance(dfr_value, str) else dfr_value
    return Vcpu(
        vcpu_id=vcpu_id,
        mode=mode,
        sw_enabled=table.get("sw_enabled"),
        xapic_id=table.get("apic_id", vcpu_id & 0xFF),
        ldr=ldr,
        dfr=dfr,
        arb_prio=table.get("arb_prio"),
        tpr=table.get("tpr"),
        lapic_id=table.get("lapic_id"),
        lapic_ldr=table.get("lapic_ldr"),
    )


# --- interrupts ---------------------------------------------------------------------------------


def _build_interrupt(entry: Any, index: int, vm: VmState, where: str) -> InterruptCase:
    place = f"{where}: [[interrupt]] #{index}"
    table = validate(entry, INTERRUPT_KEYS, place)
    raw_keys = table.given(RAW_KEYS)
    if len(raw_keys) > 1:
        raise InputError(table.at(raw_keys[1]), f"a second raw encoding (with {raw_keys[0]})", "one of "
                         + ", ".join(RAW_KEYS))
    via = table.get("via") or {"icr": "ipi", "rte": "ioapic", "value": "self-ipi"}.get(
        raw_keys[0] if raw_keys else "", "msi")
    table = validate(entry, INTERRUPT_KEYS, place, discriminator="via", chosen=via)
    if raw_keys:
        for key in table.given(FIELD_KEYS):
            raise InputError(table.at(key), f"does not apply with a raw {raw_keys[0]} (it carries the {key} "
                             "bits itself)", f"omit {key}, or use the named fields instead of {raw_keys[0]}")
    try:
        injection = _injection(table, via, vm)
    except EncodingError as err:
        raise InputError(place, str(err)) from None
    return InterruptCase(
        index=index,
        name=table.get("name", f"#{index}"),
        injection=injection,
        expect=_vcpu_list(table, "expect", vm),
        expect_arch=_vcpu_list(table, "expect_arch", vm),
        expect_return=table.get("expect_return"),
        expect_kernels=_expect_kernels(table, vm),
    )


def _expect_kernels(table: Table, vm: VmState) -> tuple[KernelExpectation, ...]:
    """``expect_kernels``: per-release expectations, each holding from its release to the next one's."""
    if "expect_kernels" not in table:
        return ()
    where = table.at("expect_kernels")
    for key in ("expect", "expect_return"):
        if key in table:
            raise InputError(where, f"give {key} or expect_kernels, not both")
    entries: list[KernelExpectation] = []
    for i, item in enumerate(table.get("expect_kernels")):
        entry = validate(item, KERNEL_EXPECTATION_KEYS, f"{where}[{i}]")
        since = parse_release(entry.require("from"), entry.at("from"))
        if entries and since <= entries[-1].since:
            raise InputError(entry.at("from"), "entries must be in increasing release order")
        entries.append(KernelExpectation(
            since=since, expect=_vcpu_list(entry, "expect", vm), expect_return=entry.get("expect_return"),
            stable=tuple(parse_release(r, entry.at("stable")) for r in entry.get("stable"))))
    return tuple(entries)


def _injection(table: Table, via: str, vm: VmState) -> Injection:
    def source() -> int:
        vid: int = table.require("source")
        if not vm.has_vcpu(vid):
            raise InputError(table.at("source"), f"no vCPU {vid}", ", ".join(map(str, vm.vcpu_ids[:16])))
        return vid

    if via == "msi":
        if "msi" in table:
            raw = validate(table.get("msi"), MSI_FIELDS, table.at("msi"))
            address: int = raw.get("address")
            hi = raw.get("address_hi", address >> 32)
            return MsiInjection(address & 0xFFFFFFFF, hi, raw.get("data"))
        fields = _fields(table)
        dest = fields["dest"]
        if table.get("msi_format") == "ext-dest":
            if dest > 0x7FFF:
                raise InputError(table.at("dest"), f"{dest:#x} does not fit the 15-bit extended destination ID",
                                 "0..0x7fff")
            lo, _, data = encode_kvm_msi(dest & 0xFF, **_msi_kwargs(fields))
            # Guest form: bits 11:5 carry dest[14:8]; the VMM translates into address_hi.
            lo, hi = ext_dest_to_kvm(lo | ((dest >> 8) & 0x7F) << 5, 0)
            return MsiInjection(lo, hi, data)
        lo, hi, data = encode_kvm_msi(dest, **_msi_kwargs(fields))
        return MsiInjection(lo, hi, data)
    if via == "ipi":
        vid = source()
        if "icr" in table:
            return IcrInjection(vid, table.get("icr"))
        fields = _fields(table)
        shorthand = Shorthand.parse(table.get("shorthand"))
        x2apic = vm.vcpu(vid).mode is ApicMode.X2APIC
        icr = Icr.build(vector=fields["vector"], delivery=DeliveryMode(fields["delivery"]),
                        dest_mode=DestMode(fields["dest_mode"]), level=bool(fields["level"]),
                        trigger=Trigger(fields["trigger"]), shorthand=shorthand,
                        dest=fields["dest"] if x2apic else 0)
        if x2apic:
            return IcrInjection(vid, icr.to_x2apic())
        if fields["dest"] > 0xFF:
            raise InputError(table.at("dest"), f"{fields['dest']:#x} from an xAPIC-mode source",
                             "0..0xff (the xAPIC ICR2 destination is 8 bits)")
        low, _ = icr.to_xapic()
        return IcrInjection(vid, (fields["dest"] << 56) | low)
    if via == "self-ipi":
        vid = source()
        if "value" in table:
            return SelfIpiInjection(vid, table.get("value"))
        return SelfIpiInjection(vid, table.require("vector"))
    # ioapic
    pin: int = table.get("pin")
    if "rte" in table:
        return IoapicInjection(pin, table.get("rte"))
    fields = _fields(table)
    if fields["dest"] > 0xFF:
        raise InputError(table.at("dest"), f"{fields['dest']:#x} does not fit an IOAPIC RTE", "0..0xff")
    rte = RedirectionEntry(
        vector=fields["vector"], delivery=DeliveryMode(fields["delivery"]), dest_mode=DestMode(fields["dest_mode"]),
        delivery_status=False, active_low=False, remote_irr=False, trigger=Trigger(fields["trigger"]),
        masked=False, remappable=False, ext_dest=0, dest=fields["dest"], reserved=0)
    return IoapicInjection(pin, rte.to_value())


def _msi_kwargs(fields: Mapping[str, int]) -> dict[str, Any]:
    return dict(dest_mode=DestMode(fields["dest_mode"]), redirection_hint=bool(fields["redirection_hint"]),
                vector=fields["vector"], delivery=DeliveryMode(fields["delivery"]),
                trigger=Trigger(fields["trigger"]), level=bool(fields["level"]))


def _fields(table: Table) -> dict[str, int]:
    delivery = DeliveryMode.parse(table.get("delivery"))
    if "vector" not in table and delivery in (DeliveryMode.FIXED, DeliveryMode.LOWEST, DeliveryMode.SIPI):
        table.require("vector")
    return {
        "dest": table.get("dest"),
        "dest_mode": ("physical", "logical").index(table.get("dest_mode")),
        "delivery": int(delivery),
        "vector": table.get("vector", 0),
        "trigger": ("edge", "level").index(table.get("trigger")),
        "level": ("deassert", "assert").index(table.get("level")),
        "redirection_hint": int("redirection_hint" in table and table.get("redirection_hint")),
    }


def _vcpu_list(table: Table, key: str, vm: VmState) -> tuple[int, ...] | None:
    value = table.get(key)
    if value is None:
        return None
    for vid in value:
        if not vm.has_vcpu(vid):
            raise InputError(table.at(key), f"no vCPU {echo(vid)} in this VM", "vcpu_ids of the VM")
    return tuple(sorted(set(value)))
