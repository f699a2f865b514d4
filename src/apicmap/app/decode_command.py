"""Field-by-field tables for ``apicmap decode``."""

from __future__ import annotations

from apicmap.encoding.apic_base import APIC_BASE_LAYOUT, ApicBase
from apicmap.encoding.fields import Layout
from apicmap.encoding.icr import SELF_IPI_LAYOUT, X2APIC_ICR_LAYOUT, XAPIC_ICR2_LAYOUT, XAPIC_ICR_LAYOUT
from apicmap.encoding.ioapic import RTE_LAYOUT
from apicmap.encoding.msi import MSI_ADDRESS_LAYOUT, MSI_DATA_LAYOUT, guest_ext_dest_id
from apicmap.errors import EncodingError, echo

Row = tuple[str, str, int, str]
FORMS = ("msi ADDRESS DATA (ADDRESS may be 64-bit: hi<<32|lo)", "icr VALUE (64-bit x2APIC) | icr LOW [ICR2] (xAPIC)",
         "rte VALUE", "apicbase VALUE", "selfipi VALUE")


def _rows(layout: Layout, value: int, prefix: str = "") -> list[Row]:
    return [(prefix + f, b, v, m) for f, b, v, m in layout.rows(value)]


def parse_value(text: str, where: str) -> int:
    """One register value from the command line: hex with 0x, binary with 0b, or decimal; never negative."""
    try:
        value = int(text.replace("_", ""), 0)
    except ValueError:
        raise EncodingError(where, f"cannot read value {echo(text)}", "integers, e.g. 0xFEE01000 or 4096") from None
    if value < 0:
        raise EncodingError(where, f"negative value {echo(text)}", "0..2**64-1 (a register value is unsigned)")
    return value


def parse_values(kind: str, texts: list[str]) -> list[int]:
    """The values of ``apicmap decode KIND VALUE...``, each checked by ``parse_value``."""
    return [parse_value(text, f"decode {kind}") for text in texts]


def describe(kind: str, values: list[int]) -> list[Row]:
    where = f"decode {kind}"
    for value in values:
        if value < 0 or value >> 64:
            raise EncodingError(where, f"value {echo(value)} is not an unsigned 64-bit register value",
                                "0..2**64-1")
    if kind == "msi" and len(values) == 2 and values[1] > 0xFFFFFFFF:
        raise EncodingError(where, f"data {values[1]:#x} is wider than 32 bits", "0..0xffffffff")
    if kind == "msi":
        if len(values) != 2:
            raise EncodingError(where, f"{len(values)} values", "msi ADDRESS DATA")
        address, data = values
        lo, hi = address & 0xFFFFFFFF, address >> 32
        if hi > 0xFFFFFFFF:
            raise EncodingError(where, f"address {address:#x} is wider than 64 bits", "0..2**64-1")
        rows = _rows(MSI_ADDRESS_LAYOUT, lo, "address.") + _rows(MSI_DATA_LAYOUT, data, "data.")
        dest8 = (lo >> 12) & 0xFF
        rows.append(("address_hi", "bits 63:32", hi, "KVM: dest[31:8] with USE_32BIT_IDS; bits 7:0 must be 0"))
        rows.append(("kvm dest", "without USE_32BIT_IDS", dest8, "address_hi ignored "
                                                                 "(docs/routing.md#kvm-msi-and-ioapic-decoding)"))
        ok = not hi & 0xFF
        rows.append(("kvm dest", "with USE_32BIT_IDS", dest8 | (hi & 0xFFFFFF00) if ok else 0,
                     "dest[7:0] | address_hi[31:8]" if ok else "EINVAL: address_hi bits 7:0 set"))
        rows.append(("guest ext dest", "15-bit form", guest_ext_dest_id(lo), "dest[7:0] | bits 11:5 << 8 "
                                                                             "(docs/routing.md#architecture-msi-and-ioapic)"))
        return rows
    if kind == "icr":
        if len(values) not in (1, 2):
            raise EncodingError(where, f"{len(values)} values", "icr VALUE or icr LOW ICR2")
        if len(values) == 1 and values[0] > 0xFFFFFFFF:
            return _rows(X2APIC_ICR_LAYOUT, values[0])
        rows = _rows(XAPIC_ICR_LAYOUT, values[0])
        if len(values) == 2:
            rows += _rows(XAPIC_ICR2_LAYOUT, values[1], "icr2.")
        return rows
    if len(values) != 1:
        raise EncodingError(where, f"{len(values)} values", f"{kind} VALUE")
    if kind == "rte":
        return _rows(RTE_LAYOUT, values[0])
    if kind == "apicbase":
        rows = _rows(APIC_BASE_LAYOUT, values[0])
        mode = ApicBase.from_value(values[0]).mode
        rows.append(("mode", "EN, EXTD", 0, mode.value if mode else "invalid (EN=0, EXTD=1)"))
        return rows
    if kind == "selfipi":
        return _rows(SELF_IPI_LAYOUT, values[0])
    raise EncodingError("decode", f"unknown kind {echo(kind)}", "; ".join(FORMS))
