"""A small, auditable bitfield table: named fields, a reserved mask, exact decode and encode."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from apicmap.errors import EncodingError


@dataclass(frozen=True, slots=True)
class Field:
    name: str
    lo: int
    hi: int
    doc: str = ""
    meaning: Callable[[int], str] | None = None

    @property
    def width(self) -> int:
        return self.hi - self.lo + 1

    @property
    def mask(self) -> int:
        return ((1 << self.width) - 1) << self.lo

    @property
    def bits(self) -> str:
        return f"bit {self.lo}" if self.lo == self.hi else f"bits {self.hi}:{self.lo}"


@dataclass(frozen=True, slots=True)
class Layout:
    name: str
    width: int
    fields: tuple[Field, ...]
    reserved: int  # must-be-zero bits
    _spec: tuple[tuple[str, int, int], ...] = ()  # (name, lo, mask), precomputed for decode speed

    def __post_init__(self) -> None:
        object.__setattr__(self, "_spec", tuple((f.name, f.lo, f.mask) for f in self.fields))

    def field(self, name: str) -> Field:
        for f in self.fields:
            if f.name == name:
                return f
        raise EncodingError(f"{self.name}", f"no field {name!r}", ", ".join(f.name for f in self.fields))

    def get(self, value: int, name: str) -> int:
        f = self.field(name)
        return (value & f.mask) >> f.lo

    def decode(self, value: int) -> dict[str, int]:
        self._check_width(value)
        return {name: (value & mask) >> lo for name, lo, mask in self._spec}

    def encode(self, **values: int) -> int:
        out = 0
        for name, v in values.items():
            f = self.field(name)
            if not 0 <= v < (1 << f.width):
                raise EncodingError(f"{self.name} {name}", f"value {v:#x} does not fit {f.bits}",
                                    f"0..{(1 << f.width) - 1:#x}")
            out |= v << f.lo
        return out

    def reserved_bits(self, value: int) -> int:
        return value & self.reserved

    def rows(self, value: int) -> list[tuple[str, str, int, str]]:
        self._check_width(value)
        out = []
        for f in self.fields:
            v = (value & f.mask) >> f.lo
            out.append((f.name, f.bits, v, f.meaning(v) if f.meaning else f.doc))
        if value & self.reserved:
            out.append(("reserved", "must be zero", value & self.reserved,
                        f"reserved bits set: {value & self.reserved:#x}"))
        return out

    def _check_width(self, value: int) -> None:
        if not 0 <= value < (1 << self.width):
            raise EncodingError(self.name, f"value {value:#x} is not a {self.width}-bit value",
                                f"0..{(1 << self.width) - 1:#x}")


def bits_mask(*spans: tuple[int, int]) -> int:
    """Mask for inclusive (hi, lo) spans."""
    out = 0
    for hi, lo in spans:
        out |= ((1 << (hi - lo + 1)) - 1) << lo
    return out
