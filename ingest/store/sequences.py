"""Per-device sequence tracking in the control store: batches seen once, gaps opened and closed.

Called inside the control transaction, under a per-device advisory lock, so replicas that receive
batches of the same device concurrently serialise here and agree on the gaps.
"""

from __future__ import annotations

from collections.abc import Iterable

import psycopg

_LOCK = "SELECT pg_advisory_xact_lock(hashtext('seq:' || %s))"
_MAX_SEEN = "SELECT max(seq) FROM batches_seen WHERE device_id = %s"
_SEEN = (
    "INSERT INTO batches_seen (device_id, seq, readings)"
    " SELECT %s, s, r FROM unnest(%s::bigint[], %s::int[]) AS t(s, r) ON CONFLICT DO NOTHING RETURNING seq, readings"
)
_OPEN_GAP = "INSERT INTO sequence_gaps (device_id, first_missing, last_missing) VALUES (%s, %s, %s)"
_GAP_HOLDING = (
    "SELECT id, first_missing, last_missing, detected_at FROM sequence_gaps WHERE device_id = %s"
    " AND closed_at IS NULL AND %s BETWEEN first_missing AND last_missing FOR UPDATE"
)
_PROGRESS = (
    "INSERT INTO device_progress AS p (device_id, last_seq, batches, readings, last_seen_at)"
    " VALUES (%s, %s, %s, %s, now())"
    " ON CONFLICT (device_id) DO UPDATE SET last_seq = GREATEST(p.last_seq, EXCLUDED.last_seq),"
    " batches = p.batches + EXCLUDED.batches, readings = p.readings + EXCLUDED.readings, last_seen_at = now()"
)


def record_batches(cur: psycopg.Cursor, device_id: str, batches: Iterable[tuple[int, int]]) -> list[int]:
    """Record (seq, readings) of one device; update gaps and progress; return the seqs that were new."""
    items = sorted(set(batches))
    cur.execute(_LOCK, (device_id,))
    row = cur.execute(_MAX_SEEN, (device_id,)).fetchone()
    highest: int | None = row[0] if row else None
    cur.execute(_SEEN, (device_id, [s for s, _ in items], [r for _, r in items]))
    new = sorted(cur.fetchall())
    for seq, _ in new:
        if highest is None:
            if seq > 1:  # the device's first batches never arrived
                cur.execute(_OPEN_GAP, (device_id, 1, seq - 1))
            highest = seq
        elif seq > highest + 1:
            cur.execute(_OPEN_GAP, (device_id, highest + 1, seq - 1))
            highest = seq
        elif seq > highest:
            highest = seq
        else:
            _fill(cur, device_id, seq)
    if new:
        cur.execute(_PROGRESS, (device_id, max(s for s, _ in new), len(new), sum(r for _, r in new)))
    return [s for s, _ in new]


def _fill(cur: psycopg.Cursor, device_id: str, seq: int) -> None:
    """A late (replayed or reordered) batch shrinks, splits or closes the gap that holds it."""
    gap = cur.execute(_GAP_HOLDING, (device_id, seq)).fetchone()
    if gap is None:
        return
    gap_id, first, last, detected_at = gap
    if first == last:
        cur.execute("UPDATE sequence_gaps SET closed_at = now() WHERE id = %s", (gap_id,))
    elif seq == first:
        cur.execute("UPDATE sequence_gaps SET first_missing = %s WHERE id = %s", (seq + 1, gap_id))
    elif seq == last:
        cur.execute("UPDATE sequence_gaps SET last_missing = %s WHERE id = %s", (seq - 1, gap_id))
    else:
        cur.execute("UPDATE sequence_gaps SET last_missing = %s WHERE id = %s", (seq - 1, gap_id))
        cur.execute(
            "INSERT INTO sequence_gaps (device_id, first_missing, last_missing, detected_at) VALUES (%s, %s, %s, %s)",
            (device_id, seq + 1, last, detected_at),
        )
