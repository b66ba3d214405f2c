"""The residency cell this replica serves and its links to peer cells (docs/cells.md)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter

from ingest.api.auth import AUTH_RESPONSES, guard
from ingest.api.deps import RuntimeDep
from ingest.auth.roles import Role

router = APIRouter(tags=["stats"])


@router.get(
    "/links",
    summary="This cell and its links to peer cells",
    description="The cell this replica serves (`null` without cells), the regions it hosts, and per link it sends "
    "parts over: whether the bridge is up, the parts waiting in the outbox, the age of the oldest one (lag, "
    "seconds), and the parts sent, re-sent and receipted by this replica. Roles: operator, engineer, compliance.",
    dependencies=guard(Role.OPERATOR, Role.ENGINEER, Role.COMPLIANCE),
    responses=AUTH_RESPONSES,
)
def get_links(runtime: RuntimeDep) -> dict[str, Any]:
    cell = runtime.extras.get("cell")
    link = runtime.extras.get("link")
    if cell is None:
        return {"cell": None, "regions": sorted(runtime.regions), "links": []}
    spec = cell.topology.cells[cell.name]
    return {
        "cell": cell.name,
        "country": spec.country,
        "regions": sorted(spec.regions),
        "sites": sorted(spec.sites),
        "links": link.snapshot() if link is not None else [],
    }
