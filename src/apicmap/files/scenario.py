"""Scenario files (TOML): a VM state and the interrupts to judge against it.

Format: docs/scenario.md; JSON Schema: src/apicmap/files/schema/scenario.schema.json. Every error
names the file and key, the bad value and what is allowed (``InputError``).
"""

from __future__ import annotations

import tomllib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from apicmap.domain.message import IcrInjection, Injection, IoapicInjection, MsiInjection, SelfIpiInjection
from apicmap.domain.vm import DFR_CLUSTER, DFR_FLAT, MAX_VCPU_ID, MAX_VCPUS, Vcpu, VmState
from apicmap.encoding.apic_base import ApicMode
from apicmap.encoding.icr import Icr
from apicmap.encoding.ioapic import RedirectionEntry
from apicmap.encoding.kinds import DELIVERY_MODE_NAMES, DeliveryMode, DestMode, Shorthand, Trigger
from apicmap.encoding.msi import encode_kvm_msi, ext_dest_to_kvm
from apicmap.errors import EncodingError, InputError
from apicmap.model.policy import parse_release, policy_for_release

X2APIC_API_FLAGS = ("use_32bit_ids", "disable_broadcast_quirk")
_VM_KEYS = ("vcpus", "x2apic_api", "kernel", "vector_hashing", "smm", "kvm_smm", "description")
_VCPU_KEYS = ("vcpu_id", "mode", "sw_enabled", "apic_id", "ldr", "ldr_register", "dfr", "arb_prio", "tpr",
              "lapic_id", "lapic_ldr")
_INTERRUPT_KEYS = ("name", "via", "source", "shorthand", "dest", "dest_mode", "delivery", "vector",
                   "trigger", "level", "redirection_hint", "msi_format", "msi", "icr", "value", "rte",
                   "pin", "expect", "expect_arch", "expect_return", "expect_kernels")
# [history]: what a file of corpus/history/ rediscovers (read by apicmap.app.releases).
_HISTORY_KEYS = ("bug", "commit", "title", "fixed_in", "kvm")


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
VIA_NAMES = ("msi", "ipi", "self-ipi", "ioapic")


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
        if engine == "arch" and self.expect_arch is not None:
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
    where = str(path)
    try:
        text = Path(path).read_text(encoding="utf-8")
    except OSError as err:
        raise InputError(where, f"cannot read the file: {err.strerror}") from None
    try:
        document = tomllib.loads(text)
    except tomllib.TOMLDecodeError as err:
        raise InputError(where, f"not valid TOML: {err}") from None
    return parse_scenario(document, where)


def parse_scenario(document: Mapping[str, Any], where: str = "<scenario>") -> Scenario:
    _only(document, ("vm", "vcpu", "interrupt", "history"), where)
    _only(_table(document.get("history", {}), f"{where}: [history]"), _HISTORY_KEYS, f"{where}: [history]")
    vm_table = _table(document.get("vm", {}), f"{where}: [vm]")
    _only(vm_table, _VM_KEYS, f"{where}: [vm]")
    kernel = vm_table.get("kernel")
    if kernel is not None:
        kernel = _str(kernel, f"{where}: [vm] kernel", "a release like \"6.2\"")
        policy_for_release(kernel, f"{where}: [vm] kernel")  # validate now
    flags = vm_table.get("x2apic_api", [])
    if not isinstance(flags, list) or any(f not in X2APIC_API_FLAGS for f in flags):
        raise InputError(f"{where}: [vm] x2apic_api", f"bad value {flags!r}",
                         f"a list of {', '.join(repr(f) for f in X2APIC_API_FLAGS)}")
    vcpus = _build_vcpus(document, vm_table, where)
    vm = VmState(
        vcpus,
        use_32bit_ids="use_32bit_ids" in flags,
        disable_broadcast_quirk="disable_broadcast_quirk" in flags,
        vector_hashing=_bool(vm_table.get("vector_hashing", True), f"{where}: [vm] vector_hashing"),
        smm=_bool(vm_table.get("smm", False), f"{where}: [vm] smm"),
        kvm_smm=_bool(vm_table.get("kvm_smm", True), f"{where}: [vm] kvm_smm"),
    )
    for v in vm.vcpus:
        if vm.use_32bit_ids and v.lapic_id is not None and v.lapic_id != v.vcpu_id:
            raise InputError(f"{where}: [[vcpu]] vcpu_id={v.vcpu_id} lapic_id",
                             f"0x{v.lapic_id:x}: with use_32bit_ids KVM_SET_LAPIC fails (EINVAL) unless it is "
                             "the vcpu_id", f"{v.vcpu_id}, or omit it")
    raw_interrupts = document.get("interrupt", [])
    if not isinstance(raw_interrupts, list):
        raise InputError(f"{where}: interrupt", "must be an array of tables", "[[interrupt]] entries")
    cases = tuple(_build_interrupt(entry, i + 1, vm, where) for i, entry in enumerate(raw_interrupts))
    description = vm_table.get("description", "")
    return Scenario(where, vm, kernel, cases, _str(description, f"{where}: [vm] description", "text"))


# --- vCPUs ------------------------------------------------------------------------------------


def _build_vcpus(document: Mapping[str, Any], vm_table: Mapping[str, Any], where: str) -> tuple[Vcpu, ...]:
    count = vm_table.get("vcpus")
    if count is not None:
        count = _int(count, f"{where}: [vm] vcpus", 1, MAX_VCPUS)
    entries = document.get("vcpu", [])
    if not isinstance(entries, list):
        raise InputError(f"{where}: vcpu", "must be an array of tables", "[[vcpu]] entries")
    order: list[int] = list(range(count or 0))
    overrides: dict[int, Mapping[str, Any]] = {}
    for position, entry in enumerate(entries):
        place = f"{where}: [[vcpu]] #{position + 1}"
        table = _table(entry, place)
        _only(table, _VCPU_KEYS, place)
        vcpu_id = _int(table.get("vcpu_id", position), f"{place} vcpu_id", 0, MAX_VCPU_ID)
        if vcpu_id in overrides:
            raise InputError(f"{place} vcpu_id", f"vCPU {vcpu_id} is described twice", "each vcpu_id once")
        overrides[vcpu_id] = table
        if vcpu_id not in order:
            order.append(vcpu_id)  # beyond [vm] vcpus: created after the default ones
    if not order:
        raise InputError(f"{where}: [vm] vcpus", "the VM has no vCPUs", "vcpus = N or [[vcpu]] entries")
    if len(order) > MAX_VCPUS:
        raise InputError(f"{where}: [vm] vcpus", f"{len(order)} vCPUs", f"at most {MAX_VCPUS}")
    return tuple(_build_vcpu(vid, overrides.get(vid, {}), where) for vid in order)


def _build_vcpu(vcpu_id: int, table: Mapping[str, Any], where: str) -> Vcpu:
    place = f"{where}: [[vcpu]] vcpu_id={vcpu_id}"
    mode_text = table.get("mode", "xapic")
    try:
        mode = ApicMode(mode_text)
    except ValueError:
        raise InputError(f"{place} mode", f"bad value {mode_text!r}", '"xapic", "x2apic", "disabled"') from None
    if mode is ApicMode.X2APIC:
        for key in ("ldr", "ldr_register", "dfr"):
            if key in table:
                raise InputError(f"{place} {key}", "x2APIC mode has no writable LDR/DFR "
                                 "(the LDR is derived from vcpu_id)", "omit it for x2apic vCPUs")
        if "apic_id" in table and table["apic_id"] != vcpu_id & 0xFF:
            raise InputError(f"{place} apic_id", "the APIC ID is the x2APIC ID (vcpu_id) in x2APIC mode",
                             f"omit it, or {vcpu_id & 0xFF}")
    for key in ("lapic_id", "lapic_ldr"):
        if key in table and mode is not ApicMode.X2APIC:
            raise InputError(f"{place} {key}", "only for x2APIC-mode vCPUs (the xAPIC page takes apic_id/ldr)",
                             "omit it, or mode = \"x2apic\"")
    if "ldr" in table and "ldr_register" in table:
        raise InputError(f"{place} ldr", "give ldr (8-bit logical ID) or ldr_register (raw), not both")
    if "ldr_register" in table:
        ldr = _int(table["ldr_register"], f"{place} ldr_register", 0, 0xFFFFFFFF)
    else:
        ldr = _int(table.get("ldr", 0), f"{place} ldr", 0, 0xFF) << 24
    return Vcpu(
        vcpu_id=vcpu_id,
        mode=mode,
        sw_enabled=_bool(table.get("sw_enabled", True), f"{place} sw_enabled"),
        xapic_id=_int(table.get("apic_id", vcpu_id & 0xFF), f"{place} apic_id", 0, 0xFF),
        ldr=ldr,
        dfr=_dfr(table.get("dfr", "flat"), f"{place} dfr"),
        arb_prio=_int(table.get("arb_prio", 0), f"{place} arb_prio", 0, 0xFFFFFFFF),
        tpr=_int(table.get("tpr", 0), f"{place} tpr", 0, 0xFF),
        lapic_id=None if "lapic_id" not in table else _int(table["lapic_id"], f"{place} lapic_id", 0, 0xFFFFFFFF),
        lapic_ldr=None if "lapic_ldr" not in table else _int(table["lapic_ldr"], f"{place} lapic_ldr", 0,
                                                             0xFFFFFFFF),
    )


def _dfr(value: Any, where: str) -> int:
    if value == "flat":
        return DFR_FLAT
    if value == "cluster":
        return DFR_CLUSTER
    if isinstance(value, int) and not isinstance(value, bool) and 0 <= value <= 0xFFFFFFFF:
        return value
    raise InputError(where, f"bad value {value!r}", '"flat", "cluster" or a raw 32-bit DFR value')


# --- interrupts ---------------------------------------------------------------------------------


def _build_interrupt(entry: Any, index: int, vm: VmState, where: str) -> InterruptCase:
    place = f"{where}: [[interrupt]] #{index}"
    table = _table(entry, place)
    _only(table, _INTERRUPT_KEYS, place)
    raw_keys = [k for k in ("msi", "icr", "rte", "value") if k in table]
    via = table.get("via")
    if via is None:
        via = {"icr": "ipi", "rte": "ioapic", "value": "self-ipi"}.get(raw_keys[0] if raw_keys else "", "msi")
    if via not in VIA_NAMES:
        raise InputError(f"{place} via", f"bad value {via!r}", ", ".join(f'"{v}"' for v in VIA_NAMES))
    try:
        injection = _injection(table, via, vm, place)
    except EncodingError as err:
        raise InputError(place, str(err)) from None
    return InterruptCase(
        index=index,
        name=_str(table.get("name", f"#{index}"), f"{place} name", "text"),
        injection=injection,
        expect=_vcpu_list(table.get("expect"), f"{place} expect", vm),
        expect_arch=_vcpu_list(table.get("expect_arch"), f"{place} expect_arch", vm),
        expect_return=(None if "expect_return" not in table
                       else _int(table["expect_return"], f"{place} expect_return", -1, MAX_VCPUS)),
        expect_kernels=_expect_kernels(table, place, vm),
    )


def _expect_kernels(table: Mapping[str, Any], place: str, vm: VmState) -> tuple[KernelExpectation, ...]:
    raw = table.get("expect_kernels")
    if raw is None:
        return ()
    where = f"{place} expect_kernels"
    if "expect" in table or "expect_return" in table:
        raise InputError(where, "give expect/expect_return or expect_kernels, not both")
    if not isinstance(raw, list) or not raw:
        raise InputError(where, f"bad value {raw!r}", '[{ from = "4.9", expect = [...], expect_return = N }, ...]')
    entries: list[KernelExpectation] = []
    for i, item in enumerate(raw):
        at = f"{where}[{i}]"
        entry = _table(item, at)
        _only(entry, ("from", "stable", "expect", "expect_return"), at)
        since = parse_release(_str(entry.get("from"), f"{at} from", 'a release like "6.3"'), f"{at} from")
        if entries and since <= entries[-1].since:
            raise InputError(f"{at} from", "entries must be in increasing release order")
        stable = entry.get("stable", [])
        if not isinstance(stable, list):
            raise InputError(f"{at} stable", f"bad value {stable!r}", 'a list of stable releases, e.g. ["6.1.170"]')
        entries.append(KernelExpectation(
            since=since, expect=_vcpu_list(entry.get("expect"), f"{at} expect", vm),
            expect_return=(None if "expect_return" not in entry
                           else _int(entry["expect_return"], f"{at} expect_return", -1, MAX_VCPUS)),
            stable=tuple(parse_release(_str(r, f"{at} stable", "a release"), f"{at} stable") for r in stable)))
    return tuple(entries)


def _injection(table: Mapping[str, Any], via: str, vm: VmState, place: str) -> Injection:
    def forbid(*keys: str) -> None:
        for key in keys:
            if key in table:
                raise InputError(f"{place} {key}", f"does not apply to via = \"{via}\"")

    def source() -> int:
        if "source" not in table:
            raise InputError(f"{place} source", "missing", "the vcpu_id of the sending vCPU")
        vid = _int(table["source"], f"{place} source", 0, MAX_VCPU_ID)
        if not vm.has_vcpu(vid):
            raise InputError(f"{place} source", f"no vCPU {vid}", ", ".join(map(str, vm.vcpu_ids[:16])))
        return vid

    if via == "msi":
        forbid("source", "shorthand", "icr", "rte", "value", "pin")
        if "msi" in table:
            raw = _table(table["msi"], f"{place} msi")
            _only(raw, ("address", "address_hi", "data"), f"{place} msi")
            address = _int(raw.get("address", 0xFEE00000), f"{place} msi.address", 0, 0xFFFFFFFFFFFFFFFF)
            hi = _int(raw.get("address_hi", address >> 32), f"{place} msi.address_hi", 0, 0xFFFFFFFF)
            data = _int(raw.get("data", 0), f"{place} msi.data", 0, 0xFFFFFFFF)
            return MsiInjection(address & 0xFFFFFFFF, hi, data)
        fields = _fields(table, place, allow_rh=True)
        msi_format = table.get("msi_format", "kvm")
        if msi_format not in ("kvm", "ext-dest"):
            raise InputError(f"{place} msi_format", f"bad value {msi_format!r}", '"kvm", "ext-dest"')
        dest = fields["dest"]
        if msi_format == "ext-dest":
            if dest > 0x7FFF:
                raise InputError(f"{place} dest", f"0x{dest:x} does not fit the 15-bit extended destination ID",
                                 "0..0x7fff")
            lo, _, data = encode_kvm_msi(dest & 0xFF, **_msi_kwargs(fields))
            # Guest form: bits 11:5 carry dest[14:8]; the VMM translates (architecture-and-peers.md A11).
            lo, hi = ext_dest_to_kvm(lo | ((dest >> 8) & 0x7F) << 5, 0)
            return MsiInjection(lo, hi, data)
        lo, hi, data = encode_kvm_msi(dest, **_msi_kwargs(fields))
        return MsiInjection(lo, hi, data)
    if via == "ipi":
        forbid("redirection_hint", "msi", "rte", "value", "pin", "msi_format")
        vid = source()
        if "icr" in table:
            return IcrInjection(vid, _int(table["icr"], f"{place} icr", 0, 0xFFFFFFFFFFFFFFFF))
        fields = _fields(table, place, allow_rh=False)
        shorthand_text = table.get("shorthand", "none")
        try:
            shorthand = Shorthand.parse(_str(shorthand_text, f"{place} shorthand", ""))
        except KeyError:
            raise InputError(f"{place} shorthand", f"bad value {shorthand_text!r}",
                             '"none", "self", "all", "all-but-self"') from None
        icr = Icr.build(vector=fields["vector"], delivery=DeliveryMode(fields["delivery"]),
                        dest_mode=DestMode(fields["dest_mode"]), level=bool(fields["level"]),
                        trigger=Trigger(fields["trigger"]), shorthand=shorthand, dest=fields["dest"]
                        if vm.vcpu(vid).mode is ApicMode.X2APIC else 0)
        if vm.vcpu(vid).mode is ApicMode.X2APIC:
            return IcrInjection(vid, icr.to_x2apic())
        if fields["dest"] > 0xFF:
            raise InputError(f"{place} dest", f"0x{fields['dest']:x} from an xAPIC-mode source",
                             "0..0xff (the xAPIC ICR2 destination is 8 bits)")
        low, _ = icr.to_xapic()
        return IcrInjection(vid, (fields["dest"] << 56) | low)
    if via == "self-ipi":
        forbid("shorthand", "dest", "dest_mode", "delivery", "trigger", "level", "redirection_hint",
               "msi", "icr", "rte", "pin", "msi_format")
        vid = source()
        value = table.get("value", table.get("vector"))
        if value is None:
            raise InputError(f"{place} vector", "missing", "0..0xff (or value = raw SELF_IPI register)")
        return SelfIpiInjection(vid, _int(value, f"{place} value", 0, 0xFFFFFFFFFFFFFFFF))
    # ioapic
    forbid("source", "shorthand", "redirection_hint", "msi", "icr", "value", "msi_format")
    pin = _int(table.get("pin", 16), f"{place} pin", 0, 23)
    if "rte" in table:
        return IoapicInjection(pin, _int(table["rte"], f"{place} rte", 0, 0xFFFFFFFFFFFFFFFF))
    fields = _fields(table, place, allow_rh=False)
    if fields["dest"] > 0xFF:
        raise InputError(f"{place} dest", f"0x{fields['dest']:x} does not fit an IOAPIC RTE", "0..0xff")
    rte = RedirectionEntry(
        vector=fields["vector"], delivery=DeliveryMode(fields["delivery"]), dest_mode=DestMode(fields["dest_mode"]),
        delivery_status=False, active_low=False, remote_irr=False, trigger=Trigger(fields["trigger"]),
        masked=False, remappable=False, ext_dest=0, dest=fields["dest"], reserved=0)
    return IoapicInjection(pin, rte.to_value())


def _msi_kwargs(fields: Mapping[str, int]) -> dict[str, Any]:
    return dict(dest_mode=DestMode(fields["dest_mode"]), redirection_hint=bool(fields["redirection_hint"]),
                vector=fields["vector"], delivery=DeliveryMode(fields["delivery"]),
                trigger=Trigger(fields["trigger"]), level=bool(fields["level"]))


def _fields(table: Mapping[str, Any], place: str, *, allow_rh: bool) -> dict[str, int]:
    delivery_text = table.get("delivery", "fixed")
    try:
        delivery = DeliveryMode.parse(_str(delivery_text, f"{place} delivery", ""))
    except KeyError:
        raise InputError(f"{place} delivery", f"bad value {delivery_text!r}", ", ".join(DELIVERY_MODE_NAMES)) from None
    dest_mode = _choice(table.get("dest_mode", "physical"), f"{place} dest_mode", ("physical", "logical"))
    trigger = _choice(table.get("trigger", "edge"), f"{place} trigger", ("edge", "level"))
    level = _choice(table.get("level", "assert"), f"{place} level", ("deassert", "assert"))
    if "vector" not in table and delivery in (DeliveryMode.FIXED, DeliveryMode.LOWEST, DeliveryMode.SIPI):
        raise InputError(f"{place} vector", "missing", "0..0xff")
    return {
        "dest": _int(table.get("dest", 0), f"{place} dest", 0, 0xFFFFFFFF),
        "dest_mode": dest_mode,
        "delivery": int(delivery),
        "vector": _int(table.get("vector", 0), f"{place} vector", 0, 0xFF),
        "trigger": trigger,
        "level": level,
        "redirection_hint": int(_bool(table.get("redirection_hint", False), f"{place} redirection_hint"))
        if allow_rh else 0,
    }


# --- small validators -------------------------------------------------------------------------


def _only(table: Mapping[str, Any], allowed: Sequence[str], where: str) -> None:
    for key in table:
        if key not in allowed:
            raise InputError(f"{where} {key}", "unknown key", ", ".join(allowed))


def _table(value: Any, where: str) -> Mapping[str, Any]:
    if not isinstance(value, dict):
        raise InputError(where, f"expected a table, got {value!r}")
    return value


def _int(value: Any, where: str, low: int, high: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise InputError(where, f"bad value {value!r}", f"an integer {_hex(low)}..{_hex(high)}")
    return value


def _hex(n: int) -> str:
    return str(n) if -1 <= n <= 16 else f"0x{n:x}"


def _bool(value: Any, where: str) -> bool:
    if not isinstance(value, bool):
        raise InputError(where, f"bad value {value!r}", "true, false")
    return value


def _str(value: Any, where: str, allowed: str) -> str:
    if not isinstance(value, str):
        raise InputError(where, f"bad value {value!r}", allowed or "a string")
    return value


def _choice(value: Any, where: str, names: tuple[str, ...]) -> int:
    if value not in names:
        raise InputError(where, f"bad value {value!r}", ", ".join(f'"{n}"' for n in names))
    return names.index(value)


def _vcpu_list(value: Any, where: str, vm: VmState) -> tuple[int, ...] | None:
    if value is None:
        return None
    if not isinstance(value, list):
        raise InputError(where, f"bad value {value!r}", "a list of vcpu_ids")
    for vid in value:
        _int(vid, where, 0, MAX_VCPU_ID)
        if not vm.has_vcpu(vid):
            raise InputError(where, f"no vCPU {vid} in this VM", "vcpu_ids of the VM")
    return tuple(sorted(set(value)))
