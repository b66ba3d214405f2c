"""The outbox: where a cell commits the parts it sends to regions of other cells (docs/cells.md).

To the consumer, a region hosted by another cell is written like any region: :class:`OutboxWriter` has the
region writer's ``write_groups`` (one group = one message's rows for that region), and turns each group into
a part committed in the control store's ``outbox`` table. Idempotent: the part id is deterministic. When a
link's outbox holds ``max_parts`` parts, writing raises StoreUnavailableError: the messages that need that
link are parked, like messages for a region that is down, and local traffic keeps flowing.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence

import psycopg

from ingest.cells.envelope import part_body
from ingest.errors import StoreUnavailableError
from ingest.records import Row
from ingest.store.connection import ENCODING_ERRORS, StoreConnection
from ingest.store.isolation import GroupsWritten, write_isolated

_INSERT = (
    "INSERT INTO outbox (part_id, to_cell, region, device_id, seq, body)"
    " SELECT * FROM unnest(%s::uuid[], %s::text[], %s::text[], %s::text[], %s::bigint[], %s::bytea[])"
    " ON CONFLICT (part_id) DO NOTHING"
)
_DEPTH = "SELECT count(*) FROM outbox WHERE to_cell = %s"
_DEPTH_TTL_S = 2.0


class OutboxWriter:
    """Writes one remote region's parts into this cell's outbox (its own connection to the control store)."""

    def __init__(
        self,
        region: str,
        *,
        from_cell: str,
        to_cell: str,
        control_dsn: str,
        max_parts: int,
        on_commit: Callable[[], None] | None = None,
    ) -> None:
        """``on_commit``: called after parts were committed (wakes the link sender)."""
        self.name = region
        self._on_commit = on_commit
        self.from_cell = from_cell
        self.to_cell = to_cell
        self.max_parts = max_parts
        self._store = StoreConnection(f"outbox to {to_cell}", control_dsn)
        self._depth = 0
        self._depth_at = float("-inf")

    def write(self, rows: Sequence[Row]) -> int:
        """One message's rows as one part (idempotent); returns the rows given."""
        return self._insert([rows])

    def write_groups(self, groups: Sequence[Sequence[Row]]) -> GroupsWritten:
        """One part per group (message), in one transaction; a part the store refuses is found on its own."""
        return write_isolated(self.name, self._insert, groups)

    def _insert(self, groups: Sequence[Sequence[Row]]) -> int:
        groups = [g for g in groups if g]
        if not groups:
            return 0
        conn = self._store.get()
        try:
            with conn.transaction(), conn.cursor() as cur:
                depth = self._current_depth(cur)
                if depth + len(groups) > self.max_parts:
                    raise StoreUnavailableError(
                        f"link {self.from_cell}->{self.to_cell}",
                        f"outbox full ({depth} parts waiting for cell {self.to_cell}, INGEST_LINK_OUTBOX_MAX "
                        f"{self.max_parts}): messages for region {self.name} wait",
                    )
                parts = [part_body(g, from_cell=self.from_cell, to_cell=self.to_cell, region=self.name) for g in groups]
                cur.execute(
                    _INSERT,
                    (
                        [pid for pid, _ in parts],
                        [self.to_cell] * len(parts),
                        [self.name] * len(parts),
                        [g[0].device_id for g in groups],
                        [g[0].seq for g in groups],
                        [body for _, body in parts],
                    ),
                )
                self._depth += cur.rowcount
        except (psycopg.Error, *ENCODING_ERRORS) as exc:
            raise self._store.error(exc) from None
        if self._on_commit is not None:
            self._on_commit()
        return sum(len(g) for g in groups)

    def _current_depth(self, cur: psycopg.Cursor) -> int:
        """Parts waiting on this link (counted at most every couple of seconds: an estimate between counts)."""
        now = time.monotonic()
        if now - self._depth_at > _DEPTH_TTL_S:
            row = cur.execute(_DEPTH, (self.to_cell,)).fetchone()
            self._depth, self._depth_at = int(row[0]) if row else 0, now
        return self._depth

    def close(self) -> None:
        self._store.close()
