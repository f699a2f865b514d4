"""Which commits explain a difference between two KVM releases, by counterfactual.

Each behaviour field that differs between two policies is switched alone; the fields whose
switch changes the outcome (or, for a fuzzing finding, makes the model agree with the kernel)
are the cause, and their commits (``KernelPolicy.commits`` of the rows in between, and the
stable backports either side carries) are named.
"""

from __future__ import annotations

from collections.abc import Callable, Hashable
from dataclasses import dataclass

from apicmap.domain.message import Injection
from apicmap.domain.outcome import Outcome
from apicmap.domain.vm import VmState
from apicmap.model.engine import ModelEngine
from apicmap.model.policy import Commit, KernelPolicy, commits_between, differing_fields, with_field

# --- attribution ---------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True, kw_only=True)
class Attribution:
    fields: tuple[str, ...]  # the behaviour fields whose switch alone changes the outcome
    commits: tuple[Commit, ...]
    explained: bool  # False: no single field explains it (then every differing field is listed)

    def describe(self) -> str:
        if not self.commits:
            return "unexplained (no policy field accounts for it)"
        cited = "; ".join(c.cite() for c in self.commits)
        return cited + ("" if self.explained else " (together; no single field explains it)")

    def to_json(self) -> dict[str, object]:
        return {"fields": list(self.fields), "explained": self.explained,
                "commits": [{"hash": c.hash, "subject": c.subject, "fields": list(c.fields)} for c in self.commits]}


def attribute(before: KernelPolicy, after: KernelPolicy, evaluate: Callable[[KernelPolicy], Hashable],
              target: Hashable | None = None) -> Attribution:
    """Which fields (and commits) turn ``before``'s outcome into ``after``'s (or into ``target``)."""
    wanted = evaluate(after) if target is None else target
    base = evaluate(before)
    differing = differing_fields(before, after)
    causes = tuple(name for name in differing
                   if evaluate(with_field(before, name, after)) != base
                   and (target is None or evaluate(with_field(before, name, after)) == wanted))
    if not causes:
        # Seen from the other side: the fields whose undoing in ``after`` changes its outcome.
        causes = tuple(name for name in differing if evaluate(with_field(after, name, before)) != wanted)
    explained = bool(causes)
    names = causes if causes else differing
    between = commits_between(before, after)
    commits = tuple(c for c in between if set(c.fields) & set(names))
    return Attribution(fields=names, commits=commits, explained=explained and bool(commits))


# --- outcomes ---------------------------------------------------------------------------------------


def outcome_key(outcome: Outcome) -> Hashable:
    """What makes two outcomes different for the per-release view."""
    return (outcome.receivers, outcome.result, outcome.rejected is not None,
            tuple(sorted((e.vcpu_id, e.kind.value, e.vector or 0, e.level_triggered) for e in outcome.effects)))


def model_outcome(vm: VmState, injection: Injection, policy: KernelPolicy, *, explain: bool = False) -> Outcome:
    prepared = ModelEngine(policy).prepare(vm)
    try:
        return prepared.deliver(injection, explain=explain)
    finally:
        prepared.close()


# --- fuzzing findings ------------------------------------------------------------------------------


def attribute_finding(vm: VmState, injection: Injection, model: KernelPolicy, host: KernelPolicy,
                      kernel_outcome: Outcome) -> Attribution:
    """The commits between the modelled release and the host's that explain a divergence: the
    fields that differ between the two policies and whose switch alone makes the model agree
    with the kernel (else whose switch changes the model's answer at all)."""
    def evaluate(policy: KernelPolicy) -> Hashable:
        return outcome_key(model_outcome(vm, injection, policy))

    target = outcome_key(kernel_outcome)
    differing = differing_fields(model, host)
    base = evaluate(model)
    if base == target:
        return Attribution(fields=(), commits=(), explained=False)  # nothing to explain
    agree = tuple(n for n in differing if evaluate(with_field(model, n, host)) == target)
    moving = agree or tuple(n for n in differing if evaluate(with_field(model, n, host)) != base)
    commits = tuple(c for c in commits_between(model, host) if set(c.fields) & set(moving))
    return Attribution(fields=moving, commits=commits, explained=bool(agree) and bool(commits))


