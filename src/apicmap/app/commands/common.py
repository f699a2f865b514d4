"""What the command modules share: the help formatter, the parent parsers for shared options,
reading a scenario (``-`` is stdin), the kernel-choice note, and output paths checked up front.

A shared option is declared once here, in ``Parents``, and a command takes it by listing that
parent in ``add_command(..., parents=[parents.json, parents.kernel])``.
"""

from __future__ import annotations

import argparse
import json
import sys
import tomllib
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, NoReturn

from apicmap.app.runner import KvmTarget
from apicmap.domain.engine import ENGINE_NAMES
from apicmap.errors import InputError
from apicmap.files.scenario import Scenario, load_scenario, parse_scenario
from apicmap.kernels.cli import add_on_option, booted_engine, kvm_engine_for
from apicmap.kernels.remote import RemoteKvmEngine
from apicmap.model.policy import NEWEST, VARIANTS, KernelPolicy, parse_release, policy_for_release

Handler = Callable[[argparse.Namespace], int]
STDIN = "-"
# The newest release the model has been compared with (the kvm engine on this project's machine,
# Linux 6.18: README "The real kernel"). A newer --kernel is modelled as the newest variant, with a warning.
CHECKED_UP_TO = (6, 18)


class Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        # One line, exit 2, no usage dump (DEVELOPERS.md: bad input).
        commands = [a for a in self._actions if isinstance(a, argparse._SubParsersAction)]
        if commands and "required" in message:
            message += f" (allowed: {', '.join(commands[0].choices)})"
        sys.stderr.write(f"apicmap: error: {self.prog}: {message}\n")
        raise SystemExit(2)


class HelpFormatter(argparse.HelpFormatter):
    """Like ``ArgumentDefaultsHelpFormatter``, but only meaningful defaults are shown, as a user writes
    them (no ``(default: None)`` or ``(default: False)``)."""

    def _get_help_string(self, action: argparse.Action) -> str | None:
        text = action.help or ""
        default = action.default
        if "%(default)" in text or default in (None, False, argparse.SUPPRESS) or not action.option_strings:
            return text
        return f"{text} (default: {default})"


def kernel_arg(text: str) -> str:
    """``--kernel`` is checked while parsing, so a bad release is argparse's one-line error."""
    try:
        policy_for_release(text)
    except InputError as err:
        raise argparse.ArgumentTypeError(f"{err.problem} (allowed: {err.allowed or _kernels()})") from None
    return text


def engines_arg(text: str) -> tuple[str, ...]:
    names = tuple(n.strip() for n in text.split(",") if n.strip())
    bad = [n for n in names if n not in ENGINE_NAMES]
    if bad or not names:
        problem = f"unknown engine {bad[0]!r}" if bad else "no engine given"
        raise argparse.ArgumentTypeError(f"{problem} (allowed: a comma-separated list of {', '.join(ENGINE_NAMES)})")
    return names


def positive_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = -1.0
    if not value > 0:
        raise argparse.ArgumentTypeError(f"bad value {text!r} (allowed: a positive number of seconds)")
    return value


def _kernels() -> str:
    return ", ".join(p.releases for p in VARIANTS)


@dataclass(frozen=True, slots=True)
class Parents:
    """Parent parsers, one per shared option (argparse ``parents=``)."""

    json: argparse.ArgumentParser
    kernel: argparse.ArgumentParser
    engines: argparse.ArgumentParser
    scenario: argparse.ArgumentParser
    on: argparse.ArgumentParser


def build_parents() -> Parents:
    as_json = argparse.ArgumentParser(add_help=False)
    as_json.add_argument("--json", action="store_true", help="print JSON on stdout instead of text")
    kernel = argparse.ArgumentParser(add_help=False)
    kernel.add_argument("--kernel", metavar="RELEASE", type=kernel_arg,
                        help=f"KVM release the model follows (variants: {_kernels()}); default: the scenario's "
                             "[vm] kernel, else the newest")
    engines = argparse.ArgumentParser(add_help=False)
    engines.add_argument("--engines", metavar="LIST", type=engines_arg, default="arch,model,kvm",
                         help=f"comma-separated engines out of {', '.join(ENGINE_NAMES)} (kvm is skipped with a "
                              "note where /dev/kvm is unusable)")
    scenario = argparse.ArgumentParser(add_help=False)
    scenario.add_argument("file", help="scenario file (TOML), or - to read it from stdin")
    on = argparse.ArgumentParser(add_help=False)
    add_on_option(on)
    return Parents(as_json, kernel, engines, scenario, on)


def add_command(subparsers: Any, name: str, summary: str, parents: Sequence[argparse.ArgumentParser],
                handler: Handler, description: str | None = None) -> argparse.ArgumentParser:
    parser: argparse.ArgumentParser = subparsers.add_parser(
        name, help=summary, description=description or summary, parents=list(parents),
        formatter_class=HelpFormatter)
    parser.set_defaults(handler=handler)
    return parser


# --- reading scenarios --------------------------------------------------------------------------

_stdin_text: str | None = None


def read_stdin() -> str:
    """stdin, read once (``-`` may be named by one argument only)."""
    global _stdin_text
    if _stdin_text is None:
        _stdin_text = sys.stdin.read()
    return _stdin_text


def read_document(path: str) -> tuple[dict[str, Any], str]:
    """The TOML table in ``path`` (``-``: stdin) and the name to report it under."""
    from apicmap.files.spec import read_toml

    if path != STDIN:
        return read_toml(path), path
    try:
        return tomllib.loads(read_stdin()), "<stdin>"
    except tomllib.TOMLDecodeError as err:
        raise InputError("<stdin>", f"not valid TOML: {err}") from None


def read_scenario(path: str) -> Scenario:
    if path != STDIN:
        return load_scenario(path)
    document, where = read_document(path)
    return parse_scenario(document, where)


def one_stdin(paths: Sequence[str]) -> None:
    if list(paths).count(STDIN) > 1:
        raise InputError("file", "stdin (-) named more than once", "- at most once")


# --- the kernel the model follows -----------------------------------------------------------------


def kernel_choice(asked: str | None, scenario: Scenario | None, *, quiet: bool = False) -> dict[str, object]:
    """Which release and variant the model follows, for ``--json`` output; with ``--kernel`` given, a
    note on stderr saying so, and a warning past the newest release modelled (an unknown release is
    modelled as the newest variant, silently otherwise)."""
    text = asked if asked is not None else (scenario.kernel if scenario is not None else None)
    policy: KernelPolicy = policy_for_release(text)
    choice: dict[str, object] = {"asked": text, "variant": policy.key, "releases": policy.releases}
    warning = None
    if text is not None and text.strip().lower() not in ("latest", "newest", "mainline") and policy is NEWEST:
        release = tuple(parse_release(text)[:2])
        if release > CHECKED_UP_TO:
            warning = (f"KVM {release[0]}.{release[1]} is newer than the newest release modelled "
                       f"({CHECKED_UP_TO[0]}.{CHECKED_UP_TO[1]}); the model assumes it routes like that one")
    choice["warning"] = warning
    if asked is not None and not quiet:
        sys.stderr.write(f"apicmap: note: --kernel {asked}: the model follows variant {policy.key} "
                         f"(KVM {policy.releases})\n")
        if warning:
            sys.stderr.write(f"apicmap: warning: {warning}\n")
    return choice


# --- the kernel the kvm engine runs on (--on) ---------------------------------------------------


@contextmanager
def kvm_target_for(args: argparse.Namespace) -> Iterator[KvmTarget | None]:
    """With ``--on KERNEL``: the kvm engine inside that booted kernel (one boot for the whole command)
    and the kernel's upstream release (from its /proc/version, so stable backports count). Without:
    None, and commands use this machine's kernel."""
    if not getattr(args, "on", None):
        yield None
        return
    with kvm_engine_for(args) as engine:
        yield _target(engine, args.on)


@contextmanager
def booted_target(kernel: str, *, boot_timeout: float, where: str) -> Iterator[KvmTarget]:
    """The kvm engine inside ``kernel`` (any ``--on`` form) and its release, for the block."""
    with booted_engine(kernel, boot_timeout=boot_timeout, where=where) as engine:
        yield _target(engine, kernel)


def _target(engine: object, kernel: str) -> KvmTarget:
    assert isinstance(engine, RemoteKvmEngine)
    sys.stderr.write(f"apicmap: note: --on {kernel}: KVM of Linux {engine.upstream_release}\n")
    return KvmTarget(engine, engine.upstream_release, engine.host_report)


# --- output -------------------------------------------------------------------------------------


def check_output(path: str | None, where: str) -> None:
    """Refuse an unwritable output path before any work starts."""
    if path is not None:
        from apicmap.files.output import check_output_path

        check_output_path(path, where)


def write_output(path: str, text: str) -> None:
    from apicmap.files.output import atomic_write_text

    atomic_write_text(path, text)


def print_json(payload: object) -> None:
    print(json.dumps(payload, indent=2))
