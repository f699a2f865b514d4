"""One lowest-priority predicate: KVM honours RH in both destination modes, the architecture only logical."""

from __future__ import annotations

import pytest

from apicmap.domain.message import is_lowest_priority
from apicmap.encoding.kinds import DeliveryMode, DestMode


@pytest.mark.parametrize("delivery", list(DeliveryMode))
@pytest.mark.parametrize("rh", [False, True])
def test_kvm_and_architecture_readings(delivery: DeliveryMode, rh: bool) -> None:
    lowest = delivery is DeliveryMode.LOWEST
    assert is_lowest_priority(delivery, rh) == (lowest or rh)
    assert is_lowest_priority(delivery, rh, DestMode.LOGICAL) == (lowest or rh)
    assert is_lowest_priority(delivery, rh, DestMode.PHYSICAL) == lowest
