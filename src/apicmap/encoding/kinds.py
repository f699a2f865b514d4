"""The small enumerations every encoding shares: delivery mode, destination mode, trigger, shorthand.

They are bit fields first (SDM Vol. 3A 11.6.1, "Interrupt Command Register"; 11.11.1-2 for MSI
address and data), so the encoding layer owns them and every layer above imports them from here.
"""

from __future__ import annotations

import enum


class DeliveryMode(enum.IntEnum):
    """ICR/MSI/RTE bits 10:8 (docs/routing.md#constants; SDM 10.6.1)."""

    FIXED = 0
    LOWEST = 1
    SMI = 2
    REMRD = 3  # reserved on Intel; AMD "remote read"; KVM's PV kick (docs/routing.md#acceptance-per-delivery-mode)
    NMI = 4
    INIT = 5
    SIPI = 6
    EXTINT = 7

    @property
    def label(self) -> str:
        return _MODE_LABELS[self]

    @staticmethod
    def parse(text: str) -> DeliveryMode:
        return _MODE_BY_LABEL[text.lower()]


_MODE_LABELS = {
    DeliveryMode.FIXED: "fixed",
    DeliveryMode.LOWEST: "lowest",
    DeliveryMode.SMI: "smi",
    DeliveryMode.REMRD: "remrd",
    DeliveryMode.NMI: "nmi",
    DeliveryMode.INIT: "init",
    DeliveryMode.SIPI: "sipi",
    DeliveryMode.EXTINT: "extint",
}
_MODE_BY_LABEL = {v: k for k, v in _MODE_LABELS.items()}
DELIVERY_MODE_NAMES = tuple(_MODE_LABELS.values())


class DestMode(enum.IntEnum):
    PHYSICAL = 0
    LOGICAL = 1


class Trigger(enum.IntEnum):
    EDGE = 0
    LEVEL = 1


class Shorthand(enum.IntEnum):
    """ICR bits 19:18."""

    NONE = 0
    SELF = 1
    ALL = 2
    ALL_BUT_SELF = 3

    @property
    def label(self) -> str:
        return ("none", "self", "all", "all-but-self")[self.value]

    @staticmethod
    def parse(text: str) -> Shorthand:
        return {"none": Shorthand.NONE, "self": Shorthand.SELF, "all": Shorthand.ALL,
                "all-but-self": Shorthand.ALL_BUT_SELF}[text.lower()]
