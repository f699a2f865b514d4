"""What the guest can do, and the job table it reads (``guest/guest.h`` defines the layout).

Every rule that makes an interrupt "not expressible" is here, each with its reason in one line.
The QEMU sources cited are those of release 7.2 (Debian's 1:7.2+dfsg, no routing patch on top).
"""

from __future__ import annotations

import enum
import struct
from dataclasses import dataclass

from apicmap.domain.message import IcrInjection, Injection, IoapicInjection, MsiInjection, SelfIpiInjection
from apicmap.domain.vm import VmState
from apicmap.encoding.apic_base import ApicMode
from apicmap.encoding.kinds import DeliveryMode
from apicmap.errors import NotExpressible

JOB_MAGIC = 0x314A5041  # "APJ1", guest.h
MAX_CPUS = 255  # hw/intc/apic.c apic_realize: APIC IDs below MAX_APICS (255); hw/i386/pc.c max_cpus 255
APIC_MSI_WINDOW = 0xFEE00000  # the 1 MiB "apic-msi" region (hw/intc/apic.c apic_realize, APIC_SPACE_SIZE)
TESTDEV_PINS = range(1, 16)  # pc-testdev raises ISA IRQs 0..15; ISA IRQ 0 lands on pin 2 (ioapic_set_irq)
CPU_HW_DISABLED = 1  # guest.h JOB_CPU_HW_DISABLED

# Delivery modes whose effect the guest sees. FIXED and LOWEST: the handler runs, or the vector
# stays in the IRR. NMI: the IDT entry 2 handler. EXTINT: QEMU's apic_bus_deliver falls through
# to apic_set_irq with the message's vector (hw/intc/apic.c), so it shows like FIXED.
_OBSERVABLE = {DeliveryMode.FIXED, DeliveryMode.LOWEST, DeliveryMode.NMI, DeliveryMode.EXTINT}
_WHY_NOT = {
    DeliveryMode.SMI: "SMI: QEMU enters SMM and runs the firmware's SMI handler; the guest cannot observe it",
    DeliveryMode.INIT: "INIT resets the target CPU (and the guest's observer on it)",
    DeliveryMode.SIPI: "SIPI acts only on a CPU waiting for SIPI, which the guest's CPUs never are",
    DeliveryMode.REMRD: "REMRD: QEMU drops it (hw/intc/apic.c, apic_bus_deliver default case); the guest "
                        "cannot tell a dropped message from an unobservable one",
}


class Kind(enum.IntEnum):
    MSI = 1
    ICR = 2
    IOAPIC = 3


@dataclass(frozen=True, slots=True)
class JobInterrupt:
    """One interrupt as the guest sends it."""

    kind: Kind
    source: int  # the CPU that sends (ICR); CPU 0 for MSI and IOAPIC
    a: int
    b: int
    c: int = 0


@dataclass(frozen=True, slots=True)
class QemuMessage:
    """An interrupt as QEMU 7.2 decodes it, for the explanation."""

    delivery: DeliveryMode
    vector: int
    dest: int  # 8 bits: QEMU 7.2's apic_deliver_irq / apic_deliver take uint8_t dest
    logical: bool
    level_triggered: bool
    shorthand: int  # ICR bits 19:18; 0 for MSI and IOAPIC
    via: str

    def describe(self) -> str:
        if self.shorthand:
            target = ("", "self", "all including self", "all excluding self")[self.shorthand]
        else:
            target = f"{'logical' if self.logical else 'physical'} 0x{self.dest:02x}"
        vector = "" if self.delivery is DeliveryMode.NMI else f" vector 0x{self.vector:02x}"
        trigger = "level" if self.level_triggered else "edge"
        return f"{self.via}: {self.delivery.label}{vector}, {target}, {trigger}"


def x2apic_reason(qemu_version: tuple[int, ...]) -> str:
    """Why x2APIC is out of reach on this QEMU."""
    version = ".".join(map(str, qemu_version))
    if qemu_version[:2] == (7, 2):
        return (f"QEMU {version}'s TCG APIC has no x2APIC (target/i386/cpu.c TCG_EXT_FEATURES lacks "
                "CPUID_EXT_X2APIC; hw/intc/apic.c has no x2APIC MSR path)")
    return f"the test guest drives the xAPIC only (x2APIC support of QEMU {version}'s TCG APIC not checked)"


def check_vm(vm: VmState, qemu_version: tuple[int, ...] = (7, 2)) -> None:
    """Raise NotExpressible when the VM as a whole cannot be run under QEMU TCG by this guest."""
    ids = vm.vcpu_ids
    if ids != tuple(range(len(ids))):
        raise NotExpressible(f"vcpu ids {_short(ids)}: QEMU numbers its CPUs 0..n-1 in creation order "
                             "(initial APIC ID = CPU index)")
    if len(ids) > MAX_CPUS:
        raise NotExpressible(f"{len(ids)} vCPUs: QEMU 7.2's TCG APIC takes at most {MAX_CPUS} "
                             "(hw/intc/apic.c apic_realize, MAX_APICS)")
    for v in vm.vcpus:
        if v.mode is ApicMode.X2APIC:
            raise NotExpressible(f"vCPU {v.vcpu_id} in x2APIC mode: {x2apic_reason(qemu_version)}")
        if v.xapic_id > 0xFF:
            raise NotExpressible(f"vCPU {v.vcpu_id}: xAPIC ID {v.xapic_id:#x} is wider than 8 bits")


def _short(ids: tuple[int, ...]) -> str:
    return "(" + ", ".join(map(str, ids[:6])) + (", ...)" if len(ids) > 6 else ")")


def _check_vector(mode: DeliveryMode, vector: int) -> None:
    if mode is not DeliveryMode.NMI and vector < 16:
        raise NotExpressible(f"vector 0x{vector:02x}: vectors below 16 share the guest's IDT entries with "
                             "exceptions and NMI, so the guest cannot tell them apart")


def _check_mode(mode: DeliveryMode, what: str) -> None:
    if mode not in _OBSERVABLE:
        raise NotExpressible(f"{what}: {_WHY_NOT[mode]}")


def plan(vm: VmState, injection: Injection, qemu_version: tuple[int, ...] = (7, 2)) -> tuple[JobInterrupt, QemuMessage]:
    """How the guest sends ``injection`` and how QEMU decodes it; NotExpressible if it cannot."""
    match injection:
        case MsiInjection(address_lo=lo, address_hi=hi, data=data):
            return _plan_msi(lo, hi, data)
        case IcrInjection(source=source, icr=icr):
            return _plan_icr(vm, source, icr)
        case IoapicInjection(pin=pin, rte=rte):
            return _plan_ioapic(pin, rte)
        case SelfIpiInjection():
            raise NotExpressible(f"SELF_IPI is an x2APIC MSR: {x2apic_reason(qemu_version)}")
    raise TypeError(injection)


def _plan_msi(lo: int, hi: int, data: int) -> tuple[JobInterrupt, QemuMessage]:
    if hi:
        raise NotExpressible(f"MSI address_hi {hi:#x}: QEMU 7.2 TCG has no wide MSI destination; a write "
                             "reaches the APIC only at 0xFEE00000-0xFEEFFFFF (apic_send_msi reads address bits 19:12)")
    if lo & 0xFFF00000 != APIC_MSI_WINDOW:
        raise NotExpressible(f"MSI address {lo:#x} is outside 0xFEE00000-0xFEEFFFFF, so no APIC sees the write")
    if lo & 3:
        raise NotExpressible(f"MSI address {lo:#x} is not 4-byte aligned")
    offset = lo & 0xFFFFF
    if offset <= 0xFFF and (offset >> 4) & 0xFF:
        raise NotExpressible(f"MSI address {lo:#x}: QEMU treats a CPU write there as a write of the writer's own "
                             "APIC register (apic_mem_write), not an MSI")
    mode = DeliveryMode((data >> 8) & 7)
    _check_mode(mode, "MSI")
    _check_vector(mode, data & 0xFF)
    msg = QemuMessage(mode, data & 0xFF, (lo >> 12) & 0xFF, bool(lo & 4), bool(data & (1 << 15)), 0,
                      f"CPU write of {data:#x} at {lo:#x} (MSI)")
    return JobInterrupt(Kind.MSI, 0, lo, data & 0xFFFFFFFF), msg


def _plan_icr(vm: VmState, source: int, icr: int) -> tuple[JobInterrupt, QemuMessage]:
    if not vm.has_vcpu(source):
        raise NotExpressible(f"IPI source vCPU {source} does not exist")
    if vm.vcpu(source).mode is not ApicMode.XAPIC:
        raise NotExpressible(f"IPI source vCPU {source} is {vm.vcpu(source).mode.value}: only an xAPIC-mode "
                             "source has an ICR the guest can write")
    low, high = icr & 0xFFFFFFFF, (icr >> 32) & 0xFFFFFFFF
    mode = DeliveryMode((low >> 8) & 7)
    _check_mode(mode, "IPI")
    _check_vector(mode, low & 0xFF)
    msg = QemuMessage(mode, low & 0xFF, high >> 24, bool(low & (1 << 11)), bool(low & (1 << 15)), (low >> 18) & 3,
                      f"vCPU {source} writes ICR2 {high:#x}, ICR {low:#x}")
    return JobInterrupt(Kind.ICR, source, low, high), msg


def _plan_ioapic(pin: int, rte: int) -> tuple[JobInterrupt, QemuMessage]:
    if pin not in TESTDEV_PINS:
        why = ("ISA IRQ 0 is routed to pin 2 (hw/intc/ioapic.c, ioapic_set_irq)" if pin == 0 else
               "pc-testdev raises ISA IRQs 0-15 only (hw/misc/pc-testdev.c)")
        raise NotExpressible(f"IOAPIC pin {pin}: no device the guest controls drives it: {why}")
    mode = DeliveryMode((rte >> 8) & 7)
    if mode is DeliveryMode.EXTINT:
        raise NotExpressible("IOAPIC ExtINT: QEMU takes the vector from the 8259 (ioapic_entry_parse -> pic_read_irq)")
    _check_mode(mode, "IOAPIC")
    _check_vector(mode, rte & 0xFF)
    # ioapic_entry_parse: dest_idx = RTE bits 63:48, placed at MSI address bits 19:4.
    offset = ((rte >> 48) & 0xFFFF) << 4 | ((rte >> 11) & 1) << 2
    if offset <= 0xFFF and (offset >> 4) & 0xFF:
        raise NotExpressible(f"RTE {rte:#x}: bits 55:48 put QEMU's MSI write on an APIC register "
                             "(ioapic_entry_parse, apic_mem_write), not the MSI window")
    msg = QemuMessage(mode, rte & 0xFF, (rte >> 56) & 0xFF, bool(rte & (1 << 11)), bool(rte & (1 << 15)), 0,
                      f"IOAPIC pin {pin}, RTE {rte:#x}{' (masked)' if rte & (1 << 16) else ''}")
    return JobInterrupt(Kind.IOAPIC, 0, pin, rte & 0xFFFFFFFF, (rte >> 32) & 0xFFFFFFFF), msg


def encode(vm: VmState, interrupts: list[JobInterrupt]) -> bytes:
    """The job table (guest.h): header, one record per CPU, one per interrupt; little-endian u32s."""
    words = [JOB_MAGIC, 1, len(vm.vcpus), len(interrupts)]
    for v in vm.vcpus:
        disabled = v.mode is ApicMode.DISABLED
        words += [v.xapic_id, v.ldr & 0xFFFFFFFF, v.dfr & 0xFFFFFFFF, int(v.sw_enabled and not disabled),
                  v.tpr & 0xFF, CPU_HW_DISABLED if disabled else 0]
    for k in interrupts:
        words += [int(k.kind), k.source, k.a, k.b, k.c, 0]
    return struct.pack(f"<{len(words)}I", *words)
