"""Physical models of the simulated machines.

Each model advances in simulated seconds (:meth:`Machine.step`) and is observed through noisy
sensors (:meth:`Machine.observe`). All randomness comes from the ``random.Random`` handed in, so a
seed reproduces the same signals. Field names match the device profiles of the ingest registry.
"""

from __future__ import annotations

import math
import random
from abc import ABC, abstractmethod
from typing import ClassVar, Literal

from edge_agent.sources.simulated.physics import Decay, FaultKind, FaultProcess, approach

__all__ = ["MACHINES", "Machine", "MachineKind"]

MachineKind = Literal["cnc_mill", "injection_press", "compressor"]
Values = dict[str, float | int]
AMBIENT_C = 22.0


class Machine(ABC):
    """A machine with a duty cycle, thermal inertia, slow drift, noise and occasional faults."""

    kind: ClassVar[MachineKind]
    fields: ClassVar[tuple[str, ...]]
    default_fault_rate_per_h: ClassVar[float]
    fault_kinds: ClassVar[tuple[FaultKind, ...]]

    def __init__(self, rng: random.Random, fault_rate_per_h: float | None = None) -> None:
        self.rng = rng
        rate = self.default_fault_rate_per_h if fault_rate_per_h is None else fault_rate_per_h
        self.faults = FaultProcess(rng, rate, self.fault_kinds)
        self.t_s = 0.0
        self.spike = Decay(tau_s=2.5)

    @property
    def fault_code(self) -> int:
        return self.faults.active

    def step(self, dt: float) -> None:
        """Advance the machine by ``dt`` simulated seconds."""
        self.t_s += dt
        self._advance(dt)
        self.spike.step(dt)

    def _noise(self, sigma: float) -> float:
        return self.rng.gauss(0.0, sigma)

    @abstractmethod
    def _advance(self, dt: float) -> None: ...

    @abstractmethod
    def observe(self) -> Values:
        """Sensor values now (with measurement noise), without the operator badge."""


class CncMill(Machine):
    """Jobs at a spindle speed and cutting load; tool wear raises power and vibration until a tool change."""

    kind = "cnc_mill"
    fields = (
        "spindle_speed_rpm",
        "spindle_temp_c",
        "vibration_mm_s",
        "power_kw",
        "tool_wear_pct",
        "fault_code",
        "operator_badge",
    )
    default_fault_rate_per_h = 0.5
    fault_kinds = (
        FaultKind(101, 3.0, 60, 240),  # tool breakage: vibration spike, spindle stops, tool change
        FaultKind(102, 2.0, 30, 180),  # spindle overload: spindle stops
        FaultKind(103, 1.0, 60, 300),  # coolant pressure low: spindle stops
        FaultKind(104, 1.0, 20, 120),  # axis following error: spindle stops
    )
    RPM_MAX = 12_000.0
    WEAR_PER_S = 100.0 / 2700.0  # a tool lasts ~45 min of full-load cutting at top speed

    def __init__(self, rng: random.Random, fault_rate_per_h: float | None = None) -> None:
        super().__init__(rng, fault_rate_per_h)
        self.phase: Literal["setup", "cutting", "tool_change"] = "setup"
        self.phase_left_s = rng.uniform(5, 60)
        self.job_rpm = 0.0
        self.job_load = 0.0
        self.rpm = 0.0
        self.load = 0.0
        self.temp_c = AMBIENT_C + rng.uniform(-1, 1)
        self.wear = rng.uniform(0, 40)
        self.change_at = rng.uniform(80, 95)

    def _advance(self, dt: float) -> None:
        rng = self.rng
        cutting = self.phase == "cutting" and not self.faults.active
        started, ended = self.faults.step(dt, operating=cutting, hazard=1 + 4 * (self.wear / 100) ** 3)
        if started:
            self.spike.kick({101: rng.uniform(18, 30), 102: rng.uniform(6, 10)}.get(started, 1.0))
        if ended == 101:  # broken tool replaced
            self.wear, self.change_at = rng.uniform(0, 2), rng.uniform(80, 95)
        if not self.faults.active:
            self.phase_left_s -= dt
            if self.phase_left_s <= 0:
                self._next_phase()
        running = self.phase == "cutting" and not self.faults.active
        target_rpm = self.job_rpm if running else 0.0
        self.rpm = approach(self.rpm, target_rpm, 0.8, dt)
        near_speed = self.job_rpm > 0 and abs(self.rpm - self.job_rpm) < 0.05 * self.job_rpm
        self.load = approach(self.load, self.job_load if running and near_speed else 0.0, 3.0, dt)
        speed = self.rpm / self.RPM_MAX
        self.wear = min(100.0, self.wear + self.WEAR_PER_S * self.load * speed * dt)
        heat = 4.0 * speed + 2.2 * self._cutting_kw()
        self.temp_c = approach(self.temp_c, AMBIENT_C + heat, 420.0, dt)

    def _next_phase(self) -> None:
        rng = self.rng
        if self.phase == "cutting":
            if self.wear >= self.change_at:
                self.phase, self.phase_left_s = "tool_change", rng.uniform(60, 180)
                self.wear, self.change_at = rng.uniform(0, 2), rng.uniform(80, 95)
            else:
                self.phase, self.phase_left_s = "setup", rng.uniform(30, 180)
        else:
            self.phase, self.phase_left_s = "cutting", rng.uniform(120, 600)
            self.job_rpm = rng.randrange(4000, 12_001, 500)
            self.job_load = rng.uniform(0.35, 0.9)

    def _cutting_kw(self) -> float:
        speed = self.rpm / self.RPM_MAX
        return 11.0 * self.load * (0.5 + 0.5 * speed) * (1 + 0.35 * self.wear / 100)

    def observe(self) -> Values:
        speed = self.rpm / self.RPM_MAX
        spinning = self.rpm > 50
        vib = (0.6 + 1.4 * speed + 3.5 * (self.wear / 100) ** 2 + 1.5 * self.load) if spinning else 0.08
        power = 1.2 + (0.6 * speed if spinning else 0.0) + self._cutting_kw()
        return {
            "spindle_speed_rpm": round(max(0.0, self.rpm * (1 + self._noise(0.002)) + self._noise(2)), 1),
            "spindle_temp_c": round(self.temp_c + self._noise(0.15), 2),
            "vibration_mm_s": round(max(0.0, vib * (1 + self._noise(0.05)) + self.spike.value), 3),
            "power_kw": round(max(0.0, power * (1 + self._noise(0.01)) + self._noise(0.05)), 3),
            "tool_wear_pct": round(self.wear, 2),
            "fault_code": self.faults.active,
        }


class InjectionPress(Machine):
    """Production runs of moulding cycles; screw/check-ring wear lengthens cycles until maintenance."""

    kind = "injection_press"
    fields = (
        "barrel_temp_c",
        "injection_pressure_bar",
        "cycle_time_s",
        "vibration_mm_s",
        "power_kw",
        "fault_code",
        "operator_badge",
    )
    default_fault_rate_per_h = 0.4
    fault_kinds = (
        FaultKind(201, 2.0, 120, 600),  # heater band failure: barrel cools, production halts
        FaultKind(202, 2.0, 60, 300),  # hydraulic pressure low: production halts
        FaultKind(203, 3.0, 60, 240),  # mould jam: vibration spike, production halts
    )
    MATERIALS_C = (220.0, 235.0, 285.0, 300.0)  # PP, ABS, PA66, PC

    def __init__(self, rng: random.Random, fault_rate_per_h: float | None = None) -> None:
        super().__init__(rng, fault_rate_per_h)
        self.setpoint_c = rng.choice(self.MATERIALS_C)
        self.temp_c = self.setpoint_c + rng.uniform(-2, 2)  # the agent starts on a warm, running press
        self.wear = rng.uniform(0, 0.3)
        self.producing = True
        self.run_left_s = rng.uniform(600, 3600)
        self.change_left_s = 0.0
        self.cycle_sp_s = rng.uniform(18, 45)
        self.peak_bar = rng.uniform(700, 1400)
        self.cycle_pos_s = 0.0
        self.cycle_len_s = self.cycle_sp_s
        self.last_cycle_s = self.cycle_sp_s
        self.pressure = 0.0
        self.pump_kw = 0.0

    def _advance(self, dt: float) -> None:
        rng = self.rng
        started, _ = self.faults.step(dt, operating=self.producing and self._hot())
        if started == 203:
            self.spike.kick(rng.uniform(8, 14))
        if self.producing:
            self.run_left_s -= dt
            if self.run_left_s <= 0:  # end of run: mould change, maintenance if worn
                self.producing, self.change_left_s = False, rng.uniform(300, 1200)
                if self.wear >= 1.0:
                    self.wear = rng.uniform(0, 0.05)
        else:
            self.change_left_s -= dt
            if self.change_left_s <= 0:
                self.producing, self.run_left_s = True, rng.uniform(1800, 7200)
                self.setpoint_c = rng.choice(self.MATERIALS_C)
                self.cycle_sp_s, self.peak_bar = rng.uniform(18, 45), rng.uniform(700, 1400)
        heater_target = self.setpoint_c - (40.0 if self.faults.active == 201 else 0.0)
        if not self.producing:
            heater_target -= 15.0  # standby during mould change
        self.temp_c = approach(self.temp_c, heater_target, 300.0, dt)
        self._cycle(dt)

    def _hot(self) -> bool:
        return abs(self.temp_c - self.setpoint_c) < 8.0

    def _cycle(self, dt: float) -> None:
        cycling = self.producing and self._hot() and not self.faults.active
        if not cycling:
            self.pressure = approach(self.pressure, 0.0, 0.5, dt)
            self.pump_kw = 2.5 if self.producing else 1.0
            return
        self.cycle_pos_s += dt
        while self.cycle_pos_s >= self.cycle_len_s:
            self.cycle_pos_s -= self.cycle_len_s
            self.last_cycle_s = self.cycle_len_s
            self.wear += 1.0 / 800.0
            self.cycle_len_s = self.cycle_sp_s * (1 + 0.08 * min(self.wear, 1.5)) * (1 + self.rng.gauss(0, 0.01))
        frac = self.cycle_pos_s / self.cycle_len_s
        peak = self.peak_bar * (1 - 0.05 * min(self.wear, 1.5))
        if frac < 0.08:  # injection
            self.pressure, self.pump_kw = peak * math.sin(frac / 0.08 * math.pi / 2), 2.5 + 25 * peak / 1400
            if frac * self.cycle_len_s < dt:
                self.spike.kick(1.5)
        elif frac < 0.35:  # holding pressure
            self.pressure, self.pump_kw = 0.55 * peak, 2.5 + 8.0
        elif frac < 0.85:  # cooling, screw recovery against back pressure
            self.pressure, self.pump_kw = 15.0, 2.5 + 6.0
        else:  # mould open and ejection
            self.pressure, self.pump_kw = 0.0, 2.5 + 3.0

    def observe(self) -> Values:
        heater_kw = min(18.0, max(0.0, 0.35 * (self.setpoint_c - self.temp_c) + 0.012 * (self.temp_c - AMBIENT_C)))
        if self.faults.active == 201:
            heater_kw *= 0.6
        running = self.producing and not self.faults.active
        vib = (1.1 + 2.0 * self.wear**2 + 2.5 * self.pressure / 1400) if running else 0.3
        return {
            "barrel_temp_c": round(self.temp_c + 0.8 * math.sin(2 * math.pi * self.t_s / 240) + self._noise(0.4), 2),
            "injection_pressure_bar": round(max(0.0, self.pressure * (1 + self._noise(0.01)) + self._noise(1)), 1),
            "cycle_time_s": round(self.last_cycle_s, 2),
            "vibration_mm_s": round(max(0.0, vib * (1 + self._noise(0.05)) + self.spike.value), 3),
            "power_kw": round(max(0.0, (heater_kw + self.pump_kw) * (1 + 0.1 * self.wear) + self._noise(0.1)), 3),
            "fault_code": self.faults.active,
        }


class Compressor(Machine):
    """A screw compressor with load/unload control; bearing wear and filter clogging drift until service."""

    kind = "compressor"
    fields = ("discharge_pressure_bar", "motor_temp_c", "vibration_mm_s", "power_kw", "fault_code", "operator_badge")
    default_fault_rate_per_h = 0.3
    fault_kinds = (
        FaultKind(301, 2.0, 120, 600),  # motor overload trip: motor stops, pressure falls
        FaultKind(302, 1.0, 300, 900),  # high discharge temperature: motor stops
    )
    RATED_KW = 37.0
    CUT_IN_BAR, CUT_OUT_BAR = 6.5, 7.5
    BAR_PER_S = 0.05  # pressure change per second at 100 % flow imbalance (receiver size)

    def __init__(self, rng: random.Random, fault_rate_per_h: float | None = None) -> None:
        super().__init__(rng, fault_rate_per_h)
        self.pressure = rng.uniform(self.CUT_IN_BAR, self.CUT_OUT_BAR)
        self.state: Literal["loaded", "unloaded", "stopped"] = "loaded"
        self.unloaded_s = 0.0
        self.temp_c = AMBIENT_C + 8 + rng.uniform(0, 5)
        self.demand = rng.uniform(0.2, 0.9)
        self.demand_left_s = rng.uniform(300, 1800)
        self.bearing = rng.uniform(0, 0.3)
        self.filter = rng.uniform(0, 0.3)

    def _advance(self, dt: float) -> None:
        rng = self.rng
        started, ended = self.faults.step(dt, operating=self.state != "stopped")
        if started:
            self.spike.kick(rng.uniform(5, 9) if started == 301 else 1.0)
            self.state = "stopped"
        if ended and (self.bearing >= 1.0 or self.filter >= 1.0):  # serviced while tripped
            self.bearing, self.filter = rng.uniform(0, 0.05), rng.uniform(0, 0.05)
        self.demand_left_s -= dt
        if self.demand_left_s <= 0:
            self.demand, self.demand_left_s = rng.uniform(0.15, 0.95), rng.uniform(300, 1800)
        if not self.faults.active:
            self._control(dt)
        inflow = 1.0 if self.state == "loaded" else 0.0
        outflow = self.demand * min(1.0, self.pressure / self.CUT_IN_BAR)  # air tools slow down when starved
        self.pressure = max(0.0, self.pressure + (inflow - outflow) * self.BAR_PER_S * dt)
        if self.state != "stopped":
            self.bearing += dt / (12 * 3600)
        if self.state == "loaded":
            self.filter += dt / (10 * 3600)
        rise = {"loaded": 48.0, "unloaded": 25.0, "stopped": 0.0}[self.state]
        self.temp_c = approach(self.temp_c, AMBIENT_C + 8 + rise * (1 + 0.1 * self.filter), 900.0, dt)

    def _control(self, dt: float) -> None:
        if self.state == "loaded" and self.pressure >= self.CUT_OUT_BAR:
            self.state, self.unloaded_s = "unloaded", 0.0
        elif self.state != "loaded" and self.pressure <= self.CUT_IN_BAR:
            self.state = "loaded"
        elif self.state == "unloaded":
            self.unloaded_s += dt
            if self.unloaded_s > 300:  # run-on timer expired: stop the motor
                self.state = "stopped"

    def observe(self) -> Values:
        if self.state == "loaded":
            power = self.RATED_KW * (0.95 + 0.06 * (self.pressure - self.CUT_IN_BAR)) * (1 + 0.12 * self.filter)
            vib = 2.2
        elif self.state == "unloaded":
            power, vib = 0.28 * self.RATED_KW, 1.4
        else:
            power, vib = 0.15, 0.05
        if self.state != "stopped":
            vib += 3.0 * self.bearing**2
        return {
            "discharge_pressure_bar": round(max(0.0, self.pressure + self._noise(0.02)), 3),
            "motor_temp_c": round(self.temp_c + self._noise(0.2), 2),
            "vibration_mm_s": round(max(0.0, vib * (1 + self._noise(0.05)) + self.spike.value), 3),
            "power_kw": round(max(0.0, power * (1 + self._noise(0.01)) + self._noise(0.05)), 3),
            "fault_code": self.faults.active,
        }


MACHINES: dict[str, type[Machine]] = {m.kind: m for m in (CncMill, InjectionPress, Compressor)}
