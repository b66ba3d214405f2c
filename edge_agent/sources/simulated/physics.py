"""Small building blocks of the simulated machines: lags, decaying spikes, faults, shifts."""

from __future__ import annotations

import math
import random
from collections.abc import Sequence
from dataclasses import dataclass

__all__ = ["Decay", "FaultKind", "FaultProcess", "ShiftRoster", "approach"]


def approach(current: float, target: float, tau_s: float, dt: float) -> float:
    """First-order lag: move ``current`` towards ``target`` with time constant ``tau_s`` (exact, any dt)."""
    if tau_s <= 0:
        return target
    return target + (current - target) * math.exp(-dt / tau_s)


class Decay:
    """A transient (vibration spike, pressure surge) that decays exponentially."""

    def __init__(self, tau_s: float) -> None:
        self.tau_s = tau_s
        self.value = 0.0

    def kick(self, amount: float) -> None:
        self.value += amount

    def step(self, dt: float) -> float:
        self.value *= math.exp(-dt / self.tau_s)
        return self.value


@dataclass(frozen=True, slots=True)
class FaultKind:
    """A fault a machine can have: its code, how likely it is relative to the others, how long it lasts."""

    code: int
    weight: float
    min_s: float
    max_s: float


class FaultProcess:
    """Faults as a Poisson process over *operating* time; at most one fault is active at a time."""

    def __init__(self, rng: random.Random, rate_per_h: float, kinds: Sequence[FaultKind]) -> None:
        self._rng = rng
        self.rate_per_h = rate_per_h
        self._kinds = list(kinds)
        self.active = 0
        self._left_s = 0.0

    def step(self, dt: float, *, operating: bool, hazard: float = 1.0) -> tuple[int, int]:
        """Advance by ``dt``; return ``(started, ended)`` fault codes (0 when none)."""
        if self.active:
            self._left_s -= dt
            if self._left_s <= 0:
                ended, self.active = self.active, 0
                return 0, ended
            return 0, 0
        if not operating or self.rate_per_h <= 0:
            return 0, 0
        p = 1.0 - math.exp(-self.rate_per_h * hazard * dt / 3600.0)
        if self._rng.random() >= p:
            return 0, 0
        kind = self._rng.choices(self._kinds, weights=[k.weight for k in self._kinds])[0]
        self.active = kind.code
        self._left_s = self._rng.uniform(kind.min_s, kind.max_s)
        return kind.code, 0


class ShiftRoster:
    """Which operator's badge is logged in at a given simulated time: one operator per shift, in turn."""

    def __init__(self, operators: Sequence[str], shift_s: float, rng: random.Random) -> None:
        self._operators = list(operators)
        self.shift_s = shift_s
        self._first = rng.randrange(len(self._operators)) if self._operators else 0

    def shift_index(self, t_s: float) -> int:
        return int(t_s // self.shift_s)

    def badge(self, t_s: float) -> str | None:
        if not self._operators:
            return None
        return self._operators[(self._first + self.shift_index(t_s)) % len(self._operators)]
