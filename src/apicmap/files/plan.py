"""Campaign plans (``apicmap campaign PLAN.toml``): which kernels, which work, which seeds.

A plan is a ``[campaign]`` table and one ``[[job]]`` per kind of work. The keys are data (``PLAN``,
read by the declarative loader of ``files/spec.py`` and turned into ``files/schema/plan.schema.json``);
``load_plan`` adds the cross-key rules and resolves relative paths against the plan's directory.
docs/campaigns.md describes the file.
"""

from __future__ import annotations

import enum
import hashlib
import json
import re
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from apicmap.errors import InputError
from apicmap.files.spec import Key, Kind, Section, json_schema, read_toml, validate
from apicmap.kernels.errors import KernelImageError
from apicmap.kernels.source import ALLOWED_FORMS, SpecKind, parse_spec, read_bzimage_header
from apicmap.model.policy import policy_for_release

HOST = "host"  # this machine's own kernel (the kvm engine on /dev/kvm)
NAME_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$"
MAX_SECONDS = 7 * 24 * 3600


class JobKind(enum.Enum):
    FUZZ = "fuzz"  # the model against the kernel's KVM, the architecture, or one profile against another
    CONFORMANCE = "conformance"  # scenario files against the model and the kernel
    SWEEP = "sweep"  # every message of one scenario's VM against the model and the kernel


CAMPAIGN_KEYS = (
    Key(name="name", kind=Kind.TEXT, pattern=NAME_PATTERN, required=True,
        doc="names the campaign in the shared database and the reports (letters, digits, . _ -)"),
    Key(name="kernels", kind=Kind.TEXT_LIST, default=[HOST],
        doc=f'"{HOST}" (this machine\'s KVM) or a kernel to boot: {ALLOWED_FORMS}'),
    Key(name="seeds", kind=Kind.INT_LIST, low=0, high=2**32 - 1, decimal=True, default=[0],
        doc="one fuzz shard per seed (and kernel): the same seed draws the same inputs"),
    Key(name="seconds", kind=Kind.INT, low=1, high=MAX_SECONDS, decimal=True, default=60,
        doc="how long each fuzz shard fuzzes"),
    Key(name="retries", kind=Kind.INT, low=0, high=10, decimal=True, default=2,
        doc="how often a lost shard (dead worker, failed boot, kernel panic) is started again"),
    Key(name="database", kind=Kind.TEXT, default_doc="examples/ in the campaign's output directory",
        doc="the shared Hypothesis example database: a directory (on storage every worker sees) "
            "or redis://HOST:PORT/DB"),
    Key(name="boot_timeout", kind=Kind.INT, low=10, high=3600, decimal=True, default=300,
        doc="seconds a booted kernel may take to answer"),
)

JOB_KEYS = (
    Key(name="kind", kind=Kind.CHOICE, choices=tuple(k.value for k in JobKind), required=True,
        doc="what the job runs, once per kernel (fuzz: per kernel and seed)"),
    Key(name="against", kind=Kind.CHOICE, choices=("kvm", "arch"), default="kvm", only=("fuzz",),
        doc="what the model is compared with: the kernel's KVM, or the architecture (no kernel needed)"),
    Key(name="model", kind=Kind.TEXT, pattern=r"^v?[0-9]+\.[0-9]+(\.[0-9]+)?",
        default_doc="the kernel's own release (fuzz against arch, sweep on the host: the newest)",
        doc="the KVM release the model follows"),
    Key(name="profiles", kind=Kind.TEXT, only=("fuzz",),
        doc="instead of against: fuzz one hypervisor profile against another, e.g. \"kvm,qemu\" (no kernel needed)"),
    Key(name="paths", kind=Kind.TEXT_LIST, only=("conformance",), default_doc="the bundled corpus, examples, catalogue",
        doc="scenario files or directories"),
    Key(name="scenario", kind=Kind.TEXT, only=("sweep",), doc="the scenario whose VM is swept (required)"),
)

PLAN = (
    Section("campaign", CAMPAIGN_KEYS, doc="the campaign"),
    Section("job", JOB_KEYS, array=True, doc="one kind of work", discriminator="kind"),
)


@dataclass(frozen=True, slots=True, kw_only=True)
class Job:
    index: int
    kind: JobKind
    against: str = "kvm"  # fuzz: "kvm" or "arch"; "profiles" with ``profiles``
    model: str | None = None
    profiles: tuple[str, str] | None = None
    paths: tuple[str, ...] = ()
    scenario: str | None = None

    @property
    def needs_kernel(self) -> bool:
        """Whether the job runs once per kernel (it uses a KVM) or once per seed on its own."""
        return not (self.kind is JobKind.FUZZ and (self.profiles is not None or self.against == "arch"))

    @property
    def label(self) -> str:
        """What the job compares, as the reports name it."""
        if self.kind is JobKind.FUZZ and self.profiles is not None:
            return f"fuzz profiles {self.profiles[0]} vs {self.profiles[1]}"
        if self.kind is JobKind.FUZZ:
            return f"fuzz model vs {self.against}"
        if self.kind is JobKind.SWEEP:
            return f"sweep {Path(self.scenario or '').name}"
        return "conformance"


@dataclass(frozen=True, slots=True, kw_only=True)
class Plan:
    name: str
    kernels: tuple[str, ...]
    seeds: tuple[int, ...]
    seconds: int
    retries: int
    database: str | None
    boot_timeout: int
    jobs: tuple[Job, ...]
    digest: str  # of the plan's meaning (not its formatting): a directory holds one plan's shards

    def to_json(self) -> dict[str, object]:
        return {"name": self.name, "kernels": list(self.kernels), "seeds": list(self.seeds),
                "seconds": self.seconds, "retries": self.retries, "database": self.database,
                "boot_timeout": self.boot_timeout,
                "jobs": [{"kind": j.kind.value, "against": j.against, "model": j.model,
                          "profiles": list(j.profiles) if j.profiles else None, "paths": list(j.paths),
                          "scenario": j.scenario} for j in self.jobs]}


def load_plan(path: str | Path) -> Plan:
    where = str(path)
    data = read_toml(path)
    base = Path(path).resolve().parent
    for name in data:
        if name not in {s.name for s in PLAN}:
            raise InputError(f"{where} {name}", "unknown table", "[campaign], [[job]]")
    campaign = validate(data.get("campaign"), CAMPAIGN_KEYS, f"{where} [campaign]")
    jobs_data = data.get("job")
    if not isinstance(jobs_data, list) or not jobs_data:
        raise InputError(f"{where} [[job]]", "missing: a plan runs at least one job", "one or more [[job]] tables")
    kernels = tuple(_kernel(k, base, f"{where} [campaign] kernels[{i}]")
                    for i, k in enumerate(campaign.get("kernels")))
    if not kernels:
        raise InputError(f"{where} [campaign] kernels", "empty", f'"{HOST}" or kernels to boot')
    database = campaign.get("database")
    if database is not None and "://" not in database:
        database = str((base / database).resolve())
    jobs = tuple(_job(item, i, base, f"{where} [[job]][{i}]") for i, item in enumerate(jobs_data))
    plan = Plan(name=campaign.require("name"), kernels=kernels, seeds=tuple(campaign.get("seeds")),
                seconds=campaign.get("seconds"), retries=campaign.get("retries"), database=database,
                boot_timeout=campaign.get("boot_timeout"), jobs=jobs, digest="")
    digest = hashlib.sha256(json.dumps(plan.to_json(), sort_keys=True).encode()).hexdigest()[:16]
    return replace(plan, digest=digest)


def _kernel(text: str, base: Path, where: str) -> str:
    """A kernel as the shards use it: an image path made absolute (relative: to the plan's directory)."""
    if text == HOST:
        return text
    local = (base / text).expanduser()
    spec = parse_spec(str(local.resolve()) if local.exists() else text, where=where)
    if spec.kind is SpecKind.IMAGE_PATH:
        try:
            read_bzimage_header(Path(spec.text))
        except KernelImageError as err:
            raise InputError(where, str(err), f'"{HOST}" or {ALLOWED_FORMS}') from None
    return spec.text


def _job(value: Any, index: int, base: Path, where: str) -> Job:
    kind_text = value.get("kind") if isinstance(value, dict) else None
    table = validate(value, JOB_KEYS, where, discriminator="kind",
                     chosen=kind_text if isinstance(kind_text, str) else None)
    kind = JobKind(table.require("kind"))
    model = table.get("model")
    if model is not None:
        policy_for_release(model, where=table.at("model"))
    profiles = None
    if "profiles" in table:
        if "against" in table:
            raise InputError(table.at("profiles"), "goes instead of against, not with it", "one of against, profiles")
        names = [n.strip() for n in str(table.get("profiles")).split(",") if n.strip()]
        if len(names) != 2:
            raise InputError(table.at("profiles"), f"names {len(names)} profile(s)", 'two names, e.g. "kvm,qemu"')
        from apicmap.profiles.policy import profile_for

        for name in names:
            profile_for(name, table.at("profiles"))
        profiles = (names[0], names[1])
    paths: tuple[str, ...] = ()
    if "paths" in table:
        paths = tuple(_existing(base, p, f"{table.at('paths')}[{i}]") for i, p in enumerate(table.get("paths")))
    scenario = None
    if kind is JobKind.SWEEP:
        scenario = _existing(base, str(table.require("scenario")), table.at("scenario"))
    return Job(index=index, kind=kind, against=table.get("against") if profiles is None else "profiles",
               model=model, profiles=profiles, paths=paths, scenario=scenario)


def _existing(base: Path, text: str, where: str) -> str:
    path = (base / text).expanduser().resolve()
    if not path.exists():
        raise InputError(where, f"no such file or directory {text!r}", "a path relative to the plan's directory")
    return str(path)


def plan_schema() -> dict[str, Any]:
    return json_schema(PLAN, title="apicmap campaign plan", schema_id="https://apicmap.invalid/plan.schema.json",
                       description="Kernels, seeds and jobs of an apicmap campaign. See docs/campaigns.md.")


def shard_slug(text: str) -> str:
    """A shard or target name as a file name."""
    return re.sub(r"[^A-Za-z0-9._-]+", "-", text).strip("-")[:80]
