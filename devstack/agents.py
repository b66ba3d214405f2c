"""Edge agent configurations for simulated sites, generated from the device registry."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from ingest.registry import Registry

_OPERATORS = {"cnc_mill": 2, "injection_press": 3, "compressor": 1}


def agent_config(
    registry: Registry,
    site_id: str,
    *,
    mqtt_port: int,
    state_dir: Path,
    interval_ms: int = 200,
    max_readings: int = 25,
    max_latency_ms: int = 1000,
    seed: int = 0,
) -> dict[str, Any]:
    """The agent config of one site: one simulated source per registered device of the site."""
    site = registry.sites[site_id]
    sources = []
    for n, (device_id, device) in enumerate(sorted(registry.devices.items())):
        if device.site != site_id or device.sparkplug is not None:  # a Sparkplug edge node's device: not ours
            continue
        prefix = site_id.split("-")[0].upper()
        operators = [f"{prefix}-B{1000 + 10 * n + k}" for k in range(_OPERATORS.get(device.profile, 2))]
        sources.append(
            {
                "type": "simulated",
                "device_id": device_id,
                "machine": device.profile,
                "interval_ms": interval_ms,
                "seed": seed + n,
                "operators": operators,
            }
        )
    return {
        "gateway_id": f"{site_id}-gw-01",
        "site_id": site_id,
        "country": site.country,
        "state_dir": str(state_dir),
        "broker": {"host": "127.0.0.1", "port": mqtt_port, "keepalive_s": 30},
        "batch": {"max_readings": max_readings, "max_latency_ms": max_latency_ms},
        "sources": sources,
    }


def write_agent_config(path: Path, config: dict[str, Any]) -> Path:
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    return path
