"""Sparkplug B edge nodes (docs/sparkplug.md): each node's session, bdSeq and online status, and its devices'."""

from __future__ import annotations

from datetime import datetime

from fastapi import APIRouter
from pydantic import BaseModel, Field

from ingest.api import db
from ingest.api.auth import AUTH_RESPONSES, guard
from ingest.api.deps import ApiSettingsDep, RuntimeDep
from ingest.auth.roles import Role

router = APIRouter(tags=["devices"])


class SparkplugDevicePublic(BaseModel):
    device: str = Field(description="The Sparkplug device id.")
    device_id: str | None = Field(description="The registry device it maps to (null: not registered).")
    online: bool = Field(description="Born in the node's current session (DBIRTH) and not dead since (DDEATH).")
    since: datetime = Field(description="When its status last changed.")


class SparkplugNodePublic(BaseModel):
    group: str
    edge_node: str
    site: str | None = Field(description="The site the registry places the edge node at (null: not registered).")
    session: int = Field(description="The node's session, numbered by the ingest from 1 at each new NBIRTH.")
    bd_seq: int | None = Field(description="The bdSeq of the session's NBIRTH.")
    online: bool = Field(description="Born (NBIRTH) and not dead since (NDEATH with the session's bdSeq).")
    since: datetime = Field(description="When its status last changed.")
    reason: str | None = Field(description="What last changed it: NBIRTH or NDEATH.")
    devices: list[SparkplugDevicePublic]


@router.get(
    "/sparkplug/nodes",
    summary="Sparkplug B edge nodes: session and online status",
    description="Every Sparkplug B edge node the ingest has seen born, with its current session, the session's "
    "bdSeq, whether it is online and since when, and its devices born in the current session. Roles: operator, "
    "engineer, compliance.",
    dependencies=guard(Role.OPERATOR, Role.ENGINEER, Role.COMPLIANCE),
    responses=AUTH_RESPONSES,
)
def list_sparkplug_nodes(runtime: RuntimeDep, settings: ApiSettingsDep) -> list[SparkplugNodePublic]:
    with db.query(runtime.control, store="control", settings=settings) as cur:
        nodes = cur.execute(
            "SELECT node_key, group_id, edge_node, session, bd_seq, online, state_at, state_reason"
            " FROM sparkplug_nodes ORDER BY group_id, edge_node"
        ).fetchall()
        births = cur.execute(
            "SELECT b.node_key, b.device, b.online, b.state_at FROM sparkplug_births b"
            " JOIN sparkplug_nodes n ON n.node_key = b.node_key AND n.session = b.session"
            " WHERE b.device <> '' ORDER BY b.device"
        ).fetchall()
    registry = runtime.registry
    by_key = {n["node_key"]: n for n in nodes}
    devices: dict[str, list[SparkplugDevicePublic]] = {}
    for row in births:
        node = by_key.get(row["node_key"])
        if node is None:
            continue
        mapped = registry.sparkplug_device(node["group_id"], node["edge_node"], row["device"])
        devices.setdefault(row["node_key"], []).append(
            SparkplugDevicePublic(device=row["device"], device_id=mapped, online=row["online"], since=row["state_at"])
        )
    return [
        SparkplugNodePublic(
            group=n["group_id"],
            edge_node=n["edge_node"],
            site=registry.sparkplug_node_site(n["group_id"], n["edge_node"]),
            session=n["session"],
            bd_seq=n["bd_seq"],
            online=n["online"],
            since=n["state_at"],
            reason=n["state_reason"],
            devices=devices.get(n["node_key"], []),
        )
        for n in nodes
    ]
