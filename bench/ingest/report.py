"""Result lines (value, baseline, ratio, target, PASS/MISS) and the JSON document."""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any


@dataclass
class Goal:
    id: str
    name: str
    value: float
    unit: str
    baseline_name: str
    baseline: float
    baseline_unit: str
    ratio: float
    op: str  # ">=" or "<="
    target: float
    note: str = ""
    key: str = ""  # the metric's name (``<key>_ratio``); default: the id, lower case, ' as p (G3' -> g3p)

    @property
    def passed(self) -> bool:
        if math.isnan(self.ratio):
            return False
        return self.ratio >= self.target if self.op == ">=" else self.ratio <= self.target

    def line(self) -> str:
        status = "PASS" if self.passed else "MISS"
        text = (
            f"{self.id:<4}{self.name:<46} {fmt(self.value)} {self.unit:<10} | {self.baseline_name} "
            f"{fmt(self.baseline)} {self.baseline_unit} | ratio {self.ratio:.2f} | target {self.op} "
            f"{self.target:g} | {status}"
        )
        return text + (f"\n      {self.note}" if self.note else "")


def fmt(value: float) -> str:
    if math.isnan(value):
        return "n/a"
    if abs(value) >= 100:
        return f"{value:,.0f}"
    if abs(value) >= 1:
        return f"{value:,.1f}"
    return f"{value:.3f}"


def info(name: str, value: float, unit: str, detail: str = "", digits: int | None = None) -> str:
    shown = fmt(value) if digits is None else f"{value:.{digits}f}"
    return f"    {name:<46} {shown} {unit}" + (f"  ({detail})" if detail else "")


class Report:
    def __init__(self) -> None:
        self.lines: list[str] = []
        self.goals: list[Goal] = []
        self.metrics: dict[str, float] = {}
        self.details: dict[str, Any] = {}

    def metric(self, key: str, value: float) -> float:
        self.metrics[key] = float(value)
        return value

    def add_info(self, name: str, value: float, unit: str, detail: str = "", digits: int | None = None) -> None:
        self.lines.append(info(name, value, unit, detail, digits))

    def add_goal(self, goal: Goal) -> None:
        self.goals.append(goal)
        self.lines.append(goal.line())
        key = goal.key or goal.id.lower().replace("'", "p")
        self.metrics[f"{key}_ratio"] = goal.ratio

    def section(self, title: str) -> None:
        self.lines.append(f"\n{title}")

    def document(self, **extra: Any) -> dict[str, Any]:
        return {
            **extra,
            "metrics": self.metrics,
            "goals": [{**asdict(g), "pass": g.passed} for g in self.goals],
            "details": self.details,
        }

    def write_json(self, path: Path, **extra: Any) -> None:
        path.write_text(json.dumps(self.document(**extra), indent=2, default=str) + "\n")
