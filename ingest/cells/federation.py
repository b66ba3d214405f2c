"""Queries across cells (docs/cells.md): a cell's API answers for the regions it hosts and asks its peers for
the others, under one rule: only aggregates of machine data are combined across borders.

A cell asks a peer's ``GET /api/v1/metrics/{name}/partials`` (machine metrics only, the peer checks it too) for
the per-device, per-bucket aggregates of one region it hosts, authenticated with this cell's service token
(``INGEST_PEER_TOKEN_FILE``: a token of a user that the peer cell knows, with the engineer role). Personal
values are never fetched: for them the API answers 421 naming the cell that holds them.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any

import httpx

from ingest.cells.receive import CellContext
from ingest.errors import StoreUnavailableError

PARTIALS_PATH = "/api/v1/metrics/{name}/partials"


def peer_partials(
    cell: CellContext, region: str, name: str, params: Mapping[str, Any], *, token: str | None, timeout_s: float = 10.0
) -> list[dict[str, Any]]:
    """The rows (device_id, ts, min, max, sum, count) of ``region``'s aggregates of machine metric ``name``, from
    the cell hosting it. StoreUnavailableError names the cell when it cannot answer."""
    owner = cell.topology.cell_of_region(region)
    api = cell.topology.cells[owner].api
    where = f"cell {owner}"
    if not api:
        raise StoreUnavailableError(where, f"its API address is not in the topology (cells.{owner}.api)")
    if not token:
        raise StoreUnavailableError(where, "no service token to ask it (INGEST_PEER_TOKEN_FILE)")
    query = {**params, "region": region}
    try:
        answer = httpx.get(
            f"{api.rstrip('/')}{PARTIALS_PATH.format(name=name)}",
            params=query,
            timeout=timeout_s,
            headers={"Authorization": f"Bearer {token}"},
        )
    except httpx.HTTPError as exc:
        raise StoreUnavailableError(where, f"{api} unreachable: {type(exc).__name__}") from None
    if answer.status_code != 200:
        raise StoreUnavailableError(where, f"{api} answered {answer.status_code}: {answer.text[:300]}")
    rows: list[dict[str, Any]] = answer.json()["rows"]
    for row in rows:
        row["ts"] = datetime.fromisoformat(row["ts"])
    return rows
