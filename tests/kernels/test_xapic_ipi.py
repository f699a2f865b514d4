"""IPIs from an xAPIC-mode source on booted kernels: the kvm engine runs guest code that writes
ICR2 and the ICR low word (SDM Vol. 3A 11.6.1), and the receivers must be the model's for the
guest's own release. Inside the QEMU guest KVM is ordinary nested SVM, which runs guest code."""

from __future__ import annotations

import pytest

from tests.xapic_cases import disagreements

pytestmark = pytest.mark.guest


def test_xapic_ipis_on_6_12(guest_6_12) -> None:  # type: ignore[no-untyped-def]
    engine = guest_6_12.engine()
    assert disagreements(engine, engine.upstream_release) == []


def test_xapic_ipis_on_6_1(guest_6_1) -> None:  # type: ignore[no-untyped-def]
    engine = guest_6_1.engine()
    assert disagreements(engine, engine.upstream_release) == []
