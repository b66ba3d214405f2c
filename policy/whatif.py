"""What-if: replay recorded decision inputs against a draft policy and report what would change.

The ingest records every decision in the control store's ``decisions`` table with the exact policy input,
and reads a time window of it back as *patterns* (``ingest.store.recorded_decisions.read_patterns``):
identical message-categories (same origin, site, category and, per candidate region, the same input and
recorded outcome), with how many messages and readings each stands for; :func:`merge_patterns` adds up the
patterns of the slices of a window. This module gets those records, never a database connection.
:func:`replay` evaluates every distinct input once (through a decision cache) with the draft engine and
counts, per origin -> destination (region) -> category, the transitions old outcome -> new outcome, keeps
examples, and finds the rows that would have been stored elsewhere or not at all (a message-category that
no region may hold any more is quarantined by the ingest). :func:`render_text` and
:meth:`WhatIfReport.to_json` present it.

Outcomes follow the ingest's router (one rule: :func:`policy.outcome.outcome_of`): ``denied`` when the
decision does not allow the flow, else ``transformed`` when it demands transforms, else ``stored``. When
the draft gives the same verdict and transforms as the recorded decision the recorded outcome is kept (the
router's per-field view is not in the log); otherwise the outcome is the estimate above.
"""

from __future__ import annotations

import itertools
import json
import math
import re
import time
from collections import Counter, defaultdict
from collections.abc import Callable, Iterable, Iterator
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from policy.cache import CachedPolicyEngine
from policy.engine import PolicyEngine
from policy.errors import PolicyError
from policy.models import Decision, Flow
from policy.outcome import outcome_of

ProgressFn = Callable[[str, int, int | None], None]
"""``progress(stage, done, total)``: ``total`` None while unknown."""

MAX_SLICES = 96
_WINDOW_RE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([smhdw])\s*$")
_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}


# --- recorded patterns ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Part:
    """One recorded decision of a message-category: the region it was about and what happened."""

    region: str
    destination: str
    outcome: str
    allow: bool
    transforms: dict[str, Any]
    reasons: list[str]
    requires: list[str]
    input: dict[str, Any]


@dataclass
class Pattern:
    """Identical recorded message-categories (one decision per candidate region each)."""

    origin: str
    category: str
    site_id: str
    revision: str
    parts: list[Part]
    messages: int
    readings: int
    example: tuple[str, int]

    def key(self) -> str:
        return json.dumps(
            [self.origin, self.category, self.site_id, self.revision, [asdict(p) for p in self.parts]],
            sort_keys=True,
            separators=(",", ":"),
        )


def parse_window(text: str) -> timedelta:
    """``90s``, ``30m``, ``24h``, ``7d``, ``1w`` -> timedelta (ValueError otherwise)."""
    match = _WINDOW_RE.match(text)
    if not match or float(match.group(1)) <= 0:
        raise ValueError(f"not a window length: {text!r} (expected e.g. 30m, 24h, 7d)")
    return timedelta(seconds=float(match.group(1)) * _UNITS[match.group(2)])


def parse_time(text: str) -> datetime:
    """An ISO 8601 date or date-time; without an offset it is UTC."""
    try:
        value = datetime.fromisoformat(text.strip().replace("Z", "+00:00"))
    except ValueError:
        raise ValueError(f"not an ISO 8601 time: {text!r} (e.g. 2026-05-01T08:00:00Z)") from None
    return value if value.tzinfo else value.replace(tzinfo=UTC)


def as_utc(value: datetime | None) -> datetime | None:
    """``value`` with UTC as its offset when it has none."""
    if value is None or value.tzinfo is not None:
        return value
    return value.replace(tzinfo=UTC)


def resolve_window(
    since: datetime | None, until: datetime | None, window: timedelta | None, *, now: datetime | None = None
) -> tuple[datetime, datetime]:
    """[since, until): ``until`` defaults to now, ``since`` to ``until - window`` (24 h by default)."""
    until = until or now or datetime.now(UTC)
    if since is None:
        since = until - (window or timedelta(hours=24))
    if since >= until:
        raise ValueError(f"empty window: since {since.isoformat()} is not before until {until.isoformat()}")
    return since, until


def slices(since: datetime, until: datetime, *, max_slices: int = MAX_SLICES) -> list[tuple[datetime, datetime]]:
    """Consecutive sub-windows of about an hour (at most ``max_slices``), for progress on long windows."""
    n = max(1, min(max_slices, math.ceil((until - since) / timedelta(hours=1))))
    step = (until - since) / n
    bounds = [since + step * i for i in range(n)] + [until]
    return list(itertools.pairwise(bounds))


def merge_patterns(patterns: Iterable[Pattern]) -> list[Pattern]:
    """Identical patterns (e.g. of consecutive slices of a window) added up into one: messages and readings
    summed, the newest example kept. The first pattern of each kind is the one kept (and updated)."""
    merged: dict[str, Pattern] = {}
    for pattern in patterns:
        key = pattern.key()
        if key in merged:
            found = merged[key]
            found.messages += pattern.messages
            found.readings += pattern.readings
            found.example = max(found.example, pattern.example, key=lambda e: (e[1], e[0]))
        else:
            merged[key] = pattern
    return list(merged.values())


# --- replay --------------------------------------------------------------------------------------


@dataclass
class Change:
    origin: str
    region: str
    destination: str
    category: str
    old: str
    new: str
    decisions: int = 0
    readings: int = 0

    @property
    def changed(self) -> bool:
        return self.old != self.new


@dataclass
class Example:
    origin: str
    region: str
    destination: str
    category: str
    old: str
    new: str
    device_id: str
    seq: int
    old_reasons: list[str]
    new_reasons: list[str]
    old_requires: list[str]
    new_requires: list[str]
    policy_input: dict[str, Any]


@dataclass
class WhatIfReport:
    since: datetime
    until: datetime
    draft_revision: str
    recorded_revisions: dict[str, int] = field(default_factory=dict)
    decisions: int = 0
    messages: int = 0
    distinct_inputs: int = 0
    seconds: float = 0.0
    transitions: list[Change] = field(default_factory=list)
    reasons_only: int = 0
    newly_denied: dict[str, list[int]] = field(default_factory=dict)
    newly_allowed: dict[str, list[int]] = field(default_factory=dict)
    newly_quarantined: list[int] = field(default_factory=lambda: [0, 0])
    newly_placed: list[int] = field(default_factory=lambda: [0, 0])
    examples: list[Example] = field(default_factory=list)
    errors: list[dict[str, Any]] = field(default_factory=list)

    @property
    def changes(self) -> list[Change]:
        return [t for t in self.transitions if t.changed]

    def to_json(self) -> dict[str, Any]:
        def pairs(d: dict[str, list[int]]) -> list[dict[str, Any]]:
            return [{"region": r, "decisions": v[0], "readings": v[1]} for r, v in sorted(d.items())]

        return {
            "since": self.since.isoformat(),
            "until": self.until.isoformat(),
            "draft_revision": self.draft_revision,
            "recorded_revisions": self.recorded_revisions,
            "decisions": self.decisions,
            "messages": self.messages,
            "distinct_inputs": self.distinct_inputs,
            "seconds": round(self.seconds, 3),
            "changed_decisions": sum(t.decisions for t in self.changes),
            "reasons_only_changed_decisions": self.reasons_only,
            "transitions": [{**asdict(t), "changed": t.changed} for t in self.transitions],
            "newly_denied": pairs(self.newly_denied),
            "newly_allowed": pairs(self.newly_allowed),
            "newly_quarantined": {"messages": self.newly_quarantined[0], "readings": self.newly_quarantined[1]},
            "newly_placed": {"messages": self.newly_placed[0], "readings": self.newly_placed[1]},
            "examples": [asdict(e) for e in self.examples],
            "errors": self.errors,
        }


def new_outcome(decision: Decision, part: Part) -> str:
    """The router's outcome for the draft's decision (see the module docstring)."""
    if decision.allow == part.allow and decision.transforms == part.transforms:
        return part.outcome
    return outcome_of(decision.allow, transformed=bool(decision.transforms))


def replay(
    patterns: Iterable[Pattern],
    engine: PolicyEngine,
    *,
    since: datetime,
    until: datetime,
    progress: ProgressFn | None = None,
    examples_per_change: int = 3,
) -> WhatIfReport:
    """Evaluate every distinct recorded input once with ``engine`` and compare with the recorded outcomes."""
    started = time.perf_counter()
    patterns = list(patterns)
    cached = engine if isinstance(engine, CachedPolicyEngine) else CachedPolicyEngine(engine, maxsize=1 << 20)
    report = WhatIfReport(since=since, until=until, draft_revision=cached.revision)
    flows: dict[str, Flow] = {}
    for pattern in patterns:
        for part in pattern.parts:
            try:
                flow = Flow.parse(part.input)
            except PolicyError:
                continue
            flows.setdefault(flow.cache_key(), flow)
    report.distinct_inputs = len(flows)
    decided: dict[str, Decision | str] = {}
    for i, (key, flow) in enumerate(flows.items()):
        if progress and i % 16 == 0:
            progress("evaluate", i, len(flows))
        try:
            decided[key] = cached.decide(flow)
        except PolicyError as exc:
            decided[key] = str(exc)
            report.errors.append({"input": flow.to_input(), "error": str(exc)})
    if progress:
        progress("evaluate", len(flows), len(flows))
    _compare(report, patterns, decided, examples_per_change)
    report.seconds = time.perf_counter() - started
    return report


def _compare(
    report: WhatIfReport, patterns: list[Pattern], decided: dict[str, Decision | str], examples_per_change: int
) -> None:
    transitions: dict[tuple[str, str, str, str, str, str], Change] = {}
    revisions: Counter[str] = Counter()
    newly_denied: dict[str, list[int]] = defaultdict(lambda: [0, 0])
    newly_allowed: dict[str, list[int]] = defaultdict(lambda: [0, 0])
    shown: Counter[tuple[str, ...]] = Counter()
    for pattern in patterns:
        report.messages += pattern.messages
        revisions[pattern.revision] += pattern.messages * len(pattern.parts)
        placed_before = placed_after = False
        for part in pattern.parts:
            report.decisions += pattern.messages
            result = _decision_for(part, decided)
            new = result if isinstance(result, str) else new_outcome(result, part)
            placed_before |= part.outcome != "denied"
            placed_after |= new not in ("denied", "error")
            key = (pattern.origin, part.region, part.destination, pattern.category, part.outcome, new)
            change = transitions.setdefault(key, Change(*key))
            change.decisions += pattern.messages
            change.readings += pattern.readings
            if isinstance(result, str):
                continue
            if new == part.outcome:
                if result.reasons != part.reasons:
                    report.reasons_only += pattern.messages
                continue
            if new == "denied":
                _add(newly_denied[part.region], pattern)
            elif part.outcome == "denied":
                _add(newly_allowed[part.region], pattern)
            if shown[key] < examples_per_change:
                shown[key] += 1
                report.examples.append(
                    Example(
                        pattern.origin,
                        part.region,
                        part.destination,
                        pattern.category,
                        part.outcome,
                        new,
                        pattern.example[0],
                        pattern.example[1],
                        part.reasons,
                        result.reasons,
                        part.requires,
                        result.requires,
                        part.input,
                    )
                )
        if placed_before and not placed_after:
            _add(report.newly_quarantined, pattern)
        elif placed_after and not placed_before:
            _add(report.newly_placed, pattern)
    report.transitions = sorted(transitions.values(), key=lambda t: (not t.changed, -t.decisions, t.origin, t.region))
    report.recorded_revisions = dict(revisions.most_common())
    report.newly_denied = dict(newly_denied)
    report.newly_allowed = dict(newly_allowed)


def _decision_for(part: Part, decided: dict[str, Decision | str]) -> Decision | str:
    try:
        return decided.get(Flow.parse(part.input).cache_key(), "error")
    except PolicyError:
        return "error"


def _add(total: list[int], pattern: Pattern) -> None:
    total[0] += pattern.messages
    total[1] += pattern.readings


# --- presentation --------------------------------------------------------------------------------


def render_text(report: WhatIfReport) -> Iterator[str]:
    """Lines of a plain-text report (stdout of ``python -m policy whatif``)."""
    n = "{:,}".format
    yield f"What-if for draft {report.draft_revision}"
    yield f"window {report.since.isoformat()} .. {report.until.isoformat()}"
    revisions = ", ".join(f"{r} ({n(c)} decisions)" for r, c in report.recorded_revisions.items()) or "none"
    yield (
        f"replayed {n(report.decisions)} recorded decisions of {n(report.messages)} message-categories "
        f"({n(report.distinct_inputs)} distinct inputs evaluated) in {report.seconds:.1f} s"
    )
    yield f"recorded under: {revisions}"
    if report.draft_revision in report.recorded_revisions and len(report.recorded_revisions) == 1:
        yield "note: the draft has the same revision as the recorded decisions"
    yield ""
    changes = report.changes
    if not changes:
        yield "No outcome would change."
    else:
        yield "Outcome changes (origin -> destination(region) category: recorded -> draft):"
        width = max(len(f"{c.origin} -> {c.destination}({c.region})") for c in changes)
        for c in changes:
            route = f"{c.origin} -> {c.destination}({c.region})".ljust(width)
            yield (
                f"  {route}  {c.category:<18} {c.old:>11} -> {c.new:<11} "
                f"{n(c.decisions):>10} decisions {n(c.readings):>12} readings"
            )
    unchanged = sum(t.decisions for t in report.transitions if not t.changed)
    yield f"Unchanged: {n(unchanged)} decisions ({n(report.reasons_only)} with different reasons only)"
    if report.newly_denied or report.newly_allowed or report.newly_quarantined[0] or report.newly_placed[0]:
        yield ""
        yield "Rows that would be stored elsewhere or not at all:"
        for region, (d, r) in sorted(report.newly_denied.items()):
            yield f"  no longer stored in {region}: {n(d)} decisions ({n(r)} readings)"
        for region, (d, r) in sorted(report.newly_allowed.items()):
            yield f"  newly stored in {region}: {n(d)} decisions ({n(r)} readings)"
        if report.newly_quarantined[0]:
            d, r = report.newly_quarantined
            yield f"  no region may hold them any more (quarantined): {n(d)} message-categories ({n(r)} readings)"
        if report.newly_placed[0]:
            d, r = report.newly_placed
            yield f"  previously quarantined, now stored: {n(d)} message-categories ({n(r)} readings)"
    if report.examples:
        yield ""
        yield "Examples:"
        for e in report.examples:
            route = f"{e.origin} -> {e.destination}({e.region})"
            yield f"  {e.device_id} seq {e.seq}: {route} {e.category}: {e.old} -> {e.new}"
            for reason in e.old_reasons:
                yield f"    recorded: {reason}"
            for reason in e.new_reasons:
                yield f"    draft:    {reason}"
            if e.new_requires:
                yield f"    draft requires one of: {', '.join(e.new_requires)}"
    if report.errors:
        yield ""
        yield f"{len(report.errors)} input(s) the draft could not decide:"
        for err in report.errors[:10]:
            yield f"  {json.dumps(err['input'], sort_keys=True)}: {err['error']}"


__all__ = [
    "Change",
    "Example",
    "Part",
    "Pattern",
    "WhatIfReport",
    "as_utc",
    "merge_patterns",
    "new_outcome",
    "parse_time",
    "parse_window",
    "render_text",
    "replay",
    "resolve_window",
    "slices",
]
