"""Write a VM state and injections back out as a scenario file (for reproducers)."""

from __future__ import annotations

from collections.abc import Sequence

from apicmap.domain.message import IcrInjection, Injection, IoapicInjection, MsiInjection, SelfIpiInjection
from apicmap.domain.vm import DFR_CLUSTER, DFR_FLAT, VmState
from apicmap.encoding.apic_base import ApicMode


def _dfr(value: int) -> str:
    return {DFR_FLAT: '"flat"', DFR_CLUSTER: '"cluster"'}.get(value, f"{value:#010x}")


def injection_toml(injection: Injection) -> list[str]:
    match injection:
        case MsiInjection(address_lo=lo, address_hi=hi, data=data):
            return [f"msi = {{ address = {lo:#010x}, address_hi = {hi:#x}, data = {data:#x} }}"]
        case IcrInjection(source=src, icr=icr):
            return ['via = "ipi"', f"source = {src}", f"icr = {icr:#x}"]
        case SelfIpiInjection(source=src, value=value):
            return ['via = "self-ipi"', f"source = {src}", f"value = {value:#x}"]
        case IoapicInjection(pin=pin, rte=rte):
            return ['via = "ioapic"', f"pin = {pin}", f"rte = {rte:#x}"]
    raise TypeError(injection)


def scenario_toml(vm: VmState, cases: Sequence[tuple[str, Injection, Sequence[int] | None, Sequence[int] | None]],
                  *, kernel: str | None = None, header: Sequence[str] = ()) -> str:
    """``cases``: (name, injection, expect, expect_arch)."""
    flags = [f for f, on in (("use_32bit_ids", vm.use_32bit_ids),
                             ("disable_broadcast_quirk", vm.disable_broadcast_quirk)) if on]
    lines = [f"# {h}" for h in header]
    lines += ["[vm]", f"x2apic_api = [{', '.join(repr(f).replace(chr(39), chr(34)) for f in flags)}]"]
    if kernel:
        lines.append(f'kernel = "{kernel}"')
    if not vm.vector_hashing:
        lines.append("vector_hashing = false")
    if vm.smm:
        lines.append("smm = true")
    if not vm.kvm_smm:
        lines.append("kvm_smm = false")
    for v in vm.vcpus:
        lines += ["", "[[vcpu]]", f"vcpu_id = {v.vcpu_id}", f'mode = "{v.mode.value}"']
        if not v.sw_enabled:
            lines.append("sw_enabled = false")
        if v.mode is not ApicMode.X2APIC:
            if v.xapic_id != v.vcpu_id & 0xFF:
                lines.append(f"apic_id = {v.xapic_id:#x}")
            if v.ldr:
                lines.append(f"ldr = {v.ldr >> 24:#x}" if not v.ldr & 0xFFFFFF else f"ldr_register = {v.ldr:#x}")
            if v.dfr != DFR_FLAT:
                lines.append(f"dfr = {_dfr(v.dfr)}")
        if v.mode is ApicMode.X2APIC and v.lapic_id is not None:
            lines.append(f"lapic_id = {v.lapic_id:#x}")
        if v.mode is ApicMode.X2APIC and v.lapic_ldr is not None:
            lines.append(f"lapic_ldr = {v.lapic_ldr:#x}")
        if v.arb_prio:
            lines.append(f"arb_prio = {v.arb_prio}")
        if v.tpr:
            lines.append(f"tpr = {v.tpr:#x}")
    for name, injection, expect, expect_arch in cases:
        lines += ["", "[[interrupt]]", f'name = "{name}"', *injection_toml(injection)]
        if expect is not None:
            lines.append(f"expect = {list(expect)}")
        if expect_arch is not None:
            lines.append(f"expect_arch = {list(expect_arch)}")
    return "\n".join(lines) + "\n"
