"""The simulated source: realistic, drifting, faulty and deterministic machine signals."""

from __future__ import annotations

import itertools
import random
import statistics
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import yaml

from edge_agent.errors import ConfigError, SourceError
from edge_agent.sources import SOURCES, Source, SourceSettings, create_source
from edge_agent.sources.simulated import MAX_CATCH_UP, SimulatedSettings, SimulatedSource
from edge_agent.sources.simulated.machines import MACHINES, CncMill, Compressor, InjectionPress
from wire import Reading

REGISTRY = Path(__file__).resolve().parents[2] / "deploy" / "local" / "registry.yaml"
FIELDS = {
    "cnc_mill": {
        "spindle_speed_rpm",
        "spindle_temp_c",
        "vibration_mm_s",
        "power_kw",
        "tool_wear_pct",
        "fault_code",
        "operator_badge",
    },
    "injection_press": {
        "barrel_temp_c",
        "injection_pressure_bar",
        "cycle_time_s",
        "vibration_mm_s",
        "power_kw",
        "fault_code",
        "operator_badge",
    },
    "compressor": {
        "discharge_pressure_bar",
        "motor_temp_c",
        "vibration_mm_s",
        "power_kw",
        "fault_code",
        "operator_badge",
    },
}
# Plausible physical ranges (min, max) of every float field over hours of operation.
RANGES: dict[str, dict[str, tuple[float, float]]] = {
    "cnc_mill": {
        "spindle_speed_rpm": (0, 12_500),
        "spindle_temp_c": (15, 80),
        "vibration_mm_s": (0, 45),
        "power_kw": (0, 20),
        "tool_wear_pct": (0, 100),
    },
    "injection_press": {
        "barrel_temp_c": (150, 320),
        "injection_pressure_bar": (0, 1600),
        "cycle_time_s": (10, 60),
        "vibration_mm_s": (0, 30),
        "power_kw": (0, 45),
    },
    "compressor": {
        "discharge_pressure_bar": (0, 8.5),
        "motor_temp_c": (15, 100),
        "vibration_mm_s": (0, 25),
        "power_kw": (0, 45),
    },
}


class FakeClock:
    def __init__(self, t: float = 1000.0) -> None:
        self.t = t

    def __call__(self) -> float:
        return self.t


WALL0 = datetime(2026, 1, 5, 6, 0, tzinfo=UTC)


def make_source(clock: FakeClock | None = None, **overrides: Any) -> SimulatedSource:
    settings: dict[str, Any] = {
        "type": "simulated",
        "device_id": "dev-1",
        "machine": "cnc_mill",
        "interval_ms": 1000,
        "seed": 7,
        "operators": ["B-1", "B-2"],
    }
    settings.update(overrides)
    source = SimulatedSource(
        SimulatedSettings.model_validate(settings), clock=clock or FakeClock(), wall_clock=lambda: WALL0
    )
    source.init()
    return source


def simulate(source: SimulatedSource, clock: FakeClock, samples: int) -> list[Reading]:
    """Read ``samples`` samples by advancing the fake clock (in chunks below the catch-up cap)."""
    source.start()
    out: list[Reading] = []
    interval = source.settings.interval_ms / 1000
    while len(out) < samples:
        clock.t += min(samples - len(out), 1000) * interval
        out.extend(source.read())
    return out[:samples]


def model_run(machine: type[Any], seconds: int, seed: int, **kw: Any) -> list[dict[str, Any]]:
    m = machine(random.Random(seed), **kw)
    rows = []
    for _ in range(seconds):
        m.step(1.0)
        rows.append(m.observe())
    return rows


@pytest.mark.parametrize("machine", sorted(MACHINES))
def test_fields_types_and_plausible_ranges(machine: str) -> None:
    clock = FakeClock()
    source = make_source(clock, machine=machine, time_scale=5.0)  # 6 simulated hours in 4320 samples
    readings = simulate(source, clock, 4320)
    for r in readings:
        assert set(r.values) == FIELDS[machine]
        assert isinstance(r.values["fault_code"], int)
        assert r.values["operator_badge"] in {"B-1", "B-2"}
    for name, (low, high) in RANGES[machine].items():
        raw = [r.values[name] for r in readings]
        values = [v for v in raw if isinstance(v, float)]
        assert len(values) == len(raw), name  # every value is a float
        assert low <= min(values) and max(values) <= high, (name, min(values), max(values))
        assert statistics.pstdev(values) > 0, f"{name} never changes"


def test_field_names_match_the_ingest_registry_profiles() -> None:
    for kind, machine in MACHINES.items():
        assert set(machine.fields) == FIELDS[kind]
    if REGISTRY.is_file():  # the ingest team's registry declares the same fields
        profiles = yaml.safe_load(REGISTRY.read_text())["profiles"]
        for kind in MACHINES:
            assert set(profiles[kind]["fields"]) == FIELDS[kind], kind


def test_duty_cycle_and_thermal_lag_on_the_cnc_mill() -> None:
    rows = model_run(CncMill, 4 * 3600, seed=3, fault_rate_per_h=0.0)
    rpm = [r["spindle_speed_rpm"] for r in rows]
    assert min(rpm) < 50 and max(rpm) > 4000  # setup pauses and cutting jobs
    assert len({round(v, -2) for v in rpm if v > 1000}) >= 3  # different speeds per job
    # temperature lags behind load: right after a job starts, it is still far below where it settles
    # temperature follows load with a lag: it correlates best with the power of minutes ago
    power = [r["power_kw"] for r in rows]
    temp = [r["spindle_temp_c"] for r in rows]

    def corr(lag: int) -> float:
        return statistics.correlation(power[: len(power) - lag], temp[lag:])

    best = max(range(0, 1200, 30), key=corr)
    assert best >= 60, best
    assert corr(best) > corr(0) + 0.1


def test_tool_wear_drifts_up_raises_vibration_and_resets_at_tool_change() -> None:
    rows = model_run(CncMill, 8 * 3600, seed=1, fault_rate_per_h=0.0)
    wear = [r["tool_wear_pct"] for r in rows]
    drops = [i for i in range(1, len(wear)) if wear[i] < wear[i - 1] - 50]
    assert drops, "no tool change in 8 h"
    assert all(b >= a for a, b in itertools.pairwise(wear[: drops[0]]))  # monotonic until then
    cutting = [r for r in rows if r["spindle_speed_rpm"] > 6000]
    worn = [r["vibration_mm_s"] for r in cutting if r["tool_wear_pct"] > 70]
    fresh = [r["vibration_mm_s"] for r in cutting if r["tool_wear_pct"] < 25]
    assert worn and fresh
    assert statistics.mean(worn) > statistics.mean(fresh) + 0.5


def test_cnc_faults_stop_the_spindle_and_spike_vibration() -> None:
    rows = model_run(CncMill, 4 * 3600, seed=5, fault_rate_per_h=6.0)
    codes = [r["fault_code"] for r in rows]
    starts = [i for i in range(1, len(codes)) if codes[i] and not codes[i - 1]]
    assert len(starts) >= 3
    assert {codes[i] for i in starts} <= {101, 102, 103, 104}
    for i in starts:
        assert rows[i + 8]["spindle_speed_rpm"] < 100, "the spindle keeps turning during a fault"
        if codes[i] == 101:
            assert rows[i]["vibration_mm_s"] > 10
    ends = [i for i in range(1, len(codes)) if codes[i - 1] and not codes[i]]
    assert ends, "faults never clear"


def test_compressor_fault_stops_the_motor_and_pressure_falls() -> None:
    rows = model_run(Compressor, 6 * 3600, seed=2, fault_rate_per_h=3.0)
    codes = [r["fault_code"] for r in rows]
    starts = [i for i in range(1, len(codes)) if codes[i] and not codes[i - 1]]
    assert starts
    i = starts[0]
    assert all(rows[j]["power_kw"] < 1.0 for j in range(i + 1, i + 60) if codes[j])
    assert rows[i + 60]["discharge_pressure_bar"] < rows[i]["discharge_pressure_bar"]


def test_press_cycles_show_an_injection_pressure_profile_and_faults() -> None:
    rows = model_run(InjectionPress, 3 * 3600, seed=4, fault_rate_per_h=2.0)
    pressure = [r["injection_pressure_bar"] for r in rows]
    assert max(pressure) > 600 and min(pressure) < 20
    cycles = {r["cycle_time_s"] for r in rows}
    assert len(cycles) > 10 and all(10 < c < 60 for c in cycles)
    assert any(r["fault_code"] for r in rows)


def test_operator_badge_changes_at_shift_changes() -> None:
    clock = FakeClock()
    source = make_source(clock, operators=["B-1", "B-2", "B-3"], shift_s=60, interval_ms=1000)
    readings = simulate(source, clock, 360)
    badges = [str(r.values["operator_badge"]) for r in readings]
    changes = [k for k in range(1, len(badges)) if badges[k] != badges[k - 1]]
    # sample k represents simulated second k + 1: shifts change where (k + 1) crosses a multiple of 60
    assert changes == [59, 119, 179, 239, 299, 359]
    order = [badges[0], badges[60], badges[120], badges[180]]
    assert sorted(str(b) for b in order[:3]) == ["B-1", "B-2", "B-3"] and order[3] == order[0]


def test_no_operators_means_no_badge_field() -> None:
    clock = FakeClock()
    readings = simulate(make_source(clock, operators=[]), clock, 5)
    assert all("operator_badge" not in r.values for r in readings)


def test_same_seed_same_signals_other_seed_other_signals() -> None:
    def values(seed: int) -> list[dict[str, Any]]:
        clock = FakeClock()
        return [r.values for r in simulate(make_source(clock, seed=seed, machine="compressor"), clock, 300)]

    assert values(11) == values(11)
    assert values(11) != values(12)


def test_unseeded_source_draws_and_reports_a_seed() -> None:
    source = make_source(seed=None)
    assert isinstance(source.seed, int)


def test_reads_are_time_driven_and_stamped_on_the_grid() -> None:
    clock = FakeClock(500.0)
    source = make_source(clock, interval_ms=100)
    source.start()
    first = source.read()
    assert len(first) == 1 and first[0].ts == WALL0
    clock.t += 0.35
    more = source.read()
    assert [r.ts for r in more] == [WALL0 + timedelta(milliseconds=100 * k) for k in (1, 2, 3)]
    assert source.read() == []
    clock.t += 10 * MAX_CATCH_UP  # a long stall: the backlog is capped
    assert len(source.read()) == MAX_CATCH_UP
    assert source.poll_interval_s == pytest.approx(0.1)


def test_lifecycle_errors_and_registry() -> None:
    source = SimulatedSource(
        SimulatedSettings.model_validate({"type": "simulated", "device_id": "dev-9", "machine": "compressor"})
    )
    with pytest.raises(SourceError, match="dev-9"):
        source.read()
    assert "simulated" in SOURCES
    built = create_source(
        SimulatedSettings.model_validate({"type": "simulated", "device_id": "dev-9", "machine": "compressor"})
    )
    assert isinstance(built, Source) and built.device_id == "dev-9"
    with pytest.raises(ConfigError, match="unknown source type 'profinet'"):
        create_source(SourceSettings(type="profinet", device_id="dev-9"))
