"""Layer 2: one decoded interrupt message with an explicit destination.

Injections (raw encodings: an MSI, an ICR write, a SELF_IPI write, an IOAPIC pin) are what a
scenario sends. Each engine decodes an injection into a ``Message`` under its own rules (the
architecture and KVM disagree on e.g. MSI ``address_hi`` and the MSI level bit), then resolves
the message. ``apicmap.decode`` holds the decoders.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

from apicmap.encoding.kinds import DeliveryMode, DestMode, Shorthand, Trigger


class Origin(enum.Enum):
    MSI = "msi"
    IPI = "ipi"  # an ICR write by a source APIC (x2APIC MSR 0x830 or xAPIC MMIO 0x300)
    SELF_IPI = "self_ipi"  # x2APIC SELF_IPI MSR 0x83F
    IOAPIC = "ioapic"


# --- Destinations: an algebraic type ------------------------------------------------------------

XAPIC_BROADCAST = 0xFF
"""All ones in an 8-bit destination (xAPIC ICR2 bits 63:56, MSI address bits 19:12, RTE bits 63:56)."""
X2APIC_BROADCAST = 0xFFFFFFFF
"""All ones in a 32-bit x2APIC destination (SDM Vol. 3A 11.12.9, "ICR Operation in x2APIC Mode")."""


@dataclass(frozen=True, slots=True)
class Physical:
    """Physical destination ID as carried by the encoding (8 or 32 bits)."""

    id: int

    @property
    def address(self) -> tuple[int, DestMode]:
        return self.id, DestMode.PHYSICAL


@dataclass(frozen=True, slots=True)
class Logical:
    """Logical destination: the message destination address (MDA)."""

    mda: int

    @property
    def address(self) -> tuple[int, DestMode]:
        return self.mda, DestMode.LOGICAL


@dataclass(frozen=True, slots=True)
class Broadcast:
    """All-ones destination in the width of the encoding that carried it.

    ``id`` is 0xFF for 8-bit encodings (xAPIC ICR, IOAPIC RTE, MSI without address_hi) and
    0xFFFFFFFF for 32-bit ones. Whether a given APIC treats it as a broadcast is up to the
    engine: KVM compares the numeric ``address`` with each target's own all-ones value, and
    applies its MSI broadcast quirk (docs/routing.md, "Broadcasts").
    """

    id: int
    dest_mode: DestMode

    @property
    def address(self) -> tuple[int, DestMode]:
        return self.id, self.dest_mode


@dataclass(frozen=True, slots=True)
class _Shorthand:
    """A shorthand destination. ``icr_dest``/``icr_dest_mode`` keep the ICR destination field,
    which the architecture ignores with a shorthand (SDM Vol. 3A 11.6.1, "Destination Shorthand")
    but KVM still reads for one rule: ``kvm_irq_delivery_to_apic`` turns a lowest-priority
    message whose destination field is physical 0xFF into a fixed one, shorthand or not."""

    icr_dest: int = 0
    icr_dest_mode: DestMode = DestMode.PHYSICAL

    @property
    def address(self) -> tuple[int, DestMode]:
        return self.icr_dest, self.icr_dest_mode


@dataclass(frozen=True, slots=True)
class ToSelf(_Shorthand):
    """Shorthand SELF (ICR 01b) or an x2APIC SELF_IPI write."""


@dataclass(frozen=True, slots=True)
class ToAll(_Shorthand):
    """Shorthand all-including-self (ICR 10b)."""


@dataclass(frozen=True, slots=True)
class ToAllButSelf(_Shorthand):
    """Shorthand all-excluding-self (ICR 11b)."""


Addressed = Physical | Logical | Broadcast
"""A destination that names APICs by ID or MDA; ``.address`` gives the numeric value and mode."""
Destination = Physical | Logical | Broadcast | ToSelf | ToAll | ToAllButSelf


@dataclass(frozen=True, slots=True, kw_only=True)
class Message:
    """A decoded interrupt message.

    ``dest`` is the only destination form: a shorthand or an addressed destination. A shorthand
    ignores the ICR destination field (SDM Vol. 3A 11.6.1), so none is kept for it.
    ``source`` is the sending vCPU's vcpu_id for IPIs, ``None`` for MSI/IOAPIC.
    """

    vector: int
    delivery: DeliveryMode
    dest: Destination
    trigger: Trigger
    level: bool
    redirection_hint: bool
    origin: Origin
    source: int | None = None

    @property
    def shorthand(self) -> Shorthand:
        match self.dest:
            case ToSelf():
                return Shorthand.SELF
            case ToAll():
                return Shorthand.ALL
            case ToAllButSelf():
                return Shorthand.ALL_BUT_SELF
            case _:
                return Shorthand.NONE

    @property
    def lowest_priority(self) -> bool:
        """KVM's reading (``kvm_lowest_prio_delivery``): LOWEST, or the redirection hint in either mode."""
        return is_lowest_priority(self.delivery, self.redirection_hint)


def is_lowest_priority(delivery: DeliveryMode, redirection_hint: bool, dest_mode: DestMode | None = None) -> bool:
    """Whether lowest-priority arbitration applies: delivery mode LOWEST, or the redirection hint.

    KVM's ``kvm_lowest_prio_delivery()`` (arch/x86/kvm/lapic.h) honours the hint in either
    destination mode: leave ``dest_mode`` out. The architecture (SDM Vol. 3A 11.11.1, "RH = 1 and
    DM = 0": only the processor with the matching APIC ID) honours it only with logical destination
    mode: pass the message's ``dest_mode``.
    """
    if delivery is DeliveryMode.LOWEST:
        return True
    return redirection_hint and (dest_mode is None or dest_mode is DestMode.LOGICAL)


# --- Injections: the raw encodings a scenario sends ------------------------------------------


@dataclass(frozen=True, slots=True)
class MsiInjection:
    """KVM_SIGNAL_MSI: ``address_lo``/``address_hi``/``data`` exactly as in ``struct kvm_msi``."""

    address_lo: int
    address_hi: int
    data: int


@dataclass(frozen=True, slots=True)
class IcrInjection:
    """The source vCPU writes its ICR, in the source's current mode.

    ``icr`` is always a 64-bit value. x2APIC source: the MSR 0x830 value (destination in
    bits 63:32). xAPIC source: ICR2 in bits 63:32 (destination in 63:56) and the ICR low
    word in bits 31:0, as the SDM draws the 64-bit ICR; the write of the low word sends.
    """

    source: int
    icr: int


@dataclass(frozen=True, slots=True)
class SelfIpiInjection:
    """An x2APIC-mode source writes SELF_IPI (MSR 0x83F)."""

    source: int
    value: int


@dataclass(frozen=True, slots=True)
class IoapicInjection:
    """The in-kernel IOAPIC pin ``pin`` programmed with redirection entry ``rte`` fires once.

    Edge entries see one rising edge; level entries see the line held high.
    """

    pin: int
    rte: int


Injection = MsiInjection | IcrInjection | SelfIpiInjection | IoapicInjection
