"""Field meanings shared by ICR, MSI and RTE layouts."""

from __future__ import annotations

from collections.abc import Callable

from apicmap.encoding.kinds import DeliveryMode, DestMode, Shorthand, Trigger


def delivery_meaning(v: int) -> str:
    return DeliveryMode(v).label


def dest_mode_meaning(v: int) -> str:
    return DestMode(v).name.lower()


def trigger_meaning(v: int) -> str:
    return Trigger(v).name.lower()


def shorthand_meaning(v: int) -> str:
    return Shorthand(v).label


def flag(name_on: str, name_off: str = "") -> Callable[[int], str]:
    def meaning(v: int) -> str:
        return name_on if v else (name_off or f"not {name_on}")

    return meaning
