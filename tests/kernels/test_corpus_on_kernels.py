"""The whole conformance corpus, the examples and the catalogue on real older kernels.

Each file's interrupts go to the booted kernel's KVM (one batch per file) and to the model of
that kernel's own release (read from the guest's /proc/version, so Debian's stable backports
count); the two must agree on receivers, return value, rejection and effects. Sequence files
(``corpus/history/``) need a driver in the guest and are checked on the host kernel only.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from apicmap.domain.engine import deliver_each
from apicmap.domain.outcome import Outcome
from apicmap.errors import NotExpressible
from apicmap.files.scenario import load_scenario
from apicmap.files.sequence import is_sequence_file
from apicmap.kernels import GuestSession
from apicmap.model.engine import ModelEngine
from apicmap.model.policy import policy_for_release

ROOT = Path(__file__).resolve().parents[2]
FILES = sorted(p for d in ("corpus", "examples", "catalogue") for p in (ROOT / d).rglob("*.toml")
               if not is_sequence_file(p))

pytestmark = pytest.mark.guest


def _kernel_outcomes(session: GuestSession, path: Path) -> list[Outcome | None]:
    """The kernel's outcome per interrupt (None: not expressible on it), one round trip when possible."""
    scenario = load_scenario(path)
    injections = [case.injection for case in scenario.interrupts]
    with session.engine().prepare(scenario.vm) as prepared:
        return [None if isinstance(o, NotExpressible) else o for o in deliver_each(prepared, injections)]


def _disagreements(session: GuestSession) -> tuple[int, list[str]]:
    release = str(session.hello["host_report"]["upstream_release"])  # type: ignore[index]
    policy = policy_for_release(release)
    compared, problems = 0, []
    for path in FILES:
        scenario = load_scenario(path)
        with ModelEngine(policy).prepare(scenario.vm) as model:
            for case, kernel in zip(scenario.interrupts, _kernel_outcomes(session, path), strict=True):
                if kernel is None:
                    continue
                compared += 1
                ours = model.deliver(case.injection)
                if not ours.same_as(kernel):
                    problems.append(f"{path.relative_to(ROOT)} #{case.index} {case.name}: model "
                                    f"{list(ours.receivers)} r={ours.result} rejected={ours.rejected is not None} "
                                    f"vs kernel {list(kernel.receivers)} r={kernel.result} "
                                    f"rejected={kernel.rejected is not None}")
    return compared, problems


@pytest.mark.parametrize("guest_name", ["guest_6_1", "guest_6_12"])
def test_model_agrees_with_the_real_kernel_on_the_whole_corpus(guest_name: str,
                                                               request: pytest.FixtureRequest) -> None:
    session: GuestSession = request.getfixturevalue(guest_name)
    compared, problems = _disagreements(session)
    assert compared > 3000, f"only {compared} interrupts were expressible on {session.release}"
    assert not problems, "\n".join(problems[:20])
