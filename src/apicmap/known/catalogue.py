"""The catalogue of known, explained arch != KVM differences, each with a minimal scenario in catalogue/."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from apicmap.domain.message import Injection, Message, MsiInjection
from apicmap.domain.outcome import Outcome
from apicmap.domain.vm import DFR_CLUSTER, DFR_FLAT, VmState
from apicmap.encoding.apic_base import ApicMode
from apicmap.encoding.kinds import DeliveryMode, DestMode


def physical_aliases(vm: VmState) -> bool:
    ids = [v.vcpu_id if v.mode is ApicMode.X2APIC else v.xapic_id for v in vm.vcpus if v.present]
    return len(ids) != len(set(ids))



@dataclass(frozen=True, slots=True)
class KnownDifference:
    """A named, explained arch != KVM difference with a minimal scenario in catalogue/."""

    name: str
    explanation: str
    scenario: str  # path relative to the repository
    applies: Callable[[VmState, Injection, Message | None, Outcome, Outcome], bool]


def _lowest(m: Message | None) -> bool:
    return m is not None and m.lowest_priority


def _only_undefined(vm: VmState, i: Injection, m: Message | None, model: Outcome, arch: Outcome) -> bool:
    differing = set(model.receivers) ^ set(arch.receivers)
    return bool(differing) and differing <= set(arch.undefined)


def _msi_hi_ignored(vm: VmState, i: Injection, m: Message | None, model: Outcome, arch: Outcome) -> bool:
    return isinstance(i, MsiInjection) and i.address_hi != 0 and not vm.use_32bit_ids


def _msi_einval(vm: VmState, i: Injection, m: Message | None, model: Outcome, arch: Outcome) -> bool:
    return isinstance(i, MsiInjection) and vm.use_32bit_ids and bool(i.address_hi & 0xFF)


def _sw_disabled_logical(vm: VmState, i: Injection, m: Message | None, model: Outcome, arch: Outcome) -> bool:
    missing = set(arch.receivers) - set(model.receivers)
    return m is not None and m.dest.address[1] is DestMode.LOGICAL and bool(missing) and \
        all(not vm.vcpu(v).sw_enabled for v in missing)


def _wide_mda(vm: VmState, i: Injection, m: Message | None, model: Outcome, arch: Outcome) -> bool:
    return m is not None and m.dest.address[1] is DestMode.LOGICAL and 0xFF < m.dest.address[0] < 0xFFFFFFFF and \
        any(v.present and v.mode is ApicMode.XAPIC for v in vm.vcpus)


def _raw_dfr(vm: VmState, i: Injection, m: Message | None, model: Outcome, arch: Outcome) -> bool:
    return m is not None and m.dest.address[1] is DestMode.LOGICAL and any(
        v.present and v.mode is ApicMode.XAPIC and v.ldr and v.dfr not in (DFR_FLAT, DFR_CLUSTER) for v in vm.vcpus)


def _xapic_lowest_or_mixed(vm: VmState, i: Injection, m: Message | None, model: Outcome, arch: Outcome) -> bool:
    return m is not None and m.dest.address[1] is DestMode.LOGICAL and len({v.mode for v in vm.vcpus if v.present}) > 1


CATALOGUE: tuple[KnownDifference, ...] = (
    KnownDifference("use_32bit_ids-aliasing-erratum",
                    "With USE_32BIT_IDS KVM keeps first-wins for aliased physical IDs; the architecture "
                    "delivers to every match (docs/routing.md#kvm-x2apic_api, errata 'x2APIC').",
                    "catalogue/use-32bit-ids-aliasing.toml",
                    lambda vm, i, m, model, arch: m is not None and m.dest.address[1] is DestMode.PHYSICAL
                    and physical_aliases(vm)),
    KnownDifference("broadcast-quirk",
                    "KVM turns an 8-bit 0xFF MSI into the x2APIC broadcast for x2APIC-mode targets "
                    "(docs/routing.md#kvm_apic_match_dest); the architecture leaves it to the implementation.",
                    "catalogue/broadcast-quirk.toml",
                    # With the quirk on, 0xFF is the MSI broadcast and 0xFFFFFFFF is none (docs/routing.md#kvm-fast-path
                    # step 4).
                    lambda vm, i, m, model, arch: m is not None and m.source is None
                    and m.dest.address[0] in (0xFF, 0xFFFFFFFF)),
    KnownDifference("hotplug-hack",
                    "KVM compares a physical destination above 0xFF with the vcpu_id even for xAPIC-mode "
                    "vCPUs (slow path always, map with USE_32BIT_IDS; docs/routing.md#current-algorithm-v63-and-later, "
                    "docs/routing.md#kvm_apic_match_dest); an xAPIC ID "
                    "has 8 bits (docs/routing.md#physical-destination).",
                    "catalogue/hotplug-hack.toml",
                    lambda vm, i, m, model, arch: m is not None and m.dest.address[1] is DestMode.PHYSICAL
                    and m.dest.address[0] > 0xFF and any(
                        v.present and v.mode is ApicMode.XAPIC and v.vcpu_id == m.dest.address[0] for v in vm.vcpus)),
    KnownDifference("architecturally-undefined",
                    "The architecture leaves the case undefined or model-specific; KVM picks a behaviour.",
                    "catalogue/undefined-mixed-mode.toml", _only_undefined),
    KnownDifference("vector-hashing-ignores-tpr",
                    "KVM's lowest priority hashes the vector over the destination set and never reads TPR "
                    "(docs/routing.md#kvm-fast-path step 8).",
                    "catalogue/vector-hashing-ignores-tpr.toml",
                    lambda vm, i, m, model, arch: _lowest(m)),
    KnownDifference("illegal-vectors-accepted",
                    "KVM accepts vectors 0-15 with no ESR error (docs/routing.md#illegal-vectors-in-kvm).",
                    "catalogue/illegal-vectors.toml",
                    lambda vm, i, m, model, arch: m is not None and m.vector < 16),
    KnownDifference("x2apic-logical-through-phys-map",
                    "x2APIC logical lookups reuse phys_map and reach xAPIC-mode vCPUs (docs/routing.md#kvm-fast-path "
                    "step 6).",
                    "catalogue/x2apic-logical-phys-map.toml", _xapic_lowest_or_mixed),
    KnownDifference("msi-address-hi-ignored",
                    "Without USE_32BIT_IDS KVM ignores address_hi and reads an 8-bit destination "
                    "(docs/routing.md#kvm-msi-and-ioapic-decoding); read architecturally, address_hi is a remapped "
                    "32-bit destination.",
                    "catalogue/msi-address-hi-ignored.toml", _msi_hi_ignored),
    KnownDifference("msi-address-hi-einval",
                    "With USE_32BIT_IDS, KVM_SIGNAL_MSI fails with EINVAL when address_hi bits 7:0 are set "
                    "(docs/routing.md#kvm-msi-and-ioapic-decoding); that is KVM's ABI, not a message the architecture "
                    "knows.",
                    "catalogue/msi-address-hi-einval.toml", _msi_einval),
    KnownDifference("sw-disabled-not-in-logical-map",
                    "KVM leaves software-disabled APICs out of its logical map (v5.3+), and with no "
                    "software-enabled LDR drops logical interrupts altogether (6.3+, "
                    "docs/routing.md#current-algorithm-v63-and-later); "
                    "architecturally they still accept NMI, INIT, SMI and SIPI (docs/routing.md#software-enable-svr).",
                    "catalogue/sw-disabled-logical.toml", _sw_disabled_logical),
    KnownDifference("smi-needs-smm",
                    "KVM 6.2+ refuses SMIs when the VM has no SMM (docs/routing.md#acceptance-per-delivery-mode); the "
                    "architecture "
                    "accepts them.",
                    "catalogue/smi-without-smm.toml",
                    lambda vm, i, m, model, arch: m is not None and m.delivery is DeliveryMode.SMI),
    KnownDifference("wide-logical-mda",
                    "KVM's xAPIC logical map reads only MDA bits 7:0, so a 32-bit logical destination reaches "
                    "xAPIC APICs (docs/routing.md#kvm-fast-path step 6); an xAPIC LDR cannot match a wider MDA "
                    "(docs/routing.md#logical-destination-xapic-flat-and-cluster).",
                    "catalogue/wide-logical-mda.toml", _wide_mda),
    KnownDifference("dfr-compared-exactly",
                    "KVM compares the whole 32-bit DFR: its map treats any value but 0xFFFFFFFF as cluster and "
                    "its slow path matches nothing (docs/routing.md#ldr-and-dfr); the architecture reads bits 31:28.",
                    "catalogue/dfr-raw-value.toml", _raw_dfr),
)
