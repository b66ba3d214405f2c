"""All the quarantine's SQL: items in the control store's ``rejections``, held payloads in a region store's
``quarantine_payloads``.

The rejection rows themselves are inserted with the message's other control records
(:class:`ingest.store.control.ControlWriter`); from then on every statement on them is here: the API's listings,
the lifecycle's locks and state changes (:mod:`ingest.quarantine.service`), and the held payloads (written by the
consumer through :class:`QuarantineWriter`, read and deleted by the lifecycle).
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import datetime
from typing import Any

import psycopg
from psycopg.rows import dict_row
from psycopg.types.json import Jsonb

from ingest.errors import StoreUnavailableError
from ingest.quarantine.placement import HeldPayload
from ingest.store.connection import ENCODING_ERRORS, StoreConnection

Item = dict[str, Any]
"""A row of ``rejections`` (a quarantine item), by column name."""

ITEM_COLUMNS = (
    "quarantine_id, received_at, topic, device_id, seq, code, detail, category, origin_country, payload_bytes,"
    " payload_region, state, released_at, released_by, release_result, closed_at, closed_by, close_reason"
)
"""The columns of an item the API shows."""

_INSERT = (
    "INSERT INTO quarantine_payloads (quarantine_id, topic, payload) VALUES (%s, %s, %s)"
    " ON CONFLICT (quarantine_id) DO NOTHING"
)


# --- held payloads (region stores) -----------------------------------------------------------------------------
class QuarantineWriter:
    """Writes held payloads to one region store (rare: its own connection, opened on demand)."""

    def __init__(self, name: str, dsn: str) -> None:
        self.name = name
        self._store = StoreConnection(name, dsn)

    def write(self, items: Sequence[HeldPayload]) -> int:
        """Hold ``items`` (quarantine id, topic, payload); idempotent. Returns how many were given."""
        if not items:
            return 0
        conn = self._store.get()
        try:
            with conn.transaction(), conn.cursor() as cur:
                cur.executemany(_INSERT, list(items))
        except (psycopg.Error, *ENCODING_ERRORS) as exc:
            raise self._store.error(exc) from None
        return len(items)

    def close(self) -> None:
        self._store.close()


def read_payload(region: str, dsn: str, qid: uuid.UUID) -> tuple[str, bytes] | None:
    """(topic, payload) held for ``qid`` in ``region``, or None; StoreUnavailableError when it is down."""
    try:
        with psycopg.connect(dsn, connect_timeout=5) as conn:
            row = conn.execute(
                "SELECT topic, payload FROM quarantine_payloads WHERE quarantine_id = %s", (qid,)
            ).fetchone()
    except psycopg.OperationalError as exc:
        raise StoreUnavailableError(region, str(exc).strip().splitlines()[0]) from None
    return (row[0], bytes(row[1])) if row else None


def delete_payload(dsn: str, qid: uuid.UUID) -> None:
    """Delete the payload held for ``qid`` (psycopg.Error when the store refuses)."""
    with psycopg.connect(dsn, connect_timeout=5) as conn:
        conn.execute("DELETE FROM quarantine_payloads WHERE quarantine_id = %s", (qid,))


# --- items (control store) -------------------------------------------------------------------------------------
def connect_control(dsn: str) -> psycopg.Connection[Item]:
    """A connection to the control store, rows as dicts; StoreUnavailableError when it is down."""
    try:
        return psycopg.connect(dsn, connect_timeout=5, row_factory=dict_row)
    except psycopg.OperationalError as exc:
        raise StoreUnavailableError("control", str(exc).strip().splitlines()[0]) from None


def lock_item(conn: psycopg.Connection[Item], qid: uuid.UUID) -> Item | None:
    """The whole item, locked until the transaction ends (a release or closure at a time), or None."""
    return conn.execute("SELECT * FROM rejections WHERE quarantine_id = %s FOR UPDATE", (qid,)).fetchone()


def item_summary(conn: psycopg.Connection[Item], qid: uuid.UUID) -> Item | None:
    """The item's ``code`` and ``payload_region``, or None."""
    return conn.execute("SELECT code, payload_region FROM rejections WHERE quarantine_id = %s", (qid,)).fetchone()


def mark_released(conn: psycopg.Connection[Item], qid: uuid.UUID, *, actor: str, result: dict[str, Any]) -> None:
    conn.execute(
        "UPDATE rejections SET state = 'released', released_at = now(), released_by = %s,"
        " release_result = %s, closed_at = now(), closed_by = %s, close_reason = 'released'"
        " WHERE quarantine_id = %s",
        (actor, Jsonb(result), actor, qid),
    )


def mark_closed(conn: psycopg.Connection[Item], qid: uuid.UUID, *, state: str, actor: str, reason: str) -> datetime:
    """Close the item in ``state`` (dismissed, expired); returns when."""
    closed = conn.execute(
        "UPDATE rejections SET state = %s, closed_at = now(), closed_by = %s, close_reason = %s"
        " WHERE quarantine_id = %s RETURNING closed_at",
        (state, actor, reason, qid),
    ).fetchone()
    assert closed is not None
    at: datetime = closed["closed_at"]
    return at


def due_for_expiry(conn: psycopg.Connection[Item], cutoff: datetime, limit: int) -> list[uuid.UUID]:
    """Held items received before ``cutoff``, oldest first, at most ``limit``."""
    return [
        r["quarantine_id"]
        for r in conn.execute(
            "SELECT quarantine_id FROM rejections WHERE state = 'held' AND received_at < %s"
            " ORDER BY received_at LIMIT %s",
            (cutoff, limit),
        ).fetchall()
    ]


def list_items(
    cur: psycopg.Cursor[Item],
    *,
    scope: list[str] | None,
    states: list[str] | None,
    code: str | None,
    limit: int,
    offset: int,
) -> tuple[dict[str, int], int, list[Item]]:
    """(items per state, how many match, the page of them newest first): items whose payload region is in
    ``scope`` (None: all) or that hold no payload, in ``states`` (None: any), of ``code`` (None: any)."""
    in_scope = "(%(scope)s::text[] IS NULL OR payload_region IS NULL OR payload_region = ANY(%(scope)s::text[]))"
    where = (
        f"quarantine_id IS NOT NULL AND {in_scope} AND (%(states)s::text[] IS NULL OR state = ANY(%(states)s))"
        " AND (%(code)s::text IS NULL OR code = %(code)s)"
    )
    params = {"states": states, "code": code, "limit": limit, "offset": offset, "scope": scope}
    counts = {
        r["state"]: r["n"]
        for r in cur.execute(
            f"SELECT state, count(*) AS n FROM rejections WHERE quarantine_id IS NOT NULL AND {in_scope}"
            " GROUP BY state",
            params,
        ).fetchall()
    }
    found = cur.execute(f"SELECT count(*) AS n FROM rejections WHERE {where}", params).fetchone()
    assert found is not None
    rows = cur.execute(
        f"SELECT {ITEM_COLUMNS} FROM rejections WHERE {where} ORDER BY received_at DESC, id DESC"
        " LIMIT %(limit)s OFFSET %(offset)s",
        params,
    ).fetchall()
    return counts, int(found["n"]), rows


def get_item(cur: psycopg.Cursor[Item], qid: uuid.UUID) -> Item | None:
    """The item as the API shows it, or None."""
    return cur.execute(f"SELECT {ITEM_COLUMNS} FROM rejections WHERE quarantine_id = %s", (qid,)).fetchone()
