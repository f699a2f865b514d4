"""Routing-relevant state of a VM and its vCPUs.

Everything here is an immutable value. Creation order is the position of a vCPU in
``VmState.vcpus``; KVM walks vCPUs in that order (``kvm_for_each_vcpu``,
docs/routing.md#current-algorithm-v63-and-later),
which decides "first wins" aliasing and vector-hashing order.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field, replace

from apicmap.encoding.apic_base import ApicMode

MAX_VCPU_ID = 4095  # KVM_MAX_VCPU_IDS - 1 on this host
MAX_VCPUS = 1024

DFR_FLAT = 0xFFFFFFFF
DFR_CLUSTER = 0x0FFFFFFF


class DfrModel(enum.Enum):
    """How a DFR value is read. Only bits 31:28 matter (docs/routing.md#ldr-and-dfr)."""

    FLAT = "flat"
    CLUSTER = "cluster"
    OTHER = "other"  # neither 0xF nor 0x0 in bits 31:28: undefined in the SDM

    @staticmethod
    def of(dfr: int) -> DfrModel:
        model = (dfr >> 28) & 0xF
        if model == 0xF:
            return DfrModel.FLAT
        if model == 0x0:
            return DfrModel.CLUSTER
        return DfrModel.OTHER


def x2apic_ldr(x2apic_id: int) -> int:
    """The x2APIC LDR the hardware derives from the x2APIC ID (SDM; docs/routing.md#ldr-and-dfr).

    Cluster = ID[19:4] in bits 31:16, member bit = 1 << ID[3:0].
    """
    return (((x2apic_id >> 4) & 0xFFFF) << 16) | (1 << (x2apic_id & 0xF))


@dataclass(frozen=True, slots=True)
class Vcpu:
    """One vCPU's local APIC, as far as routing depends on it.

    ``xapic_id`` is the 8-bit xAPIC ID (APIC_ID bits 31:24). The x2APIC ID is always
    ``vcpu_id`` (docs/routing.md#ids-and-the-hotplug-hack). ``ldr`` and ``dfr`` are the raw 32-bit registers
    as they stand in the xAPIC register page; in x2APIC mode the LDR is derived from
    ``vcpu_id`` (see ``effective_ldr``).
    """

    vcpu_id: int
    mode: ApicMode = ApicMode.XAPIC
    sw_enabled: bool = True
    xapic_id: int = -1  # -1: the default, vcpu_id & 0xFF (normalised in __post_init__)
    ldr: int = 0
    dfr: int = DFR_FLAT
    arb_prio: int = 0  # KVM's apic_arb_prio counter (lowest priority without vector hashing)
    tpr: int = 0  # only the architectural lowest-priority rules read it (SDM 10.6.2.4)
    # x2APIC mode only: the APIC ID and LDR registers userspace writes with KVM_SET_LAPIC
    # (raw 32-bit values; None: what KVM_GET_LAPIC returned, i.e. a get/set round trip).
    lapic_id: int | None = None
    lapic_ldr: int | None = None
    # x2APIC mode only: the LDR KVM holds after KVM_SET_LAPIC, as a release computes it
    # (model-internal, set by ``apicmap.model.set_lapic``); -1: derived from vcpu_id.
    x2apic_ldr_reg: int = -1

    def __post_init__(self) -> None:
        if self.xapic_id == -1:
            object.__setattr__(self, "xapic_id", self.vcpu_id & 0xFF)

    @property
    def present(self) -> bool:
        return self.mode.present

    @property
    def x2apic_id(self) -> int:
        return self.vcpu_id

    @property
    def effective_ldr(self) -> int:
        """LDR as routing sees it: in x2APIC mode what KVM holds (derived from vcpu_id unless a
        release kept a planted value), raw otherwise."""
        if self.mode is ApicMode.X2APIC:
            return self.x2apic_ldr_reg if self.x2apic_ldr_reg >= 0 else x2apic_ldr(self.vcpu_id)
        return self.ldr

    @property
    def logical_id(self) -> int:
        """xAPIC logical ID, LDR bits 31:24."""
        return (self.ldr >> 24) & 0xFF

    @property
    def dfr_model(self) -> DfrModel:
        return DfrModel.of(self.dfr)


@dataclass(frozen=True, slots=True)
class VmState:
    """A VM: its vCPUs in creation order, and the VM-wide flags routing depends on.

    ``use_32bit_ids`` and ``disable_broadcast_quirk`` are the KVM_CAP_X2APIC_API flags
    (docs/routing.md#kvm-x2apic_api). ``vector_hashing`` is the kvm.vector_hashing module parameter.
    ``smm`` says whether the VM supports SMM, ``kvm_smm`` whether KVM is built with SMM
    (CONFIG_KVM_SMM); which of the two decides SMI acceptance depends on the release.
    """

    vcpus: tuple[Vcpu, ...]
    use_32bit_ids: bool = False
    disable_broadcast_quirk: bool = False
    vector_hashing: bool = True
    smm: bool = False
    kvm_smm: bool = True
    _by_id: dict[int, int] = field(default_factory=dict, compare=False, hash=False, repr=False)

    def __post_init__(self) -> None:
        index = {v.vcpu_id: i for i, v in enumerate(self.vcpus)}
        if len(index) != len(self.vcpus):
            raise ValueError("duplicate vcpu_id in VmState")
        object.__setattr__(self, "_by_id", index)

    def vcpu(self, vcpu_id: int) -> Vcpu:
        return self.vcpus[self._by_id[vcpu_id]]

    def has_vcpu(self, vcpu_id: int) -> bool:
        return vcpu_id in self._by_id

    def creation_index(self, vcpu_id: int) -> int:
        return self._by_id[vcpu_id]

    @property
    def vcpu_ids(self) -> tuple[int, ...]:
        return tuple(v.vcpu_id for v in self.vcpus)

    def with_vcpu(self, vcpu: Vcpu) -> VmState:
        """A copy with one vCPU replaced (same creation position)."""
        vcpus = list(self.vcpus)
        vcpus[self._by_id[vcpu.vcpu_id]] = vcpu
        return replace(self, vcpus=tuple(vcpus))

    @staticmethod
    def simple(count: int, *, use_32bit_ids: bool = False, disable_broadcast_quirk: bool = False) -> VmState:
        """``count`` default vCPUs (xAPIC, sw-enabled, IDs 0..count-1)."""
        return VmState(tuple(Vcpu(i) for i in range(count)), use_32bit_ids=use_32bit_ids,
                       disable_broadcast_quirk=disable_broadcast_quirk)
