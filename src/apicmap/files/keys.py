"""The keys of scenario and sequence files, as data: the one table the loaders, the JSON Schemas
(``files/schema/``) and docs/scenario.md follow.

Regenerate the checked-in schemas after a change here: ``python -m apicmap.files.keys``.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from apicmap.domain.vm import MAX_VCPU_ID, MAX_VCPUS
from apicmap.encoding.kinds import DELIVERY_MODE_NAMES
from apicmap.files.spec import Key, Kind, Section, json_schema

U32 = 0xFFFFFFFF
U64 = 0xFFFFFFFFFFFFFFFF
X2APIC_API_FLAGS = ("use_32bit_ids", "disable_broadcast_quirk")
APIC_MODES = ("xapic", "x2apic", "disabled")
VIA_NAMES = ("msi", "ipi", "self-ipi", "ioapic")
DFR_NAMES = ("flat", "cluster")
KERNEL_PATTERN = r"^v?[0-9]+\.[0-9]+(\.[0-9]+)?"

_FIELD_VIAS = ("msi", "ipi", "ioapic")  # the named-field form of an encoding

MSI_FIELDS = (
    Key(name="address", kind=Kind.INT, low=0, high=U64, required=True,
        doc="the MSI address; a 64-bit value carries address_hi in bits 63:32"),
    Key(name="address_hi", kind=Kind.INT, low=0, high=U32, default_doc="address bits 63:32",
        doc="KVM's address_hi (dest[31:8] with use_32bit_ids)"),
    Key(name="data", kind=Kind.INT, low=0, high=U32, required=True, doc="the MSI data"),
)

VM_KEYS = (
    Key(name="vcpus", kind=Kind.INT, low=1, high=MAX_VCPUS, decimal=True,
        doc="vCPUs 0..N-1 with default state, created in that order"),
    Key(name="mode", kind=Kind.CHOICE, choices=APIC_MODES, default="xapic",
        doc="the APIC mode of every vCPU that does not set its own"),
    Key(name="x2apic_api", kind=Kind.FLAGS, choices=X2APIC_API_FLAGS, default=[],
        doc="KVM_CAP_X2APIC_API flags"),
    Key(name="kernel", kind=Kind.TEXT, pattern=KERNEL_PATTERN, default_doc="the newest release",
        doc="the KVM release the model engine follows and the expectations describe"),
    Key(name="vector_hashing", kind=Kind.BOOL, default=True, doc="the kvm.vector_hashing module parameter"),
    Key(name="smm", kind=Kind.BOOL, default=False,
        doc="the VM supports SMM (from 6.16 KVM refuses an SMI to a VM without SMM)"),
    Key(name="kvm_smm", kind=Kind.BOOL, default=True,
        doc="KVM is built with SMM (CONFIG_KVM_SMM): from 6.2 KVM refuses every SMI when it is not"),
    Key(name="description", kind=Kind.TEXT, default="", doc="free text"),
)

VCPU_KEYS = (
    Key(name="vcpu_id", kind=Kind.INT, low=0, high=MAX_VCPU_ID, decimal=True,
        default_doc="the entry's position among [[vcpu]], when no entry gives one", doc="also the x2APIC ID"),
    Key(name="mode", kind=Kind.CHOICE, choices=APIC_MODES, default_doc="[vm] mode",
        doc="APIC base EN/EXTD"),
    Key(name="sw_enabled", kind=Kind.BOOL, default=True, doc="SVR bit 8"),
    Key(name="apic_id", kind=Kind.INT, low=0, high=0xFF, default_doc="vcpu_id & 0xff",
        doc="xAPIC ID (8 bits); not settable in x2APIC mode"),
    Key(name="ldr", kind=Kind.INT, low=0, high=0xFF, default=0, doc="xAPIC logical ID, LDR bits 31:24"),
    Key(name="ldr_register", kind=Kind.INT, low=0, high=U32, doc="the raw 32-bit LDR instead of ldr"),
    Key(name="dfr", kind=Kind.CHOICE_OR_INT, choices=DFR_NAMES, low=0, high=U32, default="flat",
        doc="the DFR model, or a raw 32-bit DFR value"),
    Key(name="arb_prio", kind=Kind.INT, low=0, high=U32, default=0,
        doc="KVM's lowest-priority counter (used when vector hashing is off)"),
    Key(name="tpr", kind=Kind.INT, low=0, high=0xFF, default=0,
        doc="task priority; only the arch engine's lowest-priority arbitration reads it"),
    Key(name="lapic_id", kind=Kind.INT, low=0, high=U32,
        default_doc="what KVM_GET_LAPIC returned (a get/set round trip)",
        doc="x2APIC mode only: the raw APIC ID register userspace writes with KVM_SET_LAPIC"),
    Key(name="lapic_ldr", kind=Kind.INT, low=0, high=U32,
        default_doc="what KVM_GET_LAPIC returned (a get/set round trip)",
        doc="x2APIC mode only: the raw LDR userspace writes with KVM_SET_LAPIC"),
)

KERNEL_EXPECTATION_KEYS = (
    Key(name="from", kind=Kind.TEXT, pattern=KERNEL_PATTERN, required=True,
        doc="the first release the entry holds for (until the next entry's)"),
    Key(name="stable", kind=Kind.TEXT_LIST, default=[],
        doc="stable releases of older series that carry the change (backports)"),
    Key(name="expect", kind=Kind.VCPU_LIST, doc="the vcpu_ids expected to accept"),
    Key(name="expect_return", kind=Kind.INT, low=-1, high=MAX_VCPUS, decimal=True,
        doc="the KVM_SIGNAL_MSI return value expected"),
)

HISTORY_KEYS = (
    Key(name="bug", kind=Kind.INT, low=1, high=99, decimal=True, required=True,
        doc="the bug's number in docs/routing.md#kvm-historical-routing-bugs"),
    Key(name="commit", kind=Kind.TEXT, doc="the fix commit (12-hex hash)"),
    Key(name="title", kind=Kind.TEXT, doc="the fix commit's subject"),
    Key(name="fixed_in", kind=Kind.TEXT, doc="the first mainline release with the fix"),
    Key(name="kvm", kind=Kind.TEXT, doc="what the real kernels here can show of it"),
)

INTERRUPT_KEYS = (
    Key(name="name", kind=Kind.TEXT, default_doc="#N", doc="a label"),
    Key(name="via", kind=Kind.CHOICE, choices=VIA_NAMES,
        default_doc='"ipi" with icr, "ioapic" with rte, "self-ipi" with value, else "msi"',
        doc="how the interrupt is sent"),
    Key(name="source", kind=Kind.INT, low=0, high=MAX_VCPU_ID, decimal=True, only=("ipi", "self-ipi"),
        doc="the sending vCPU"),
    Key(name="shorthand", kind=Kind.CHOICE, choices=("none", "self", "all", "all-but-self"), default="none",
        only=("ipi",), doc="the ICR destination shorthand"),
    Key(name="dest", kind=Kind.INT, low=0, high=U32, default=0, only=_FIELD_VIAS, doc="32-bit destination ID"),
    Key(name="dest_mode", kind=Kind.CHOICE, choices=("physical", "logical"), default="physical",
        only=_FIELD_VIAS, doc="destination mode"),
    Key(name="delivery", kind=Kind.CHOICE, choices=DELIVERY_MODE_NAMES, default="fixed", only=_FIELD_VIAS,
        doc="delivery mode"),
    Key(name="vector", kind=Kind.INT, low=0, high=0xFF, only=(*_FIELD_VIAS, "self-ipi"),
        doc="the vector; required for fixed, lowest and sipi"),
    Key(name="trigger", kind=Kind.CHOICE, choices=("edge", "level"), default="edge", only=_FIELD_VIAS,
        doc="trigger mode"),
    Key(name="level", kind=Kind.CHOICE, choices=("deassert", "assert"), default="assert", only=_FIELD_VIAS,
        doc="level (for level-triggered messages)"),
    Key(name="redirection_hint", kind=Kind.BOOL, default=False, only=("msi",), doc="MSI address bit 3"),
    Key(name="msi_format", kind=Kind.CHOICE, choices=("kvm", "ext-dest"), default="kvm", only=("msi",),
        doc="where dest[14:8] or dest[31:8] go: KVM's address_hi, or the guest's extended destination ID"),
    Key(name="pin", kind=Kind.INT, low=0, high=23, decimal=True, default=16, only=("ioapic",),
        doc="the IOAPIC pin"),
    Key(name="msi", kind=Kind.TABLE, fields=MSI_FIELDS, only=("msi",), doc="a raw MSI"),
    Key(name="icr", kind=Kind.INT, low=0, high=U64, only=("ipi",),
        doc="a raw ICR (x2APIC: the MSR value; xAPIC: ICR2 << 32 | ICR)"),
    Key(name="value", kind=Kind.INT, low=0, high=U64, only=("self-ipi",), doc="a raw SELF_IPI value"),
    Key(name="rte", kind=Kind.INT, low=0, high=U64, only=("ioapic",), doc="a raw 64-bit redirection entry"),
    Key(name="expect", kind=Kind.VCPU_LIST, doc="the vcpu_ids expected to accept under KVM (model, kvm)"),
    Key(name="expect_arch", kind=Kind.VCPU_LIST,
        doc="the vcpu_ids expected to accept under the architecture; without it arch is not checked"),
    Key(name="expect_return", kind=Kind.INT, low=-1, high=MAX_VCPUS, decimal=True, only=("msi",),
        doc="the KVM_SIGNAL_MSI return value expected (a count, 0, or -1 for EPERM)"),
    Key(name="expect_kernels", kind=Kind.TABLE_LIST, fields=KERNEL_EXPECTATION_KEYS,
        doc="per-release expectations instead of expect/expect_return"),
)

# The named-field keys a raw encoding (msi, icr, value, rte) replaces.
FIELD_KEYS = ("shorthand", "dest", "dest_mode", "delivery", "vector", "trigger", "level", "redirection_hint",
              "msi_format")
RAW_KEYS = ("msi", "icr", "value", "rte")

SCENARIO = (
    Section("vm", VM_KEYS, doc="the VM"),
    Section("vcpu", VCPU_KEYS, array=True, doc="one vCPU's state (overrides the defaults)"),
    Section("interrupt", INTERRUPT_KEYS, array=True, doc="one interrupt to judge", discriminator="via"),
    Section("history", HISTORY_KEYS, doc="which historical KVM bug a file of corpus/history/ rediscovers"),
)

OPS = ("create_vcpu", "set_apic_base", "set_lapic", "enable_cap", "signal_msi")
_VCPU_OPS = ("create_vcpu", "set_apic_base", "set_lapic")

SEQUENCE_KEYS = (
    Key(name="kernel", kind=Kind.TEXT, pattern=KERNEL_PATTERN, default_doc="this host's release",
        doc="the KVM release the models follow"),
    Key(name="description", kind=Kind.TEXT, default="", doc="free text"),
)

STEP_KEYS = (
    Key(name="op", kind=Kind.CHOICE, choices=OPS, required=True, doc="the VMM operation"),
    Key(name="vcpu_id", kind=Kind.INT, low=0, high=MAX_VCPU_ID, decimal=True, default=0, only=_VCPU_OPS,
        doc="the vCPU"),
    Key(name="mode", kind=Kind.CHOICE, choices=APIC_MODES, default="xapic", only=("set_apic_base",),
        doc="the APIC mode written to the APIC base MSR"),
    Key(name="apic_id", kind=Kind.INT, low=0, high=0xFF, default=0, only=("set_lapic",), doc="xAPIC ID"),
    Key(name="ldr_register", kind=Kind.INT, low=0, high=U32, default=0, only=("set_lapic",), doc="the raw LDR"),
    Key(name="dfr", kind=Kind.CHOICE_OR_INT, choices=DFR_NAMES, low=0, high=U32, default="flat",
        only=("set_lapic",), doc="the DFR model, or a raw 32-bit DFR value"),
    Key(name="sw_enabled", kind=Kind.BOOL, default=True, only=("set_lapic",), doc="SVR bit 8"),
    Key(name="x2apic_api", kind=Kind.FLAGS, choices=X2APIC_API_FLAGS, default=[], only=("enable_cap",),
        doc="KVM_CAP_X2APIC_API flags"),
    Key(name="msi", kind=Kind.TABLE, fields=MSI_FIELDS, only=("signal_msi",), doc="the MSI (required)"),
    Key(name="expect_return", kind=Kind.INT, low=-1, high=MAX_VCPUS, decimal=True, only=("signal_msi",),
        doc="the KVM_SIGNAL_MSI return value expected"),
    Key(name="expect_kernels", kind=Kind.TABLE_LIST, fields=KERNEL_EXPECTATION_KEYS, only=("signal_msi",),
        doc="per-release return values instead of expect_return"),
)

SEQUENCE = (
    Section("sequence", SEQUENCE_KEYS, doc="the sequence"),
    Section("history", HISTORY_KEYS, doc="which historical KVM bug a file of corpus/history/ rediscovers"),
    Section("step", STEP_KEYS, array=True, doc="one VMM operation", discriminator="op"),
)

SCHEMA_DIR = Path(__file__).resolve().parent / "schema"


def scenario_schema() -> dict[str, Any]:
    return json_schema(SCENARIO, title="apicmap scenario", schema_id="https://apicmap.invalid/scenario.schema.json",
                       description="A VM's local-APIC state and the interrupts to judge against it. TOML files "
                                   "are read into this shape. See docs/scenario.md.")


def sequence_schema() -> dict[str, Any]:
    return json_schema(SEQUENCE, title="apicmap sequence", schema_id="https://apicmap.invalid/sequence.schema.json",
                       description="VMM operations in order, for map-lifecycle behaviours. See docs/scenario.md.")


def schema_text(schema: dict[str, Any]) -> str:
    return json.dumps(schema, indent=2) + "\n"


def main() -> None:
    """Write the generated schemas over the checked-in ones."""
    (SCHEMA_DIR / "scenario.schema.json").write_text(schema_text(scenario_schema()))
    (SCHEMA_DIR / "sequence.schema.json").write_text(schema_text(sequence_schema()))
    from apicmap.files.plan import plan_schema

    (SCHEMA_DIR / "plan.schema.json").write_text(schema_text(plan_schema()))


if __name__ == "__main__":
    main()
