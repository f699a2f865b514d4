"""IOAPIC redirection table entry (82093AA): docs/routing.md#ioapic-redirection-entry."""

from __future__ import annotations

from dataclasses import dataclass

from apicmap.encoding.common import delivery_meaning, dest_mode_meaning, flag, trigger_meaning
from apicmap.encoding.fields import Field, Layout, bits_mask
from apicmap.encoding.kinds import DeliveryMode, DestMode, Trigger

RTE_RESERVED = bits_mask((47, 17))
RTE_LAYOUT = Layout("IOAPIC RTE", 64, (
    Field("vector", 0, 7, "vector"),
    Field("delivery", 8, 10, meaning=delivery_meaning),
    Field("dest_mode", 11, 11, meaning=dest_mode_meaning),
    Field("delivery_status", 12, 12, meaning=flag("send pending", "idle")),
    Field("active_low", 13, 13, meaning=flag("active low", "active high")),
    Field("remote_irr", 14, 14, meaning=flag("remote IRR set", "clear")),
    Field("trigger", 15, 15, meaning=trigger_meaning),
    Field("masked", 16, 16, meaning=flag("masked", "unmasked")),
    Field("remappable", 48, 48, meaning=flag("remappable format", "compatibility format")),
    Field("ext_dest", 49, 55, "extended destination ID [14:8] (paravirtual)"),
    Field("dest", 56, 63, "destination"),
), RTE_RESERVED)


@dataclass(frozen=True, slots=True)
class RedirectionEntry:
    vector: int
    delivery: DeliveryMode
    dest_mode: DestMode
    delivery_status: bool
    active_low: bool
    remote_irr: bool
    trigger: Trigger
    masked: bool
    remappable: bool
    ext_dest: int
    dest: int
    reserved: int = 0  # bits 47:17 that were set

    @staticmethod
    def from_value(value: int) -> RedirectionEntry:
        f = RTE_LAYOUT.decode(value)
        return RedirectionEntry(f["vector"], DeliveryMode(f["delivery"]), DestMode(f["dest_mode"]),
                                bool(f["delivery_status"]), bool(f["active_low"]), bool(f["remote_irr"]),
                                Trigger(f["trigger"]), bool(f["masked"]), bool(f["remappable"]), f["ext_dest"],
                                f["dest"], value & RTE_RESERVED)

    def to_value(self) -> int:
        return RTE_LAYOUT.encode(vector=self.vector, delivery=int(self.delivery), dest_mode=int(self.dest_mode),
                                 delivery_status=int(self.delivery_status), active_low=int(self.active_low),
                                 remote_irr=int(self.remote_irr), trigger=int(self.trigger),
                                 masked=int(self.masked), remappable=int(self.remappable), ext_dest=self.ext_dest,
                                 dest=self.dest) | (self.reserved & RTE_RESERVED)

    @staticmethod
    def build(*, vector: int, delivery: DeliveryMode = DeliveryMode.FIXED, dest_mode: DestMode = DestMode.PHYSICAL,
              trigger: Trigger = Trigger.EDGE, dest: int = 0, masked: bool = False) -> RedirectionEntry:
        entry = RedirectionEntry(vector, delivery, dest_mode, False, False, False, trigger, masked, False, 0, dest)
        entry.to_value()  # range checks
        return entry

    def to_msi(self) -> tuple[int, int]:
        """(address_lo, data): RTE bits 63:48 map one-to-one onto address bits 19:4
        (docs/routing.md#architecture-msi-and-ioapic, docs/routing.md#ioapic-redirection-entry)."""
        value = self.to_value()
        address = 0xFEE00000 | ((value >> 48) & 0xFFFF) << 4
        data = self.vector | int(self.delivery) << 8 | int(self.trigger) << 15 | (1 << 14)
        return address, data
