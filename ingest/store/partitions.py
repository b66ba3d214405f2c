"""Daily range partitions of ``readings`` on plain PostgreSQL (TimescaleDB makes chunks by itself).

``readings`` is ``PARTITION BY RANGE (ts)`` (migration ``0002_partitioned_readings.plain.sql``) with one
partition per UTC day, ``readings_pYYYYMMDD`` = [day 00:00 UTC, next day 00:00 UTC), and a default
partition ``readings_default`` for rows that fall in no daily partition (far future, or a day whose
partition does not exist yet). A partition is created by creating a standalone table, moving that
day's rows out of the default partition into it, and attaching it, in one transaction.

Locks: that transaction first takes ACCESS EXCLUSIVE on ``readings`` (it waits for the writers' and
readers' transactions in flight and holds new ones back), then ACCESS EXCLUSIVE on the default partition
(which ATTACH needs anyway). Without the first lock, an INSERT that routed its rows with the partition
list from before the ATTACH would put a row of the new day into the default partition and fail its
constraint, and a SELECT planned with that list would read the emptied default partition and miss the
day's rows (a weaker SHARE ROW EXCLUSIVE lock let readers through: they lost rows for a moment). Readers
and writers take their locks in the same order (parent, then partitions), so there is no deadlock, and
``lock_timeout`` bounds how long they are held back: a day's partition is normally created days ahead,
when the default partition holds none of its rows, so this takes milliseconds.
"""

from __future__ import annotations

import re
from datetime import UTC, date, datetime, time, timedelta

import psycopg
from psycopg import sql

PARENT = "readings"
DEFAULT = "readings_default"
PREFIX = "readings_p"
DAY = timedelta(days=1)
_NAME = re.compile(rf"^{PREFIX}(\d{{8}})$")


def partition_name(day: date) -> str:
    return f"{PREFIX}{day:%Y%m%d}"


def day_of(name: str) -> date | None:
    match = _NAME.match(name)
    return datetime.strptime(match.group(1), "%Y%m%d").date() if match else None


def day_start(day: date) -> datetime:
    return datetime.combine(day, time(0), tzinfo=UTC)


def bounds(day: date) -> tuple[datetime, datetime]:
    start = day_start(day)
    return start, start + DAY


def is_partitioned(conn: psycopg.Connection) -> bool:
    row = conn.execute("SELECT relkind FROM pg_class WHERE oid = to_regclass(%s)", (PARENT,)).fetchone()
    return row is not None and row[0] == "p"


def list_partitions(conn: psycopg.Connection) -> dict[date, str]:
    """Daily partitions attached to ``readings``: day -> table name."""
    rows = conn.execute(
        "SELECT c.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid WHERE i.inhparent = to_regclass(%s)",
        (PARENT,),
    ).fetchall()
    found = {}
    for (name,) in rows:
        day = day_of(name)
        if day is not None:
            found[day] = name
    return found


def days_in_default(conn: psycopg.Connection, *, since: datetime | None, until: datetime) -> list[date]:
    """UTC days that have rows in the default partition, in [since, until)."""
    where = "ts < %(until)s" + (" AND ts >= %(since)s" if since is not None else "")
    rows = conn.execute(
        sql.SQL("SELECT DISTINCT (ts AT TIME ZONE 'UTC')::date FROM {} WHERE " + where + " ORDER BY 1").format(
            sql.Identifier(DEFAULT)
        ),
        {"since": since, "until": until},
    ).fetchall()
    return [row[0] for row in rows]


def _lock_timeout(conn: psycopg.Connection, lock_timeout_ms: int) -> None:
    conn.execute("SELECT set_config('lock_timeout', %s, true)", (f"{lock_timeout_ms}ms",))


def create_partition(conn: psycopg.Connection, day: date, *, lock_timeout_ms: int = 5000) -> int | None:
    """Create the partition of ``day``, moving its rows out of the default partition, in one transaction.

    Returns the number of rows moved, or None when the partition already exists.
    """
    name = partition_name(day)
    lo, hi = bounds(day)
    with conn.transaction():
        _lock_timeout(conn, lock_timeout_ms)
        conn.execute(sql.SQL("LOCK TABLE {} IN ACCESS EXCLUSIVE MODE").format(sql.Identifier(PARENT)))
        conn.execute(sql.SQL("LOCK TABLE {} IN ACCESS EXCLUSIVE MODE").format(sql.Identifier(DEFAULT)))
        if conn.execute("SELECT to_regclass(%s)", (name,)).fetchone() != (None,):
            return None
        table = sql.Identifier(name)
        conn.execute(sql.SQL("CREATE TABLE {} (LIKE {} INCLUDING DEFAULTS)").format(table, sql.Identifier(PARENT)))
        moved = conn.execute(
            sql.SQL(
                "WITH moved AS (DELETE FROM {} WHERE ts >= %s AND ts < %s RETURNING *)"
                " INSERT INTO {} SELECT * FROM moved"
            ).format(sql.Identifier(DEFAULT), table),
            (lo, hi),
        ).rowcount
        conn.execute(
            sql.SQL("ALTER TABLE {} ATTACH PARTITION {} FOR VALUES FROM ({}) TO ({})").format(
                sql.Identifier(PARENT), table, sql.Literal(lo), sql.Literal(hi)
            )
        )
    return moved


def drop_partition(conn: psycopg.Connection, name: str, *, lock_timeout_ms: int = 5000) -> None:
    """Drop a daily partition (retention): the whole day goes at once, no row-by-row delete."""
    if day_of(name) is None:
        raise ValueError(f"{name!r} is not a daily partition of {PARENT}")
    with conn.transaction():
        _lock_timeout(conn, lock_timeout_ms)
        conn.execute(sql.SQL("DROP TABLE IF EXISTS {}").format(sql.Identifier(name)))


def delete_from_default(conn: psycopg.Connection, *, before: datetime) -> int:
    """Retention for rows of the default partition older than ``before``."""
    with conn.transaction():
        return conn.execute(sql.SQL("DELETE FROM {} WHERE ts < %s").format(sql.Identifier(DEFAULT)), (before,)).rowcount


def rows_in_default(conn: psycopg.Connection) -> int:
    row = conn.execute(sql.SQL("SELECT count(*) FROM {}").format(sql.Identifier(DEFAULT))).fetchone()
    return int(row[0]) if row else 0
