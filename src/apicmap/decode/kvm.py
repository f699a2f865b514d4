"""Decode an injection as KVM does, per release (MSI address_hi, forced level, reserved-bit faults)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from apicmap.decode.common import Refused, destination, icr_message, remote_irr_reason, source_mode, split_icr
from apicmap.domain.message import (
    IcrInjection,
    Injection,
    IoapicInjection,
    Message,
    MsiInjection,
    Origin,
    SelfIpiInjection,
    ToSelf,
)
from apicmap.domain.vm import VmState
from apicmap.encoding.apic_base import ApicMode
from apicmap.encoding.icr import self_ipi_vector
from apicmap.encoding.ioapic import RedirectionEntry
from apicmap.encoding.kinds import DeliveryMode, Shorthand, Trigger
from apicmap.encoding.msi import MsiAddress, MsiData, kvm_msi_dest
from apicmap.errors import EncodingError


class DecodePolicy(Protocol):
    """The fields of a release's policy (``apicmap.model.policy.KernelPolicy``) decoding reads."""

    @property
    def icr_reserved_bits_fault(self) -> bool: ...

    @property
    def self_ipi_reserved_bits_fault(self) -> bool: ...

    @property
    def x2apic_msr_upper_half_fault(self) -> bool: ...


@dataclass(frozen=True, slots=True, kw_only=True)
class KvmDecodeRules:
    """The release-dependent parts of KVM's decoding. Build it with ``for_policy``."""

    use_32bit_ids: bool
    icr_reserved_bits_fault: bool  # 71bf395a276f "KVM: x86: Enforce x2APIC's must-be-zero reserved ICR bits"
    self_ipi_reserved_bits_fault: bool  # ba5838abb053 "... #GP if WRMSR sets reserved bits in APIC Self-IPI"
    x2apic_msr_upper_half_fault: bool  # ab52be1b310b "... #GP on x2APIC WRMSR that sets reserved bits 63:32"

    @staticmethod
    def for_policy(policy: DecodePolicy, vm: VmState) -> KvmDecodeRules:
        """The one constructor: a release's rules for a VM (its X2APIC_API flags)."""
        return KvmDecodeRules(use_32bit_ids=vm.use_32bit_ids,
                              icr_reserved_bits_fault=policy.icr_reserved_bits_fault,
                              self_ipi_reserved_bits_fault=policy.self_ipi_reserved_bits_fault,
                              x2apic_msr_upper_half_fault=policy.x2apic_msr_upper_half_fault)


def decode_for_kvm(injection: Injection, vm: VmState, rules: KvmDecodeRules) -> Message | Refused:
    match injection:
        case MsiInjection(address_lo=lo, address_hi=hi, data=raw_data):
            try:
                dest_id = kvm_msi_dest(lo, hi, rules.use_32bit_ids)
            except EncodingError:
                return Refused(
                    "KVM_SIGNAL_MSI: EINVAL: with USE_32BIT_IDS address_hi bits 7:0 must be 0 "
                    "(docs/routing.md#kvm-msi-and-ioapic-decoding)"
                )
            address = MsiAddress.from_value(lo)
            data = MsiData.from_value(raw_data)
            width = 32 if rules.use_32bit_ids and hi else 8
            return Message(
                vector=data.vector,
                delivery=data.delivery,
                dest=destination(Shorthand.NONE, dest_id, address.dest_mode, width),
                trigger=data.trigger,
                # KVM forces level = 1 for MSIs; data bit 14 is ignored (docs/routing.md#kvm-msi-and-ioapic-decoding)
                level=True,
                redirection_hint=address.redirection_hint,
                origin=Origin.MSI,
            )
        case IcrInjection():
            mode = source_mode(injection, vm)
            if isinstance(mode, Refused):
                return mode
            if mode is ApicMode.DISABLED:
                return Refused("source APIC is hardware-disabled: neither its ICR MSR nor MMIO is decoded "
                               "(docs/routing.md#register-writes)")
            icr, width = split_icr(injection, mode)
            if mode is ApicMode.X2APIC and rules.icr_reserved_bits_fault and icr.reserved:
                return Refused(
                    f"WRMSR 0x830: #GP: reserved ICR bits 0x{icr.reserved:x} set (v6.12+, "
                    f"docs/routing.md#x2apic-icr-and-self_ipi)"
                )
            return icr_message(icr, width, injection.source)
        case SelfIpiInjection():
            mode = source_mode(injection, vm)
            if isinstance(mode, Refused):
                return mode
            if mode is not ApicMode.X2APIC:
                return Refused("WRMSR 0x83F: #GP: SELF_IPI exists only in x2APIC mode "
                               "(docs/routing.md#register-writes)")
            vector, reserved = self_ipi_vector(injection.value)
            # Bits 63:32 (ab52be1b310b) and bits 31:8 (ba5838abb053) became faults separately.
            if not rules.x2apic_msr_upper_half_fault:
                reserved &= 0xFFFFFFFF
            if not rules.self_ipi_reserved_bits_fault:
                reserved &= ~0xFFFFFFFF
            if reserved:
                return Refused(f"WRMSR 0x83F: #GP: bits 0x{reserved:x} above the vector set (v6.3+, "
                               f"docs/routing.md#x2apic-icr-and-self_ipi)")
            # KVM sends SELF | vector: FIXED, edge, and no ASSERT bit (docs/routing.md#x2apic-icr-and-self_ipi).
            return Message(vector=vector, delivery=DeliveryMode.FIXED, dest=ToSelf(), trigger=Trigger.EDGE,
                           level=False, redirection_hint=False, origin=Origin.SELF_IPI, source=injection.source)
        case IoapicInjection(rte=raw_rte):
            rte = RedirectionEntry.from_value(raw_rte)
            if rte.masked:
                return Refused(f"IOAPIC pin {injection.pin} is masked: nothing is sent")
            if rte.remote_irr and rte.trigger is Trigger.LEVEL:
                # ioapic_service() (arch/x86/kvm/ioapic.c) returns without delivering while a
                # level-triggered entry waits for its EOI, for every delivery mode and pin.
                return Refused(remote_irr_reason(injection.pin))
            # The in-kernel IOAPIC uses only the 8-bit RTE destination, level 1, no RH
            # (docs/routing.md#kvm-msi-and-ioapic-decoding).
            return Message(vector=rte.vector, delivery=rte.delivery,
                           dest=destination(Shorthand.NONE, rte.dest, rte.dest_mode, 8), trigger=rte.trigger,
                           level=True, redirection_hint=False, origin=Origin.IOAPIC)
    raise TypeError(f"not an injection: {injection!r}")


