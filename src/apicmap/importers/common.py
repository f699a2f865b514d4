"""What every importer returns: a VM state, where each value came from, and what the source lacked.

An importer never guesses: a value is read from the source, given as an option, derived by a
rule that a comment cites, or (only for ``vector_hashing`` and ``smm``, which no format records)
KVM's default, and each of these is recorded as a ``Provenance`` the scenario writer prints.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import dataclass, field

from apicmap.domain.vm import VmState
from apicmap.encoding.apic_base import ApicMode
from apicmap.errors import InputError


class ImportFormat(enum.Enum):
    KVM_LAPIC = "kvm-lapic"
    CLOUD_HYPERVISOR = "cloud-hypervisor"
    CROSVM = "crosvm"
    QEMU_INFO_LAPIC = "qemu-info-lapic"
    LINUX_GUEST = "linux-guest"
    QMP = "qmp"  # a live QEMU, through its QMP socket


class Basis(enum.Enum):
    """How a value was obtained."""

    READ = "read"  # read from the source, at ``Provenance.location``
    DERIVED = "derived"  # computed from read values by the rule in ``Provenance.note``
    OPTION = "option"  # given by the user (``ImportOptions``)
    DEFAULT = "default"  # not in the source and not given: KVM's default, reported


class LinuxApicDriver(enum.Enum):
    """The Linux APIC drivers (``struct apic`` ``.name`` in arch/x86/kernel/apic/)."""

    FLAT = "flat"
    PHYSICAL_FLAT = "physical flat"
    CLUSTER_X2APIC = "cluster x2apic"
    PHYSICAL_X2APIC = "physical x2apic"

    @property
    def mode(self) -> ApicMode:
        return ApicMode.X2APIC if self in (LinuxApicDriver.CLUSTER_X2APIC, LinuxApicDriver.PHYSICAL_X2APIC) \
            else ApicMode.XAPIC

    @property
    def logical(self) -> bool:
        """Linux programs logical destinations (IRQs and IPIs) under this driver."""
        return self in (LinuxApicDriver.FLAT, LinuxApicDriver.CLUSTER_X2APIC)


class X2ApicApiFlag(enum.Enum):
    """KVM_CAP_X2APIC_API flags (Documentation/virt/kvm/api.rst, KVM_CAP_X2APIC_API)."""

    USE_32BIT_IDS = "use_32bit_ids"
    DISABLE_BROADCAST_QUIRK = "disable_broadcast_quirk"


@dataclass(frozen=True, slots=True, kw_only=True)
class Topology:
    """QEMU's ``-smp`` topology, from which QEMU numbers APIC IDs (include/hw/i386/topology.h)."""

    sockets: int = 1
    dies: int = 1
    cores: int = 1
    threads: int = 1

    def __post_init__(self) -> None:
        for name in ("sockets", "dies", "cores", "threads"):
            if getattr(self, name) < 1:
                raise InputError(f"option topology {name}", f"bad value {getattr(self, name)}", "an integer >= 1")

    def apic_id(self, cpu_index: int) -> int:
        """``x86_apicid_from_cpu_idx``: each level's field is ceil(log2(count)) bits wide."""
        def width(count: int) -> int:
            return (count - 1).bit_length()

        smt = cpu_index % self.threads
        core = cpu_index // self.threads % self.cores
        die = cpu_index // (self.threads * self.cores) % self.dies
        pkg = cpu_index // (self.threads * self.cores * self.dies)
        core_off = width(self.threads)
        die_off = core_off + width(self.cores)
        pkg_off = die_off + width(self.dies)
        return (pkg << pkg_off) | (die << die_off) | (core << core_off) | smt

    @staticmethod
    def parse(text: str, where: str = "--topology") -> Topology:
        """``sockets=1,dies=1,cores=4,threads=2`` (any subset; missing levels count 1)."""
        values: dict[str, int] = {}
        for part in filter(None, text.split(",")):
            key, _, value = part.partition("=")
            if key not in ("sockets", "dies", "cores", "threads") or not value.isdigit() or int(value) < 1:
                raise InputError(where, f"bad item {part!r}", "sockets=N,dies=N,cores=N,threads=N with N >= 1")
            values[key] = int(value)
        return Topology(**values)


@dataclass(frozen=True, slots=True, kw_only=True)
class ImportOptions:
    """What the user states about the VM where the source cannot say. ``None``: not given.

    ``x2apic_api``: the KVM_CAP_X2APIC_API flags the VMM enabled; ``apic_mode``: every vCPU's
    APIC mode (formats without the APIC base MSR); ``apic_ids`` (by QEMU cpu_index) or
    ``topology``: QEMU's APIC IDs; ``linux_apic_driver``: when dmesg names none;
    ``creation_order``: vCPU ids in KVM_CREATE_VCPU order (otherwise the format's own order).
    ``vector_hashing`` and ``smm`` default to KVM's defaults (true, false), reported as such.
    """

    x2apic_api: frozenset[X2ApicApiFlag] | None = None
    vector_hashing: bool | None = None
    smm: bool | None = None
    apic_mode: ApicMode | None = None
    apic_ids: tuple[int, ...] | None = None
    topology: Topology | None = None
    linux_apic_driver: LinuxApicDriver | None = None
    creation_order: tuple[int, ...] | None = None


NO_OPTIONS = ImportOptions()


@dataclass(frozen=True, slots=True, kw_only=True)
class Provenance:
    """Where one value came from: ``source`` (a file, a socket), ``location`` (an offset, a key
    path, a line), the ``raw`` text or number found there, and how it was turned into the value."""

    basis: Basis
    source: str = ""
    location: str = ""
    raw: str = ""
    note: str = ""

    def describe(self) -> str:
        if self.basis is Basis.OPTION:
            text = f"option {self.location}"
        elif self.basis is Basis.DEFAULT:
            text = "not in the source: KVM's default"
        else:
            text = self.source + (f" {self.location}" if self.location else "")
            if self.raw:
                text += f" = {self.raw}"
        return text + (f" ({self.note})" if self.note else "")


@dataclass(frozen=True, slots=True, kw_only=True)
class Lack:
    """Something the source does not record, and what filled it (an option, a default, nothing)."""

    item: str
    resolution: str


def read(source: str, location: str, raw: int | str, note: str = "", width: int = 8) -> Provenance:
    raw_text = f"0x{raw:0{width}x}" if isinstance(raw, int) else raw
    return Provenance(basis=Basis.READ, source=source, location=location, raw=raw_text, note=note)


def derived(source: str, note: str, location: str = "", raw: str = "") -> Provenance:
    return Provenance(basis=Basis.DERIVED, source=source, location=location, raw=raw, note=note)


def option(name: str, value: str) -> Provenance:
    return Provenance(basis=Basis.OPTION, location=name, raw=value)


@dataclass(frozen=True, slots=True, kw_only=True)
class ImportResult:
    """A VM state plus, for every vCPU value and VM flag, where it came from.

    ``vcpu_provenance[vcpu_id][field]`` for the ``Vcpu`` fields (``mode``, ``xapic_id``,
    ``ldr``, ``dfr``, ``sw_enabled``, ``tpr``, ``arb_prio``, ``vcpu_id``);
    ``vm_provenance`` for ``use_32bit_ids``, ``disable_broadcast_quirk``, ``vector_hashing``,
    ``smm`` and ``creation_order``. ``lacking``: what the format does not record.
    ``extra``: format-specific findings (the Linux guest's CPU → APIC ID map, its driver).
    """

    format: ImportFormat
    source: str
    vm: VmState
    vcpu_provenance: Mapping[int, Mapping[str, Provenance]]
    vm_provenance: Mapping[str, Provenance]
    lacking: tuple[Lack, ...] = ()
    notes: tuple[str, ...] = ()
    extra: Mapping[str, str] = field(default_factory=dict)
