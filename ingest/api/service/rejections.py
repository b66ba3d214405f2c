"""Rejected messages (control store): metadata only, never the payload."""

from __future__ import annotations

from ingest.api import db
from ingest.api.config import ApiSettings
from ingest.api.models import RejectionPage, RejectionPublic
from ingest.runtime import Runtime

_COUNTS = "SELECT code, count(*) AS n FROM rejections GROUP BY code ORDER BY code"
_ROWS = """
SELECT id, received_at, topic, device_id, seq, code, detail, payload_bytes, payload_kept
FROM rejections
WHERE %(code)s::text IS NULL OR code = %(code)s
ORDER BY received_at DESC, id DESC
LIMIT %(limit)s OFFSET %(offset)s
"""


def list_rejections(
    *, runtime: Runtime, settings: ApiSettings, code: str | None, limit: int, offset: int
) -> RejectionPage:
    """Rejections newest first (optionally of one code), with the count of every code."""
    with db.query(runtime.control, store="control", settings=settings) as cur:
        counts = {row["code"]: row["n"] for row in cur.execute(_COUNTS).fetchall()}
        rows = cur.execute(_ROWS, {"code": code, "limit": limit, "offset": offset}).fetchall()
    total = counts.get(code, 0) if code is not None else sum(counts.values())
    return RejectionPage(
        total=total,
        limit=limit,
        offset=offset,
        counts=counts,
        items=[RejectionPublic.model_validate(row) for row in rows],
    )
