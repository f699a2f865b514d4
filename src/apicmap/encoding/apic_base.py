"""IA32_APIC_BASE (MSR 0x1B): docs/routing.md#mode-from-the-apic-base,
docs/routing.md#ia32_apic_base-and-the-four-states."""

from __future__ import annotations

import enum
from dataclasses import dataclass

from apicmap.encoding.fields import Field, Layout, bits_mask


class ApicMode(enum.Enum):
    """Mode from IA32_APIC_BASE (EN bit 11, EXTD bit 10); docs/routing.md#mode-from-the-apic-base."""

    DISABLED = "disabled"
    XAPIC = "xapic"
    X2APIC = "x2apic"

    @property
    def present(self) -> bool:
        """Hardware-enabled: visible to routing at all (docs/routing.md#hardware-enable-and-software-enable)."""
        return self is not ApicMode.DISABLED


BSP = 1 << 8
EXTD = 1 << 10
EN = 1 << 11
DEFAULT_BASE = 0xFEE00000


def apic_base_layout(maxphyaddr: int = 52) -> Layout:
    return Layout("IA32_APIC_BASE", 64, (
        Field("bsp", 8, 8, "bootstrap processor"),
        Field("extd", 10, 10, "x2APIC enable"),
        Field("enabled", 11, 11, "global enable"),
        Field("base_page", 12, maxphyaddr - 1, "APIC base page"),
    ), bits_mask((7, 0), (9, 9)) | (((1 << 64) - 1) ^ ((1 << maxphyaddr) - 1)))


APIC_BASE_LAYOUT = apic_base_layout()


@dataclass(frozen=True, slots=True)
class ApicBase:
    bsp: bool
    extd: bool
    enabled: bool
    base: int  # physical address of the register page (4 KiB aligned)
    reserved: int = 0  # reserved bits that were set (0-7, 9, >= MAXPHYADDR)

    @staticmethod
    def from_value(value: int, maxphyaddr: int = 52) -> ApicBase:
        layout = apic_base_layout(maxphyaddr)
        fields = layout.decode(value)
        return ApicBase(bool(fields["bsp"]), bool(fields["extd"]), bool(fields["enabled"]),
                        fields["base_page"] << 12, layout.reserved_bits(value))

    def to_value(self) -> int:
        return self.base | (BSP if self.bsp else 0) | (EXTD if self.extd else 0) | (EN if self.enabled else 0) \
            | self.reserved

    @property
    def mode(self) -> ApicMode | None:
        """None for the invalid EN=0, EXTD=1 combination (always rejected)."""
        if self.enabled:
            return ApicMode.X2APIC if self.extd else ApicMode.XAPIC
        return None if self.extd else ApicMode.DISABLED

    @staticmethod
    def for_mode(mode: ApicMode, bsp: bool = False) -> ApicBase:
        return ApicBase(bsp, mode is ApicMode.X2APIC, mode is not ApicMode.DISABLED, DEFAULT_BASE)
