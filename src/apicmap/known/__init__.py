"""What is known to differ, and why: the fast/slow path differences and the arch != KVM catalogue."""
