"""The KVM ABI structures apicmap uses, declared once (linux/kvm.h, arch/x86/include/uapi/asm/kvm.h)."""

from __future__ import annotations

import ctypes

KVMIO = 0xAE
KVM_API_VERSION = 12

# Capabilities (KVM_CHECK_EXTENSION).
KVM_CAP_IRQCHIP = 0
KVM_CAP_NR_VCPUS = 9
KVM_CAP_SET_BOOT_CPU_ID = 34
KVM_CAP_MAX_VCPUS = 66
KVM_CAP_SIGNAL_MSI = 77
KVM_CAP_X86_SMM = 117
KVM_CAP_MAX_VCPU_ID = 128
KVM_CAP_X2APIC_API = 129

X2APIC_API_USE_32BIT_IDS = 1
X2APIC_API_DISABLE_BROADCAST_QUIRK = 2

KVM_IRQCHIP_IOAPIC = 2
IOAPIC_NUM_PINS = 24

# KVM_GET/SET_MP_STATE values.
MP_STATE_RUNNABLE = 0
MP_STATE_UNINITIALIZED = 1
MP_STATE_INIT_RECEIVED = 2
MP_STATE_HALTED = 3

KVM_VCPUEVENT_VALID_NMI_PENDING = 0x1
KVM_VCPUEVENT_VALID_SMM = 0x8

MSR_IA32_APICBASE = 0x1B
MSR_X2APIC_ICR = 0x830
MSR_X2APIC_SELF_IPI = 0x83F

# Local APIC register page offsets (docs/routing.md#constants, docs/routing.md#the-projects-host).
APIC_ID = 0x20
APIC_TASKPRI = 0x80
APIC_LDR = 0xD0
APIC_DFR = 0xE0
APIC_SPIV = 0xF0
APIC_ISR = 0x100
APIC_TMR = 0x180
APIC_IRR = 0x200


class KvmLapicState(ctypes.Structure):
    _fields_ = [("regs", ctypes.c_uint8 * 1024)]


class KvmMsi(ctypes.Structure):
    _fields_ = [("address_lo", ctypes.c_uint32), ("address_hi", ctypes.c_uint32), ("data", ctypes.c_uint32),
                ("flags", ctypes.c_uint32), ("devid", ctypes.c_uint32), ("pad", ctypes.c_uint8 * 12)]


class KvmEnableCap(ctypes.Structure):
    _fields_ = [("cap", ctypes.c_uint32), ("flags", ctypes.c_uint32), ("args", ctypes.c_uint64 * 4),
                ("pad", ctypes.c_uint8 * 64)]


class KvmMsrEntry(ctypes.Structure):
    _fields_ = [("index", ctypes.c_uint32), ("reserved", ctypes.c_uint32), ("data", ctypes.c_uint64)]


class KvmMsrsHeader(ctypes.Structure):
    _fields_ = [("nmsrs", ctypes.c_uint32), ("pad", ctypes.c_uint32)]


class KvmMsrs1(ctypes.Structure):
    """``struct kvm_msrs`` with room for one entry."""

    _fields_ = [("nmsrs", ctypes.c_uint32), ("pad", ctypes.c_uint32), ("entries", KvmMsrEntry * 1)]


class KvmCpuidEntry2(ctypes.Structure):
    _fields_ = [("function", ctypes.c_uint32), ("index", ctypes.c_uint32), ("flags", ctypes.c_uint32),
                ("eax", ctypes.c_uint32), ("ebx", ctypes.c_uint32), ("ecx", ctypes.c_uint32),
                ("edx", ctypes.c_uint32), ("padding", ctypes.c_uint32 * 3)]


class KvmCpuid2Header(ctypes.Structure):
    _fields_ = [("nent", ctypes.c_uint32), ("padding", ctypes.c_uint32)]


MAX_CPUID_ENTRIES = 256


class KvmCpuid2(ctypes.Structure):
    _fields_ = [("nent", ctypes.c_uint32), ("padding", ctypes.c_uint32),
                ("entries", KvmCpuidEntry2 * MAX_CPUID_ENTRIES)]


class KvmMpState(ctypes.Structure):
    _fields_ = [("mp_state", ctypes.c_uint32)]


class KvmVcpuEvents(ctypes.Structure):
    _fields_ = [
        ("exception_injected", ctypes.c_uint8), ("exception_nr", ctypes.c_uint8),
        ("exception_has_error_code", ctypes.c_uint8), ("exception_pending", ctypes.c_uint8),
        ("exception_error_code", ctypes.c_uint32),
        ("interrupt_injected", ctypes.c_uint8), ("interrupt_nr", ctypes.c_uint8),
        ("interrupt_soft", ctypes.c_uint8), ("interrupt_shadow", ctypes.c_uint8),
        ("nmi_injected", ctypes.c_uint8), ("nmi_pending", ctypes.c_uint8),
        ("nmi_masked", ctypes.c_uint8), ("nmi_pad", ctypes.c_uint8),
        ("sipi_vector", ctypes.c_uint32), ("flags", ctypes.c_uint32),
        ("smi_smm", ctypes.c_uint8), ("smi_pending", ctypes.c_uint8),
        ("smi_smm_inside_nmi", ctypes.c_uint8), ("smi_latched_init", ctypes.c_uint8),
        ("reserved", ctypes.c_uint8 * 27), ("exception_has_payload", ctypes.c_uint8),
        ("exception_payload", ctypes.c_uint64),
    ]


class KvmSegment(ctypes.Structure):
    _fields_ = [("base", ctypes.c_uint64), ("limit", ctypes.c_uint32), ("selector", ctypes.c_uint16),
                ("type", ctypes.c_uint8), ("present", ctypes.c_uint8), ("dpl", ctypes.c_uint8),
                ("db", ctypes.c_uint8), ("s", ctypes.c_uint8), ("l", ctypes.c_uint8), ("g", ctypes.c_uint8),
                ("avl", ctypes.c_uint8), ("unusable", ctypes.c_uint8), ("padding", ctypes.c_uint8)]


class KvmDtable(ctypes.Structure):
    _fields_ = [("base", ctypes.c_uint64), ("limit", ctypes.c_uint16), ("padding", ctypes.c_uint16 * 3)]


class KvmSregs(ctypes.Structure):
    _fields_ = [("cs", KvmSegment), ("ds", KvmSegment), ("es", KvmSegment), ("fs", KvmSegment),
                ("gs", KvmSegment), ("ss", KvmSegment), ("tr", KvmSegment), ("ldt", KvmSegment),
                ("gdt", KvmDtable), ("idt", KvmDtable), ("cr0", ctypes.c_uint64), ("cr2", ctypes.c_uint64),
                ("cr3", ctypes.c_uint64), ("cr4", ctypes.c_uint64), ("cr8", ctypes.c_uint64),
                ("efer", ctypes.c_uint64), ("apic_base", ctypes.c_uint64), ("interrupt_bitmap", ctypes.c_uint64 * 4)]


class KvmIrqLevel(ctypes.Structure):
    _fields_ = [("irq", ctypes.c_int32), ("level", ctypes.c_uint32)]  # irq doubles as the returned status


class KvmIoapicState(ctypes.Structure):
    _fields_ = [("base_address", ctypes.c_uint64), ("ioregsel", ctypes.c_uint32), ("id", ctypes.c_uint32),
                ("irr", ctypes.c_uint32), ("pad", ctypes.c_uint32),
                ("redirtbl", ctypes.c_uint64 * IOAPIC_NUM_PINS)]


class KvmIrqchip(ctypes.Structure):
    class _Chip(ctypes.Union):
        _fields_ = [("dummy", ctypes.c_uint8 * 512), ("ioapic", KvmIoapicState)]

    _fields_ = [("chip_id", ctypes.c_uint32), ("pad", ctypes.c_uint32), ("chip", _Chip)]


def _ioc(direction: int, nr: int, size: int) -> int:
    return (direction << 30) | (size << 16) | (KVMIO << 8) | nr


def _io(nr: int) -> int:
    return _ioc(0, nr, 0)


def _iow(nr: int, struct: type[ctypes.Structure]) -> int:
    return _ioc(1, nr, ctypes.sizeof(struct))


def _ior(nr: int, struct: type[ctypes.Structure]) -> int:
    return _ioc(2, nr, ctypes.sizeof(struct))


def _iowr(nr: int, struct: type[ctypes.Structure]) -> int:
    return _ioc(3, nr, ctypes.sizeof(struct))


# Request numbers, by name; ``IOCTL_NAMES`` maps them back for error messages.
KVM_GET_API_VERSION = _io(0x00)
KVM_CREATE_VM = _io(0x01)
KVM_CHECK_EXTENSION = _io(0x03)
KVM_GET_SUPPORTED_CPUID = _iowr(0x05, KvmCpuid2Header)
KVM_CREATE_VCPU = _io(0x41)
KVM_CREATE_IRQCHIP = _io(0x60)
KVM_GET_IRQCHIP = _iowr(0x62, KvmIrqchip)
KVM_SET_IRQCHIP = _ior(0x63, KvmIrqchip)
KVM_IRQ_LINE_STATUS = _iowr(0x67, KvmIrqLevel)
KVM_SET_BOOT_CPU_ID = _io(0x78)
KVM_GET_SREGS = _ior(0x83, KvmSregs)
KVM_GET_MSRS = _iowr(0x88, KvmMsrsHeader)
KVM_SET_MSRS = _iow(0x89, KvmMsrsHeader)
KVM_GET_LAPIC = _ior(0x8E, KvmLapicState)
KVM_SET_LAPIC = _iow(0x8F, KvmLapicState)
KVM_SET_CPUID2 = _iow(0x90, KvmCpuid2Header)
KVM_GET_MP_STATE = _ior(0x98, KvmMpState)
KVM_SET_MP_STATE = _iow(0x99, KvmMpState)
KVM_GET_VCPU_EVENTS = _ior(0x9F, KvmVcpuEvents)
KVM_SET_VCPU_EVENTS = _iow(0xA0, KvmVcpuEvents)
KVM_ENABLE_CAP = _iow(0xA3, KvmEnableCap)
KVM_SIGNAL_MSI = _iow(0xA5, KvmMsi)

IOCTL_NAMES = {value: name for name, value in dict(globals()).items()
               if name.startswith("KVM_")
               and not name.startswith(("KVM_CAP_", "KVM_VCPUEVENT_", "KVM_IRQCHIP_", "KVM_API"))
               and isinstance(value, int) and (value >> 8) & 0xFF == KVMIO}
