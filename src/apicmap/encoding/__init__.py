"""Layer 1: exact encodings of the APIC registers and interrupt messages."""

from apicmap.encoding.apic_base import APIC_BASE_LAYOUT, ApicBase
from apicmap.encoding.fields import Field, Layout
from apicmap.encoding.icr import (
    SELF_IPI_LAYOUT,
    X2APIC_ICR_LAYOUT,
    X2APIC_ICR_RESERVED,
    XAPIC_ICR_LAYOUT,
    Icr,
    self_ipi_vector,
)
from apicmap.encoding.ioapic import RTE_LAYOUT, RedirectionEntry
from apicmap.encoding.msi import (
    MSI_ADDRESS_LAYOUT,
    MSI_DATA_LAYOUT,
    MsiAddress,
    MsiData,
    encode_kvm_msi,
    ext_dest_to_kvm,
    guest_ext_dest_id,
    kvm_msi_dest,
    kvm_to_ext_dest,
)

__all__ = [
    "APIC_BASE_LAYOUT", "MSI_ADDRESS_LAYOUT", "MSI_DATA_LAYOUT", "RTE_LAYOUT", "SELF_IPI_LAYOUT",
    "X2APIC_ICR_LAYOUT", "X2APIC_ICR_RESERVED", "XAPIC_ICR_LAYOUT", "ApicBase", "Field", "Icr", "Layout",
    "MsiAddress", "MsiData", "RedirectionEntry", "encode_kvm_msi", "ext_dest_to_kvm", "guest_ext_dest_id",
    "kvm_msi_dest", "kvm_to_ext_dest", "self_ipi_vector",
]
