"""Flows nearing a volume threshold that would change their transfer mechanism.

The thresholds are the policy's own (``data/thresholds.json``, ``data/groups.json`` of the policy
directory), read here only to warn: the decision itself is always the policy's. A threshold is
*approaching* from ``ratio`` (default 0.8) of the count at which the mechanism changes, and *reached* from
that count on.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from ingest.volumes.counter import Counts


@dataclass(frozen=True)
class Threshold:
    law: str
    counter: str  # a Volume field
    section: str  # thresholds.json section
    key: str  # thresholds.json key
    inclusive: bool  # "min": the mechanism changes at the limit; "over": at limit + 1
    becomes: str


# What each origin's thresholds are (thresholds.json), in the order a flow meets them.
_CN = [
    Threshold(
        "CN CAC 2024 Provisions Art 8",
        "individuals_ytd",
        "CN",
        "contract_individuals_min",
        True,
        "standard contract or certification",
    ),
    Threshold(
        "CN CAC 2024 Provisions Art 7(2)",
        "individuals_ytd",
        "CN",
        "assessment_individuals_min",
        True,
        "security assessment, stored in China",
    ),
    Threshold(
        "CN CAC 2024 Provisions Art 7(2)",
        "sensitive_individuals_ytd",
        "CN",
        "assessment_sensitive_min",
        True,
        "security assessment, stored in China",
    ),
]
_VN = [
    Threshold("VN Decision 20/2025/QD-TTg", "individuals_12m", "VN", "important_basic_min", True, "important data"),
    Threshold("VN Decision 20/2025/QD-TTg", "individuals_12m", "VN", "core_basic_min", True, "core data"),
    Threshold(
        "VN Decision 20/2025/QD-TTg",
        "sensitive_individuals_12m",
        "VN",
        "important_sensitive_min",
        True,
        "important data",
    ),
    Threshold("VN Decision 20/2025/QD-TTg", "sensitive_individuals_12m", "VN", "core_sensitive_min", True, "core data"),
]
_DOJ = [
    Threshold(
        "US DOJ 28 CFR 202.205",
        "individuals_12m",
        "US_DOJ",
        "covered_identifiers_over",
        False,
        "prohibited to a country of concern",
    ),
    Threshold(
        "US DOJ 28 CFR 202.205",
        "sensitive_individuals_12m",
        "US_DOJ",
        "sensitive_over",
        False,
        "prohibited to a country of concern",
    ),
]


@dataclass(frozen=True)
class VolumeWarning:
    law: str
    counter: str
    value: int
    limit: int  # the count at which the mechanism changes
    ratio: float
    status: str  # approaching | reached
    becomes: str

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


class PolicyThresholds:
    """The thresholds and country groups of a policy directory, re-read when the files change."""

    def __init__(self, policy_dir: Path) -> None:
        self.policy_dir = Path(policy_dir)
        self._stamp: tuple[float, float] | None = None
        self._thresholds: dict[str, Any] = {}
        self._concern: set[str] = set()

    def _load(self) -> None:
        files = (self.policy_dir / "data" / "thresholds.json", self.policy_dir / "data" / "groups.json")
        try:
            stamp = (files[0].stat().st_mtime, files[1].stat().st_mtime)
        except OSError:
            return
        if stamp == self._stamp:
            return
        try:
            self._thresholds = json.loads(files[0].read_text(encoding="utf-8"))
            self._concern = set(json.loads(files[1].read_text(encoding="utf-8")).get("US_CONCERN", []))
        except (OSError, ValueError):
            return
        self._stamp = stamp

    def applicable(
        self, origin: str, destination: str, *, ciio: bool = False, us_subjects: bool = False
    ) -> list[Threshold]:
        """The thresholds that can change the mechanism of data from ``origin`` stored in ``destination``."""
        self._load()
        if origin == destination:
            return []
        found: list[Threshold] = []
        if origin == "CN" and not ciio:  # a CIIO always needs the assessment, whatever the volume
            found += _CN
        if origin == "VN":
            found += _VN
        if (origin == "US" or us_subjects) and destination in self._concern:
            found += _DOJ
        return found

    def warnings(
        self, origin: str, destination: str, volume: dict[str, int], *, ratio: float, ciio: bool = False
    ) -> list[VolumeWarning]:
        out = []
        for t in self.applicable(origin, destination, ciio=ciio):
            raw = self._thresholds.get(t.section, {}).get(t.key)
            if not isinstance(raw, int) or isinstance(raw, bool):
                continue
            limit = raw if t.inclusive else raw + 1
            value = int(volume.get(t.counter, 0))
            share = value / limit if limit else 0.0
            if share >= ratio:
                out.append(
                    VolumeWarning(
                        t.law,
                        t.counter,
                        value,
                        limit,
                        round(share, 4),
                        "reached" if value >= limit else "approaching",
                        t.becomes,
                    )
                )
        return out


__all__ = ["Counts", "PolicyThresholds", "Threshold", "VolumeWarning"]
