"""Speed of real-kernel sessions: ``python -m apicmap.kernels.measure debian:6.1 debian:6.12``.

Per kernel: seconds from the start of ``open_session`` (cached kernel) to the first ``deliver``
result, the boot alone (QEMU start to the agent's hello), and interrupts per second through
``deliver_many`` (one round trip per batch) and through ``deliver`` (one round trip each). For
comparison, the local ``kvm`` engine on this host's own /dev/kvm, one ``deliver`` at a time.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass

from apicmap.domain.message import MsiInjection
from apicmap.domain.vm import VmState
from apicmap.engines import make_engine
from apicmap.errors import ApicmapError
from apicmap.kernels.initramfs import MARK_AGENT_START
from apicmap.kernels.remote import open_session

VM = VmState.simple(4)


def injections(count: int) -> list[MsiInjection]:
    """Fixed, physical, edge MSIs to each of the 4 vCPUs in turn, with varying vectors."""
    return [MsiInjection(0xFEE00000 | ((i % 4) << 12), 0, 0x40 + (i % 64)) for i in range(count)]


@dataclass(frozen=True, slots=True)
class GuestFigures:
    spec: str
    release: str
    acceleration: str
    init_uptime_seconds: float | None  # guest uptime when /init starts the agent (kernel boot + modules + mounts)
    ready_seconds: float  # QEMU start to the agent's "ready" (adds Python's start over 9p)
    boot_seconds: float  # QEMU start to the hello answer
    first_answer_seconds: float  # open_session() call to the first deliver result
    batch_per_second: float
    single_per_second: float


def measure_guest(spec: str, count: int, singles: int) -> GuestFigures:
    start = time.monotonic()
    with open_session(spec) as session:
        prepared = session.engine().prepare(VM)
        prepared.deliver(injections(1)[0])
        first = time.monotonic() - start
        batch = injections(count)
        began = time.monotonic()
        prepared.deliver_many(batch)
        batch_rate = count / (time.monotonic() - began)
        began = time.monotonic()
        for injection in batch[:singles]:
            prepared.deliver(injection)
        single_rate = singles / (time.monotonic() - began)
        uptime = re.search(re.escape(MARK_AGENT_START) + r" at uptime ([0-9.]+)", session.log_path.read_text())
        return GuestFigures(spec, session.release, session.choice.acceleration.value,
                            float(uptime.group(1)) if uptime else None, round(session.ready_seconds, 2),
                            round(session.boot_seconds, 2), round(first, 2), round(batch_rate), round(single_rate))


def measure_local(count: int) -> float:
    prepared = make_engine("kvm").prepare(VM)
    try:
        batch = injections(count)
        began = time.monotonic()
        for injection in batch:
            prepared.deliver(injection)
        return round(count / (time.monotonic() - began))
    finally:
        prepared.close()


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m apicmap.kernels.measure")
    parser.add_argument("specs", nargs="*", default=["debian:6.1", "debian:6.12"])
    parser.add_argument("--count", type=int, default=5000, help="interrupts per batch figure")
    parser.add_argument("--singles", type=int, default=500, help="interrupts for the one-round-trip-each figure")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)
    try:
        guests = [measure_guest(spec, args.count, args.singles) for spec in args.specs]
        try:
            local: float | str = measure_local(args.count)
        except ApicmapError as err:
            local = f"unavailable: {err}"
    except ApicmapError as err:
        print(f"apicmap: {err}", file=sys.stderr)
        return 2
    if args.json:
        print(json.dumps({"guests": [asdict(g) for g in guests], "local_kvm_per_second": local}, indent=1))
        return 0
    for g in guests:
        print(f"{g.release} ({g.acceleration}): /init at {g.init_uptime_seconds} s uptime, agent ready "
              f"{g.ready_seconds} s, hello {g.boot_seconds} s, first answer {g.first_answer_seconds} s, "
              f"deliver_many {g.batch_per_second}/s, deliver {g.single_per_second}/s")
    print(f"local kvm engine (this host): {local}/s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
