#!/usr/bin/env python3
"""Write the conformance corpus: host-reproducible scenarios of peer-suites.md as scenario files.

Each file's ``expect`` is the peer suite's own expectation (or the KVM expectation the
reference records as verified on the kernel), never the output of apicmap's model.
Run from the repository root: python3 corpus/generate.py
"""

from __future__ import annotations

from pathlib import Path

OUT = Path(__file__).resolve().parent
FLAG_SETS = {"": [], "-32bit": ["use_32bit_ids"], "-32bit-nobq": ["use_32bit_ids", "disable_broadcast_quirk"]}


def vm(header: str, vcpus: str, flags: list[str], description: str) -> str:
    flag_text = ", ".join(f'"{f}"' for f in flags)
    return f'# {header}\n[vm]\ndescription = "{description}"\nx2apic_api = [{flag_text}]\n{vcpus}'


def interrupt(name: str, expect: list[int], **fields: object) -> str:
    lines = ["", "[[interrupt]]", f'name = "{name}"']
    for key, value in fields.items():
        if isinstance(value, bool):
            lines.append(f"{key} = {'true' if value else 'false'}")
        elif isinstance(value, str):
            lines.append(f'{key} = "{value}"')
        elif key in ("dest", "vector", "icr", "rte", "value"):
            lines.append(f"{key} = {value:#x}")
        else:
            lines.append(f"{key} = {value}")
    lines.append(f"expect = {expect}")
    return "\n".join(lines) + "\n"


def write(name: str, text: str) -> None:
    (OUT / name).write_text(text)


def xapic_vcpus(specs: list[str]) -> str:
    return "".join(f"\n[[vcpu]]\nvcpu_id = {i}\n{s}" for i, s in enumerate(specs))


def x2apic_vcpus(n: int) -> str:
    return "".join(f'\n[[vcpu]]\nvcpu_id = {i}\nmode = "x2apic"\n' for i in range(n))


def main() -> None:
    for suffix, flags in FLAG_SETS.items():
        # KUT-10: logical flat, single target, exhaustive over "superfluous" bits (dest 0xFF excluded).
        for i in range(8):
            body = vm("KUT-10 (kvm-unit-tests x86/apic.c): logical flat, single target",
                      xapic_vcpus(["ldr = 0\n", f"ldr = {1 << i:#x}\n"]), flags, f"KUT-10 flat bit {i}")
            for k in range(0xFF):
                dest = (1 << i) | k
                if k & (1 << i) or dest == 0xFF:
                    continue
                body += interrupt(f"logical {dest:#04x}", [1], dest=dest, dest_mode="logical", vector=0xF1)
            write(f"kut10-flat-bit{i}{suffix}.toml", body)
        # KUT-11: logical cluster, single target (vCPU0 flat with LDR 0: mixed DFR on purpose).
        for c in range(15):
            body = vm("KUT-11: logical cluster, single target; vCPU0 flat LDR 0",
                      xapic_vcpus(["ldr = 0\n", f'dfr = "cluster"\nldr = {(c << 4) | 1:#x}\n']),
                      flags, f"KUT-11 cluster {c}")
            # KUT-11 also varies the member bit i; one VM per (c, i) would be 60 files per flag set,
            # so member bit 0 is fixed here and the sweep covers every superfluous k.
            for k in range(0, 16, 2):
                dest = (c << 4) | 1 | k
                body += interrupt(f"logical {dest:#04x}", [1], dest=dest, dest_mode="logical", vector=0xF1)
            write(f"kut11-cluster{c}{suffix}.toml", body)
        # KUT-12: logical flat, two targets; (a) distinct bits, (b) both with the same two bits.
        body = vm("KUT-12: logical flat, two targets", xapic_vcpus(["ldr = 0x01\n", "ldr = 0x40\n"]), flags,
                  "KUT-12a")
        for k in (0, 0x02, 0x3C, 0x80):
            body += interrupt(f"logical {0x41 | k:#04x}", [0, 1], dest=0x41 | k, dest_mode="logical", vector=0xF1)
        write(f"kut12a-flat-two{suffix}.toml", body)
        body = vm("KUT-12b: both vCPUs LDR 0x41 (map disabled on 6.3+)",
                  xapic_vcpus(["ldr = 0x41\n", "ldr = 0x41\n"]), flags, "KUT-12b")
        for k in (0, 0x02, 0x3C, 0x80):
            body += interrupt(f"logical {0x41 | k:#04x}", [0, 1], dest=0x41 | k, dest_mode="logical", vector=0xF1)
        write(f"kut12b-flat-shared{suffix}.toml", body)
        # KUT-13: cluster, two targets.
        body = vm("KUT-13: logical cluster, two targets",
                  xapic_vcpus(['dfr = "cluster"\nldr = 0x31\n', 'dfr = "cluster"\nldr = 0x34\n']), flags, "KUT-13a")
        for k in (0, 0x2, 0x8):
            body += interrupt(f"logical {0x35 | k:#04x}", [0, 1], dest=0x35 | k, dest_mode="logical", vector=0xF1)
        write(f"kut13-cluster-two{suffix}.toml", body)
        # KUT-14: aliased xAPIC physical IDs. Architecture and KVM without 32-bit IDs: 2.
        both = "use_32bit_ids" not in flags
        for alias in (0, 5, 0x7F, 0xFE):
            body = vm("KUT-14: two xAPIC vCPUs share an xAPIC ID (docs/routing.md#current-algorithm-v63-and-later)",
                      xapic_vcpus([f"apic_id = {alias:#x}\n", f"apic_id = {alias:#x}\n"]), flags,
                      f"KUT-14 alias {alias:#x}")
            body += interrupt(f"physical {alias:#x}", [0, 1] if both else [0], dest=alias, vector=0xF1)
            body += interrupt("physical 0xff is a broadcast either way", [0, 1], dest=0xFF, vector=0xF2)
            write(f"kut14-alias{alias:02x}{suffix}.toml", body)
        # KUT-08/09/07: broadcasts and shorthands from an x2APIC source.
        body = vm("KUT-07/08/09: x2APIC broadcasts and shorthands", x2apic_vcpus(3), flags, "KUT-08")
        body += interrupt("KUT-08 physical 0xFFFFFFFF from vCPU 0", [0, 1, 2], via="ipi", source=0,
                          dest=0xFFFFFFFF, vector=0xCF)
        body += interrupt("KUT-09 shorthand all", [0, 1, 2], via="ipi", source=0, shorthand="all", vector=0xCF)
        body += interrupt("KUT-07 shorthand self from vCPU 1 (dest field 2 ignored)", [1], via="ipi", source=1,
                          shorthand="self", dest=2, vector=0xF1)
        body += interrupt("all-but-self from vCPU 0", [1, 2], via="ipi", source=0, shorthand="all-but-self",
                          vector=0xCE)
        body += interrupt("SELF_IPI 0x31 (KUT-22)", [2], via="self-ipi", source=2, vector=0x31)
        write(f"kut08-x2apic-broadcast{suffix}.toml", body)
        body = vm("KUT-08: xAPIC physical broadcast by MSI", xapic_vcpus(["", "", ""]), flags, "KUT-08 xapic")
        body += interrupt("MSI physical 0xFF", [0, 1, 2], dest=0xFF, vector=0xCF)
        write(f"kut08-xapic-broadcast{suffix}.toml", body)
        # KUT-32 / KUT-24 / KUT-31: IOAPIC on x2APIC vCPUs.
        body = vm("KUT-24/31/32 (x86/ioapic.c): in-kernel IOAPIC, 4 x2APIC vCPUs", x2apic_vcpus(4), flags,
                  "KUT ioapic")
        body += interrupt("KUT-24 edge, physical 0", [0], via="ioapic", pin=14, dest=0, vector=0x76)
        body += interrupt("KUT-31 level, physical 1", [1], via="ioapic", pin=14, dest=1, vector=0x85, trigger="level")
        body += interrupt("KUT-32 level, logical 0x0D", [0, 2, 3], via="ioapic", pin=14, dest=0x0D,
                          dest_mode="logical", vector=0x86, trigger="level")
        body += interrupt("KUT-32 via an 8-bit logical MSI", [0, 2, 3], dest=0x0D, dest_mode="logical", vector=0x86)
        write(f"kut-ioapic{suffix}.toml", body)
        # KST-02: IPIs that reach nobody.
        body = vm("KST-02 (xapic_state_test): IPIs to nobody on a 1-vCPU VM", x2apic_vcpus(1), flags, "KST-02")
        for mode in ("fixed", "lowest", "nmi"):
            body += interrupt(f"{mode} to physical 5", [], via="ipi", source=0, dest=5, delivery=mode, vector=0xF0)
        body += interrupt("all-but-self alone", [], via="ipi", source=0, shorthand="all-but-self", vector=0xF0)
        write(f"kst02-nobody{suffix}.toml", body)
        # CVM-01: match_dest truth table (xAPIC ID 254, LDR 0xC9 flat).
        body = vm("CVM-01 (crosvm apic.rs): match truth table", "\n[[vcpu]]\nvcpu_id = 0\n"
                  "\n[[vcpu]]\nvcpu_id = 1\napic_id = 0xFE\nldr = 0xC9\n", flags, "CVM-01")
        body += interrupt("physical 254", [1], dest=0xFE, vector=0x40)
        body += interrupt("physical 77", [], dest=77, vector=0x40)
        body += interrupt("logical 0x48", [1], dest=0x48, dest_mode="logical", vector=0x40)
        body += interrupt("logical 0x12", [], dest=0x12, dest_mode="logical", vector=0x40)
        write(f"cvm01-match{suffix}.toml", body)
        # CVM-04: acceptance per delivery mode on one vCPU.
        body = vm("CVM-04: acceptance per delivery mode", xapic_vcpus([""]), flags, "CVM-04")
        body += interrupt("fixed level", [0], dest=0, vector=20, trigger="level")
        body += interrupt("fixed edge", [0], dest=0, vector=21)
        body += interrupt("lowest level", [0], dest=0, vector=0xFF, delivery="lowest", trigger="level")
        body += interrupt("INIT", [0], dest=0, delivery="init")
        body += interrupt("NMI", [0], dest=0, delivery="nmi")
        body += interrupt("vector 5 is accepted by KVM (no illegal-vector check)", [0], dest=0, vector=5)
        write(f"cvm04-accept{suffix}.toml", body)
        # CVM-12: lowest priority; KVM ignores TPR (vector hashing).
        body = vm("CVM-12: lowest priority ignores TPR under KVM", xapic_vcpus(
            ["ldr = 0x01\ntpr = 0xF0\n", "ldr = 0x02\n"]), flags, "CVM-12")
        body += interrupt("lowest 0x40 to logical 0x03: 0x40 mod 2 = 0 -> vCPU 0 despite TPR 0xF0", [0],
                          dest=0x03, dest_mode="logical", delivery="lowest", vector=0x40)
        body += interrupt("lowest 111 -> second member", [1], dest=0x03, dest_mode="logical", delivery="lowest",
                          vector=111)
        body += interrupt("fixed with RH=1 is lowest priority: one target", [1], dest=0x03, dest_mode="logical",
                          vector=0x41, redirection_hint=True)
        body += interrupt("fixed with RH=0 reaches both", [0, 1], dest=0x03, dest_mode="logical", vector=0x41)
        write(f"cvm12-lowest{suffix}.toml", body)
    ioapic_remote_irr()


def rte(vector: int, delivery: int, dest: int, *, level: bool, remote_irr: bool) -> int:
    """A raw redirection entry (82093AA datasheet, I/O redirection table): bit 14 Remote IRR, 15 trigger."""
    return vector | delivery << 8 | remote_irr << 14 | level << 15 | dest << 56


def ioapic_remote_irr() -> None:
    """A level-triggered entry with Remote IRR set waits for its EOI and sends nothing (82093AA datasheet,
    bit 14; KVM's ioapic_service() in arch/x86/kvm/ioapic.c returns before delivering); an edge-triggered
    entry ignores the bit. Checked on the kernel by the kvm engine (tests/kvm/test_engine.py)."""
    body = vm("IOAPIC Remote IRR (82093AA bit 14; KVM ioapic_service())", x2apic_vcpus(2), [],
              "IOAPIC Remote IRR")
    modes = {"fixed": 0, "lowest": 1, "smi": 2, "remrd": 3, "nmi": 4, "init": 5, "sipi": 6, "extint": 7}
    for pin in (8, 16):  # pin 8 is the RTC pin, which KVM special-cases elsewhere
        for name, code in modes.items():
            body += interrupt(f"pin {pin} level, Remote IRR set, {name}: nothing is sent", [], via="ioapic", pin=pin,
                              rte=rte(0x45, code, 1, level=True, remote_irr=True), expect_arch=[])
    for pin in (8, 16):
        body += interrupt(f"pin {pin} edge, Remote IRR set: delivered", [1], via="ioapic", pin=pin,
                          rte=rte(0x45, 0, 1, level=False, remote_irr=True), expect_arch=[1])
        body += interrupt(f"pin {pin} level, Remote IRR clear: delivered", [1], via="ioapic", pin=pin,
                          rte=rte(0x45, 0, 1, level=True, remote_irr=False), expect_arch=[1])
    write("ioapic-remote-irr.toml", body)


if __name__ == "__main__":
    main()
