"""A level-triggered IOAPIC entry with Remote IRR (bit 14) set sends nothing; an edge one is sent."""

from __future__ import annotations

import pytest

from apicmap import IoapicInjection, Vcpu, VmState
from apicmap.decode import KvmDecodeRules, Refused, decode_for_arch, decode_for_kvm
from apicmap.encoding.ioapic import RedirectionEntry
from apicmap.encoding.kinds import DeliveryMode, Trigger

VM = VmState((Vcpu(0), Vcpu(1)))
RULES = KvmDecodeRules(use_32bit_ids=False, icr_reserved_bits_fault=True, self_ipi_reserved_bits_fault=True,
                       x2apic_msr_upper_half_fault=True)


def entry(delivery: DeliveryMode, trigger: Trigger, remote_irr: bool) -> int:
    built = RedirectionEntry.build(vector=0x45, delivery=delivery, trigger=trigger, dest=1)
    return built.to_value() | (int(remote_irr) << 14)


@pytest.mark.parametrize("pin", [0, 8, 16, 23])
@pytest.mark.parametrize("delivery", list(DeliveryMode))
def test_level_with_remote_irr_is_refused_by_both_decoders(pin: int, delivery: DeliveryMode) -> None:
    injection = IoapicInjection(pin, entry(delivery, Trigger.LEVEL, True))
    kvm = decode_for_kvm(injection, VM, RULES)
    arch = decode_for_arch(injection, VM).message
    for decoded in (kvm, arch):
        assert isinstance(decoded, Refused)
        assert "Remote IRR" in decoded.reason and f"pin {pin}" in decoded.reason


@pytest.mark.parametrize("trigger, remote_irr", [(Trigger.EDGE, True), (Trigger.LEVEL, False), (Trigger.EDGE, False)])
def test_other_entries_are_sent(trigger: Trigger, remote_irr: bool) -> None:
    injection = IoapicInjection(16, entry(DeliveryMode.FIXED, trigger, remote_irr))
    assert not isinstance(decode_for_kvm(injection, VM, RULES), Refused)
    assert not isinstance(decode_for_arch(injection, VM).message, Refused)
