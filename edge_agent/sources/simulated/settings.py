"""Settings of the simulated source (pydantic only)."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field

from edge_agent.sources.base import SourceSettings
from edge_agent.sources.simulated.machines import MachineKind

__all__ = ["Badge", "SimulatedSettings"]

Badge = Annotated[str, Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,31}$")]


class SimulatedSettings(SourceSettings):
    """Settings of a simulated machine."""

    type: Literal["simulated"] = Field(description="Source type.")
    machine: MachineKind = Field(description="Machine model: cnc_mill, injection_press or compressor.")
    interval_ms: int = Field(default=1000, ge=1, le=3_600_000, description="Sampling period in milliseconds.")
    seed: int | None = Field(default=None, description="Seed of the random generator; set it for reproducible signals.")
    operators: list[Badge] = Field(
        default_factory=list,
        max_length=100,
        description="Badge ids of the operators working shifts on this machine, in rota order. "
        "Empty: no operator_badge field is sent.",
    )
    shift_s: float = Field(default=8 * 3600, gt=0, description="Length of a shift in simulated seconds.")
    time_scale: float = Field(
        default=1.0, gt=0, le=100_000, description="Simulated seconds per real second (1 = real time)."
    )
    fault_rate_per_h: float | None = Field(
        default=None, ge=0, le=3600, description="Mean faults per operating hour; default depends on the machine."
    )
