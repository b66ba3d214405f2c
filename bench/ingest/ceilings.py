"""What this machine's CPUs allow the ratio goals to reach, from CPU costs measured in the same run.

A timed window's machine-wide busy share x the number of CPUs / the window's rate = CPU-seconds per
unit of work (every process counted: broker, PostgreSQL, load generators, the code under test). Two
ceilings follow from those costs:

- **G3** (ingest / bare paho subscriber, 1 reading per message): an ingest that receives with paho
  costs at least what the bare subscriber's run cost per message (broker, publisher, paho receive and
  ack), plus ``Router.route`` alone per message, plus its rows at the cost per row of the fastest bulk
  load (B_copy, binary, 4 regions at once). It leaves out the decision log, the rollups, the row
  encoding and the ingest's own bookkeeping, so the true ceiling is lower than this one.
- **G5** (two replicas / one): at one replica's machine-wide CPU cost per row, all CPUs busy give
  1 / (busy share during G1). A second replica only helps with idle CPU. Two replicas can cost less
  machine CPU per row than one, and then a run beats this estimate (one run of the fourth round did).

They are estimates, not bounds (CPU time is sampled from /proc in clock ticks; a 2-vCPU VM may share
one core's execution units), printed so that a missed target can be read against what the machine
allows.
"""

from __future__ import annotations

from dataclasses import dataclass


def cpu_seconds_per_unit(rate: float, busy: float, cpus: int) -> float:
    """CPU-seconds (all processes) per unit of work of a window that ran at ``rate`` units/s while
    ``busy`` (0..1) of ``cpus`` CPUs were busy."""
    if rate <= 0:
        raise ValueError(f"rate must be positive, got {rate}")
    if not 0 <= busy <= 1:
        raise ValueError(f"busy share must be within 0..1, got {busy}")
    if cpus < 1:
        raise ValueError(f"cpus must be >= 1, got {cpus}")
    return busy * cpus / rate


@dataclass(frozen=True)
class G3Ceiling:
    ratio: float
    bare_us_per_msg: float
    route_us_per_msg: float
    rows_per_msg: float
    copy_us_per_row: float

    def detail(self) -> str:
        return (
            f"per message at least: bare subscriber run {self.bare_us_per_msg:.0f} us of CPU (broker, "
            f"publisher, paho) + route {self.route_us_per_msg:.0f} us + {self.rows_per_msg:.1f} rows x "
            f"{self.copy_us_per_row:.1f} us (B_copy binary, 4 regions at once)"
        )


def g3_ceiling(
    *,
    cpus: int,
    bare_rate: float,
    bare_busy: float,
    route_us_per_msg: float,
    rows_per_msg: float,
    copy_rate: float,
    copy_busy: float,
) -> G3Ceiling:
    """The highest ingest / bare-subscriber ratio a paho-based ingest could reach on this machine."""
    if route_us_per_msg < 0 or rows_per_msg < 0:
        raise ValueError("route cost and rows per message must not be negative")
    bare = cpu_seconds_per_unit(bare_rate, bare_busy, cpus)
    row = cpu_seconds_per_unit(copy_rate, copy_busy, cpus)
    per_msg = bare + route_us_per_msg / 1e6 + rows_per_msg * row
    return G3Ceiling(
        ratio=cpus / per_msg / bare_rate,
        bare_us_per_msg=bare * 1e6,
        route_us_per_msg=route_us_per_msg,
        rows_per_msg=rows_per_msg,
        copy_us_per_row=row * 1e6,
    )


def replicas_ceiling(busy_one_replica: float) -> float:
    """The highest N-replicas / 1-replica ratio at one replica's CPU cost per row: all CPUs busy."""
    if not 0 < busy_one_replica <= 1:
        raise ValueError(f"busy share must be within (0, 1], got {busy_one_replica}")
    return 1.0 / busy_one_replica
