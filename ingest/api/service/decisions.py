"""The decision log (control store): recent decisions and the origin -> region flow matrix."""

from __future__ import annotations

from datetime import timedelta

from psycopg import sql

from ingest.api import db
from ingest.api.config import ApiSettings
from ingest.api.models import (
    OUTCOMES,
    DecisionPage,
    DecisionPublic,
    FlowPublic,
    FlowsPublic,
    OutcomeTotalPublic,
    RegionTotalPublic,
)
from ingest.runtime import Runtime

_COLUMNS = sql.SQL(
    "decision_id, decided_at, device_id, seq, site_id, origin_country, category, region,"
    " destination_country, outcome, allow, localization, requires, transforms, reasons,"
    " policy_revision, readings"
)
_FLOWS = """
SELECT origin_country, region, category, outcome, count(*) AS decisions,
       coalesce(sum(readings), 0) AS readings
FROM decisions
WHERE decided_at > %(until)s - %(window)s AND decided_at <= %(until)s
GROUP BY origin_country, region, category, outcome
ORDER BY origin_country, region, category, outcome
"""


def list_decisions(
    *,
    runtime: Runtime,
    settings: ApiSettings,
    filters: dict[str, str | None],
    include_input: bool,
    limit: int,
    offset: int,
) -> DecisionPage:
    """Decisions newest first; ``filters`` maps a column name (a constant) to its wanted value or None."""
    wanted = {column: value for column, value in filters.items() if value is not None}
    where = sql.SQL(" AND ").join(
        sql.SQL("{} = {}").format(sql.Identifier(column), sql.Placeholder(column)) for column in wanted
    )
    columns = sql.SQL("{}, input").format(_COLUMNS) if include_input else _COLUMNS
    query = sql.SQL(
        "SELECT {columns} FROM decisions {where} ORDER BY decided_at DESC, decision_id"
        " LIMIT %(limit)s OFFSET %(offset)s"
    ).format(columns=columns, where=sql.SQL("WHERE {}").format(where) if wanted else sql.SQL(""))
    with db.query(runtime.control, store="control", settings=settings) as cur:
        rows = cur.execute(query, {**wanted, "limit": limit, "offset": offset}).fetchall()
    items = [DecisionPublic.model_validate({**row, "origin_country": row["origin_country"].strip()})
             for row in rows]
    return DecisionPage(limit=limit, offset=offset, items=items)


def flows(*, runtime: Runtime, settings: ApiSettings, window_s: int) -> FlowsPublic:
    """Decisions and readings per (origin country, region, category, outcome) over the last window."""
    with db.query(runtime.control, store="control", settings=settings) as cur:
        clock = cur.execute("SELECT now() AS now").fetchone()
        assert clock is not None
        until = clock["now"]
        rows = cur.execute(_FLOWS, {"until": until, "window": timedelta(seconds=window_s)}).fetchall()
    flow_rows = [FlowPublic.model_validate({**row, "origin_country": row["origin_country"].strip()})
                 for row in rows]
    regions = list(runtime.registry.regions)
    regions += sorted({f.region for f in flow_rows} - set(regions))
    totals = {
        region: RegionTotalPublic(
            region=region, decisions=0, readings=0, outcomes={o: OutcomeTotalPublic() for o in OUTCOMES}
        )
        for region in regions
    }
    for f in flow_rows:
        total = totals[f.region]
        total.decisions += f.decisions
        total.readings += f.readings
        total.outcomes[f.outcome].decisions += f.decisions
        total.outcomes[f.outcome].readings += f.readings
    return FlowsPublic(
        window_s=window_s,
        since=until - timedelta(seconds=window_s),
        until=until,
        flows=flow_rows,
        totals=list(totals.values()),
    )
