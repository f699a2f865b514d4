"""MSI address and data, KVM's address_hi form and the guest's 15-bit extended destination ID.

docs/routing.md#kvm-msi-and-ioapic-decoding; docs/routing.md#architecture-msi-and-ioapic. Two encodings of a destination
above 0xFF:
- KVM's ABI (``struct kvm_msi``, with KVM_X2APIC_API_USE_32BIT_IDS): address_hi[31:8] = dest[31:8];
- the guest-visible paravirtual form (KVM_FEATURE_MSI_EXT_DEST_ID): address bits 11:5 = dest[14:8].
The VMM translates the second into the first (``ext_dest_to_kvm``).
"""

from __future__ import annotations

from dataclasses import dataclass

from apicmap.encoding.common import delivery_meaning, dest_mode_meaning, flag, trigger_meaning
from apicmap.encoding.fields import Field, Layout, bits_mask
from apicmap.encoding.kinds import DeliveryMode, DestMode, Trigger
from apicmap.errors import EncodingError

MSI_ADDRESS_LAYOUT = Layout("MSI address", 32, (
    Field("base", 20, 31, "0xFEE for an MSI"),
    Field("dest", 12, 19, "destination ID [7:0]"),
    Field("ext_dest", 5, 11, "extended destination ID [14:8] (paravirtual)"),
    Field("remappable", 4, 4, meaning=flag("remappable format", "compatibility format")),
    Field("redirection_hint", 3, 3, meaning=flag("RH: lowest-priority redirection", "no redirection")),
    Field("dest_mode", 2, 2, meaning=dest_mode_meaning),
    Field("low", 0, 1, "don't care"),
), 0)
MSI_DATA_RESERVED = bits_mask((13, 11), (31, 16))
MSI_DATA_LAYOUT = Layout("MSI data", 32, (
    Field("vector", 0, 7, "vector"),
    Field("delivery", 8, 10, meaning=delivery_meaning),
    Field("level", 14, 14, meaning=flag("assert", "de-assert")),
    Field("trigger", 15, 15, meaning=trigger_meaning),
), MSI_DATA_RESERVED)


@dataclass(frozen=True, slots=True)
class MsiAddress:
    base: int
    dest: int
    ext_dest: int
    remappable: bool
    redirection_hint: bool
    dest_mode: DestMode
    low: int = 0

    @staticmethod
    def from_value(value: int) -> MsiAddress:
        f = MSI_ADDRESS_LAYOUT.decode(value)
        return MsiAddress(f["base"], f["dest"], f["ext_dest"], bool(f["remappable"]), bool(f["redirection_hint"]),
                          DestMode(f["dest_mode"]), f["low"])

    def to_value(self) -> int:
        return MSI_ADDRESS_LAYOUT.encode(base=self.base, dest=self.dest, ext_dest=self.ext_dest,
                                         remappable=int(self.remappable),
                                         redirection_hint=int(self.redirection_hint),
                                         dest_mode=int(self.dest_mode), low=self.low)


@dataclass(frozen=True, slots=True)
class MsiData:
    vector: int
    delivery: DeliveryMode
    level: bool
    trigger: Trigger
    reserved: int = 0  # bits 13:11 and 31:16 that were set

    @staticmethod
    def from_value(value: int) -> MsiData:
        f = MSI_DATA_LAYOUT.decode(value)
        return MsiData(f["vector"], DeliveryMode(f["delivery"]), bool(f["level"]), Trigger(f["trigger"]),
                       value & MSI_DATA_RESERVED)

    def to_value(self) -> int:
        return MSI_DATA_LAYOUT.encode(vector=self.vector, delivery=int(self.delivery), level=int(self.level),
                                      trigger=int(self.trigger)) | (self.reserved & MSI_DATA_RESERVED)


def kvm_msi_dest(address_lo: int, address_hi: int, use_32bit_ids: bool) -> int:
    """The destination KVM reads from ``struct kvm_msi`` (docs/routing.md#kvm-msi-and-ioapic-decoding)."""
    dest = (address_lo >> 12) & 0xFF
    if not use_32bit_ids:
        return dest  # address_hi is ignored
    if address_hi & 0xFF:
        raise EncodingError("KVM_SIGNAL_MSI address_hi", f"bits 7:0 are {address_hi & 0xFF:#x} (EINVAL)",
                            "bits 7:0 zero with USE_32BIT_IDS")
    return dest | (address_hi & 0xFFFFFF00)


def guest_ext_dest_id(address_lo: int) -> int:
    """The 15-bit destination of the guest-visible form: dest[7:0] in 19:12, dest[14:8] in 11:5."""
    return ((address_lo >> 12) & 0xFF) | ((address_lo >> 5) & 0x7F) << 8


def ext_dest_to_kvm(address_lo: int, address_hi: int) -> tuple[int, int]:
    """The VMM translation (docs/routing.md#architecture-msi-and-ioapic): only when address_hi is 0 and bit 4
    (remappable) is clear,
    move address bits 11:5 into address_hi bits 14:8."""
    if address_hi or address_lo & (1 << 4):
        return address_lo, address_hi
    ext = (address_lo >> 5) & 0x7F
    return address_lo & ~(0x7F << 5), ext << 8


def kvm_to_ext_dest(address_lo: int, address_hi: int) -> tuple[int, int]:
    """The inverse, where the guest form can hold the destination (dest < 0x8000)."""
    if address_hi & ~(0x7F << 8):
        raise EncodingError("MSI address_hi", f"{address_hi:#x} does not fit the 15-bit extended destination ID",
                            "address_hi with only bits 14:8 set")
    if address_lo & (0x7F << 5):
        raise EncodingError("MSI address", "bits 11:5 are already in use", "bits 11:5 clear")
    return address_lo | ((address_hi >> 8) & 0x7F) << 5, 0


def encode_kvm_msi(dest: int, *, dest_mode: DestMode = DestMode.PHYSICAL, redirection_hint: bool = False,
                   vector: int = 0, delivery: DeliveryMode = DeliveryMode.FIXED, trigger: Trigger = Trigger.EDGE,
                   level: bool = True) -> tuple[int, int, int]:
    """(address_lo, address_hi, data) in KVM's ``struct kvm_msi`` form."""
    if not 0 <= dest <= 0xFFFFFFFF:
        raise EncodingError("MSI dest", f"{dest:#x}", "0..0xffffffff")
    lo = MsiAddress(0xFEE, dest & 0xFF, 0, False, redirection_hint, dest_mode).to_value()
    data = MsiData(vector, delivery, level, trigger).to_value()
    return lo, dest & 0xFFFFFF00, data
