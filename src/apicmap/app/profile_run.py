"""``run --profile`` and ``explain --profile``: a scenario under one hypervisor profile.

Expectations in scenario files (``expect``, ``expect_return``) describe KVM, so they are checked
only under the ``kvm`` profile; under any other profile every case reports ``n/a``.
"""

from __future__ import annotations

from apicmap.app.runner import CaseResult, Check, run_scenario
from apicmap.domain.engine import deliver_each
from apicmap.errors import NotExpressible
from apicmap.files.scenario import Scenario
from apicmap.profiles import profile_engine
from apicmap.profiles.policy import DEFAULT_PROFILE, KvmBasedPolicy, profile_for


def run_with_profile(scenario: Scenario, profile: str | None, kernel: str | None = None, *,
                     explain: bool = False) -> list[CaseResult]:
    """Judge every interrupt of ``scenario`` under ``profile`` (None: ``kvm``, i.e. the model)."""
    policy = profile_for(profile or DEFAULT_PROFILE)
    if isinstance(policy, KvmBasedPolicy) and policy.name == DEFAULT_PROFILE:
        return run_scenario(scenario, "model", policy.kernel or kernel, explain=explain)
    engine = profile_engine(policy, kernel if kernel is not None else scenario.kernel)
    why = f"expectations describe KVM; this is the {policy.key} profile"
    try:
        prepared = engine.prepare(scenario.vm)
    except NotExpressible as err:
        return [CaseResult(case, policy.key, None, str(err), Check.NOT_APPLICABLE, "not expressible")
                for case in scenario.interrupts]
    results: list[CaseResult] = []
    with prepared:
        outcomes = deliver_each(prepared, [case.injection for case in scenario.interrupts], explain=explain)
        for case, outcome in zip(scenario.interrupts, outcomes, strict=True):
            if isinstance(outcome, NotExpressible):
                results.append(CaseResult(case, policy.key, None, str(outcome), Check.NOT_APPLICABLE,
                                          "not expressible"))
                continue
            expected = case.expected_for("model")
            check = Check.NONE if expected is None and case.expect_return is None else Check.NOT_APPLICABLE
            results.append(CaseResult(case, policy.key, outcome, None, check, why if check is not Check.NONE else ""))
    engine.close()
    return results
