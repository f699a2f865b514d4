"""Layer 5 (KVM): what acceptance does per delivery mode, ``__apic_accept_irq`` (kvm-routing.md §6.4)."""

from __future__ import annotations

from apicmap.domain.message import Message
from apicmap.domain.outcome import Effect, EffectKind
from apicmap.domain.vm import Vcpu, VmState
from apicmap.encoding.kinds import DeliveryMode, Trigger
from apicmap.model.policy import KernelPolicy, SmiCheck


def accept(target: Vcpu, message: Message, vm: VmState, policy: KernelPolicy) -> tuple[Effect | None, str]:
    """(effect or None if discarded, reason). The caller counts 1 per effect."""
    mode = message.delivery
    vid = target.vcpu_id
    if mode in (DeliveryMode.FIXED, DeliveryMode.LOWEST):
        # LOWEST bumps apic_arb_prio first, even if then refused (§6.4); the caller tracks it.
        if message.trigger is Trigger.LEVEL and not message.level:
            return None, f"{mode.label.upper()} level de-assert: discarded (KVM-specific)"
        if not target.sw_enabled:
            return None, f"software-disabled: {mode.label.upper()} refused"
        return (Effect(vid, EffectKind.IRR, message.vector, message.trigger is Trigger.LEVEL),
                f"IRR 0x{message.vector:02x} set")
    if mode is DeliveryMode.NMI:
        return Effect(vid, EffectKind.NMI), "NMI pending"
    if mode is DeliveryMode.SMI:
        if policy.smi_check is not SmiCheck.ALWAYS_ACCEPTED and not vm.kvm_smm:
            return None, "SMI refused: KVM is built without SMM (kvm_inject_smi: -ENOTTY, v6.2+)"
        if policy.smi_check is SmiCheck.VM_SUPPORTS_SMM and not vm.smm:
            return None, "SMI refused: the VM does not support SMM (v6.16+)"
        return Effect(vid, EffectKind.SMI), "SMI pending"
    if mode is DeliveryMode.INIT:
        if message.trigger is Trigger.LEVEL and not message.level:
            return None, "INIT level de-assert: ignored"
        return Effect(vid, EffectKind.INIT), "INIT latched"
    if mode is DeliveryMode.SIPI:
        return Effect(vid, EffectKind.SIPI, message.vector), f"SIPI 0x{message.vector:02x} latched"
    if mode is DeliveryMode.REMRD:
        return Effect(vid, EffectKind.KICK), "REMRD: PV kick (pv_unhalted)"
    return None, "EXTINT: ignored by the local APIC"
