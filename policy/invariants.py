"""The platform's residency invariants, and their check against a candidate policy engine.

A policy draft ships its own Rego tests, and a draft can delete or weaken them: a draft whose only test was
trivial and which allowed everything everywhere once passed activation. The invariants are the platform's
own: flows with the outcome every revision must give them (``policy/invariants.yaml``, outside the policy
directory's ``rego/`` and ``data/``, so never part of a draft, a bundle or a revision). The ingest checks them
on every activation path (``ingest.policy_runtime``); ``python -m policy invariants`` checks a draft.

The safeguard codes used by ``every_safeguard_but`` are the decision contract's vocabulary, fixed here: a
draft's ``data/vocabulary.json`` cannot shrink them.
"""

from __future__ import annotations

import hashlib
import itertools
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from ingest.yaml_model import load_model  # the registry's YAML loader: errors name the file, line and field
from policy.engine import PolicyEngine
from policy.errors import PolicyError, PolicyLoadError, PolicyUnavailableError
from policy.models import Decision, Flow, Localization, TransformName

DEFAULT_INVARIANTS_FILE = Path(__file__).resolve().parent / "invariants.yaml"

SAFEGUARDS: tuple[str, ...] = (
    "SCC",
    "BCR",
    "TIA",
    "UK_IDTA",
    "CONSENT",
    "CN_STANDARD_CONTRACT",
    "CN_CERTIFICATION",
    "CN_SECURITY_ASSESSMENT",
    "RU_RKN_NOTIFIED",
    "VN_TIA_FILED",
    "STATE_APPROVAL",
    "ASEAN_MCC",
    "MY_TIA",
    "TH_PDPC_BCR",
)
"""Every safeguard code of the decision contract."""

CATEGORIES = ("machine", "personal", "sensitive_personal", "important", "core")
_RANK = {"none": 0, "primary_in_country": 1, "in_country_only": 2}
Category = Literal["machine", "personal", "sensitive_personal", "important", "core"]
Code = str


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class FlowSet(_Model):
    """Every combination of origin x destination x category, with the same attributes."""

    origin: list[Code] = Field(min_length=1)
    destination: list[Code] = Field(default_factory=list)
    domestic: bool = Field(default=False, description="The destination is the origin (no destination list).")
    category: list[Category] = Field(min_length=1)
    safeguards: list[str] = Field(default_factory=list)
    every_safeguard_but: list[str] | None = Field(
        default=None, description="Every contract safeguard except these is in force."
    )
    recipient: dict[str, Any] = Field(default_factory=dict)
    entity: dict[str, Any] = Field(default_factory=dict)
    subject: dict[str, Any] = Field(default_factory=dict)
    purpose: str | None = None
    volume: dict[str, int] = Field(default_factory=dict)
    transforms_applied: list[TransformName] = Field(default_factory=list)

    @model_validator(mode="after")
    def _destinations(self) -> FlowSet:
        if self.domestic == bool(self.destination):
            raise ValueError("give either destination: [...] or domestic: true")
        if self.every_safeguard_but is not None and self.safeguards:
            raise ValueError("give either safeguards or every_safeguard_but")
        unknown = sorted((set(self.safeguards) | set(self.every_safeguard_but or ())) - set(SAFEGUARDS))
        if unknown:
            raise ValueError(f"unknown safeguard code(s) {unknown} (known: {', '.join(SAFEGUARDS)})")
        return self

    def flows(self) -> Iterator[Flow]:
        safeguards = (
            self.safeguards
            if self.every_safeguard_but is None
            else [s for s in SAFEGUARDS if s not in self.every_safeguard_but]
        )
        for origin, category in itertools.product(self.origin, self.category):
            for destination in [origin] if self.domestic else self.destination:
                yield Flow.model_validate(
                    {
                        "origin": origin,
                        "destination": destination,
                        "category": category,
                        "safeguards": safeguards,
                        "recipient": self.recipient,
                        "entity": self.entity,
                        "subject": self.subject,
                        "purpose": self.purpose,
                        "volume": self.volume,
                        "transforms_applied": self.transforms_applied,
                    }
                )


class Expect(_Model):
    outcome: Literal["allow", "deny", "require_safeguard"]
    safeguards: list[str] = Field(
        default_factory=list, description="require_safeguard: one of these codes must be named by `requires`."
    )
    localization_at_least: Localization | None = None


class Invariant(_Model):
    id: str = Field(pattern=r"^[a-z0-9][a-z0-9-]{0,79}$")
    title: str
    basis: str
    flows: list[FlowSet] = Field(min_length=1)
    expect: Expect

    def problem(self, decision: Decision) -> str | None:
        """Why ``decision`` breaks this invariant, or None."""
        expect = self.expect
        problems = []
        if expect.outcome == "allow" and not decision.allow:
            problems.append("denied, must be allowed")
        elif expect.outcome != "allow" and decision.allow:
            problems.append("allowed, must be denied")
        elif expect.outcome == "require_safeguard":
            codes = {code for alternative in decision.requires for code in alternative.split("+")}
            if not decision.requires:
                problems.append(
                    "denied with no safeguard that could cure it, must require "
                    + (" or ".join(expect.safeguards) or "a safeguard")
                )
            elif expect.safeguards and not codes & set(expect.safeguards):
                problems.append(
                    f"requires {' or '.join(decision.requires)}, must require {' or '.join(expect.safeguards)}"
                )
        wanted = expect.localization_at_least
        if wanted is not None and _RANK.get(decision.localization, -1) < _RANK[wanted]:
            problems.append(f"localization {decision.localization}, must be at least {wanted}")
        return "; ".join(problems) or None


class InvariantSet(_Model):
    invariants: list[Invariant]

    @model_validator(mode="after")
    def _unique(self) -> InvariantSet:
        ids = [i.id for i in self.invariants]
        twice = sorted({i for i in ids if ids.count(i) > 1})
        if twice:
            raise ValueError(f"invariant id(s) {twice} used twice")
        return self

    def digest(self) -> str:
        return hashlib.sha256(self.model_dump_json().encode()).hexdigest()

    def flows(self) -> list[tuple[Invariant, Flow]]:
        return [
            (invariant, flow) for invariant in self.invariants for group in invariant.flows for flow in group.flows()
        ]


@dataclass(frozen=True)
class Violation:
    invariant: Invariant
    flow: Flow
    problem: str

    def describe(self) -> str:
        flow = self.flow
        extras = [
            f"{key}={value}"
            for key, value in (
                ("entity", _set_flags(flow.entity.model_dump())),
                ("subject", _set_flags(flow.subject.model_dump())),
                ("safeguards", "+".join(flow.safeguards)),
                ("transforms", "+".join(flow.transforms_applied)),
            )
            if value
        ]
        shown = f"{flow.origin}->{flow.destination} {flow.category}" + (f" ({', '.join(extras)})" if extras else "")
        return f"{self.invariant.id}: {shown}: {self.problem}"


class InvariantsBroken(PolicyError):
    """A candidate decides some invariant flow differently than the platform requires."""

    def __init__(self, revision: str, violations: Sequence[Violation]) -> None:
        self.revision = revision
        self.violations = list(violations)
        self.ids = sorted({v.invariant.id for v in violations})
        super().__init__(summary(violations))


def summary(violations: Sequence[Violation], shown: int = 3) -> str:
    """One line: every broken invariant by id, then the first ones with their title, basis and a flow."""
    by_id: dict[str, list[Violation]] = {}
    for v in violations:
        by_id.setdefault(v.invariant.id, []).append(v)
    details = [
        f"{i} ({found[0].invariant.title}; {found[0].invariant.basis}): {len(found)} flow(s), e.g. "
        + found[0].describe().split(": ", 1)[1]
        for i, found in list(by_id.items())[:shown]
    ]
    return f"breaks {len(by_id)} platform invariant(s) [{', '.join(by_id)}]: {'; '.join(details)}"


def load(path: Path = DEFAULT_INVARIANTS_FILE) -> InvariantSet:
    """The invariants of ``path``; PolicyLoadError naming the file and the field."""
    return load_model(
        Path(path),
        InvariantSet,
        what="policy invariants",
        error=PolicyLoadError,
        not_a_mapping="the invariants file must be a mapping with a list 'invariants'",
    )


def check(engine: PolicyEngine, invariants: InvariantSet, *, content_revision: bool = False) -> list[Violation]:
    """Every invariant flow the engine decides otherwise than required (a decision error is a violation;
    PolicyUnavailableError, an engine that cannot be reached, is raised).

    ``content_revision``: the engine's revision is a hash of its whole policy and data (the embedded
    engine), so a revision found to keep these invariants today keeps them for the rest of the UTC day
    (decisions depend on the policy, the data and the date only): the check is remembered in this process
    (a replica following an activation, a draft checked at upload and again at activation)."""
    key = (engine.revision, invariants.digest(), datetime.now(UTC).date().isoformat())
    if content_revision and key in _KEPT:
        return []
    violations = []
    for invariant, flow in invariants.flows():
        try:
            decision = engine.decide(flow)
        except PolicyUnavailableError:
            raise  # cannot be checked now (an OPA server down): not a violation
        except PolicyError as exc:
            violations.append(Violation(invariant, flow, f"the policy cannot decide it: {exc}"))
            continue
        problem = invariant.problem(decision)
        if problem:
            violations.append(Violation(invariant, flow, problem))
    if content_revision and not violations:
        if len(_KEPT) >= 256:
            _KEPT.clear()
        _KEPT.add(key)
    return violations


_KEPT: set[tuple[str, str, str]] = set()
"""(content revision, invariants digest, UTC day) found to keep every invariant."""


def decide_all(engine: PolicyEngine, invariants: InvariantSet) -> list[Decision]:
    """The engine's decisions of every invariant flow (for an engine that must also be checked for revision)."""
    return engine.decide_many([flow for _, flow in invariants.flows()])


def _set_flags(values: dict[str, Any]) -> str:
    return ",".join(f"{k}:{v}" for k, v in values.items() if v not in (None, False, 0, "", [], {}))


__all__ = [
    "CATEGORIES",
    "DEFAULT_INVARIANTS_FILE",
    "SAFEGUARDS",
    "Expect",
    "FlowSet",
    "Invariant",
    "InvariantSet",
    "InvariantsBroken",
    "Violation",
    "check",
    "load",
    "summary",
]
