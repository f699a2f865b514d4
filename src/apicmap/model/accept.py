"""Layer 5 (KVM): what acceptance does per delivery mode, ``__apic_accept_irq``
(docs/routing.md#kvm-ipis-and-acceptance)."""

from __future__ import annotations

from apicmap.domain.message import Message
from apicmap.domain.outcome import Effect, EffectKind
from apicmap.domain.reasons import Code, Reason, because
from apicmap.domain.vm import Vcpu, VmState
from apicmap.encoding.kinds import DeliveryMode, Trigger
from apicmap.model.policy import KernelPolicy, SmiCheck


def accept(target: Vcpu, message: Message, vm: VmState, policy: KernelPolicy) -> tuple[Effect | None, Reason]:
    """(effect or None if discarded, reason). The caller counts 1 per effect."""
    mode = message.delivery
    vid = target.vcpu_id
    if mode in (DeliveryMode.FIXED, DeliveryMode.LOWEST):
        # LOWEST bumps apic_arb_prio first, even if then refused; the caller tracks it.
        if message.trigger is Trigger.LEVEL and not message.level:
            return None, because(Code.ACCEPT_LEVEL_DEASSERT, delivery=mode.label.upper())
        if not target.sw_enabled:
            return None, because(Code.ACCEPT_SW_DISABLED, delivery=mode.label.upper())
        return (Effect(vid, EffectKind.IRR, message.vector, message.trigger is Trigger.LEVEL),
                because(Code.ACCEPT_IRR, vector=message.vector))
    if mode is DeliveryMode.NMI:
        return Effect(vid, EffectKind.NMI), because(Code.ACCEPT_NMI)
    if mode is DeliveryMode.SMI:
        if policy.smi_check is not SmiCheck.ALWAYS_ACCEPTED and not vm.kvm_smm:
            return None, because(Code.ACCEPT_SMI_KVM_WITHOUT_SMM)
        if policy.smi_check is SmiCheck.VM_SUPPORTS_SMM and not vm.smm:
            return None, because(Code.ACCEPT_SMI_NO_SMM)
        return Effect(vid, EffectKind.SMI), because(Code.ACCEPT_SMI)
    if mode is DeliveryMode.INIT:
        if message.trigger is Trigger.LEVEL and not message.level:
            return None, because(Code.ACCEPT_INIT_DEASSERT)
        return Effect(vid, EffectKind.INIT), because(Code.ACCEPT_INIT)
    if mode is DeliveryMode.SIPI:
        return Effect(vid, EffectKind.SIPI, message.vector), because(Code.ACCEPT_SIPI, vector=message.vector)
    if mode is DeliveryMode.REMRD:
        return Effect(vid, EffectKind.KICK), because(Code.ACCEPT_KICK)
    return None, because(Code.ACCEPT_EXTINT_IGNORED)
