"""Campaign plans: the keys as data, the cross-key rules, paths against the plan's directory, and
every bad plan as one line naming the place (exit 2 from the command)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import jsonschema
import pytest

from apicmap.errors import InputError
from apicmap.files.keys import schema_text
from apicmap.files.plan import HOST, JobKind, load_plan, plan_schema

ROOT = Path(__file__).resolve().parents[2]


def _plan(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "plan.toml"
    path.write_text(text)
    return path


def test_a_plan_loads_with_defaults_and_paths_against_its_directory(tmp_path: Path) -> None:
    (tmp_path / "cases").mkdir()
    (tmp_path / "vm.toml").write_text("[vm]\nvcpus = 2\n")
    plan = load_plan(_plan(tmp_path, """
[campaign]
name = "nightly"
database = "shared-db"

[[job]]
kind = "fuzz"

[[job]]
kind = "fuzz"
profiles = "kvm, qemu@7.2"
model = "6.1"

[[job]]
kind = "conformance"
paths = ["cases"]

[[job]]
kind = "sweep"
scenario = "vm.toml"
"""))
    assert plan.kernels == (HOST,) and plan.seeds == (0,) and plan.seconds == 60 and plan.retries == 2
    assert plan.database == str(tmp_path / "shared-db")
    fuzz, profiles, conformance, sweep = plan.jobs
    assert fuzz.kind is JobKind.FUZZ and fuzz.against == "kvm" and fuzz.needs_kernel
    assert profiles.profiles == ("kvm", "qemu@7.2") and profiles.model == "6.1" and not profiles.needs_kernel
    assert conformance.paths == (str(tmp_path / "cases"),)
    assert sweep.scenario == str(tmp_path / "vm.toml") and sweep.needs_kernel


def test_the_digest_follows_the_meaning_not_the_formatting(tmp_path: Path) -> None:
    a = load_plan(_plan(tmp_path, '[campaign]\nname = "x"\nseeds = [1, 2]\n[[job]]\nkind = "fuzz"\n'))
    b = load_plan(_plan(tmp_path, '# same\n[campaign]\nseeds = [1,2]\nname = "x"\n\n[[job]]\nkind="fuzz"\n'))
    c = load_plan(_plan(tmp_path, '[campaign]\nname = "x"\nseeds = [1, 3]\n[[job]]\nkind = "fuzz"\n'))
    assert a.digest == b.digest != c.digest


@pytest.mark.parametrize(("text", "where", "allowed"), [
    ('[campaign]\nname = "x"\n', "[[job]]", "[[job]]"),
    ('[campaign]\nname = "x"\n[[job]]\nkind = "fuzz"\n[extra]\n', "extra", "[campaign]"),
    ('[campaign]\n[[job]]\nkind = "fuzz"\n', "[campaign] name", "text"),
    ('[campaign]\nname = "a b"\n[[job]]\nkind = "fuzz"\n', "[campaign] name", "text"),
    ('[campaign]\nname = "x"\nseeds = []\n[[job]]\nkind = "fuzz"\n', "[campaign] seeds", "non-empty list"),
    ('[campaign]\nname = "x"\nseconds = 0\n[[job]]\nkind = "fuzz"\n', "[campaign] seconds", "1..604800"),
    ('[campaign]\nname = "x"\nkernels = ["debian:x"]\n[[job]]\nkind = "fuzz"\n', "kernels[0]", "debian:6.1"),
    ('[campaign]\nname = "x"\nkernels = ["nope/bzImage"]\n[[job]]\nkind = "fuzz"\n', "kernels[0]", "host"),
    ('[campaign]\nname = "x"\n[[job]]\nkind = "bake"\n', "[[job]][0] kind", '"fuzz"'),
    ('[campaign]\nname = "x"\n[[job]]\nkind = "fuzz"\npaths = ["a"]\n', "[[job]][0] paths", 'kind = "conformance"'),
    ('[campaign]\nname = "x"\n[[job]]\nkind = "fuzz"\nagainst = "arch"\nprofiles = "kvm,qemu"\n',
     "[[job]][0] profiles", "one of against, profiles"),
    ('[campaign]\nname = "x"\n[[job]]\nkind = "fuzz"\nprofiles = "kvm"\n', "[[job]][0] profiles", "two names"),
    ('[campaign]\nname = "x"\n[[job]]\nkind = "fuzz"\nprofiles = "kvm,nope"\n', "[[job]][0] profiles", "qemu"),
    ('[campaign]\nname = "x"\n[[job]]\nkind = "sweep"\n', "[[job]][0] scenario", "text"),
    ('[campaign]\nname = "x"\n[[job]]\nkind = "sweep"\nscenario = "gone.toml"\n', "[[job]][0] scenario",
     "relative to the plan"),
    ('[campaign]\nname = "x"\n[[job]]\nkind = "fuzz"\nmodel = "2.6"\n', "[[job]][0] model", ""),
])
def test_bad_plans_name_the_place_and_the_allowed_values(tmp_path: Path, text: str, where: str,
                                                         allowed: str) -> None:
    with pytest.raises(InputError) as caught:
        load_plan(_plan(tmp_path, text))
    assert where in caught.value.where
    assert allowed in (caught.value.allowed or "") + caught.value.problem


def test_a_random_file_named_as_a_kernel_is_refused_at_load(tmp_path: Path) -> None:
    (tmp_path / "bzImage").write_bytes(bytes(4096))
    with pytest.raises(InputError) as caught:
        load_plan(_plan(tmp_path, '[campaign]\nname = "x"\nkernels = ["bzImage"]\n[[job]]\nkind = "fuzz"\n'))
    assert "kernels[0]" in caught.value.where and "not an x86 bzImage" in caught.value.problem


def test_the_checked_in_schema_is_the_generated_one_and_accepts_the_readme_plan() -> None:
    path = ROOT / "src/apicmap/files/schema/plan.schema.json"
    assert path.read_text() == schema_text(plan_schema())
    import tomllib

    plan = tomllib.loads((ROOT / "plans/nightly.toml").read_text())
    jsonschema.validate(plan, json.loads(path.read_text()))
    load_plan(ROOT / "plans/nightly.toml")


@pytest.mark.parametrize("arguments", [
    ["missing.toml"],
    ["PLAN", "--workers", "0"],
    ["PLAN", "--scheduler", "somewhere"],
    ["PLAN", "--database", "ftp://host/db"],
    ["PLAN", "--out", "/proc/version/sub"],
])
def test_the_command_refuses_bad_input_on_one_line(tmp_path: Path, arguments: list[str]) -> None:
    plan = _plan(tmp_path, '[campaign]\nname = "x"\n[[job]]\nkind = "fuzz"\nprofiles = "kvm,qemu"\n')
    argv = [str(plan) if a == "PLAN" else a for a in arguments]
    if "--out" not in argv:
        argv += ["--out", str(tmp_path / "out")]
    proc = subprocess.run([sys.executable, "-m", "apicmap", "campaign", *argv], capture_output=True, text=True,
                          cwd=tmp_path, timeout=60)
    assert proc.returncode == 2, proc.stderr
    assert proc.stderr.count("\n") == 1 and "Traceback" not in proc.stderr
    assert not (tmp_path / "out" / "shards.jsonl").exists()
