"""The "next steps" block ``devstack up`` prints once everything runs: where each thing is and how to use it
(dashboard and API with a token per persona, database DSNs, the broker for a new agent, logs)."""

from __future__ import annotations

import json
import shlex
from dataclasses import dataclass
from pathlib import Path

from devstack.personas import DemoUser


@dataclass(frozen=True)
class NextSteps:
    api_url: str
    admin_token: str
    users: list[DemoUser]
    control_dsn: str
    region_dsns: dict[str, str]
    mqtt_host: str
    mqtt_port: int
    agent_config: Path | None  # one generated agent config, to copy for a new agent
    data_dir: Path
    keep: bool


def render(steps: NextSteps) -> str:
    dashboard = f"{steps.api_url}/dashboard"
    lines = [
        "",
        "Next steps " + "-" * 68,
        f"Dashboard  {dashboard}#token={steps.admin_token}",
        "           (signed in as admin; open a persona's link below to see the platform as that user)",
        f"API        {steps.api_url}/api/v1/docs  (Authorize: paste one of the tokens below)",
        "",
        "Demo users (this run only; region scope in brackets):",
    ]
    rows = [("admin", "admin", "*", "users and tokens; every role", steps.admin_token)]
    rows += [(u.persona.role, u.persona.user, u.persona.scope, u.persona.why, u.token) for u in steps.users]
    for role, user, scope, why, token in rows:
        lines.append(f"  {role:<11} user {user} [{scope}]: {why}")
        lines.append(f"              token {token}")
        lines.append(f"              {dashboard}#token={token}")
    lines += [
        "",
        "Databases (PostgreSQL, user telemetry, no password: loopback only). For `python -m policy whatif`,",
        "`ingest check`, psql:",
        f"  export INGEST_CONTROL_DSN={steps.control_dsn}",
        f"  export INGEST_REGION_DSNS={shlex.quote(json.dumps(steps.region_dsns))}",
        "",
        f"Broker     mqtt://{steps.mqtt_host}:{steps.mqtt_port} (anonymous, loopback only). A new edge agent:",
        f"           broker: {{host: {steps.mqtt_host}, port: {steps.mqtt_port}}} in its agent.yaml",
    ]
    if steps.agent_config is not None:
        lines.append(f"           example: .venv/bin/edge-agent check --config {steps.agent_config}")
    kept = "kept after Ctrl-C (--keep)" if steps.keep else "deleted on Ctrl-C; run with --keep to keep them"
    lines += [
        "",
        f"Logs       {steps.data_dir}  (ingest.log, agent-<site>.log, PostgreSQL and Mosquitto data: {kept})",
        "Press Ctrl-C to stop everything.",
        "",
    ]
    return "\n".join(lines)


@dataclass(frozen=True)
class CellSteps:
    """What one running cell offers (``devstack up`` with cells)."""

    name: str
    country: str
    sites: list[str]
    api_url: str
    users: list[DemoUser]
    control_dsn: str
    region_dsns: dict[str, str]
    mqtt_port: int
    bridges: list[str]  # peers it sends parts to


def render_cells(cells: list[CellSteps], *, admin_token: str, data_dir: Path, keep: bool) -> str:
    """The next steps of a cells run: per cell its dashboard, demo users, databases and broker."""
    lines = [
        "",
        "Next steps " + "-" * 68,
        "Residency cells (docs/cells.md): each cell decides for its own sites; only what the policy allows",
        "crosses to another cell, as parts over its bridge. Every cell has its own API, users and databases.",
        f"The admin token (every role and region, in every cell): {admin_token}",
    ]
    for cell in cells:
        dashboard = f"{cell.api_url}/dashboard"
        lines += [
            "",
            f"Cell {cell.name} ({cell.country}): sites {', '.join(cell.sites) or 'none'}; regions "
            f"{', '.join(cell.region_dsns)}; bridges to {', '.join(cell.bridges) or 'no cell (it only receives)'}",
            f"  Dashboard  {dashboard}#token={admin_token}",
            f"  API        {cell.api_url}/api/v1/docs   links: {cell.api_url}/api/v1/links",
        ]
        for user in cell.users:
            persona = user.persona
            lines.append(f"  {persona.role:<11} user {persona.user} [{persona.scope}]: {dashboard}#token={user.token}")
        lines += [
            f"  export INGEST_CONTROL_DSN={cell.control_dsn}",
            f"  export INGEST_REGION_DSNS={shlex.quote(json.dumps(cell.region_dsns))}",
            f"  Broker     mqtt://127.0.0.1:{cell.mqtt_port} (its gateways log in with their secrets under "
            f"{data_dir}/credentials/{cell.name}/identities/)",
        ]
    kept = "kept after Ctrl-C (--keep)" if keep else "deleted on Ctrl-C; run with --keep to keep them"
    lines += [
        "",
        f"Logs       {data_dir}  (ingest-<cell>.log, agent-<site>.log, credentials, data: {kept})",
        "Press Ctrl-C to stop everything.",
        "",
    ]
    return "\n".join(lines)
