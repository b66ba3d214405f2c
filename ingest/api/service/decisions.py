"""The decision log (control store): decisions with filters (a page and its total, or every row streamed for
an export) and the origin -> region flow matrix."""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import psycopg
from psycopg import sql
from psycopg.rows import dict_row

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
# From the log's rows (one per distinct decision per flush), without unnesting them: a decision here is one
# message's category in one region, as in the view.
_FLOWS = """
SELECT origin_country, region, category, outcome, coalesce(sum(cardinality(seqs)), 0) AS decisions,
       coalesce(sum((SELECT sum(r) FROM unnest(readings) AS r)), 0) AS readings
FROM decision_log
WHERE decided_at > %(until)s - %(window)s AND decided_at <= %(until)s
GROUP BY origin_country, region, category, outcome
ORDER BY origin_country, region, category, outcome
"""


CSV_COLUMNS = (
    "decision_id",
    "decided_at",
    "device_id",
    "seq",
    "site_id",
    "origin_country",
    "category",
    "region",
    "destination_country",
    "outcome",
    "allow",
    "localization",
    "requires",
    "transforms",
    "reasons",
    "policy_revision",
    "readings",
)


def utc(value: datetime | None) -> datetime | None:
    """Naive datetimes of the query string are UTC."""
    return value.replace(tzinfo=UTC) if value is not None and value.tzinfo is None else value


@dataclass(frozen=True)
class DecisionFilter:
    """Filters of the decision list and export; each None means any. Equality on the columns of the same
    name, and ``since <= decided_at < until``."""

    origin_country: str | None = None
    region: str | None = None
    category: str | None = None
    outcome: str | None = None
    device_id: str | None = None
    since: datetime | None = None
    until: datetime | None = None

    def where(self) -> tuple[sql.Composable, dict[str, Any]]:
        values = {k: v for k, v in asdict(self).items() if v is not None}
        parts: list[sql.Composable] = []
        for column in values:
            if column == "since":
                parts.append(sql.SQL("decided_at >= %(since)s"))
            elif column == "until":
                parts.append(sql.SQL("decided_at < %(until)s"))
            else:
                parts.append(sql.SQL("{} = {}").format(sql.Identifier(column), sql.Placeholder(column)))
        if not parts:
            return sql.SQL(""), values
        return sql.SQL("WHERE {}").format(sql.SQL(" AND ").join(parts)), values


def list_decisions(
    *,
    runtime: Runtime,
    settings: ApiSettings,
    flt: DecisionFilter,
    include_input: bool,
    limit: int,
    offset: int,
) -> DecisionPage:
    """One page of decisions, newest first, and how many match the filters in all."""
    where, values = flt.where()
    columns = sql.SQL("{}, input").format(_COLUMNS) if include_input else _COLUMNS
    query = sql.SQL(
        "SELECT {columns} FROM decisions {where} ORDER BY decided_at DESC, decision_id, seq"
        " LIMIT %(limit)s OFFSET %(offset)s"
    ).format(columns=columns, where=where)
    # decision_log carries every filtered column: the count needs neither the documents nor unnesting the seqs
    count = sql.SQL("SELECT coalesce(sum(cardinality(seqs)), 0) AS n FROM decision_log {where}").format(where=where)
    with db.query(runtime.control, store="control", settings=settings) as cur:
        rows = cur.execute(query, {**values, "limit": limit, "offset": offset}).fetchall()
        total_row = cur.execute(count, values).fetchone()
    items = [DecisionPublic.model_validate({**row, "origin_country": row["origin_country"].strip()}) for row in rows]
    return DecisionPage(total=int(total_row["n"]) if total_row else 0, limit=limit, offset=offset, items=items)


def export_lines(
    conn: psycopg.Connection[Any], flt: DecisionFilter, *, fmt: str, include_input: bool, batch: int = 2000
) -> Iterator[str]:
    """Every matching decision, newest first, as CSV (with a header) or JSON lines, read through a server-side
    cursor ``batch`` rows at a time (memory stays bounded whatever the log's size)."""
    where, values = flt.where()
    columns = sql.SQL("{}, input").format(_COLUMNS) if include_input else _COLUMNS
    query = sql.SQL("SELECT {columns} FROM decisions {where} ORDER BY decided_at DESC, decision_id, seq").format(
        columns=columns, where=where
    )
    header = [*CSV_COLUMNS, "input"] if include_input else list(CSV_COLUMNS)
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    if fmt == "csv":
        writer.writerow(header)
    with conn.transaction(), conn.cursor(name="decisions_export", row_factory=dict_row) as cur:
        cur.itersize = batch
        cur.execute(query, values)
        for n, row in enumerate(cur, 1):
            row = {**row, "origin_country": row["origin_country"].strip()}
            if fmt == "csv":
                writer.writerow([_csv_cell(row[c]) for c in header])
            else:
                buffer.write(DecisionPublic.model_validate(row).model_dump_json(exclude_none=not include_input))
                buffer.write("\n")
            if n % 500 == 0:
                yield buffer.getvalue()
                buffer.seek(0)
                buffer.truncate()
    yield buffer.getvalue()


def _csv_cell(value: Any) -> Any:
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, (list, dict)):
        return json.dumps(value, sort_keys=True, ensure_ascii=False)
    return value


def flows(*, runtime: Runtime, settings: ApiSettings, window_s: int) -> FlowsPublic:
    """Decisions and readings per (origin country, region, category, outcome) over the last window."""
    with db.query(runtime.control, store="control", settings=settings) as cur:
        clock = cur.execute("SELECT now() AS now").fetchone()
        assert clock is not None
        until = clock["now"]
        rows = cur.execute(_FLOWS, {"until": until, "window": timedelta(seconds=window_s)}).fetchall()
    flow_rows = [FlowPublic.model_validate({**row, "origin_country": row["origin_country"].strip()}) for row in rows]
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
