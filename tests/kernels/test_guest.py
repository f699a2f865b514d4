"""Real kernels under QEMU: the routing change of v6.3 seen on 6.1 and 6.12 themselves."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from apicmap import ApicMode, IcrInjection, MsiInjection, NotExpressible, Vcpu, VmState, make_engine
from apicmap.domain.reasons import Code, Reason
from apicmap.kernels import (
    GuestBootTimeout,
    GuestKernel,
    GuestKvmMissing,
    GuestPanic,
    GuestSession,
    KernelImageError,
    fetch,
    open_session,
    parse_spec,
)
from apicmap.kernels.initramfs import Channel

pytestmark = pytest.mark.guest

ALIASED = VmState((Vcpu(0), Vcpu(1), Vcpu(2, xapic_id=1)))
TO_ID_1 = MsiInjection(0xFEE01000, 0, 0x40)


def test_6_1_delivers_to_the_first_alias_only(guest_6_1: GuestSession) -> None:
    assert guest_6_1.release.startswith("6.1.") and guest_6_1.vendor == "kvm_amd"
    assert guest_6_1.hello["api_version"] == 12
    outcome = guest_6_1.engine().prepare(ALIASED).deliver(TO_ID_1)
    assert (outcome.receivers, outcome.result) == ((1,), 1)


def test_6_12_delivers_to_both_aliases(guest_6_12: GuestSession) -> None:
    assert guest_6_12.release.startswith("6.12.")
    outcome = guest_6_12.engine().prepare(ALIASED).deliver(TO_ID_1, explain=True)
    assert (outcome.receivers, outcome.result) == ((1, 2), 2)
    assert outcome.explanation is not None
    assert outcome.explanation.reason_for(2) == Reason(Code.OBSERVED, (("effects", "IRR 0x40"),))


AGREEMENT_VMS = {
    "aliased xAPIC IDs": ALIASED,
    "logical flat": VmState(tuple(Vcpu(i, ldr=(1 << i) << 24) for i in range(4))),
    "logical cluster": VmState(tuple(Vcpu(i, ldr=(((i // 2) << 4) | (1 << (i % 2))) << 24, dfr=0x0FFFFFFF)
                                     for i in range(4))),
    "x2APIC, 32-bit IDs, no broadcast quirk": VmState(tuple(Vcpu(i, mode=ApicMode.X2APIC) for i in (0, 1, 16, 17)),
                                                      use_32bit_ids=True, disable_broadcast_quirk=True),
    "mixed modes": VmState((Vcpu(0, mode=ApicMode.X2APIC), Vcpu(1), Vcpu(2, sw_enabled=False),
                            Vcpu(3, mode=ApicMode.DISABLED))),
}
# Every 8-bit destination, physical and logical (MSI address bit 2), fixed vector 0x40.
EVERY_DESTINATION = [MsiInjection(0xFEE00000 | (dest << 12) | (logical << 2), 0, 0x40)
                     for logical in (0, 1) for dest in range(256)]


@pytest.mark.parametrize("guest_name", ["guest_6_1", "guest_6_12"])
def test_model_of_the_release_agrees_with_its_kernel(guest_name: str, request: pytest.FixtureRequest) -> None:
    guest: GuestSession = request.getfixturevalue(guest_name)
    for name, vm in AGREEMENT_VMS.items():
        engine = guest.engine()
        remote = engine.prepare(vm).deliver_many(EVERY_DESTINATION)
        # The upstream release from the guest's /proc/version: Debian's ABI name does not say it.
        model = make_engine("model", engine.upstream_release).prepare(vm)
        differing = [hex(i.address_lo) for i, r in zip(EVERY_DESTINATION, remote, strict=True)
                     if not r.same_as(model.deliver(i))]
        assert differing == [], f"{engine.upstream_release}, {name}"


def test_batch_equals_one_by_one_and_errors_keep_their_type(guest_6_12: GuestSession) -> None:
    prepared = guest_6_12.engine().prepare(ALIASED)
    injections = [TO_ID_1, MsiInjection(0xFEE00000, 0, 0x41), MsiInjection(0xFEEFF000, 0, 0x42)] * 5
    batch = prepared.deliver_many(injections)
    assert batch == [prepared.deliver(i) for i in injections]
    with pytest.raises(NotExpressible, match="xAPIC"):
        # An NMI from an xAPIC-mode source would act on the source while its guest code runs.
        prepared.deliver(IcrInjection(0, 0x400))
    prepared.close()


def _unpacked_debian_modules(kernel: GuestKernel, into: Path) -> Path:
    """The package's own lib/modules tree, as a user who unpacked it would have it."""
    download = subprocess.run(["apt-get", "download", kernel.source], cwd=into, capture_output=True, text=True)
    if download.returncode != 0:
        pytest.skip(f"apt-get download {kernel.source} failed: {download.stderr.strip()[-200:]}")
    deb = next(into.glob("*.deb"))
    subprocess.run(["dpkg-deb", "-x", str(deb), str(into / "root")], check=True)
    return into / "root/lib/modules" / kernel.release


@pytest.mark.parametrize(("kernel_name", "expected"), [("debian_6_1", ((1,), 1)), ("debian_6_12", ((1, 2), 2))])
def test_user_image_path_with_its_modules(kernel_name: str, expected: tuple[tuple[int, ...], int],
                                          request: pytest.FixtureRequest, tmp_path: Path) -> None:
    kernel: GuestKernel = request.getfixturevalue(kernel_name)
    modules = _unpacked_debian_modules(kernel, tmp_path)
    image = shutil.copy(kernel.image, tmp_path / "bzImage")
    spec = parse_spec(str(image), modules=modules)
    with open_session(spec, log_dir=tmp_path / "logs") as guest:
        assert guest.release == kernel.release and guest.kernel.image == tmp_path / "bzImage"
        assert guest.channel is Channel.VIRTIO_SERIAL and not str(guest.kernel.module_files["kvm"]).startswith(
            str(kernel.image.parent))  # the user's tree, not the cache
        outcome = guest.engine().prepare(ALIASED).deliver(TO_ID_1)
        assert (outcome.receivers, outcome.result) == expected


def test_serial_channel_when_virtio_console_is_unknown(debian_6_12: GuestKernel, tmp_path: Path) -> None:
    """The cache's flat module directory has no modules.builtin, so virtio_console (built into 6.12) is unknown."""
    kernel = fetch(parse_spec(str(debian_6_12.image), modules=debian_6_12.image.parent / "modules"))
    assert kernel.virtio_console is None
    with GuestSession(kernel, log_dir=tmp_path) as guest:
        assert guest.channel is Channel.SERIAL
        outcome = guest.engine().prepare(ALIASED).deliver(TO_ID_1)
        assert (outcome.receivers, outcome.result) == ((1, 2), 2)


def test_kernel_without_kvm_is_a_clear_error(debian_6_12: GuestKernel, tmp_path: Path) -> None:
    modules = tmp_path / "modules"
    modules.mkdir()
    for name, path in debian_6_12.module_files.items():
        if not name.startswith(("kvm", "irqbypass", "ccp")):
            shutil.copy(path, modules / path.name)
    with pytest.raises(GuestKvmMissing) as caught:
        open_session(str(debian_6_12.image), modules=modules, log_dir=tmp_path / "logs")
    message = str(caught.value)
    assert "/dev/kvm" in message and str(tmp_path / "logs") in message and "\n" not in message


def test_broken_image_is_a_clear_error(tmp_path: Path) -> None:
    broken = tmp_path / "bzImage"
    broken.write_bytes(b"MZ" + bytes(8192))
    with pytest.raises(KernelImageError) as caught:
        open_session(str(broken), log_dir=tmp_path)
    assert str(broken) in str(caught.value) and "not an x86 bzImage" in str(caught.value)


def test_boot_timeout_names_the_log(debian_6_1: GuestKernel, tmp_path: Path) -> None:
    with pytest.raises(GuestBootTimeout) as caught:
        GuestSession(debian_6_1, log_dir=tmp_path, boot_timeout=2.0)
    assert "2 s" in str(caught.value) and str(tmp_path) in str(caught.value)


def test_panic_is_reported_with_its_line(debian_6_1: GuestKernel, tmp_path: Path) -> None:
    # A missing rdinit makes the kernel fall back to mounting a root device, which does not exist: panic.
    with pytest.raises(GuestPanic) as caught:
        GuestSession(debian_6_1, log_dir=tmp_path, kernel_args="rdinit=/absent")
    assert "Kernel panic - not syncing" in str(caught.value) and str(tmp_path) in str(caught.value)
