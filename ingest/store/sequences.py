"""Per-device sequence tracking in the control store: batches seen once, gaps opened and closed, and the
claims that tell a redelivery from a conflict or an implausible jump (docs/message-isolation.md).

Called inside a control transaction, under per-device advisory locks, so replicas that receive
batches of the same devices concurrently serialise here and agree on the gaps and on who claimed a seq.

The work of a whole flush takes two round trips, whatever the number of devices (psycopg pipeline
mode): the first pipeline takes every device's lock (in sorted device order, so replicas cannot
deadlock), then reads the highest seqs seen, the open gaps holding incoming seqs, and inserts the
batches; the gap changes and progress counters, worked out here, go out in the second.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Literal

import psycopg

from ingest.store.connection import ENCODING_ERRORS, StoreConnection

_LOCK = "SELECT pg_advisory_xact_lock(hashtext('seq:' || %s))"
# One index probe per device (max() per device_id uses the primary key backwards), with the seconds since the
# device's last batch (the ingest's clock: a device cannot move it).
_MAX_SEEN = (
    "SELECT d, (SELECT max(seq) FROM batches_seen WHERE device_id = d),"
    " (SELECT extract(epoch FROM now() - last_seen_at)::float8 FROM device_progress WHERE device_id = d)"
    " FROM unnest(%b::text[]) AS d"
)
# The digests of incoming seqs already seen (a redelivery, a replay or a conflict).
_DIGESTS = (
    "SELECT b.device_id, b.seq, b.digest FROM unnest(%b::text[], %b::bigint[]) AS t(d, s)"
    " JOIN batches_seen b ON b.device_id = t.d AND b.seq = t.s"
)
# The open gaps that hold an incoming seq: the only ones a late batch can shrink, split or close. Only a
# seq below the highest seen can be in a gap; each such seq probes its device's open gaps (partial index).
_GAPS_HOLDING = (
    "SELECT id, device_id, first_missing, last_missing, detected_at FROM sequence_gaps WHERE id IN ("
    "SELECT g.id FROM unnest(%b::text[], %b::bigint[]) AS t(d, s) JOIN sequence_gaps g ON g.device_id = t.d"
    " AND g.closed_at IS NULL AND t.s BETWEEN g.first_missing AND g.last_missing"
    " WHERE t.s < (SELECT max(seq) FROM batches_seen WHERE device_id = t.d))"
    " ORDER BY id FOR UPDATE"
)
_SEEN = (
    "INSERT INTO batches_seen (device_id, seq, readings)"
    " SELECT d, s, r FROM unnest(%b::text[], %b::bigint[], %b::int[]) AS t(d, s, r)"
    " ON CONFLICT DO NOTHING RETURNING device_id, seq, readings"
)
_CLAIM = (
    "INSERT INTO batches_seen (device_id, seq, readings, digest)"
    " SELECT d, s, r, g FROM unnest(%b::text[], %b::bigint[], %b::int[], %b::bytea[]) AS t(d, s, r, g)"
    " ON CONFLICT DO NOTHING"
)
_UPDATE_GAPS = (
    "UPDATE sequence_gaps g SET first_missing = u.f, last_missing = u.l,"
    " closed_at = CASE WHEN u.c THEN now() END"
    " FROM unnest(%b::bigint[], %b::bigint[], %b::bigint[], %b::bool[]) AS u(id, f, l, c) WHERE g.id = u.id"
)
_INSERT_GAPS = (
    "INSERT INTO sequence_gaps (device_id, first_missing, last_missing, detected_at, closed_at)"
    " SELECT d, f, l, coalesce(t, now()), CASE WHEN c THEN now() END"
    " FROM unnest(%b::text[], %b::bigint[], %b::bigint[], %b::timestamptz[], %b::bool[]) AS u(d, f, l, t, c)"
)
_PROGRESS = (
    "INSERT INTO device_progress AS p (device_id, last_seq, batches, readings, last_seen_at)"
    " SELECT d, s, b, r, now() FROM unnest(%b::text[], %b::bigint[], %b::bigint[], %b::bigint[]) AS t(d, s, b, r)"
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
        highest: dict[str, int | None] = {device: top for device, top, _ in high.fetchall()}
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


Verdict = Literal["new", "seen", "conflict", "jump"]
"""What a claim found: ``new`` (first time), ``seen`` (the same content again: a redelivery or replay),
``conflict`` (the seq was seen with other content), ``jump`` (further ahead than the device could have come)."""


@dataclass(frozen=True, slots=True)
class Claim:
    """A valid batch about to be routed: its device, seq, number of readings and content digest."""

    device_id: str
    seq: int
    readings: int
    digest: bytes


@dataclass(frozen=True, slots=True)
class JumpBound:
    """How far ahead of a device's highest seq a batch may be: ``allowance`` batches plus ``rate`` batches per
    second since the device's last batch. A first batch of a device beyond ``allowance`` opens no gap."""

    allowance: int = 1000
    rate: float = 50.0

    def limit(self, highest: int, idle_s: float | None) -> int:
        return highest + self.allowance + int(self.rate * max(0.0, idle_s or 0.0))


def claim_all(conn: psycopg.Connection, claims: Sequence[Claim], bound: JumpBound) -> list[Verdict]:
    """Claim the seqs of a flush's valid batches: record the new ones (gaps, progress) and say, per claim, whether
    it is new, seen (same digest), a conflict (other digest) or a jump. Two round trips for the whole flush (three
    when some seqs are not above their device's highest: a redelivery, a replay, a late batch); runs in the
    caller's transaction (never commits), under the devices' advisory locks.

    A conflict or a jump is not recorded: the device's highest seq does not move and no gap opens."""
    if not claims:
        return []
    devices = sorted({c.device_id for c in claims})
    with conn.cursor() as lock, conn.cursor() as high:
        with conn.pipeline():
            for device in devices:  # sorted: replicas take the locks in the same order
                lock.execute(_LOCK, (device,))
            high.execute(_MAX_SEEN, (devices,))
        state = {device: (highest, idle) for device, highest, idle in high.fetchall()}
    # Only a seq at or below its device's highest can have been seen before or lie in an open gap (gaps are below
    # the highest); the locks keep the highest where it is. In order, batch after batch, nothing is probed.
    keys = sorted({(c.device_id, c.seq) for c in claims if (top := state[c.device_id][0]) is not None and c.seq <= top})
    known: dict[tuple[str, int], bytes | None] = {}
    gaps: dict[str, list[_Gap]] = {}
    if keys:
        with conn.cursor() as digests, conn.cursor() as held:
            with conn.pipeline():
                digests.execute(_DIGESTS, ([d for d, _ in keys], [s for _, s in keys]))
                held.execute(_GAPS_HOLDING, ([d for d, _ in keys], [s for _, s in keys]))
            known = {(d, s): g for d, s, g in digests.fetchall()}
            for gap_id, device, first, last, detected_at in held.fetchall():
                gaps.setdefault(device, []).append(_Gap(gap_id, device, first, last, detected_at))

    verdicts: list[Verdict] = ["new"] * len(claims)
    accepted: dict[str, list[tuple[int, int]]] = {device: [] for device in devices}
    inserts: list[Claim] = []
    highest = {device: state[device][0] for device in devices}
    no_gap_before: set[str] = set()
    order = sorted(range(len(claims)), key=lambda i: (claims[i].device_id, claims[i].seq))
    for i in order:
        c = claims[i]
        key = (c.device_id, c.seq)
        if key in known:
            digest = known[key]
            verdicts[i] = "seen" if digest is None or digest == c.digest else "conflict"
            continue
        top = highest[c.device_id]
        if top is None:
            if c.seq > bound.allowance + 1:
                no_gap_before.add(c.device_id)  # a device's first batch, far from 1: no gap of invented batches
        elif c.seq > bound.limit(top, state[c.device_id][1]):
            verdicts[i] = "jump"
            continue
        known[key] = c.digest
        inserts.append(c)
        accepted[c.device_id].append((c.seq, c.readings))
        if top is None or c.seq > top:
            highest[c.device_id] = c.seq
    if inserts:
        with conn.cursor() as cur:
            cur.execute(
                _CLAIM,
                (
                    [c.device_id for c in inserts],
                    [c.seq for c in inserts],
                    [c.readings for c in inserts],
                    [c.digest for c in inserts],
                ),
            )
    for device in devices:
        seqs = [s for s, _ in accepted[device]]
        start = state[device][0]
        if start is None and device in no_gap_before:
            start, seqs = seqs[0], seqs[1:]  # the device's first accepted seq is where it starts
        _track(device, seqs, start, gaps.setdefault(device, []))
    _write(conn, [g for device in devices for g in gaps[device]], accepted)
    return verdicts


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
            cur.execute(
                _UPDATE_GAPS,
                (
                    [g.id for g in updated],
                    [g.first for g in updated],
                    [g.last for g in updated],
                    [g.closed for g in updated],
                ),
            )
        if created:
            cur.execute(
                _INSERT_GAPS,
                (
                    [g.device_id for g in created],
                    [g.first for g in created],
                    [g.last for g in created],
                    [g.detected_at for g in created],
                    [g.closed for g in created],
                ),
            )
        if progressed:
            cur.execute(
                _PROGRESS,
                (
                    [device for device, _ in progressed],
                    [max(s for s, _ in rows) for _, rows in progressed],
                    [len(rows) for _, rows in progressed],
                    [sum(r for _, r in rows) for _, rows in progressed],
                ),
            )


class SequenceClaimer:
    """Claims a flush's sequence numbers before its messages are routed (:func:`claim_all`), on its own
    connection to the control store (the control thread commits decision logs on another, concurrently)."""

    def __init__(self, dsn: str, bound: JumpBound) -> None:
        self._store = StoreConnection("control", dsn)
        self.bound = bound

    def claim(self, claims: Sequence[Claim]) -> list[Verdict]:
        """Claim and commit; raise StoreUnavailableError (or, for data it cannot hold, StoreDataError)."""
        if not claims:
            return []
        conn = self._store.get()
        try:
            with conn.transaction():
                return claim_all(conn, claims, self.bound)
        except (psycopg.Error, *ENCODING_ERRORS) as exc:
            raise self._store.error(exc) from None

    def close(self) -> None:
        self._store.close()
