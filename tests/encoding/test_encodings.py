"""Layer 1: exact decode/encode round trips, reserved bits reported, KVM's MSI forms.

docs/routing.md#constants, docs/routing.md#kvm-msi-and-ioapic-decoding, docs/routing.md#kvm-ipis-and-acceptance;
docs/routing.md#ia32_apic_base-and-the-four-states, A6, A10, A11, A12.
"""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from apicmap import ApicMode, DeliveryMode, DestMode, EncodingError, Shorthand, Trigger
from apicmap.app.decode_command import describe
from apicmap.encoding import (
    ApicBase,
    Icr,
    MsiAddress,
    MsiData,
    RedirectionEntry,
    encode_kvm_msi,
    ext_dest_to_kvm,
    guest_ext_dest_id,
    kvm_msi_dest,
    kvm_to_ext_dest,
    self_ipi_vector,
)

u32 = st.integers(0, 0xFFFFFFFF)
u64 = st.integers(0, 0xFFFFFFFFFFFFFFFF)


@given(u64)
def test_x2apic_icr_round_trips(value: int) -> None:
    assert Icr.from_x2apic(value).to_x2apic() == value


@given(u32, u32)
def test_xapic_icr_round_trips(low: int, icr2: int) -> None:
    assert Icr.from_xapic(low, icr2).to_xapic() == (low, icr2)


@given(u32)
def test_msi_address_and_data_round_trip(value: int) -> None:
    assert MsiAddress.from_value(value).to_value() == value
    assert MsiData.from_value(value).to_value() == value


@given(u64)
def test_rte_round_trips(value: int) -> None:
    assert RedirectionEntry.from_value(value).to_value() == value


@given(u64)
def test_apic_base_round_trips(value: int) -> None:
    assert ApicBase.from_value(value).to_value() == value


def test_reserved_bits_are_reported_not_masked() -> None:
    """docs/routing.md#constants: x2APIC ICR reserved bits 31:20, 17:16, 13."""
    assert Icr.from_x2apic(1 << 13).reserved == 1 << 13
    assert Icr.from_x2apic((5 << 32) | 0x4040).reserved == 0
    assert MsiData.from_value(1 << 20).reserved == 1 << 20
    assert RedirectionEntry.from_value(1 << 30).reserved == 1 << 30
    assert self_ipi_vector(0x131) == (0x31, 0x100)
    assert ApicBase.from_value(0xFEE00801).reserved == 1


def test_known_msi_decodes() -> None:
    address, data = MsiAddress.from_value(0xFEE01000), MsiData.from_value(0x4040)
    assert (address.dest, address.dest_mode, address.redirection_hint) == (1, DestMode.PHYSICAL, False)
    assert (data.vector, data.delivery, data.level, data.trigger) == (0x40, DeliveryMode.FIXED, True, Trigger.EDGE)


def test_kvm_msi_dest_rules() -> None:
    """docs/routing.md#kvm-msi-and-ioapic-decoding: address_hi ignored without USE_32BIT_IDS; with it hi[31:8] =
    dest[31:8], hi[7:0] must be 0."""
    assert kvm_msi_dest(0xFEE01000, 0x100, False) == 1
    assert kvm_msi_dest(0xFEE01000, 0x100, True) == 0x101
    with pytest.raises(EncodingError):
        kvm_msi_dest(0xFEE01000, 0x1, True)


@given(st.integers(0, 0x7FFF))
def test_ext_dest_translation_round_trips(dest: int) -> None:
    """A11: guest bits 11:5 = dest[14:8]; the VMM moves them to address_hi bits 14:8."""
    guest = 0xFEE00000 | (dest & 0xFF) << 12 | (dest >> 8) << 5
    assert guest_ext_dest_id(guest) == dest
    lo, hi = ext_dest_to_kvm(guest, 0)
    assert kvm_msi_dest(lo, hi, True) == dest
    assert kvm_to_ext_dest(lo, hi) == (guest, 0)


def test_ext_dest_translation_only_for_compatibility_format() -> None:
    remappable = 0xFEE00010 | 1 << 5
    assert ext_dest_to_kvm(remappable, 0) == (remappable, 0)
    assert ext_dest_to_kvm(0xFEE00020, 0x100) == (0xFEE00020, 0x100)


def test_encode_kvm_msi() -> None:
    assert encode_kvm_msi(0x1234, dest_mode=DestMode.LOGICAL, vector=0x40) == (0xFEE34004, 0x1200, 0x4040)
    with pytest.raises(EncodingError):
        encode_kvm_msi(1 << 32)


def test_rte_to_msi_maps_bits_63_48_to_address_19_4() -> None:
    """A12: RTE bits 63:48 map one-to-one onto MSI address bits 19:4."""
    rte = RedirectionEntry.build(vector=0x30, dest=0x12, trigger=Trigger.LEVEL)
    lo, data = rte.to_msi()
    assert lo == 0xFEE12000 and data & 0xFF == 0x30 and data >> 15 & 1


def test_icr_build_and_fields() -> None:
    icr = Icr.build(vector=0x31, delivery=DeliveryMode.NMI, shorthand=Shorthand.ALL_BUT_SELF, dest=0x100)
    assert icr.to_x2apic() == (0x100 << 32) | 0x31 | 4 << 8 | 1 << 14 | 3 << 18
    with pytest.raises(EncodingError):
        Icr.build(vector=0x100)
    with pytest.raises(EncodingError):
        icr.to_xapic()  # dest 0x100 does not fit ICR2


def test_apic_base_modes() -> None:
    """A2 / docs/routing.md#mode-from-the-apic-base: (EN, EXTD) = (0,1) is invalid."""
    assert ApicBase.from_value(0xFEE00C00).mode is ApicMode.X2APIC
    assert ApicBase.from_value(0xFEE00800).mode is ApicMode.XAPIC
    assert ApicBase.from_value(0xFEE00000).mode is ApicMode.DISABLED
    assert ApicBase.from_value(0xFEE00400).mode is None
    assert ApicBase.for_mode(ApicMode.X2APIC, bsp=True).to_value() == 0xFEE00D00


def test_describe_tables() -> None:
    rows = describe("msi", [0x100FEE01000, 0x4040])
    assert ("kvm dest", "with USE_32BIT_IDS", 0x101, "dest[7:0] | address_hi[31:8]") in rows
    assert any(r[0] == "reserved" for r in describe("icr", [1 << 13 | 1 << 40]))
    with pytest.raises(EncodingError):
        describe("msr", [1])
    with pytest.raises(EncodingError):
        describe("msi", [1])
