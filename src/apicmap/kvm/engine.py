"""Engine ``kvm``: run a scenario on this machine's real in-kernel KVM, with no guest code.

Per VM state: create a VM with an in-kernel irqchip, enable the X2APIC_API flags before any
LAPIC state is written (enabling does not dirty the map, docs/routing.md#when-the-map-is-rebuilt), create the
vCPUs in creation order, then write every vCPU's APIC base MSR and KVM_SET_LAPIC. The last
KVM_SET_LAPIC recalculates the optimized map with every vCPU present, which sidesteps the
stale map that misses the last-created vCPU (docs/routing.md#when-the-map-is-rebuilt).

Per injection: send it (KVM_SIGNAL_MSI, a host write of the source's x2APIC ICR or SELF_IPI
MSR, or an IOAPIC pin), observe the channel its delivery mode affects on every vCPU, then
put back exactly what changed, so each interrupt is judged against the state as written.
"""

from __future__ import annotations

import contextlib
import ctypes
import errno
import resource
from collections.abc import Sequence
from dataclasses import dataclass, field

from apicmap.decode import describe_message
from apicmap.domain.engine import Closing, PreparedBase
from apicmap.domain.message import (
    IcrInjection,
    Injection,
    IoapicInjection,
    MsiInjection,
    SelfIpiInjection,
    is_lowest_priority,
)
from apicmap.domain.outcome import Effect, EffectKind, Explanation, Outcome, quick_outcome
from apicmap.domain.reasons import Code, because
from apicmap.domain.vm import Vcpu, VmState
from apicmap.encoding.apic_base import ApicMode
from apicmap.encoding.icr import XAPIC_ICR_LAYOUT
from apicmap.encoding.ioapic import RTE_LAYOUT
from apicmap.encoding.kinds import DeliveryMode
from apicmap.encoding.msi import MSI_ADDRESS_LAYOUT, MSI_DATA_LAYOUT
from apicmap.errors import NotExpressible
from apicmap.kvm import abi as s
from apicmap.kvm.host import vector_hashing
from apicmap.kvm.ioctl import KvmIoctlError, _ioctl, ioctl_ptr, signal_msi
from apicmap.kvm.vm import (
    KvmSystem,
    LapicPage,
    RawVm,
    get_lapic,
    set_apic_base,
    set_lapic,
    set_msr,
    vector_bit,
    vector_bits,
    x2apic_api_flags,
)

# MSI fields the three-ioctl path reads, as kvm_set_msi_irq does.
_MSI_DEST = MSI_ADDRESS_LAYOUT.field("dest")
_MSI_LOGICAL_OR_RH = MSI_ADDRESS_LAYOUT.field("dest_mode").mask | MSI_ADDRESS_LAYOUT.field("redirection_hint").mask
_MSI_DELIVERY = MSI_DATA_LAYOUT.field("delivery").mask
_MSI_VECTOR = MSI_DATA_LAYOUT.field("vector").mask


def _tmr_bit(page: bytes, vector: int) -> bool:
    return vector_bit(page, s.APIC_TMR, vector)


# Where each delivery mode's effect shows (docs/routing.md#the-projects-host): the register page (IRR/TMR), the
# vCPU events (NMI/SMI pending), or the mp_state (INIT/SIPI, processed by KVM_GET_MP_STATE).
IRR, EVENTS, MP, LOWEST_ARB = "irr", "events", "mp", "lowest-arb"
ALL_CHANNELS = frozenset({IRR, EVENTS, MP, LOWEST_ARB})
_CHANNELS_BY_MODE = {
    DeliveryMode.FIXED: frozenset({IRR}),
    DeliveryMode.LOWEST: frozenset({IRR, LOWEST_ARB}),  # KVM_SET_LAPIC also resets apic_arb_prio
    DeliveryMode.EXTINT: frozenset({IRR}),
    DeliveryMode.NMI: frozenset({EVENTS}),
    DeliveryMode.SMI: frozenset({EVENTS}),
    DeliveryMode.INIT: frozenset({MP}),
    DeliveryMode.SIPI: frozenset({MP}),
    DeliveryMode.REMRD: frozenset({IRR}),
}


def _waits_for_eoi(rte: int) -> bool:
    """Level-triggered (bit 15) with Remote IRR (bit 14) set."""
    return bool(rte & (1 << 15)) and bool(rte & (1 << 14))


_RTE_DELIVERY = RTE_LAYOUT.field("delivery")
_ICR_DELIVERY = XAPIC_ICR_LAYOUT.field("delivery")  # bits 10:8 of the low word, xAPIC and x2APIC alike
_MSI_DELIVERY_FIELD = MSI_DATA_LAYOUT.field("delivery")
_MSI_RH = MSI_ADDRESS_LAYOUT.field("redirection_hint").mask


def _raw_delivery(injection: Injection) -> tuple[DeliveryMode, bool]:
    """(delivery mode, lowest-priority by RH) of the raw encoding, before any engine's decoding,
    read with the encoding layouts' fields."""
    match injection:
        case MsiInjection(address_lo=lo, data=data):
            f = _MSI_DELIVERY_FIELD
            return DeliveryMode((data & f.mask) >> f.lo), bool(lo & _MSI_RH)
        case IcrInjection(icr=icr):
            f = _ICR_DELIVERY
            return DeliveryMode((icr & f.mask) >> f.lo), False
        case SelfIpiInjection():
            return DeliveryMode.FIXED, False
        case IoapicInjection(rte=rte):
            f = _RTE_DELIVERY
            return DeliveryMode((rte & f.mask) >> f.lo), False
    raise TypeError(injection)


@dataclass(slots=True)
class _VcpuHandle:
    vcpu_id: int
    fd: int
    baseline: bytes = b""  # the register page as applied (what restores write back)
    baseline_state: s.KvmLapicState = field(default_factory=s.KvmLapicState)  # the same, ready for the ioctl
    baseline_irr: bytes = b""
    baseline_irr_bits: int = 0
    applied: Vcpu | None = None
    mp_state: int = s.MP_STATE_UNINITIALIZED
    one_id: tuple[int, ...] = ()  # (vcpu_id,): the receivers of a unicast

    def __post_init__(self) -> None:
        self.one_id = (self.vcpu_id,)


@dataclass(slots=True)
class _RealVm:
    """One VM on /dev/kvm with a fixed list of vCPU ids (in creation order) and sticky flags."""

    raw: RawVm
    flags: int
    vcpus: list[_VcpuHandle] = field(default_factory=list)
    ioapic_baseline: s.KvmIrqchip | None = None

    @property
    def vm_fd(self) -> int:
        return self.raw.fd

    def close(self) -> None:
        self.vcpus.clear()
        self.raw.close()


class KvmEngine(Closing):
    """The real kernel. VMs are reused across ``prepare`` calls with the same vCPU ids and flags."""

    name = "kvm"

    def __init__(self, cache_size: int = 4) -> None:
        self._system = KvmSystem()
        self._max_vcpus = self._system.max_vcpus
        self._max_vcpu_id = self._system.max_vcpu_id
        self._x2apic_api = self._system.x2apic_api
        self.smm = self._system.smm
        self.vector_hashing = vector_hashing()
        self._cache: dict[tuple[tuple[int, ...], int], _RealVm] = {}
        self._cache_size = cache_size
        self._raise_fd_limit()

    # --- VM creation -----------------------------------------------------------------------------

    @staticmethod
    def _raise_fd_limit() -> None:
        soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
        if soft < min(hard, 8192):
            resource.setrlimit(resource.RLIMIT_NOFILE, (min(hard, 8192), hard))

    def _create(self, ids: tuple[int, ...], flags: int) -> _RealVm:
        raw = self._system.create_vm()
        real = _RealVm(raw, flags)
        vm_fd = raw.fd
        try:
            # Make no vCPU the BSP: an INIT then moves every target to INIT_RECEIVED, which is
            # how the host observes it (a BSP would stay RUNNABLE; docs/routing.md#acceptance-per-delivery-mode).
            spare = next(i for i in range(self._max_vcpu_id - 1, -1, -1) if i not in ids)
            raw.set_boot_cpu_id(spare)
            raw.create_irqchip()
            if flags:
                raw.enable_x2apic_api(flags)
            for vid in ids:
                fd = raw.create_vcpu(vid)
                real.vcpus.append(_VcpuHandle(vid, fd))
                mp = s.KvmMpState()
                ioctl_ptr(fd, s.KVM_GET_MP_STATE, mp)
                real.vcpus[-1].mp_state = mp.mp_state
            chip = s.KvmIrqchip(chip_id=s.KVM_IRQCHIP_IOAPIC)
            ioctl_ptr(vm_fd, s.KVM_GET_IRQCHIP, chip)
            real.ioapic_baseline = chip
        except BaseException:
            real.close()
            raise
        return real

    def _vm_for(self, vm: VmState) -> _RealVm:
        ids = vm.vcpu_ids
        flags = x2apic_api_flags(vm.use_32bit_ids, vm.disable_broadcast_quirk)
        if len(ids) > self._max_vcpus:
            raise NotExpressible(f"{len(ids)} vCPUs; this host allows {self._max_vcpus}")
        if max(ids) >= self._max_vcpu_id:
            raise NotExpressible(f"vcpu_id {max(ids)}; this host allows ids below {self._max_vcpu_id}")
        if flags & ~self._x2apic_api:
            raise NotExpressible(f"X2APIC_API flags {flags:#x}; this host supports {self._x2apic_api:#x}")
        key = (ids, flags)
        real = self._cache.pop(key, None)
        if real is None:
            if len(self._cache) >= self._cache_size:
                oldest = next(iter(self._cache))
                self._cache.pop(oldest).close()
            real = self._create(ids, flags)
        self._cache[key] = real  # most recently used last
        return real

    def prepare(self, vm: VmState) -> KvmVm:
        real = self._vm_for(vm)
        for handle, vcpu in zip(real.vcpus, vm.vcpus, strict=True):
            if handle.applied != vcpu:
                self._apply(real, handle, vcpu, vm)
        return KvmVm(self, real, vm)

    def _apply(self, real: _RealVm, handle: _VcpuHandle, vcpu: Vcpu, vm: VmState) -> None:
        set_apic_base(handle.fd, vcpu.mode)
        page = get_lapic(handle.fd, LapicPage())
        if vcpu.mode is ApicMode.X2APIC:
            # With x2apic_format the buffer ID must equal vcpu_id; without it the xAPIC-format
            # ID is ignored (v6.11+) and the LDR is derived by KVM either way
            # (docs/routing.md#kvm_get_lapic-and-kvm_set_lapic).
            page.write_x2apic_id(vcpu.vcpu_id, vm.use_32bit_ids)
            # A scenario may write its own ID/LDR (planted before 6.11, ignored from 6.11).
            if vcpu.lapic_id is not None:
                page.set_u32(s.APIC_ID, vcpu.lapic_id)
            if vcpu.lapic_ldr is not None:
                page.set_u32(s.APIC_LDR, vcpu.lapic_ldr)
        else:
            page.write_xapic(xapic_id=vcpu.xapic_id, ldr=vcpu.ldr, dfr=vcpu.dfr)
        page.write_svr(vcpu.sw_enabled)
        page.write_tpr(vcpu.tpr)
        page.clear_vectors()
        set_lapic(handle.fd, page)
        get_lapic(handle.fd, page)
        handle.baseline = page.bytes()
        handle.baseline_state = s.KvmLapicState.from_buffer_copy(page.state)
        handle.baseline_irr = handle.baseline[s.APIC_IRR:s.APIC_IRR + 0x80]
        handle.baseline_irr_bits = vector_bits(handle.baseline, s.APIC_IRR)
        handle.applied = vcpu

    def close(self) -> None:
        for real in self._cache.values():
            real.close()
        self._cache.clear()
        self._system.close()

    def __del__(self) -> None:
        with contextlib.suppress(Exception):
            self.close()


class KvmVm(PreparedBase):
    """A prepared real VM: deliver injections, observe, restore."""

    def __init__(self, engine: KvmEngine, real: _RealVm, vm: VmState) -> None:
        self._engine = engine
        self._real = real
        self._vm = vm
        self._lapic = s.KvmLapicState()
        self._events = s.KvmVcpuEvents()
        self._mp = s.KvmMpState()
        self._msi = s.KvmMsi()
        self._msi_ref = ctypes.byref(self._msi)
        self._lapic_ref = ctypes.byref(self._lapic)
        self._prepared_mp = False
        self._arb_prio_set = any(v.arb_prio for v in vm.vcpus)
        # Which vCPUs a physical destination most likely names: read those first (a reading
        # order only; observation still scans until the kernel's count is accounted for).
        self._by_dest: dict[int, list[_VcpuHandle]] = {}
        for handle, v in zip(real.vcpus, vm.vcpus, strict=True):
            for key in {v.vcpu_id, v.xapic_id}:
                self._by_dest.setdefault(key, []).append(handle)

    def close(self) -> None:
        return None  # the VM stays cached in the engine for reuse

    # --- injection ---------------------------------------------------------------------------------

    def deliver(self, injection: Injection, *, explain: bool = False) -> Outcome:
        if not explain and type(injection) is MsiInjection:
            quick = self._physical_fixed_msi(injection)
            if quick is not None:
                return quick
        mode, rh = _raw_delivery(injection)
        self._check_expressible(injection, mode, rh)
        prepared_mp = self._prepared_mp = self._prepare_mp_states(mode)
        channels = _CHANNELS_BY_MODE[mode]
        result: int | None = None
        rejected: str | None = None
        touched: set[int] | None = None  # vCPU ids proven to be the only ones changed; None = all
        try:
            match injection:
                case MsiInjection():
                    result, rejected = self._signal_msi(injection)
                case IcrInjection(source=src, icr=icr):
                    if not self._write_msr(src, s.MSR_X2APIC_ICR, icr):
                        rejected = f"KVM_SET_MSRS: the write of ICR MSR 0x830 = {icr:#x} on vCPU {src} failed"
                case SelfIpiInjection(source=src, value=value):
                    if not self._write_msr(src, s.MSR_X2APIC_SELF_IPI, value):
                        rejected = f"KVM_SET_MSRS: the write of SELF_IPI MSR 0x83F = {value:#x} on vCPU {src} failed"
                case IoapicInjection():
                    rejected = self._pulse_ioapic(injection)
            if mode is DeliveryMode.REMRD and (result is None or result > 0) and rejected is None:
                raise NotExpressible("REMRD only sets KVM's PV unhalt flag, which the host cannot observe and "
                                     "reset reliably; only an MSI that reaches nobody can be checked")
            known_none = rejected is not None or (result is not None and result <= 0)
            order = self._scan_order(injection)
            effects = [] if known_none else self._observe(channels, result, order)
            if isinstance(injection, IoapicInjection) and not effects and _waits_for_eoi(injection.rte):
                # Observed, not assumed: nothing reached any vCPU, as ioapic_service() says.
                rejected = (f"IOAPIC pin {injection.pin} is level-triggered with Remote IRR set: "
                            "the kernel delivered nothing (ioapic_service() waits for the EOI)")
            if result is not None and len(effects) < result:
                # The kernel accepted more than the mode's own channel shows: it can rewrite a
                # lowest-priority physical 0xFF message to FIXED (docs/routing.md#the-delivery-loop step 2).
                channels = ALL_CHANNELS
                effects = self._observe(channels, result, order)
            # apic_arb_prio (bumped even on refusal) matters only without vector hashing.
            arb_irrelevant = LOWEST_ARB not in channels or self._vm.vector_hashing
            if channels is not ALL_CHANNELS and not prepared_mp and MP not in channels and arb_irrelevant and \
                    (result is not None or isinstance(injection, (IcrInjection, SelfIpiInjection))):
                # The count (MSI) or a full scan (IPI) accounts for every change.
                touched = {e.vcpu_id for e in effects}
        finally:
            if isinstance(injection, IoapicInjection):
                self._end_ioapic(injection.pin)
            self._restore(channels, prepared_mp, touched)
        receivers = tuple(sorted({e.vcpu_id for e in effects}))
        explanation = None
        if explain:
            explanation = self._explain(injection, effects, result, rejected)
        return Outcome(engine="kvm", receivers=receivers, effects=tuple(effects), result=result, rejected=rejected,
                       explanation=explanation)

    def _physical_fixed_msi(self, injection: MsiInjection) -> Outcome | None:
        """The commonest check in three ioctls and little else: a FIXED physical MSI, no RH, whose
        destination names one vCPU. Send; read that vCPU's page; if the count is 1 and only this
        vector's IRR bit appeared there, write the baseline back. Anything else: restore every
        vCPU and return None, so that ``deliver`` sends it again the general way."""
        lo, data = injection.address_lo, injection.data
        if lo & _MSI_LOGICAL_OR_RH or data & _MSI_DELIVERY:  # logical, RH, or not FIXED
            return None
        dest = (lo & _MSI_DEST.mask) >> _MSI_DEST.lo
        if self._vm.use_32bit_ids:
            if injection.address_hi & 0xFF:
                return None
            dest |= injection.address_hi & 0xFFFFFF00
        handles = self._by_dest.get(dest)
        if handles is None or len(handles) != 1:
            return None
        handle = handles[0]
        msi = self._msi
        msi.address_lo, msi.address_hi, msi.data = lo, injection.address_hi, data
        sent = _ioctl(self._real.vm_fd, s.KVM_SIGNAL_MSI, self._msi_ref)
        if sent != 1:  # 0, EPERM, EINVAL, or several receivers: let the general path tell
            if sent > 1:
                self._restore(_CHANNELS_BY_MODE[DeliveryMode.FIXED], False, None)
            return None if sent > 1 else self._finish_signal(sent)
        result = 1
        lapic = self._lapic
        if _ioctl(handle.fd, s.KVM_GET_LAPIC, self._lapic_ref) < 0:
            ioctl_ptr(handle.fd, s.KVM_GET_LAPIC, lapic)  # raises with the errno
        vector = data & _MSI_VECTOR
        at = 0x10 * (vector >> 5) + ((vector & 31) >> 3)
        irr = ctypes.string_at(ctypes.addressof(lapic) + s.APIC_IRR, 0x80)
        base = handle.baseline_irr
        if result == 1 and irr[at] == base[at] | 1 << (vector & 7) != base[at] and irr[:at] == base[:at] \
                and irr[at + 1:] == base[at + 1:]:
            tmr = bool(lapic.regs[s.APIC_TMR + at] >> (vector & 7) & 1)
            ioctl_ptr(handle.fd, s.KVM_SET_LAPIC, handle.baseline_state)
            return quick_outcome("kvm", handle.one_id, (Effect(handle.vcpu_id, EffectKind.IRR, vector, tmr),), result)
        self._restore(_CHANNELS_BY_MODE[DeliveryMode.FIXED], False, None)
        return None

    # --- batches ---------------------------------------------------------------------------------

    def deliver_many(self, injections: Sequence[Injection], *, explain: bool = False) -> list[Outcome]:
        """Each injection as ``deliver`` would judge it, with independent ones sent together.

        FIXED/LOWEST MSIs whose vectors differ are independent: each sets only the IRR (and TMR)
        bit its vector names, so a batch is sent with one ``KVM_SIGNAL_MSI`` each, observed with
        one ``KVM_GET_LAPIC`` per vCPU and restored with one ``KVM_SET_LAPIC`` per changed vCPU.
        Lowest priority joins a batch only with vector hashing (``kvm_vector_to_index``); without
        it ``apic_arb_prio``, which each delivery bumps, decides the next one, so those go one by
        one, as does everything else. Where a batch's observation does not account for the count
        ``KVM_SIGNAL_MSI`` returned, that injection is sent again alone.
        """
        if explain:
            return [self.deliver(i, explain=True) for i in injections]
        out: list[Outcome | None] = [None] * len(injections)
        batches: list[dict[int, tuple[int, MsiInjection]]] = []  # vector -> (position, injection)
        for position, injection in enumerate(injections):
            mode, rh = _raw_delivery(injection)
            self._check_expressible(injection, mode, rh)
            vector = self._batch_vector(injection, mode, rh)
            if vector is None:
                out[position] = self.deliver(injection)
                continue
            assert isinstance(injection, MsiInjection)
            for batch in batches:
                if vector not in batch:
                    batch[vector] = (position, injection)
                    break
            else:
                batches.append({vector: (position, injection)})
        for batch in batches:
            for position, outcome in self._deliver_batch(batch):
                out[position] = outcome
        return [o for o in out if o is not None]

    def _batch_vector(self, injection: Injection, mode: DeliveryMode, rh: bool) -> int | None:
        """The vector that names this injection's effect in a batch, or None if it must go alone."""
        if type(injection) is not MsiInjection or mode not in (DeliveryMode.FIXED, DeliveryMode.LOWEST):
            return None
        if (mode is DeliveryMode.LOWEST or rh) and not self._vm.vector_hashing:
            return None  # apic_arb_prio arbitration: each delivery changes the next one's choice
        return injection.data & 0xFF

    def _deliver_batch(self, batch: dict[int, tuple[int, MsiInjection]]) -> list[tuple[int, Outcome]]:
        sent: list[tuple[int, MsiInjection, int, int | None]] = []
        lowest = False
        changed: dict[int, tuple[int, bytes]] = {}  # vcpu_id -> (new IRR bits, page)
        try:
            for vector, (position, injection) in batch.items():
                result, _ = self._signal_msi(injection)
                sent.append((position, injection, vector, result))
                lowest = lowest or bool(injection.data & 0x100 or injection.address_lo & 8)
            lapic = self._lapic
            address = ctypes.addressof(lapic) + s.APIC_IRR
            for handle in self._real.vcpus:
                ioctl_ptr(handle.fd, s.KVM_GET_LAPIC, lapic)
                if ctypes.string_at(address, 0x80) != handle.baseline_irr:
                    page = bytes(lapic.regs)
                    changed[handle.vcpu_id] = (vector_bits(page, s.APIC_IRR) & ~handle.baseline_irr_bits, page)
        finally:
            # One write of the baseline per changed vCPU; after LOWEST every vCPU (KVM_SET_LAPIC
            # is also what resets apic_arb_prio, as the one-by-one path does).
            for handle in self._real.vcpus:
                if lowest or handle.vcpu_id in changed:
                    ioctl_ptr(handle.fd, s.KVM_SET_LAPIC, handle.baseline_state)
        results: list[tuple[int, Outcome]] = []
        for position, injection, vector, result in sent:
            if result is None:
                results.append((position, Outcome(engine="kvm", receivers=(), rejected="KVM_SIGNAL_MSI: EINVAL")))
                continue
            hit = [vid for vid, (bits, _) in changed.items() if bits >> vector & 1]
            if len(hit) > 1:  # in the order the one-by-one observation reads them
                rank = {h.vcpu_id: i for i, h in enumerate(self._scan_order(injection))}
                hit.sort(key=rank.__getitem__)
            effects = [Effect(vid, EffectKind.IRR, vector, _tmr_bit(changed[vid][1], vector)) for vid in hit]
            if len(effects) != max(result, 0):
                # Not accounted for by IRR bits alone (e.g. the physical 0xFF rewrite): alone, as
                # ``deliver`` sends it, against the restored state.
                results.append((position, self.deliver(injection)))
                continue
            receivers = tuple(sorted({e.vcpu_id for e in effects}))
            results.append((position, quick_outcome("kvm", receivers, tuple(effects), result)))
        return results

    def _check_expressible(self, injection: Injection, mode: DeliveryMode, rh: bool) -> None:
        if isinstance(injection, IcrInjection):
            source = self._vm.vcpu(injection.source) if self._vm.has_vcpu(injection.source) else None
            if source is not None and source.mode is ApicMode.XAPIC:
                raise NotExpressible(f"IPI from xAPIC-mode vCPU {injection.source}: an xAPIC ICR write is MMIO "
                                     "and needs guest code; the host can only write x2APIC ICR MSRs")
        lowest = is_lowest_priority(mode, rh)
        if lowest and self._engine.vector_hashing is not None and \
                self._vm.vector_hashing != self._engine.vector_hashing:
            raise NotExpressible(f"the scenario has vector_hashing={self._vm.vector_hashing}, this host's "
                                 f"kvm.vector_hashing is {self._engine.vector_hashing} (read-only at run time)")
        if lowest and not self._vm.vector_hashing and self._arb_prio_set:
            raise NotExpressible("apic_arb_prio cannot be set from the host (KVM_SET_LAPIC resets it to 0)")
        if mode is DeliveryMode.SMI:
            self._check_smm()

    def _check_smm(self) -> None:
        """The SMM settings an SMI depends on must be this host's (KVM_CAP_X86_SMM): from 6.16 the
        VM's, from 6.2 KVM's build (CONFIG_KVM_SMM), before 6.2 none."""
        from apicmap.model.policy import SmiCheck, host_release, policy_for_release

        check = policy_for_release(host_release()).smi_check
        vm, host = self._vm, self._engine.smm
        if check is SmiCheck.VM_SUPPORTS_SMM and (vm.smm and vm.kvm_smm) != host:
            raise NotExpressible(f"the scenario has smm={vm.smm}, kvm_smm={vm.kvm_smm}; this host's VMs have "
                                 f"smm={host}")
        if check is SmiCheck.KVM_BUILT_WITH_SMM and vm.kvm_smm != host:
            raise NotExpressible(f"the scenario has kvm_smm={vm.kvm_smm}; this host's KVM has SMM={host}")

    @staticmethod
    def _finish_signal(sent: int) -> Outcome:
        """The outcome of a KVM_SIGNAL_MSI that reached nobody: 0, -1 (EPERM) or EINVAL."""
        if sent >= 0:
            return quick_outcome("kvm", (), (), sent)
        err = ctypes.get_errno()
        if err == errno.EPERM:
            return quick_outcome("kvm", (), (), -1)
        if err == errno.EINVAL:
            return Outcome(engine="kvm", receivers=(), rejected="KVM_SIGNAL_MSI: EINVAL")
        raise KvmIoctlError("KVM_SIGNAL_MSI", err)

    def _signal_msi(self, injection: MsiInjection) -> tuple[int | None, str | None]:
        msi = self._msi
        msi.address_lo = injection.address_lo
        msi.address_hi = injection.address_hi
        msi.data = injection.data
        result = signal_msi(self._real.vm_fd, msi)
        return (result, None) if result is not None else (None, "KVM_SIGNAL_MSI: EINVAL")

    def _handle(self, vcpu_id: int) -> _VcpuHandle:
        return self._real.vcpus[self._vm.creation_index(vcpu_id)]

    def _write_msr(self, vcpu_id: int, index: int, value: int) -> bool:
        return set_msr(self._handle(vcpu_id).fd, index, value, f"MSR {index:#x}")

    def _pulse_ioapic(self, injection: IoapicInjection) -> str | None:
        assert self._real.ioapic_baseline is not None
        chip = s.KvmIrqchip.from_buffer_copy(self._real.ioapic_baseline)
        chip.chip.ioapic.redirtbl[injection.pin] = injection.rte
        ioctl_ptr(self._real.vm_fd, s.KVM_SET_IRQCHIP, chip)
        # kvm_set_ioapic() copies the entry as given, Remote IRR (bit 14) included; read it back
        # rather than assume it, so that an entry the kernel rewrote is not judged as written.
        readback = s.KvmIrqchip(chip_id=s.KVM_IRQCHIP_IOAPIC)
        ioctl_ptr(self._real.vm_fd, s.KVM_GET_IRQCHIP, readback)
        programmed = int(readback.chip.ioapic.redirtbl[injection.pin])
        if programmed != injection.rte:
            raise NotExpressible(f"KVM_SET_IRQCHIP stored IOAPIC pin {injection.pin}'s entry as {programmed:#x}, "
                                 f"not {injection.rte:#x}")
        line = s.KvmIrqLevel(irq=injection.pin, level=1)
        ioctl_ptr(self._real.vm_fd, s.KVM_IRQ_LINE_STATUS, line)
        if injection.rte & (1 << 16):
            return f"IOAPIC pin {injection.pin} is masked: nothing is sent"
        return None

    # --- observation -------------------------------------------------------------------------------

    def _prepare_mp_states(self, mode: DeliveryMode) -> bool:
        """SIPI only acts on a vCPU in INIT_RECEIVED, so put every vCPU there first
        (docs/routing.md#acceptance-per-delivery-mode)."""
        if mode is not DeliveryMode.SIPI:
            return False
        mp = self._mp
        for handle in self._real.vcpus:
            mp.mp_state = s.MP_STATE_INIT_RECEIVED
            ioctl_ptr(handle.fd, s.KVM_SET_MP_STATE, mp)
        return True

    def _scan_order(self, injection: Injection) -> list[_VcpuHandle]:
        handles = self._real.vcpus
        if not isinstance(injection, MsiInjection) or injection.address_lo & (1 << 2):
            return handles
        dest = MSI_ADDRESS_LAYOUT.get(injection.address_lo, "dest") | injection.address_hi & 0xFFFFFF00
        first = self._by_dest.get(dest) or self._by_dest.get(dest & 0xFF)
        if not first:
            return handles
        return first + [h for h in handles if h not in first]

    def _observe(self, channels: frozenset[str], count: int | None, order: list[_VcpuHandle]) -> list[Effect]:
        effects: list[Effect] = []
        for handle in order:
            if count is not None and len(effects) >= count:
                # KVM_SIGNAL_MSI told how many accepted: the rest have nothing
                # (docs/routing.md#kvm-msi-and-ioapic-decoding)
                break
            effects.extend(self._observe_one(handle, channels))
        return effects

    def _observe_one(self, handle: _VcpuHandle, channels: frozenset[str]) -> list[Effect]:
        vid = handle.vcpu_id
        found: list[Effect] = []
        if IRR in channels:
            ioctl_ptr(handle.fd, s.KVM_GET_LAPIC, self._lapic)
            irr = ctypes.string_at(ctypes.addressof(self._lapic) + s.APIC_IRR, 0x80)
            if irr != handle.baseline_irr:
                page = bytes(self._lapic.regs)
                new_irr = vector_bits(page, s.APIC_IRR) & ~handle.baseline_irr_bits
                while new_irr:
                    v = (new_irr & -new_irr).bit_length() - 1
                    new_irr &= new_irr - 1
                    found.append(Effect(vid, EffectKind.IRR, v, _tmr_bit(page, v)))
        if EVENTS in channels:
            ioctl_ptr(handle.fd, s.KVM_GET_VCPU_EVENTS, self._events)
            if self._events.nmi_pending:
                found.append(Effect(vid, EffectKind.NMI))
            if self._events.smi_pending:
                found.append(Effect(vid, EffectKind.SMI))
        if MP in channels:
            # KVM_GET_MP_STATE processes latched INIT/SIPI (docs/routing.md#reset-and-init-in-kvm): INIT moves a non-BSP
            # vCPU to
            # INIT_RECEIVED; a SIPI moves one in INIT_RECEIVED to RUNNABLE.
            ioctl_ptr(handle.fd, s.KVM_GET_MP_STATE, self._mp)
            state = self._mp.mp_state
            before = s.MP_STATE_INIT_RECEIVED if self._prepared_mp else handle.mp_state
            if state == s.MP_STATE_INIT_RECEIVED and before != s.MP_STATE_INIT_RECEIVED:
                found.append(Effect(vid, EffectKind.INIT))
            elif state == s.MP_STATE_RUNNABLE and before == s.MP_STATE_INIT_RECEIVED:
                # The SIPI vector is where the vCPU now starts: CS.selector = vector << 8.
                sregs = s.KvmSregs()
                ioctl_ptr(handle.fd, s.KVM_GET_SREGS, sregs)
                found.append(Effect(vid, EffectKind.SIPI, sregs.cs.selector >> 8))
        return found

    # --- restore -------------------------------------------------------------------------------------

    def _restore(self, channels: frozenset[str], prepared_mp: bool, touched: set[int] | None) -> None:
        """Put back what an injection may have changed, on every vCPU it could have touched."""
        lapic = self._lapic
        handles = self._real.vcpus if touched is None else [self._handle(v) for v in sorted(touched)]
        for handle in handles:
            if MP in channels or prepared_mp:
                # First let KVM process anything still latched (an INIT resets the APIC), then
                # put the mp_state back; the register page is restored after this.
                mp = self._mp
                ioctl_ptr(handle.fd, s.KVM_GET_MP_STATE, mp)
                if mp.mp_state != handle.mp_state:
                    mp.mp_state = handle.mp_state
                    ioctl_ptr(handle.fd, s.KVM_SET_MP_STATE, mp)
            if IRR in channels or MP in channels:
                if touched is not None and not (MP in channels or LOWEST_ARB in channels):
                    # Observation proved this vCPU changed: write the baseline straight back.
                    ioctl_ptr(handle.fd, s.KVM_SET_LAPIC, handle.baseline_state)
                else:
                    ioctl_ptr(handle.fd, s.KVM_GET_LAPIC, lapic)
                    if bytes(lapic.regs) != handle.baseline or LOWEST_ARB in channels:
                        ioctl_ptr(handle.fd, s.KVM_SET_LAPIC, handle.baseline_state)
            if EVENTS in channels:
                events = self._events
                ioctl_ptr(handle.fd, s.KVM_GET_VCPU_EVENTS, events)
                if events.nmi_pending or events.smi_pending:
                    events.nmi_pending = 0
                    events.smi_pending = 0
                    events.flags = s.KVM_VCPUEVENT_VALID_NMI_PENDING | (s.KVM_VCPUEVENT_VALID_SMM
                                                                         if self._engine.smm else 0)
                    ioctl_ptr(handle.fd, s.KVM_SET_VCPU_EVENTS, events)

    def _end_ioapic(self, pin: int) -> None:
        """Lower the line, then restore the IOAPIC (entry, IRR and remote IRR) as created."""
        ioctl_ptr(self._real.vm_fd, s.KVM_IRQ_LINE_STATUS, s.KvmIrqLevel(irq=pin, level=0))
        assert self._real.ioapic_baseline is not None
        ioctl_ptr(self._real.vm_fd, s.KVM_SET_IRQCHIP, self._real.ioapic_baseline)

    def _explain(self, injection: Injection, effects: list[Effect], result: int | None,
                 rejected: str | None) -> Explanation:
        from apicmap.decode import KvmDecodeRules, Refused, decode_for_kvm
        from apicmap.model.policy import host_release, policy_for_release

        rules = KvmDecodeRules.for_policy(policy_for_release(host_release()), self._vm)
        decoded = decode_for_kvm(injection, self._vm, rules)
        message = decoded.reason if isinstance(decoded, Refused) else describe_message(decoded)
        by_vcpu: dict[int, list[str]] = {}
        for e in effects:
            by_vcpu.setdefault(e.vcpu_id, []).append(e.describe())
        notes = [because(Code.SIGNAL_MSI_RETURNED, r=result)] if result is not None else []
        if rejected:
            notes.append(because(Code.NOTE_REFUSED, detail=rejected))
        return Explanation(
            message=message,
            path=because(Code.PATH_OBSERVED),
            reasons=tuple((v.vcpu_id, because(Code.OBSERVED, effects=", ".join(by_vcpu[v.vcpu_id]))
                           if v.vcpu_id in by_vcpu else because(Code.OBSERVED_NOTHING))
                          for v in self._vm.vcpus),
            notes=tuple(notes),
        )

