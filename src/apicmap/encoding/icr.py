"""ICR (xAPIC ICR/ICR2, x2APIC 64-bit MSR 0x830) and SELF_IPI (MSR 0x83F).

docs/routing.md#constants and docs/routing.md#kvm-ipis-and-acceptance; docs/routing.md#shorthands-and-the-icr and SDM
Vol. 3A 11.12.11 ("SELF IPI Register").
"""

from __future__ import annotations

from dataclasses import dataclass

from apicmap.encoding.common import delivery_meaning, dest_mode_meaning, flag, shorthand_meaning, trigger_meaning
from apicmap.encoding.fields import Field, Layout, bits_mask
from apicmap.encoding.kinds import DeliveryMode, DestMode, Shorthand, Trigger
from apicmap.errors import EncodingError

# Must-be-zero bits of the x2APIC ICR: 31:20, 17:16 and 13 (docs/routing.md#constants, v6.12+ #GP).
X2APIC_ICR_RESERVED = bits_mask((31, 20), (17, 16), (13, 13))
XAPIC_ICR_RESERVED = X2APIC_ICR_RESERVED  # the low word has the same layout
XAPIC_ICR2_RESERVED = bits_mask((23, 0))
SELF_IPI_RESERVED = bits_mask((63, 8))

_LOW_FIELDS = (
    Field("vector", 0, 7, "vector"),
    Field("delivery", 8, 10, meaning=delivery_meaning),
    Field("dest_mode", 11, 11, meaning=dest_mode_meaning),
    Field("busy", 12, 12, meaning=flag("send pending", "idle")),
    Field("level", 14, 14, meaning=flag("assert", "de-assert")),
    Field("trigger", 15, 15, meaning=trigger_meaning),
    Field("shorthand", 18, 19, meaning=shorthand_meaning),
)
X2APIC_ICR_LAYOUT = Layout("x2APIC ICR", 64, (*_LOW_FIELDS, Field("dest", 32, 63, "32-bit destination")),
                           X2APIC_ICR_RESERVED)
XAPIC_ICR_LAYOUT = Layout("xAPIC ICR", 32, _LOW_FIELDS, XAPIC_ICR_RESERVED)
XAPIC_ICR2_LAYOUT = Layout("xAPIC ICR2", 32, (Field("dest", 24, 31, "8-bit destination"),), XAPIC_ICR2_RESERVED)
SELF_IPI_LAYOUT = Layout("x2APIC SELF_IPI", 64, (Field("vector", 0, 7, "vector"),), SELF_IPI_RESERVED)


@dataclass(frozen=True, slots=True)
class Icr:
    vector: int
    delivery: DeliveryMode
    dest_mode: DestMode
    busy: bool
    level: bool
    trigger: Trigger
    shorthand: Shorthand
    dest: int
    reserved: int = 0  # reserved bits that were set (xAPIC: ICR2 bits 23:0 kept at bits 32+)

    @staticmethod
    def _from_low(low: int, dest: int, reserved: int) -> Icr:
        f = XAPIC_ICR_LAYOUT.decode(low)
        return Icr(f["vector"], DeliveryMode(f["delivery"]), DestMode(f["dest_mode"]), bool(f["busy"]),
                   bool(f["level"]), Trigger(f["trigger"]), Shorthand(f["shorthand"]), dest, reserved)

    def _low(self) -> int:
        return XAPIC_ICR_LAYOUT.encode(vector=self.vector, delivery=int(self.delivery),
                                       dest_mode=int(self.dest_mode), busy=int(self.busy), level=int(self.level),
                                       trigger=int(self.trigger), shorthand=int(self.shorthand))

    @staticmethod
    def from_x2apic(value: int) -> Icr:
        X2APIC_ICR_LAYOUT.decode(value)  # width check
        return Icr._from_low(value & 0xFFFFFFFF, value >> 32, value & X2APIC_ICR_RESERVED)

    def to_x2apic(self) -> int:
        if not 0 <= self.dest <= 0xFFFFFFFF:
            raise EncodingError("x2APIC ICR dest", f"{self.dest:#x} does not fit bits 63:32", "0..0xffffffff")
        return (self.dest << 32) | self._low() | (self.reserved & X2APIC_ICR_RESERVED)

    @staticmethod
    def from_xapic(low: int, icr2: int) -> Icr:
        XAPIC_ICR_LAYOUT.decode(low)
        XAPIC_ICR2_LAYOUT.decode(icr2)
        reserved = (low & XAPIC_ICR_RESERVED) | (icr2 & XAPIC_ICR2_RESERVED) << 32
        return Icr._from_low(low & ~XAPIC_ICR_RESERVED, icr2 >> 24, reserved)

    def to_xapic(self) -> tuple[int, int]:
        if not 0 <= self.dest <= 0xFF:
            raise EncodingError("xAPIC ICR2 dest", f"{self.dest:#x} does not fit bits 31:24", "0..0xff")
        low = self._low() | (self.reserved & XAPIC_ICR_RESERVED)
        return low, (self.dest << 24) | ((self.reserved >> 32) & XAPIC_ICR2_RESERVED)

    @staticmethod
    def build(*, vector: int, delivery: DeliveryMode = DeliveryMode.FIXED, dest_mode: DestMode = DestMode.PHYSICAL,
              level: bool = True, trigger: Trigger = Trigger.EDGE, shorthand: Shorthand = Shorthand.NONE,
              dest: int = 0) -> Icr:
        if not 0 <= vector <= 0xFF:
            raise EncodingError("ICR vector", f"{vector:#x}", "0..0xff")
        if not 0 <= dest <= 0xFFFFFFFF:
            raise EncodingError("ICR dest", f"{dest:#x}", "0..0xffffffff")
        return Icr(vector, delivery, dest_mode, False, level, trigger, shorthand, dest)


def self_ipi_vector(value: int) -> tuple[int, int]:
    """(vector, reserved bits set above 7:0) of a SELF_IPI write (SDM Vol. 3A 11.12.11; KVM v6.3+ #GP on them)."""
    SELF_IPI_LAYOUT.decode(value)
    return value & 0xFF, value & SELF_IPI_RESERVED
