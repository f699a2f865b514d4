"""Other hypervisors' local-APIC routing as policy data: one ``PeerPolicy`` row per peer release.

Every rule where a peer differs from the architecture is a typed field; the generic
``ProfileEngine`` (``apicmap.profiles.engine``) reads the fields and never forks per peer.
Each row names the files, functions and commit it was read from. Where a peer's behaviour is not
known, or the peer itself documents it as undefined, the field says so and the engine answers
``undefined`` rather than guessing.

Peers that keep the local APIC in KVM (QEMU's split irqchip, cloud-hypervisor, Firecracker) are
``KvmBasedPolicy`` rows: KVM's model plus what the VMM does to the VM and to its interrupts
before KVM sees them (``apicmap.profiles.kvm_based``).
"""

from __future__ import annotations

import enum
import re
from dataclasses import dataclass, replace

from apicmap.errors import InputError


class Aliasing(enum.Enum):
    """Physical destination matched by several APICs (aliased xAPIC IDs)."""

    ALL = "all matches accept"
    FIRST = "first match (lowest vCPU index) only"
    # QEMU before the x2APIC rewrite: apic_find_dest looks at local_apics[dest] first, then
    # scans from index 0 and stops at the first empty slot.
    FIRST_SLOT_THEN_SCAN = "slot [dest] if its ID matches, else first match scanning up to a gap"
    IMPOSSIBLE = "impossible: the APIC ID is read-only (= vCPU index)"
    UNDEFINED = "undefined (one, all or none)"


class WideDest(enum.Enum):
    """A destination above 0xFF (x2APIC ICR, MSI address_hi) against an xAPIC-mode target."""

    COMPARE_FULL_ID = "compared with the full (x2APIC) ID, like KVM's hotplug hack"
    TRUNCATE = "truncated to 8 bits (Knights Landing silicon does the same)"
    NO_MATCH = "no match"


class X2apicId(enum.Enum):
    """The x2APIC ID of the vCPU with index n."""

    VCPU_ID = "n"
    TWICE_VCPU_ID = "2n"


class BroadcastDecider(enum.Enum):
    """Whose mode decides that an all-ones destination is a broadcast."""

    RECEIVER = "receiver: the target's own all-ones (0xFF xAPIC, 0xFFFFFFFF x2APIC)"
    SENDER = "sender: all-ones in the encoding's width reaches every APIC, whatever its mode"
    # QEMU: physical 0xFFFFFFFF reaches all; 0xFF reaches every xAPIC-mode APIC plus an
    # x2APIC-mode APIC whose ID is 0xFF.
    HYBRID = "hybrid: 0xFFFFFFFF reaches all; 0xFF reaches xAPIC-mode APICs (and x2APIC ID 0xFF)"
    # OpenVMM: ICR by the sender's format; MSI 0xFFFFFFFF if the VM has x2APIC, else 0xFF.
    SENDER_IPI_VM_MSI = "sender's format for IPIs, the VM's x2APIC capability for MSIs"
    # Bochs: (dest & 0xFF) == 0xFF is a physical broadcast, even for a 32-bit destination.
    LOW_BYTE = "low byte 0xFF: any destination whose low byte is 0xFF"
    UNDEFINED_IF_MIXED = "receiver's; undefined when sender and receiver modes differ"


class LogicalBroadcast(enum.Enum):
    ALL_ONES = "all-ones MDA reaches every APIC"
    X2APIC_ONLY = "0xFFFFFFFF reaches x2APIC-mode APICs; xAPIC-mode APICs test 0xFF by their rule"
    NONE = "none: the MDA is matched literally"


class LogicalScope(enum.Enum):
    PER_RECEIVER = "per receiver (its mode and DFR)"
    GLOBAL = "global: x2APIC cluster if any APIC is in x2APIC mode, else xAPIC cluster if any uses it, else flat"


class XapicCluster(enum.Enum):
    SUPPORTED = "supported"
    UNSUPPORTED = "unsupported: no match"


class ClusterF(enum.Enum):
    NO_MEANING = "compared like any cluster"
    ALL_CLUSTERS = "all clusters"


class BadDfr(enum.Enum):
    NO_MATCH = "no match"
    UNDEFINED = "undefined"


class LowestPriority(enum.Enum):
    FIRST_LOWEST_ID = "first match, lowest ID"
    MIN_PPR_TIES_LAST = "minimum PPR, ties to the last (highest index)"
    ROUND_ROBIN_MIN_PPR = "round robin over the minimum PPR (ties depend on the previous winner)"
    MIN_TPR_TIES_HIGHEST = "minimum TPR, ties to the highest vCPU"
    FOCUS_THEN_APR = "focus processor, then minimum APR, ties to the lowest index"
    UNDEFINED = "undefined"


class PhysicalLowest(enum.Enum):
    """Lowest priority with a physical destination."""

    ARBITRATE = "arbitrated among the addressed APICs"
    AS_FIXED = "delivered as fixed"
    DROP = "dropped"


class LowestIpi(enum.Enum):
    """A lowest-priority IPI (ICR)."""

    ARBITRATE = "arbitrated like any lowest-priority message"
    DROP_FROM_X2APIC = "dropped when the sender is in x2APIC mode"
    UNDEFINED = "undefined (not handled by the peer's ICR path)"


class MsiDecode(enum.Enum):
    BITS_8 = "8 bits: address 19:12 only"
    ADDRESS_HI = "address 19:12 | address_hi (QEMU's vIOMMU format)"
    EXT_DEST_11_5 = "address 19:12 and bits 11:5 as ID[14:8]"
    BITS_8_LOGICAL_NEEDS_RH = "8 bits; logical only if RH=1 and DM=1"


class SwDisabledFixed(enum.Enum):
    ACCEPTED = "accepted (IRR set)"
    DROPPED = "dropped"
    UNDEFINED = "undefined (not traced)"


class IllegalVector(enum.Enum):
    """A fixed or lowest-priority interrupt with vector 0-15."""

    DROPPED = "dropped"
    ACCEPTED = "accepted (no vector check)"
    UNDEFINED = "undefined"


class LevelIpi(enum.Enum):
    """Level-triggered fixed IPIs."""

    DELIVERED = "assert and de-assert both set IRR and TMR"
    ASSERT_ONLY = "assert sets IRR and TMR; de-assert ignored"
    UNDEFINED = "undefined"


class SelfTarget(enum.Enum):
    """Who the self and all-but-self shorthands name."""

    SENDER = "the sending vCPU"
    VCPU_AT_CURRENT_ID = "the vCPU whose index is the sender's current APIC ID"


class Smi(enum.Enum):
    ACCEPTED = "accepted"
    IGNORED = "ignored"
    UNDEFINED = "undefined"


@dataclass(frozen=True, slots=True)
class Source:
    """Where a row was read: repository, commit (or tag), files and functions."""

    repository: str
    commit: str
    files: tuple[str, ...]
    functions: tuple[str, ...]

    def cite(self) -> str:
        return f"{self.repository}@{self.commit}: {', '.join(self.files)} ({', '.join(self.functions)})"


@dataclass(frozen=True, slots=True, kw_only=True)
class PeerPolicy:
    """One peer release's routing rules. Every field the engine reads is listed in ``RULE_FIELDS``."""

    name: str
    version: str
    # The row covers releases from this one to the next row's. (0, 0) with a commit as the version:
    # the peer was read at that commit only, and release numbers are not mapped to it.
    since: tuple[int, int]
    summary: str
    sources: tuple[Source, ...]
    x2apic_supported: bool
    x2apic_id: X2apicId
    physical_aliasing: Aliasing
    wide_dest_xapic: WideDest
    broadcast_decider: BroadcastDecider
    logical_broadcast: LogicalBroadcast
    logical_scope: LogicalScope
    xapic_cluster: XapicCluster
    cluster_f: ClusterF
    bad_dfr: BadDfr
    # QEMU before 9.0: the logical scan of local_apics[] stops at the first empty slot.
    logical_scan_stops_at_gap: bool
    lowest_priority: LowestPriority
    lowest_skips_sw_disabled: bool
    physical_lowest: PhysicalLowest
    lowest_ipi: LowestIpi
    rh_means_lowest: bool
    msi_decode: MsiDecode
    sw_disabled_fixed: SwDisabledFixed
    illegal_vector: IllegalVector
    level_ipi: LevelIpi
    self_target: SelfTarget
    smi: Smi

    @property
    def key(self) -> str:
        return f"{self.name}@{self.version}"


RULE_FIELDS: tuple[str, ...] = (
    "x2apic_supported", "x2apic_id", "physical_aliasing", "wide_dest_xapic", "broadcast_decider",
    "logical_broadcast", "logical_scope", "xapic_cluster", "cluster_f", "bad_dfr", "logical_scan_stops_at_gap",
    "lowest_priority",
    "lowest_skips_sw_disabled", "physical_lowest", "lowest_ipi", "rh_means_lowest", "msi_decode",
    "sw_disabled_fixed", "illegal_vector", "level_ipi", "self_target", "smi",
)
"""The fields that change routing (the rest identify the row)."""


class X2apicApi(enum.Enum):
    """Which KVM_CAP_X2APIC_API flags the VMM enables."""

    AS_WRITTEN = "as the scenario says"
    NEVER = "never"
    ABOVE_254 = "USE_32BIT_IDS | DISABLE_BROADCAST_QUIRK when the largest APIC ID exceeds 254"
    FROM_255 = "USE_32BIT_IDS | DISABLE_BROADCAST_QUIRK when an APIC ID is 255 or more"


class IoapicModel(enum.Enum):
    """Where the IOAPIC lives and what MSI it sends for a pin."""

    KVM = "KVM's in-kernel IOAPIC"
    USERSPACE_EXT_DEST = "userspace; RTE bits 63:48 become address bits 19:4 (ext-dest survives), RH from the RTE"
    USERSPACE_8BIT_RH = "userspace; RTE bits 63:56 only, RH always set"


class MsiRoute(enum.Enum):
    """What the VMM does to a device's MSI before KVM sees it."""

    PASS_THROUGH = "address_hi passed to KVM as is"
    SWIZZLE_EXT_DEST = "address bits 11:5 moved to address_hi 14:8 when address_hi is 0 and bit 4 is clear"


@dataclass(frozen=True, slots=True, kw_only=True)
class KvmBasedPolicy:
    """A VMM whose local APIC is KVM's: the KVM model plus the VMM's own choices."""

    name: str
    version: str
    since: tuple[int, int]
    summary: str
    sources: tuple[Source, ...]
    x2apic_api: X2apicApi
    ioapic: IoapicModel
    msi_route: MsiRoute
    max_vcpus: int | None
    kernel: str | None = None  # the KVM release (``kvm@6.2``); None: ``--kernel``, else the newest

    @property
    def key(self) -> str:
        return f"{self.name}@{self.kernel or self.version}"


KVM_RULE_FIELDS: tuple[str, ...] = ("x2apic_api", "ioapic", "msi_route", "max_vcpus")

Policy = PeerPolicy | KvmBasedPolicy

# --- the rows ---------------------------------------------------------------------------------

_QEMU_OLD = Source("qemu/qemu", "v7.2.0", ("hw/intc/apic.c",),
                   ("apic_find_dest", "apic_get_delivery_bitmask", "apic_deliver", "apic_bus_deliver",
                    "apic_send_msi"))
_QEMU_X2 = Source("qemu/qemu", "b5ee0468e9d2 (v9.0)", ("hw/intc/apic.c", "hw/intc/apic_common.c"),
                  ("apic_match_dest", "apic_find_dest", "apic_get_broadcast_bitmask", "apic_get_delivery_bitmask",
                   "apic_deliver", "apic_bus_deliver", "apic_send_msi"))

QEMU_7_2 = PeerPolicy(
    name="qemu", version="7.2", since=(0, 0),
    summary="QEMU's userspace APIC (TCG) before x2APIC support: xAPIC only, first match, 8-bit MSIs",
    sources=(_QEMU_OLD,),
    x2apic_supported=False, x2apic_id=X2apicId.VCPU_ID,
    physical_aliasing=Aliasing.FIRST_SLOT_THEN_SCAN, wide_dest_xapic=WideDest.TRUNCATE,
    broadcast_decider=BroadcastDecider.RECEIVER, logical_broadcast=LogicalBroadcast.NONE,
    logical_scope=LogicalScope.PER_RECEIVER, xapic_cluster=XapicCluster.SUPPORTED, cluster_f=ClusterF.NO_MEANING,
    bad_dfr=BadDfr.NO_MATCH, logical_scan_stops_at_gap=True, lowest_priority=LowestPriority.FIRST_LOWEST_ID,
    lowest_skips_sw_disabled=False, physical_lowest=PhysicalLowest.ARBITRATE, lowest_ipi=LowestIpi.ARBITRATE,
    rh_means_lowest=False, msi_decode=MsiDecode.BITS_8, sw_disabled_fixed=SwDisabledFixed.ACCEPTED,
    illegal_vector=IllegalVector.ACCEPTED,
    level_ipi=LevelIpi.DELIVERED, self_target=SelfTarget.VCPU_AT_CURRENT_ID, smi=Smi.ACCEPTED,
)

QEMU_9_0 = PeerPolicy(
    name="qemu", version="9.0", since=(9, 0),
    summary="QEMU's userspace APIC (TCG) with x2APIC: every match, 8-bit IDs truncated, cluster 0xF = all",
    sources=(_QEMU_X2,),
    x2apic_supported=True, x2apic_id=X2apicId.VCPU_ID,
    physical_aliasing=Aliasing.ALL, wide_dest_xapic=WideDest.TRUNCATE,
    broadcast_decider=BroadcastDecider.HYBRID, logical_broadcast=LogicalBroadcast.X2APIC_ONLY,
    logical_scope=LogicalScope.PER_RECEIVER, xapic_cluster=XapicCluster.SUPPORTED, cluster_f=ClusterF.ALL_CLUSTERS,
    bad_dfr=BadDfr.NO_MATCH, logical_scan_stops_at_gap=False,
    lowest_priority=LowestPriority.FIRST_LOWEST_ID, lowest_skips_sw_disabled=False,
    physical_lowest=PhysicalLowest.ARBITRATE, lowest_ipi=LowestIpi.ARBITRATE, rh_means_lowest=False,
    msi_decode=MsiDecode.ADDRESS_HI, sw_disabled_fixed=SwDisabledFixed.ACCEPTED,
    illegal_vector=IllegalVector.ACCEPTED, level_ipi=LevelIpi.DELIVERED, self_target=SelfTarget.VCPU_AT_CURRENT_ID,
    smi=Smi.ACCEPTED,
)

XEN = PeerPolicy(
    name="xen", version="c447b73", since=(0, 0),
    summary="Xen HVM vLAPIC: all aliases accept, x2APIC ID 2n, no logical broadcast, round-robin lowest PPR",
    sources=(Source("xen-project/xen", "c447b7308b13",
                    ("xen/arch/x86/hvm/vlapic.c", "xen/arch/x86/hvm/vmsi.c", "xen/arch/x86/hvm/vioapic.c"),
                    ("vlapic_match_dest", "vlapic_match_logical_addr", "vlapic_ipi", "vlapic_lowest_prio",
                     "set_x2apic_id", "vlapic_accept_irq", "hvm_inject_msi", "vmsi_deliver")),),
    x2apic_supported=True, x2apic_id=X2apicId.TWICE_VCPU_ID,
    physical_aliasing=Aliasing.ALL, wide_dest_xapic=WideDest.NO_MATCH,
    broadcast_decider=BroadcastDecider.RECEIVER, logical_broadcast=LogicalBroadcast.NONE,
    logical_scope=LogicalScope.PER_RECEIVER, xapic_cluster=XapicCluster.SUPPORTED, cluster_f=ClusterF.NO_MEANING,
    bad_dfr=BadDfr.NO_MATCH, logical_scan_stops_at_gap=False,
    lowest_priority=LowestPriority.ROUND_ROBIN_MIN_PPR, lowest_skips_sw_disabled=True,
    physical_lowest=PhysicalLowest.ARBITRATE, lowest_ipi=LowestIpi.ARBITRATE, rh_means_lowest=False,
    msi_decode=MsiDecode.BITS_8, sw_disabled_fixed=SwDisabledFixed.DROPPED, illegal_vector=IllegalVector.DROPPED,
    level_ipi=LevelIpi.UNDEFINED, self_target=SelfTarget.SENDER, smi=Smi.IGNORED,
)

_BHYVE_COMMON = dict(
    x2apic_supported=True, x2apic_id=X2apicId.VCPU_ID,
    physical_aliasing=Aliasing.IMPOSSIBLE, wide_dest_xapic=WideDest.NO_MATCH,
    broadcast_decider=BroadcastDecider.SENDER, logical_broadcast=LogicalBroadcast.ALL_ONES,
    logical_scope=LogicalScope.PER_RECEIVER, xapic_cluster=XapicCluster.SUPPORTED, cluster_f=ClusterF.NO_MEANING,
    bad_dfr=BadDfr.NO_MATCH, logical_scan_stops_at_gap=False,
    lowest_priority=LowestPriority.FIRST_LOWEST_ID, lowest_skips_sw_disabled=False,
    physical_lowest=PhysicalLowest.ARBITRATE, lowest_ipi=LowestIpi.UNDEFINED, rh_means_lowest=False,
    sw_disabled_fixed=SwDisabledFixed.DROPPED, illegal_vector=IllegalVector.DROPPED,
    level_ipi=LevelIpi.UNDEFINED, self_target=SelfTarget.SENDER, smi=Smi.UNDEFINED,
)

BHYVE = PeerPolicy(
    name="bhyve", version="0162500", since=(0, 0),
    summary="FreeBSD bhyve vlapic: read-only IDs, sender's format decides broadcast, logical MSI only with RH=1",
    sources=(Source("freebsd/freebsd-src", "0162500b7d2d", ("sys/amd64/vmm/io/vlapic.c", "sys/amd64/vmm/vmm_lapic.c"),
                    ("vlapic_calcdest", "vlapic_deliver_intr", "vlapic_icrlo_write_handler", "vlapic_set_intr_ready",
                     "lapic_intr_msi")),),
    msi_decode=MsiDecode.BITS_8_LOGICAL_NEEDS_RH,
    **_BHYVE_COMMON,  # type: ignore[arg-type]
)

BHYVE_ILLUMOS = PeerPolicy(
    name="bhyve-illumos", version="3264029", since=(0, 0),
    summary="illumos bhyve: FreeBSD bhyve's rules, but a logical MSI is decided by DM alone",
    sources=(Source("illumos/illumos-gate", "32640292339b", ("usr/src/uts/intel/io/vmm/vmm_lapic.c",),
                    ("lapic_intr_msi",)),
             Source("freebsd/freebsd-src", "0162500b7d2d", ("sys/amd64/vmm/io/vlapic.c",),
                    ("vlapic_calcdest", "vlapic_deliver_intr"))),
    msi_decode=MsiDecode.BITS_8,
    **_BHYVE_COMMON,  # type: ignore[arg-type]
)

CROSVM = PeerPolicy(
    name="crosvm", version="f1e797a", since=(0, 0),
    summary="crosvm userspace irqchip: xAPIC only, flat logical only, minimum PPR with ties to the last",
    sources=(Source("google/crosvm", "f1e797a68dad",
                    ("devices/src/irqchip/apic.rs", "devices/src/irqchip/userspace.rs"),
                    ("Apic::match_dest", "matches_logical_address", "single_dest_fast", "send_irq_to_apics",
                     "TryFrom<&MsiAddressMessage>")),),
    x2apic_supported=False, x2apic_id=X2apicId.VCPU_ID,
    physical_aliasing=Aliasing.IMPOSSIBLE, wide_dest_xapic=WideDest.NO_MATCH,
    broadcast_decider=BroadcastDecider.RECEIVER, logical_broadcast=LogicalBroadcast.NONE,
    logical_scope=LogicalScope.PER_RECEIVER, xapic_cluster=XapicCluster.UNSUPPORTED, cluster_f=ClusterF.NO_MEANING,
    bad_dfr=BadDfr.NO_MATCH, logical_scan_stops_at_gap=False,
    lowest_priority=LowestPriority.MIN_PPR_TIES_LAST, lowest_skips_sw_disabled=False,
    physical_lowest=PhysicalLowest.ARBITRATE, lowest_ipi=LowestIpi.ARBITRATE, rh_means_lowest=False,
    msi_decode=MsiDecode.BITS_8, sw_disabled_fixed=SwDisabledFixed.ACCEPTED, illegal_vector=IllegalVector.ACCEPTED,
    level_ipi=LevelIpi.UNDEFINED, self_target=SelfTarget.SENDER, smi=Smi.UNDEFINED,
)

OPENVMM = PeerPolicy(
    name="openvmm", version="1488a37", since=(0, 0),
    summary="OpenVMM virt_support_apic: ID table, global logical decode, first enabled APIC for lowest priority",
    sources=(Source("microsoft/openvmm", "1488a37b7cfe",
                    ("vmm_core/virt_support_apic/src/lib.rs", "vm/x86/x86defs/src/msi.rs"),
                    ("GlobalState::request_interrupt", "request_set_interrupt", "handle_ipi",
                     "Destination::from_external", "MsiAddress::virt_destination")),),
    x2apic_supported=True, x2apic_id=X2apicId.VCPU_ID,
    physical_aliasing=Aliasing.IMPOSSIBLE, wide_dest_xapic=WideDest.COMPARE_FULL_ID,
    broadcast_decider=BroadcastDecider.SENDER_IPI_VM_MSI, logical_broadcast=LogicalBroadcast.ALL_ONES,
    logical_scope=LogicalScope.GLOBAL, xapic_cluster=XapicCluster.SUPPORTED, cluster_f=ClusterF.NO_MEANING,
    bad_dfr=BadDfr.NO_MATCH, logical_scan_stops_at_gap=False,
    lowest_priority=LowestPriority.FIRST_LOWEST_ID, lowest_skips_sw_disabled=True,
    physical_lowest=PhysicalLowest.ARBITRATE, lowest_ipi=LowestIpi.DROP_FROM_X2APIC, rh_means_lowest=False,
    msi_decode=MsiDecode.EXT_DEST_11_5, sw_disabled_fixed=SwDisabledFixed.DROPPED,
    illegal_vector=IllegalVector.DROPPED, level_ipi=LevelIpi.UNDEFINED, self_target=SelfTarget.SENDER,
    smi=Smi.UNDEFINED,
)

VIRTUALBOX = PeerPolicy(
    name="virtualbox", version="4908d8d", since=(0, 0),
    summary="VirtualBox APIC: destination as vCPU index, MDA 0xFF broadcast, minimum TPR with ties to the highest",
    sources=(Source("VirtualBox/virtualbox", "4908d8d1a85c", ("src/VBox/VMM/VMMAll/APICAll.cpp",),
                    ("apicGetDestCpuSet", "apicIsLogicalDest", "apicSendIntr", "APICBusDeliver")),),
    x2apic_supported=True, x2apic_id=X2apicId.VCPU_ID,
    physical_aliasing=Aliasing.IMPOSSIBLE, wide_dest_xapic=WideDest.COMPARE_FULL_ID,
    broadcast_decider=BroadcastDecider.SENDER, logical_broadcast=LogicalBroadcast.ALL_ONES,
    logical_scope=LogicalScope.PER_RECEIVER, xapic_cluster=XapicCluster.SUPPORTED, cluster_f=ClusterF.NO_MEANING,
    bad_dfr=BadDfr.NO_MATCH, logical_scan_stops_at_gap=False,
    lowest_priority=LowestPriority.MIN_TPR_TIES_HIGHEST, lowest_skips_sw_disabled=False,
    physical_lowest=PhysicalLowest.AS_FIXED, lowest_ipi=LowestIpi.ARBITRATE, rh_means_lowest=False,
    msi_decode=MsiDecode.BITS_8, sw_disabled_fixed=SwDisabledFixed.UNDEFINED, illegal_vector=IllegalVector.UNDEFINED,
    level_ipi=LevelIpi.ASSERT_ONLY, self_target=SelfTarget.SENDER, smi=Smi.UNDEFINED,
)

BOCHS = PeerPolicy(
    name="bochs", version="783b58f", since=(0, 0),
    summary="Bochs: first matching ID, low byte 0xFF is a broadcast, focus then APR, unknown DFR panics",
    sources=(Source("bochs-emu/Bochs", "783b58fd6d9b", ("bochs/cpu/apic.cc",),
                    ("apic_bus_deliver_interrupt", "apic_bus_deliver_lowest_priority", "match_logical_addr")),),
    x2apic_supported=True, x2apic_id=X2apicId.VCPU_ID,
    physical_aliasing=Aliasing.FIRST, wide_dest_xapic=WideDest.NO_MATCH,
    broadcast_decider=BroadcastDecider.LOW_BYTE, logical_broadcast=LogicalBroadcast.ALL_ONES,
    logical_scope=LogicalScope.PER_RECEIVER, xapic_cluster=XapicCluster.SUPPORTED, cluster_f=ClusterF.NO_MEANING,
    bad_dfr=BadDfr.UNDEFINED, logical_scan_stops_at_gap=False,
    lowest_priority=LowestPriority.FOCUS_THEN_APR, lowest_skips_sw_disabled=False,
    physical_lowest=PhysicalLowest.DROP, lowest_ipi=LowestIpi.ARBITRATE, rh_means_lowest=False,
    msi_decode=MsiDecode.BITS_8, sw_disabled_fixed=SwDisabledFixed.UNDEFINED, illegal_vector=IllegalVector.DROPPED,
    level_ipi=LevelIpi.UNDEFINED, self_target=SelfTarget.SENDER, smi=Smi.ACCEPTED,
)

HYPERV = PeerPolicy(
    name="hyperv", version="tlfs", since=(0, 0),
    summary="Hyper-V from public documents only: aliased IDs undefined (TLFS), lowest priority undocumented",
    sources=(Source("Microsoft Hypervisor TLFS", "Virtual Interrupt Controller", ("TLFS",),
                    ("Local APIC virtualization",)),
             Source("torvalds/linux", "mainline", ("arch/x86/kernel/cpu/mshyperv.c",),
                    ("ms_hyperv_msi_ext_dest_id",))),
    x2apic_supported=True, x2apic_id=X2apicId.VCPU_ID,
    physical_aliasing=Aliasing.UNDEFINED, wide_dest_xapic=WideDest.NO_MATCH,
    broadcast_decider=BroadcastDecider.UNDEFINED_IF_MIXED, logical_broadcast=LogicalBroadcast.ALL_ONES,
    logical_scope=LogicalScope.PER_RECEIVER, xapic_cluster=XapicCluster.SUPPORTED, cluster_f=ClusterF.NO_MEANING,
    bad_dfr=BadDfr.UNDEFINED, logical_scan_stops_at_gap=False,
    lowest_priority=LowestPriority.UNDEFINED, lowest_skips_sw_disabled=False,
    physical_lowest=PhysicalLowest.ARBITRATE, lowest_ipi=LowestIpi.UNDEFINED, rh_means_lowest=False,
    msi_decode=MsiDecode.EXT_DEST_11_5, sw_disabled_fixed=SwDisabledFixed.DROPPED,
    illegal_vector=IllegalVector.UNDEFINED, level_ipi=LevelIpi.UNDEFINED, self_target=SelfTarget.SENDER,
    smi=Smi.IGNORED,
)

KVM = KvmBasedPolicy(
    name="kvm", version="newest", since=(0, 0),
    summary="KVM's in-kernel irqchip as the model follows it (--kernel picks the release)",
    sources=(Source("torvalds/linux", "per release", ("arch/x86/kvm/lapic.c", "arch/x86/kvm/irq_comm.c"),
                    ("kvm_irq_delivery_to_apic", "kvm_apic_match_dest")),),
    x2apic_api=X2apicApi.AS_WRITTEN, ioapic=IoapicModel.KVM, msi_route=MsiRoute.PASS_THROUGH, max_vcpus=None,
)

QEMU_SPLIT = KvmBasedPolicy(
    name="qemu-split", version="5.2", since=(5, 2),
    summary="QEMU with -machine kernel-irqchip=split: KVM's LAPIC, QEMU's IOAPIC, ext-dest swizzled into address_hi",
    sources=(Source("qemu/qemu", "06b40d250ecf", ("hw/intc/ioapic.c", "target/i386/kvm/kvm.c", "hw/i386/x86.c"),
                    ("ioapic_entry_parse", "kvm_arch_fixup_msi_route", "kvm_swizzle_msi_ext_dest_id",
                     "kvm_enable_x2apic", "x86_cpus_init")),),
    x2apic_api=X2apicApi.FROM_255, ioapic=IoapicModel.USERSPACE_EXT_DEST, msi_route=MsiRoute.SWIZZLE_EXT_DEST,
    max_vcpus=None,
)

CLOUD_HYPERVISOR = KvmBasedPolicy(
    name="cloud-hypervisor", version="ae44c29", since=(0, 0),
    summary="cloud-hypervisor on KVM: split irqchip, its IOAPIC always sets RH=1, X2APIC_API only above 254",
    sources=(Source("cloud-hypervisor/cloud-hypervisor", "ae44c2971c83",
                    ("devices/src/ioapic.rs", "vmm/src/vm.rs", "hypervisor/src/kvm/mod.rs",
                     "arch/src/x86_64/mod.rs"),
                    ("Ioapic MSI build", "enable_x2apic_api", "translate_msi_ext_dest_id", "enable_split_irq")),),
    x2apic_api=X2apicApi.ABOVE_254, ioapic=IoapicModel.USERSPACE_8BIT_RH, msi_route=MsiRoute.SWIZZLE_EXT_DEST,
    max_vcpus=None,
)

FIRECRACKER = KvmBasedPolicy(
    name="firecracker", version="81b38b9", since=(0, 0),
    summary="Firecracker: KVM's full in-kernel irqchip, no X2APIC_API, at most 32 vCPUs",
    sources=(Source("firecracker-microvm/firecracker", "81b38b9dad60",
                    ("src/vmm/src/arch/x86_64/vm.rs", "src/vmm/src/vstate/vm.rs",
                     "src/vmm/src/vmm_config/machine_config.rs"),
                    ("create_irq_chip", "register_msi", "MAX_SUPPORTED_VCPUS")),),
    x2apic_api=X2apicApi.NEVER, ioapic=IoapicModel.KVM, msi_route=MsiRoute.PASS_THROUGH, max_vcpus=32,
)

PROFILES: dict[str, tuple[Policy, ...]] = {
    "kvm": (KVM,),
    "qemu": (QEMU_7_2, QEMU_9_0),
    "qemu-split": (QEMU_SPLIT,),
    "xen": (XEN,),
    "bhyve": (BHYVE,),
    "bhyve-illumos": (BHYVE_ILLUMOS,),
    "crosvm": (CROSVM,),
    "openvmm": (OPENVMM,),
    "virtualbox": (VIRTUALBOX,),
    "bochs": (BOCHS,),
    "hyperv": (HYPERV,),
    "cloud-hypervisor": (CLOUD_HYPERVISOR,),
    "firecracker": (FIRECRACKER,),
}
"""Every profile name, its rows oldest first. ``kvm`` is the default profile."""

PROFILE_NAMES = tuple(PROFILES)
DEFAULT_PROFILE = "kvm"
_VERSION = re.compile(r"^(\d+)(?:\.(\d+))?(?:\.\d+)?$")


def _allowed() -> str:
    parts = []
    for name, rows in PROFILES.items():
        versions = [r.version for r in rows if _VERSION.match(r.version)]
        if name == DEFAULT_PROFILE:
            parts.append(f"{name}[@KERNEL]")
        else:
            parts.append(f"{name}[@{'|'.join(versions or [r.version for r in rows])}]")
    return ", ".join(parts)


def profile_for(text: str, where: str = "--profile") -> Policy:
    """``NAME[@VERSION]``: the row of that peer whose range holds VERSION; a bare name is the newest."""
    name, _, version = text.strip().partition("@")
    name = name.lower()
    rows = PROFILES.get(name)
    if rows is None:
        raise InputError(where, f"unknown profile {name!r}", _allowed())
    if not version or version.lower() in ("latest", "newest"):
        return rows[-1]
    if name == DEFAULT_PROFILE:
        from apicmap.model.policy import policy_for_release

        policy_for_release(version, where)  # checks the release
        return replace(KVM, kernel=version)
    for row in rows:
        if version == row.version:
            return row
    match = _VERSION.match(version)
    if not match:
        raise InputError(where, f"cannot read version {version!r} of {name}", _allowed())
    wanted = (int(match.group(1)), int(match.group(2) or 0))
    if wanted < rows[0].since or (len(rows) == 1 and not _VERSION.match(rows[0].version)):
        raise InputError(where, f"{name} {version} is not modelled", _allowed())
    chosen = rows[0]
    for row in rows:
        if row.since <= wanted:
            chosen = row
    return chosen


def every_profile() -> list[str]:
    """Every row: the bare name for a peer's newest row, ``NAME@VERSION`` for its older ones."""
    out: list[str] = []
    for name, rows in PROFILES.items():
        out += [f"{name}@{row.version}" for row in rows[:-1]]
        out.append(name)
    return out


def profile_names(selection: str | None) -> list[str]:
    """A comma-separated selection (``all`` or None = every row), each name checked."""
    if selection is None or selection.strip().lower() == "all":
        return every_profile()
    names = [part.strip() for part in selection.split(",") if part.strip()]
    for name in names:
        profile_for(name, "--profiles")
    return names
