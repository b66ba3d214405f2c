"""Recorded decisions read back for the policy (control store, view ``decisions``): SQL only.

:func:`read_patterns` reads a time window of the decision log as what-if *patterns*
(:class:`policy.whatif.Pattern`: identical message-categories, grouped in PostgreSQL), the records that
``policy.whatif.replay`` compares with a draft; the policy library never sees a connection.
:func:`recent_inputs` reads the distinct policy inputs of the most recent decisions, which the policy runtime
decides ahead to warm a new decision cache.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime
from typing import Any

import psycopg
from psycopg.rows import dict_row

from ingest.errors import StoreUnavailableError
from policy.whatif import Part, Pattern, ProgressFn, merge_patterns, slices

_PATTERNS_SQL = """
WITH d AS (
    SELECT device_id, seq, site_id, origin_country, category, region, destination_country, outcome, allow,
           transforms, reasons, requires, policy_revision, readings, input
    FROM decisions
    WHERE decided_at >= %(since)s AND decided_at < %(until)s
    {limit}
), m AS (
    SELECT device_id, seq, site_id, origin_country, category, policy_revision,
           jsonb_agg(jsonb_build_array(region, destination_country, outcome, allow, transforms, reasons,
                                       requires, input) ORDER BY region) AS parts,
           max(readings) AS readings
    FROM d
    GROUP BY device_id, seq, site_id, origin_country, category, policy_revision
)
SELECT trim(origin_country) AS origin, category, site_id, policy_revision, parts,
       count(*) AS messages, coalesce(sum(readings), 0) AS readings,
       max(lpad(seq::text, 20, '0') || ' ' || device_id) AS example
FROM m
GROUP BY origin_country, category, site_id, policy_revision, parts
"""

_RECENT_INPUTS_SQL = (
    "SELECT DISTINCT input FROM (SELECT input FROM decisions ORDER BY decided_at DESC LIMIT %s) d LIMIT %s"
)


def read_patterns(
    dsn: str,
    *,
    since: datetime,
    until: datetime,
    limit: int | None = None,
    progress: ProgressFn | None = None,
    statement_timeout_ms: int = 300_000,
) -> list[Pattern]:
    """Recorded decisions of [since, until) from the control store, grouped into patterns.

    With ``limit`` only the newest ``limit`` decisions of the window are read (one query); otherwise the
    window is read in slices of about an hour, each grouped by PostgreSQL, and merged
    (:func:`policy.whatif.merge_patterns`). Driver errors (``psycopg.Error``) are raised as they are.
    """
    return merge_patterns(
        iter_patterns(
            dsn, since=since, until=until, limit=limit, progress=progress, statement_timeout_ms=statement_timeout_ms
        )
    )


def iter_patterns(
    dsn: str,
    *,
    since: datetime,
    until: datetime,
    limit: int | None = None,
    progress: ProgressFn | None = None,
    statement_timeout_ms: int = 300_000,
) -> Iterator[Pattern]:
    """The patterns of each slice of [since, until) in turn (see :func:`read_patterns`), not yet merged: the
    same pattern may come once per slice. ``progress("read", slice, slices)`` before each slice and at the end."""
    windows = [(since, until)] if limit else slices(since, until)
    limit_sql = "ORDER BY decided_at DESC LIMIT %(limit)s" if limit else ""
    query = _PATTERNS_SQL.format(limit=limit_sql)
    with psycopg.connect(dsn, connect_timeout=10, row_factory=dict_row) as conn:
        conn.read_only = True
        conn.execute("SELECT set_config('statement_timeout', %s, false)", (str(statement_timeout_ms),))
        for i, (start, end) in enumerate(windows):
            if progress:
                progress("read", i, len(windows))
            for row in conn.execute(query, {"since": start, "until": end, "limit": limit}):
                yield _pattern(row)
        if progress:
            progress("read", len(windows), len(windows))


def _pattern(row: dict[str, Any]) -> Pattern:
    parts = [
        Part(
            region,
            destination.strip(),
            outcome,
            bool(allow),
            transforms or {},
            reasons or [],
            requires or [],
            flow or {},
        )
        for region, destination, outcome, allow, transforms, reasons, requires, flow in row["parts"]
    ]
    seq_text, _, device = row["example"].partition(" ")
    return Pattern(
        origin=row["origin"],
        category=row["category"],
        site_id=row["site_id"],
        revision=row["policy_revision"],
        parts=parts,
        messages=int(row["messages"]),
        readings=int(row["readings"]),
        example=(device, int(seq_text)),
    )


def recent_inputs(dsn: str, *, scan: int, limit: int) -> list[Any]:
    """The distinct policy inputs (at most ``limit``, in no particular order) of the ``scan`` most recent
    decisions. StoreUnavailableError when the control store cannot be reached or read."""
    try:
        with psycopg.connect(dsn, connect_timeout=5, autocommit=True, row_factory=dict_row) as conn:
            rows = conn.execute(_RECENT_INPUTS_SQL, (scan, limit)).fetchall()
    except psycopg.Error as exc:
        raise StoreUnavailableError("control", _first_line(exc)) from None
    return [row["input"] for row in rows]


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


__all__ = ["iter_patterns", "read_patterns", "recent_inputs"]
