"""Format ``linux-guest``: what a Linux guest shows about its own interrupt routing.

A directory or tarball holding (found by name anywhere in it):

- ``cpuinfo`` (/proc/cpuinfo): ``processor`` and ``apicid`` per online CPU
  (arch/x86/kernel/cpu/proc.c ``show_cpuinfo_core``);
- ``dmesg``: the APIC driver line, ``Switched APIC routing to[:] NAME`` or ``Setting APIC
  routing to NAME`` (arch/x86/kernel/apic/probe_64.c before 6.6, apic/init.c since). The driver
  fixes the mode and the LDR/DFR Linux programs: ``flat`` writes DFR flat and LDR = 1 << cpu in
  bits 31:24 (apic_flat_64.c ``flat_init_apic_ldr`` / apic_common.c ``default_init_apic_ldr``);
  ``physical flat`` leaves both at their reset values (DFR all ones, LDR 0); the x2APIC drivers
  run in x2APIC mode, whose LDR the hardware derives;
- ``interrupts`` (/proc/interrupts) and ``irq/<N>/effective_affinity_list``, where present:
  which CPU each IRQ is routed to, the ground truth ``irq_injection`` turns into an injection.

Linux enables the APIC in software on every online CPU (apic.c ``setup_local_APIC`` sets SVR
bit 8) and leaves TPR at 0. Under QEMU, cloud-hypervisor and crosvm the KVM vcpu_id is the APIC
ID. The guest cannot see host-side settings: the X2APIC_API flags must be given.
"""

from __future__ import annotations

import re
import tarfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from apicmap.domain.engine import Engine
from apicmap.domain.message import Injection, IoapicInjection, MsiInjection
from apicmap.domain.vm import DFR_FLAT, MAX_VCPU_ID, Vcpu, VmState, x2apic_ldr
from apicmap.encoding.apic_base import ApicMode
from apicmap.encoding.kinds import DestMode
from apicmap.errors import InputError, NotExpressible
from apicmap.importers.common import (
    NO_OPTIONS,
    Basis,
    ImportFormat,
    ImportOptions,
    ImportResult,
    Lack,
    LinuxApicDriver,
    Provenance,
    derived,
    read,
)
from apicmap.importers.page import assemble, flags_from
from apicmap.importers.writer import ImportedCase

_DRIVER = re.compile(r"(?:Switched APIC routing to:?|Setting APIC routing to)\s+"
                     r"(physical flat|flat|cluster x2apic|physical x2apic)\b")
_ANY_DRIVER = re.compile(r"(?:Switched|Setting) APIC routing to:?\s+(.*?)\.?\s*$")
_EFFECTIVE = re.compile(r"(?:^|/)irq/(\d+)/effective_affinity_list$")
_DMESG_NAMES = ("dmesg", "dmesg.txt", "dmesg.log")


@dataclass(frozen=True, slots=True, kw_only=True)
class GuestCpu:
    cpu: int  # Linux CPU number
    apic_id: int
    line: int  # the apicid line in cpuinfo


@dataclass(frozen=True, slots=True, kw_only=True)
class IrqLine:
    """One numbered row of /proc/interrupts: the irq chip, its hardware IRQ number and flow."""

    irq: int
    chip: str
    hwirq: int | None
    flow: str  # "edge", "fasteoi", ...
    name: str
    line: int


@dataclass(frozen=True, slots=True, kw_only=True)
class LinuxGuest:
    source: str
    cpuinfo: str  # the file's name in the source
    cpus: tuple[GuestCpu, ...]
    dmesg: str | None
    driver: LinuxApicDriver | None  # as dmesg names it
    driver_line: tuple[int, str] | None
    interrupts: Mapping[int, IrqLine]
    effective_affinity: Mapping[int, tuple[tuple[int, ...], str]]  # irq -> (CPUs, file name)


def _files(source: Path) -> dict[str, str]:
    if source.is_dir():
        out = {}
        for p in sorted(source.rglob("*")):
            if p.is_file():
                try:
                    out[p.relative_to(source).as_posix()] = p.read_text(encoding="utf-8", errors="replace")
                except OSError as err:
                    raise InputError(str(p), f"cannot read: {err.strerror}") from None
        return out
    try:
        with tarfile.open(source) as tar:
            out = {}
            for member in tar.getmembers():
                if member.isfile():
                    handle = tar.extractfile(member)
                    if handle is not None:
                        out[member.name.removeprefix("./")] = handle.read().decode("utf-8", "replace")
            return out
    except (OSError, tarfile.TarError) as err:
        raise InputError(str(source), f"not a directory or a readable tarball: {err}",
                         "a directory or .tar(.gz) with cpuinfo, dmesg, interrupts, irq/*/effective_affinity_list") \
            from None


def _parse_cpu_list(text: str, where: str) -> tuple[int, ...]:
    cpus: list[int] = []
    for part in filter(None, text.strip().split(",")):
        low, _, high = part.partition("-")
        if not low.isdigit() or (high and not high.isdigit()):
            raise InputError(where, f"bad CPU list {text.strip()!r}", "a Linux CPU list like 0-3,6")
        cpus.extend(range(int(low), int(high or low) + 1))
    return tuple(cpus)


def load_linux_guest(source: str | Path) -> LinuxGuest:
    """Parse the guest's files; nothing is decided yet about options."""
    root = Path(source)
    files = _files(root)
    src = str(root)
    cpuinfo_name = next((n for n in files if PurePosixPath(n).name == "cpuinfo"), None)
    if cpuinfo_name is None:
        raise InputError(f"{src}: cpuinfo", "missing", "the guest's /proc/cpuinfo as cpuinfo or proc/cpuinfo")
    cpus = _cpuinfo(files[cpuinfo_name], f"{src}/{cpuinfo_name}")
    dmesg_name = next((n for n in files if PurePosixPath(n).name in _DMESG_NAMES), None)
    driver: LinuxApicDriver | None = None
    driver_line: tuple[int, str] | None = None
    if dmesg_name is not None:
        for number, line in enumerate(files[dmesg_name].splitlines(), start=1):
            if m := _DRIVER.search(line):
                driver, driver_line = LinuxApicDriver(m.group(1)), (number, line.strip())  # the last one wins
            elif m := _ANY_DRIVER.search(line):
                raise InputError(f"{src}/{dmesg_name} line {number}", f"unknown APIC driver {m.group(1)!r}",
                                 ", ".join(d.value for d in LinuxApicDriver))
    interrupts: dict[int, IrqLine] = {}
    irq_name = next((n for n in files if PurePosixPath(n).name == "interrupts"), None)
    if irq_name is not None:
        interrupts = _interrupts(files[irq_name], f"{src}/{irq_name}", len(cpus))
    effective = {}
    for name, text in files.items():
        if m := _EFFECTIVE.search(name):
            effective[int(m.group(1))] = (_parse_cpu_list(text, f"{src}/{name}"), name)
    return LinuxGuest(source=src, cpuinfo=cpuinfo_name, cpus=cpus, dmesg=dmesg_name, driver=driver,
                      driver_line=driver_line, interrupts=interrupts, effective_affinity=effective)


def _cpuinfo(text: str, where: str) -> tuple[GuestCpu, ...]:
    cpus: list[GuestCpu] = []
    processor: int | None = None
    for number, line in enumerate(text.splitlines(), start=1):
        key, _, value = line.partition(":")
        key, value = key.strip(), value.strip()
        if key == "processor":
            if not value.isdigit():
                raise InputError(f"{where} line {number}", f"bad processor number {value!r}", "a CPU number")
            processor = int(value)
        elif key == "apicid":
            if processor is None or not value.isdigit():
                raise InputError(f"{where} line {number}", f"apicid {value!r} outside a processor block",
                                 "'processor : N' then 'apicid : A'")
            cpus.append(GuestCpu(cpu=processor, apic_id=int(value), line=number))
            processor = None
    if not cpus:
        raise InputError(where, "no 'apicid' lines", "an x86 guest's /proc/cpuinfo")
    return tuple(cpus)


def _interrupts(text: str, where: str, ncpus: int) -> dict[int, IrqLine]:
    out: dict[int, IrqLine] = {}
    lines = text.splitlines()
    columns = len(lines[0].split()) if lines else ncpus
    for number, line in enumerate(lines[1:], start=2):
        head, _, rest = line.partition(":")
        if not head.strip().isdigit():
            continue  # NMI:, LOC:, ... are per-CPU vectors, not IRQs
        fields = rest.split()
        if len(fields) < columns + 1:
            raise InputError(f"{where} line {number}", "too few fields", f"{columns} counts, the chip, hwirq-flow")
        chip = fields[columns]
        hw_flow = fields[columns + 1] if len(fields) > columns + 1 else ""
        hw, _, flow = hw_flow.partition("-")
        out[int(head)] = IrqLine(irq=int(head), chip=chip, hwirq=int(hw) if hw.isdigit() else None, flow=flow,
                                 name=" ".join(fields[columns + 2:]), line=number)
    return out


def resolve_driver(guest: LinuxGuest, options: ImportOptions) -> tuple[LinuxApicDriver, Provenance]:
    if options.linux_apic_driver is not None:
        note = "" if guest.driver in (None, options.linux_apic_driver) else f"dmesg says {guest.driver.value}"
        return options.linux_apic_driver, Provenance(basis=Basis.OPTION, location="linux_apic_driver",
                                                     raw=options.linux_apic_driver.value, note=note)
    if guest.driver is not None and guest.driver_line is not None:
        return guest.driver, read(guest.dmesg or "dmesg", f"line {guest.driver_line[0]}",
                                  guest.driver_line[1])
    raise InputError("option linux_apic_driver",
                     "dmesg names no APIC driver" if guest.dmesg else "no dmesg in the source",
                     ", ".join(d.value for d in LinuxApicDriver)
                     + " (--linux-apic-driver; Linux before 6.6 announces only a switch away from its default, "
                     "flat)")


def import_linux_guest(source: str | Path, options: ImportOptions = NO_OPTIONS) -> ImportResult:
    guest = load_linux_guest(source)
    return import_loaded(guest, options)


def import_loaded(guest: LinuxGuest, options: ImportOptions = NO_OPTIONS) -> ImportResult:
    driver, driver_prov = resolve_driver(guest, options)
    flags = flags_from(options, None, ImportFormat.LINUX_GUEST)
    where = f"{guest.source}/{guest.cpuinfo}"
    name = guest.cpuinfo  # provenance names files relative to the source
    vcpus = []
    for cpu in guest.cpus:
        place = f"line {cpu.line} (processor {cpu.cpu})"
        if cpu.apic_id > MAX_VCPU_ID:
            raise InputError(f"{where} {place}", f"apicid {cpu.apic_id}", f"0..{MAX_VCPU_ID} (a KVM vcpu_id)")
        prov: dict[str, Provenance] = {
            "vcpu_id": read(name, f"{place} apicid", str(cpu.apic_id), "QEMU, cloud-hypervisor and crosvm "
                            "create each vCPU with its APIC ID as the KVM vcpu_id"),
            "mode": derived(driver_prov.source or "option",
                            f"the {driver.value} driver runs the APIC in {driver.mode.value} mode",
                            driver_prov.location, driver_prov.raw),
            "sw_enabled": derived(name, "an online CPU: setup_local_APIC sets SVR bit 8"),
            "tpr": derived(name, "Linux keeps TPR at 0 (setup_local_APIC)"),
            "arb_prio": Provenance(basis=Basis.DEFAULT, note="not visible to the guest"),
        }
        if driver.mode is ApicMode.X2APIC:
            prov["ldr"] = derived(name, f"x2APIC: derived from the APIC ID, 0x{x2apic_ldr(cpu.apic_id):08x}")
            prov["xapic_id"] = derived(name, "x2APIC mode has no xAPIC ID")
            prov["dfr"] = derived(name, "x2APIC mode has no DFR")
            vcpu = Vcpu(cpu.apic_id, ApicMode.X2APIC)
        else:
            if cpu.apic_id > 0xFF:
                raise InputError(f"{where} {place}", f"apicid {cpu.apic_id} under the {driver.value} driver",
                                 "0..255 in xAPIC mode")
            if driver is LinuxApicDriver.FLAT:
                if cpu.cpu >= 8:
                    raise InputError(f"{where} {place}", f"CPU {cpu.cpu} under the flat driver",
                                     "CPUs 0..7 (flat logical mode has one LDR bit per CPU)")
                ldr = (1 << cpu.cpu) << 24
                prov["ldr"] = derived(name, f"flat: LDR = 1 << cpu {cpu.cpu} in bits 31:24 (flat_init_apic_ldr)")
                prov["dfr"] = derived(name, "flat: DFR written flat (0xffffffff)")
            else:
                ldr = 0
                prov["ldr"] = derived(name, "physical flat: LDR never programmed, its reset value 0")
                prov["dfr"] = derived(name, "physical flat: DFR never programmed, its reset value 0xffffffff")
            prov["xapic_id"] = read(name, f"{place} apicid", str(cpu.apic_id))
            vcpu = Vcpu(cpu.apic_id, ApicMode.XAPIC, xapic_id=cpu.apic_id, ldr=ldr, dfr=DFR_FLAT)
        vcpus.append((vcpu, prov))
    extra = {"linux CPU -> APIC ID": ", ".join(f"{c.cpu}->{c.apic_id}" for c in guest.cpus),
             "APIC driver": f"{driver.value} ({driver_prov.describe()})"}
    lacking = [Lack(item="X2APIC_API flags", resolution="host-side: from the x2apic_api option")]
    return assemble(ImportFormat.LINUX_GUEST, guest.source, vcpus, options=options, flags=flags, lacking=lacking,
                    order_note=derived(name, "Linux CPU order (QEMU lists CPUs in the MADT in cpu_index order, "
                                       "the order it creates them)"), extra=extra)


# --- IRQ affinity -> the injection Linux programmed ----------------------------------------------------


@dataclass(frozen=True, slots=True, kw_only=True)
class GuestIrq:
    """An IRQ as Linux programmed it: the destination its APIC driver computes for the effective
    affinity, the injection that carries it, and the vCPUs the guest expects to receive it."""

    irq: int
    chip: str
    cpus: tuple[int, ...]  # effective affinity, Linux CPU numbers
    driver: LinuxApicDriver
    destination: int
    dest_mode: DestMode
    injection: Injection
    expect: tuple[int, ...]  # vcpu_ids
    reason: str

    def case(self) -> ImportedCase:
        return ImportedCase(name=f"IRQ {self.irq} ({self.chip})", injection=self.injection, expect=self.expect,
                            comment=self.reason)


def irq_injection(guest: LinuxGuest, irq: int, *, options: ImportOptions = NO_OPTIONS,
                  vector: int = 0x30) -> GuestIrq:
    """Resolve IRQ ``irq``'s effective affinity into the MSI or IOAPIC message Linux programs.

    Destination by driver (calc_dest_apicid): physical drivers, the APIC ID of the (first) CPU
    (apic_common.c ``apic_default_calc_apicid``); flat, the OR of 1 << cpu (``apic_flat_calc_apicid``);
    cluster x2APIC, cluster << 16 | the member bits of the CPUs in the first CPU's cluster
    (x2apic_cluster.c, the logical APIC ID). Linux uses fixed delivery (``APIC_DELIVERY_MODE_FIXED``).
    The vector is not in /proc (only debugfs shows it) and does not change who accepts: ``vector``.
    """
    driver, _ = resolve_driver(guest, options)
    where = f"{guest.source}: IRQ {irq}"
    if irq not in guest.effective_affinity:
        raise InputError(f"{where} effective_affinity_list", "missing",
                         ", ".join(str(i) for i in sorted(guest.effective_affinity)) or "no IRQ has one")
    cpus, name = guest.effective_affinity[irq]
    if not cpus:
        raise InputError(f"{guest.source}/{name}", "empty: the IRQ is routed to no CPU", "an IRQ with a target")
    line = guest.interrupts.get(irq)
    if line is None:
        raise InputError(f"{where} interrupts", "not in /proc/interrupts", "an IRQ listed there (its chip and pin)")
    by_cpu = {c.cpu: c for c in guest.cpus}
    for cpu in cpus:
        if cpu not in by_cpu:
            raise InputError(f"{guest.source}/{name}", f"CPU {cpu} is not in cpuinfo", ", ".join(map(str, by_cpu)))
    first = by_cpu[cpus[0]]
    if driver is LinuxApicDriver.FLAT:
        targets = tuple(c for c in cpus if c < 8)
        dest = sum(1 << c for c in targets)
        rule = f"flat: 1 << cpu for CPUs {list(targets)}"
    elif driver is LinuxApicDriver.CLUSTER_X2APIC:
        cluster = first.apic_id >> 4
        targets = tuple(c for c in cpus if by_cpu[c].apic_id >> 4 == cluster)
        dest = cluster << 16 | sum(1 << (by_cpu[c].apic_id & 0xF) for c in targets)
        rule = f"cluster x2apic: cluster {cluster} << 16 | member bits of CPUs {list(targets)}"
    else:
        targets = (first.cpu,)
        dest = first.apic_id
        rule = f"{driver.value}: APIC ID of CPU {first.cpu}"
    dest_mode = DestMode.LOGICAL if driver.logical else DestMode.PHYSICAL
    level = line.flow == "fasteoi"  # the IOAPIC's level-triggered flow (ioapic_chip's handle_fasteoi_irq)
    if line.chip == "IO-APIC":
        if line.hwirq is None or not 0 <= line.hwirq < 24:
            raise InputError(f"{where} interrupts line {line.line}", f"pin {line.hwirq}", "IOAPIC pins 0..23")
        if dest > 0xFF:
            raise InputError(where, f"destination {dest:#x} does not fit an IOAPIC entry's 8 bits",
                             "an IRQ whose destination is 0..0xff (larger ones need interrupt remapping)")
        # Redirection entry: vector 7:0, delivery 10:8 (fixed = 0), DM bit 11, trigger bit 15,
        # destination 63:56 (82093AA IOAPIC datasheet, 3.2.4).
        rte = vector | (dest_mode.value << 11) | (int(level) << 15) | (dest << 56)
        injection: Injection = IoapicInjection(line.hwirq, rte)
        how = f"IOAPIC pin {line.hwirq}, {'level' if level else 'edge'}"
    elif "MSI" in line.chip and not line.chip.startswith("IR-"):
        # MSI address: destination 19:12, DM bit 2; KVM's address_hi carries dest[31:8] (the guest's
        # extended destination ID, which the VMM translates to it). Data: vector, fixed, edge.
        injection = MsiInjection(0xFEE00000 | (dest & 0xFF) << 12 | (dest_mode.value << 2), dest & 0xFFFFFF00,
                                 vector)
        how = "MSI"
    else:
        raise InputError(f"{where} interrupts line {line.line}", f"chip {line.chip!r}",
                         "IO-APIC or *MSI* chips (a remapped IR-* chip hides the destination in the IOMMU)")
    expect = tuple(sorted(by_cpu[c].apic_id for c in targets))
    reason = (f"IRQ {irq} {line.name}: effective affinity CPUs {list(cpus)} ({name}); {rule} -> "
              f"{dest_mode.name.lower()} destination {dest:#x}; {how}; vector {vector:#x} assumed (not in /proc)")
    return GuestIrq(irq=irq, chip=line.chip, cpus=cpus, driver=driver, destination=dest, dest_mode=dest_mode,
                    injection=injection, expect=expect, reason=reason)


def guest_irqs(guest: LinuxGuest, *, options: ImportOptions = NO_OPTIONS, vector: int = 0x30) -> list[GuestIrq]:
    """Every IRQ with a non-empty effective affinity and a chip apicmap can express."""
    out = []
    for irq in sorted(guest.effective_affinity):
        cpus, _ = guest.effective_affinity[irq]
        if cpus and irq in guest.interrupts:
            out.append(irq_injection(guest, irq, options=options, vector=vector))
    return out



@dataclass(frozen=True, slots=True, kw_only=True)
class IrqCheck:
    """One IRQ judged by an engine against what the guest expects."""

    irq: int
    engine: str
    expect: tuple[int, ...]
    receivers: tuple[int, ...] | None  # None: the engine cannot express the injection
    note: str = ""

    @property
    def agrees(self) -> bool:
        return self.receivers == self.expect


def check_irqs(vm: VmState, irqs: Sequence[GuestIrq], engine: Engine) -> list[IrqCheck]:
    """Deliver each IRQ's injection on ``engine`` and compare the receivers with the guest's routing."""
    prepared = engine.prepare(vm)
    out = []
    try:
        for g in irqs:
            try:
                outcome = prepared.deliver(g.injection)
            except NotExpressible as err:
                out.append(IrqCheck(irq=g.irq, engine=engine.name, expect=g.expect, receivers=None, note=str(err)))
                continue
            out.append(IrqCheck(irq=g.irq, engine=engine.name, expect=g.expect, receivers=outcome.receivers,
                                note=outcome.rejected or ""))
    finally:
        prepared.close()
    return out
