"""Other hypervisors' routing as profiles: policy rows (``policy``), a generic engine over a row
(``engine``), KVM-based VMMs as transforms around the KVM model (``kvm_based``), and which policy
field each reason code comes from (``rules``)."""

from __future__ import annotations

from apicmap.domain.engine import Engine
from apicmap.profiles.policy import (
    DEFAULT_PROFILE,
    PROFILE_NAMES,
    KvmBasedPolicy,
    PeerPolicy,
    Policy,
    profile_for,
    profile_names,
)


def profile_engine(profile: str | Policy, kernel: str | None = None) -> Engine:
    """The engine for a profile name (``NAME[@VERSION]``) or row. ``kernel`` is the KVM release
    the KVM-based profiles follow (``kvm@6.2`` wins over it)."""
    from apicmap.profiles.engine import ProfileEngine
    from apicmap.profiles.kvm_based import KvmBasedEngine

    policy = profile_for(profile) if isinstance(profile, str) else profile
    if isinstance(policy, PeerPolicy):
        return ProfileEngine(policy)
    return KvmBasedEngine(policy, kernel)


__all__ = ["DEFAULT_PROFILE", "PROFILE_NAMES", "KvmBasedPolicy", "PeerPolicy", "Policy", "profile_engine",
           "profile_for", "profile_names"]
