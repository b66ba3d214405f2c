"""Per-device sequence tracking in the control store: batches seen once, gaps opened and closed.

Called inside the control transaction, under per-device advisory locks, so replicas that receive
batches of the same devices concurrently serialise here and agree on the gaps.

The work of a whole flush takes two round trips, whatever the number of devices (psycopg pipeline
mode): the first pipeline takes every device's lock (in sorted device order, so replicas cannot
deadlock), then reads the highest seqs seen, the open gaps holding incoming seqs, and inserts the
batches; the gap changes and progress counters, worked out here, go out in the second.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime

import psycopg

_LOCK = "SELECT pg_advisory_xact_lock(hashtext('seq:' || %s))"
# One index probe per device (max() per device_id uses the primary key backwards).
_MAX_SEEN = "SELECT d, (SELECT max(seq) FROM batches_seen WHERE device_id = d) FROM unnest(%s::text[]) AS d"
# The open gaps that hold an incoming seq: the only ones a late batch can shrink, split or close. Only a
# seq below the highest seen can be in a gap; each such seq probes its device's open gaps (partial index).
_GAPS_HOLDING = (
    "SELECT id, device_id, first_missing, last_missing, detected_at FROM sequence_gaps WHERE id IN ("
    "SELECT g.id FROM unnest(%s::text[], %s::bigint[]) AS t(d, s) JOIN sequence_gaps g ON g.device_id = t.d"
    " AND g.closed_at IS NULL AND t.s BETWEEN g.first_missing AND g.last_missing"
    " WHERE t.s < (SELECT max(seq) FROM batches_seen WHERE device_id = t.d))"
    " ORDER BY id FOR UPDATE"
)
_SEEN = (
    "INSERT INTO batches_seen (device_id, seq, readings)"
    " SELECT d, s, r FROM unnest(%s::text[], %s::bigint[], %s::int[]) AS t(d, s, r)"
    " ON CONFLICT DO NOTHING RETURNING device_id, seq, readings"
)
_UPDATE_GAPS = (
    "UPDATE sequence_gaps g SET first_missing = u.f, last_missing = u.l,"
    " closed_at = CASE WHEN u.c THEN now() END"
    " FROM unnest(%s::bigint[], %s::bigint[], %s::bigint[], %s::bool[]) AS u(id, f, l, c) WHERE g.id = u.id"
)
_INSERT_GAPS = (
    "INSERT INTO sequence_gaps (device_id, first_missing, last_missing, detected_at, closed_at)"
    " SELECT d, f, l, coalesce(t, now()), CASE WHEN c THEN now() END"
    " FROM unnest(%s::text[], %s::bigint[], %s::bigint[], %s::timestamptz[], %s::bool[]) AS u(d, f, l, t, c)"
)
_PROGRESS = (
    "INSERT INTO device_progress AS p (device_id, last_seq, batches, readings, last_seen_at)"
    " SELECT d, s, b, r, now() FROM unnest(%s::text[], %s::bigint[], %s::bigint[], %s::bigint[]) AS t(d, s, b, r)"
    " ON CONFLICT (device_id) DO UPDATE SET last_seq = GREATEST(p.last_seq, EXCLUDED.last_seq),"
    " batches = p.batches + EXCLUDED.batches, readings = p.readings + EXCLUDED.readings, last_seen_at = now()"
)


@dataclass
class _Gap:
    """An open gap as this flush leaves it; ``id`` None for a gap this flush creates."""

    id: int | None
    device_id: str
    first: int
    last: int
    detected_at: datetime | None  # None: now()
    closed: bool = False
    changed: bool = False


def record_all(conn: psycopg.Connection, batches: dict[str, list[tuple[int, int]]]) -> dict[str, list[int]]:
    """Record (seq, readings) per device; update gaps and progress; return, per device, the seqs that were new.

    Same effect as recording each device in sorted order, in two round trips. Runs in the caller's
    transaction (never commits): the advisory locks are held until it ends.
    """
    devices = sorted(batches)
    if not devices:
        return {}
    items = {device: sorted(set(batches[device])) for device in devices}
    seq_devices = [device for device in devices for _ in items[device]]
    seqs = [s for device in devices for s, _ in items[device]]
    readings = [r for device in devices for _, r in items[device]]

    with conn.cursor() as lock, conn.cursor() as high, conn.cursor() as held, conn.cursor() as seen:
        with conn.pipeline():
            for device in devices:  # sorted: replicas take the locks in the same order
                lock.execute(_LOCK, (device,))
            # after the locks: each statement's snapshot sees what the previous holders committed
            high.execute(_MAX_SEEN, (devices,))
            held.execute(_GAPS_HOLDING, (seq_devices, seqs))
            seen.execute(_SEEN, (seq_devices, seqs, readings))
        highest: dict[str, int | None] = dict(high.fetchall())
        gaps: dict[str, list[_Gap]] = {}
        for gap_id, device, first, last, detected_at in held.fetchall():
            gaps.setdefault(device, []).append(_Gap(gap_id, device, first, last, detected_at))
        new: dict[str, list[tuple[int, int]]] = {device: [] for device in devices}
        for device, seq, count in seen.fetchall():
            new[device].append((seq, count))

    for device in devices:
        new[device].sort()
        _track(device, [s for s, _ in new[device]], highest[device], gaps.setdefault(device, []))
    _write(conn, [g for device in devices for g in gaps[device]], new)
    return {device: [s for s, _ in new[device]] for device in devices}


def _track(device_id: str, new: Iterable[int], highest: int | None, gaps: list[_Gap]) -> None:
    """Open a gap for each jump past the highest seq; a late seq fills the gap that holds it."""
    for seq in new:  # ascending
        if highest is None:
            if seq > 1:  # the device's first batches never arrived
                gaps.append(_Gap(None, device_id, 1, seq - 1, None, changed=True))
            highest = seq
        elif seq > highest + 1:
            gaps.append(_Gap(None, device_id, highest + 1, seq - 1, None, changed=True))
            highest = seq
        elif seq > highest:
            highest = seq
        else:
            _fill(gaps, seq)


def _fill(gaps: list[_Gap], seq: int) -> None:
    """A late (replayed or reordered) batch shrinks, splits or closes the gap that holds it."""
    gap = next((g for g in gaps if not g.closed and g.first <= seq <= g.last), None)
    if gap is None:
        return
    gap.changed = True
    if gap.first == gap.last:
        gap.closed = True
    elif seq == gap.first:
        gap.first = seq + 1
    elif seq == gap.last:
        gap.last = seq - 1
    else:
        gaps.append(_Gap(None, gap.device_id, seq + 1, gap.last, gap.detected_at, changed=True))
        gap.last = seq - 1


def _write(conn: psycopg.Connection, gaps: list[_Gap], new: dict[str, list[tuple[int, int]]]) -> None:
    """Gap changes and progress counters of all devices, in one pipeline."""
    updated = [g for g in gaps if g.changed and g.id is not None]
    created = [g for g in gaps if g.id is None]
    progressed = [(device, rows) for device, rows in new.items() if rows]
    if not (updated or created or progressed):
        return
    with conn.cursor() as cur, conn.pipeline():
        if updated:
            cur.execute(_UPDATE_GAPS, ([g.id for g in updated], [g.first for g in updated],
                                       [g.last for g in updated], [g.closed for g in updated]))
        if created:
            cur.execute(_INSERT_GAPS, ([g.device_id for g in created], [g.first for g in created],
                                       [g.last for g in created], [g.detected_at for g in created],
                                       [g.closed for g in created]))
        if progressed:
            cur.execute(_PROGRESS, ([device for device, _ in progressed],
                                    [max(s for s, _ in rows) for _, rows in progressed],
                                    [len(rows) for _, rows in progressed],
                                    [sum(r for _, r in rows) for _, rows in progressed]))
