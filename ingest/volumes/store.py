"""The control store's ``transferred_subjects`` table (migration 0013): shared by every replica."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date, datetime, timedelta

import psycopg

from ingest.volumes.counter import Row

# Rows changed by another replica are pulled by updated_at; a transaction that committed late with an older
# clock_timestamp() is still seen thanks to this overlap (merging a row twice changes nothing).
PULL_OVERLAP = timedelta(seconds=30)

_UPSERT = """
INSERT INTO transferred_subjects AS t (site_id, region, subject, last_day, last_sensitive_day)
SELECT * FROM unnest(%s::text[], %s::text[], %s::bytea[], %s::date[], %s::date[])
ON CONFLICT (site_id, region, subject) DO UPDATE
   SET last_day = GREATEST(t.last_day, EXCLUDED.last_day),
       last_sensitive_day = GREATEST(t.last_sensitive_day, EXCLUDED.last_sensitive_day),
       updated_at = clock_timestamp()
 WHERE EXCLUDED.last_day > t.last_day
    OR EXCLUDED.last_sensitive_day > t.last_sensitive_day
    OR (t.last_sensitive_day IS NULL AND EXCLUDED.last_sensitive_day IS NOT NULL)
"""


def write(conn: psycopg.Connection, rows: Sequence[Row]) -> None:
    """Upsert rows (the latest days win), in one statement; the caller commits."""
    if not rows:
        return
    sites, regions, subjects, days, sensitive = (list(col) for col in zip(*rows, strict=True))
    conn.execute(_UPSERT, (sites, regions, subjects, days, sensitive))


def read_since(conn: psycopg.Connection, horizon: date, since: datetime | None) -> tuple[list[Row], datetime | None]:
    """Rows of the windows (last_day >= horizon) changed after ``since`` (all when None), and the newest
    ``updated_at`` seen (the next call's ``since``, before the overlap)."""
    params: list[object] = [horizon]
    sql = (
        "SELECT site_id, region, subject, last_day, last_sensitive_day, updated_at FROM transferred_subjects"
        " WHERE last_day >= %s"
    )
    if since is not None:
        sql += " AND updated_at > %s"
        params.append(since - PULL_OVERLAP)
    rows, newest = [], since
    for site, region, subject, day, sens, updated in conn.execute(sql, params):
        rows.append((site, region, bytes(subject), day, sens))
        newest = updated if newest is None or updated > newest else newest
    return rows, newest


def prune(conn: psycopg.Connection, horizon: date) -> int:
    """Delete rows older than both windows; how many."""
    return conn.execute("DELETE FROM transferred_subjects WHERE last_day < %s", (horizon,)).rowcount
