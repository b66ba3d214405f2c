"""The simulated source: realistic machine signals on a fixed sampling grid (see ``README.md`` in this folder).

Sampling is time-driven: sample ``k`` is taken at ``start + k * interval`` (wall clock), and
:meth:`SimulatedSource.read` returns every sample due since the previous call. The machine model
advances ``interval * time_scale`` simulated seconds per sample, so a demo can show hours of
tool wear in minutes without changing the sampling rate.
"""

from __future__ import annotations

import logging
import random
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

from edge_agent.errors import SourceError
from edge_agent.sources.simulated.machines import MACHINES, Machine
from edge_agent.sources.simulated.physics import ShiftRoster
from edge_agent.sources.simulated.settings import SimulatedSettings
from wire import Reading, Value

__all__ = ["MAX_CATCH_UP", "SimulatedSource"]

log = logging.getLogger(__name__)

MAX_CATCH_UP = 10_000
"""At most this many samples per read(); after a longer stall the oldest due samples are skipped."""


class SimulatedSource:
    """A simulated machine read on a fixed grid; deterministic for a given seed and sample count."""

    kind = "simulated"

    def __init__(
        self,
        settings: SimulatedSettings,
        *,
        clock: Callable[[], float] = time.monotonic,
        wall_clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self.settings = settings
        self._clock = clock
        self._wall_clock = wall_clock
        self._interval_s = settings.interval_ms / 1000.0
        self._machine: Machine | None = None
        self._roster: ShiftRoster | None = None
        self.seed: int | None = settings.seed
        self._t0 = 0.0
        self._wall0 = datetime.min.replace(tzinfo=UTC)
        self._emitted = 0
        self._started = False

    @property
    def device_id(self) -> str:
        return self.settings.device_id

    @property
    def poll_interval_s(self) -> float:
        # Samples sit on a fixed grid whatever the polling, so fast machines are polled ten times a
        # second (each read returns every sample due): far fewer thread wake-ups at the same data rate.
        return min(max(self._interval_s, 0.1), 1.0)

    @property
    def machine(self) -> Machine:
        if self._machine is None:
            raise SourceError(self.device_id, "init() has not been called")
        return self._machine

    def init(self) -> None:
        s = self.settings
        if s.machine not in MACHINES:  # guarded by the settings type; kept for direct construction
            raise SourceError(s.device_id, f"unknown machine {s.machine!r}; known: {sorted(MACHINES)}")
        if self.seed is None:
            self.seed = random.SystemRandom().randrange(2**63)
            log.info("source %s: no seed configured, using seed %d", s.device_id, self.seed)
        self._machine = MACHINES[s.machine](random.Random(self.seed), s.fault_rate_per_h)
        self._roster = ShiftRoster(s.operators, s.shift_s, random.Random(f"{self.seed}:roster"))

    def start(self) -> None:
        if self._machine is None:
            self.init()
        self._t0 = self._clock()
        self._wall0 = self._wall_clock()
        self._emitted = 0
        self._started = True

    def read(self) -> list[Reading]:
        if not self._started:
            raise SourceError(self.device_id, "read() before start()")
        due = int((self._clock() - self._t0) / self._interval_s) + 1
        if due - self._emitted > MAX_CATCH_UP:
            skipped = due - self._emitted - MAX_CATCH_UP
            log.warning("source %s: fell behind, skipping %d samples", self.device_id, skipped)
            self._emitted += skipped
        readings = [self._sample(k) for k in range(self._emitted, due)]
        self._emitted = max(self._emitted, due)
        return readings

    def stop(self) -> None:
        self._started = False

    def _sample(self, k: int) -> Reading:
        machine = self.machine
        assert self._roster is not None
        machine.step(self._interval_s * self.settings.time_scale)
        values: dict[str, Value] = dict(machine.observe())
        badge = self._roster.badge(machine.t_s)
        if badge is not None:
            values["operator_badge"] = badge
        return Reading(ts=self._wall0 + timedelta(seconds=k * self._interval_s), values=values)
