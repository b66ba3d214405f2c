"""Per-device sequence tracking in the control store: batches seen once, gaps opened and closed, and the
claims that tell a redelivery from a conflict or an implausible jump (docs/message-isolation.md).

Called inside a control transaction, under per-device advisory locks, so replicas that receive
batches of the same devices concurrently serialise here and agree on the gaps and on who claimed a seq.

Gaps and their grace period: each device has a watermark (``device_progress.gaps_checked_to``): every missing seq
up to it has its gap row; above it, up to the highest seq seen, nothing is opened yet. Batches that arrive in order
move the watermark with them and open nothing. Otherwise (a jump ahead, or several consumers whose batches of one
device interleave) the seqs above the watermark wait: :func:`open_due_gaps`, run every second or so by each
consumer, opens a gap for each seq still missing below a batch received at least the grace period ago, and moves
the watermark. With a grace of 0 a jump opens its gap in the claim itself, as it always did. Two consumers that get
a device's batches alternately used to open (and close, a moment later) a gap row per batch.

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
# And the gap watermark (NULL for a new device).
_MAX_SEEN = (
    "SELECT t.d, (SELECT max(seq) FROM batches_seen WHERE device_id = t.d),"
    " extract(epoch FROM now() - p.last_seen_at)::float8, coalesce(p.gaps_checked_to, p.last_seq)"
    " FROM unnest(%b::text[]) AS t(d) LEFT JOIN device_progress p ON p.device_id = t.d"
)
# The digests of incoming seqs already seen (a redelivery, a replay or a conflict).
_DIGESTS = (
    "SELECT b.device_id, b.seq, b.digest FROM unnest(%b::text[], %b::bigint[]) AS t(d, s)"
    " JOIN batches_seen b ON b.device_id = t.d AND b.seq = t.s"
)
# The open gaps that hold an incoming seq: the only ones a late batch can shrink, split or close. Only a
# seq at or below the device's gap watermark can be in a gap; each such seq probes its device's open gaps
# (partial index).
_GAPS_HOLDING = (
    "SELECT id, device_id, first_missing, last_missing, detected_at FROM sequence_gaps WHERE id IN ("
    "SELECT g.id FROM unnest(%b::text[], %b::bigint[]) AS t(d, s) JOIN sequence_gaps g ON g.device_id = t.d"
    " AND g.closed_at IS NULL AND t.s BETWEEN g.first_missing AND g.last_missing"
    " WHERE t.s <= (SELECT coalesce(gaps_checked_to, last_seq) FROM device_progress WHERE device_id = t.d))"
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
    "INSERT INTO device_progress AS p (device_id, last_seq, batches, readings, last_seen_at, gaps_checked_to)"
    " SELECT d, s, b, r, now(), c"
    " FROM unnest(%b::text[], %b::bigint[], %b::bigint[], %b::bigint[], %b::bigint[]) AS t(d, s, b, r, c)"
    " ON CONFLICT (device_id) DO UPDATE SET last_seq = GREATEST(p.last_seq, EXCLUDED.last_seq),"
    " batches = p.batches + EXCLUDED.batches, readings = p.readings + EXCLUDED.readings, last_seen_at = now(),"
    " gaps_checked_to = GREATEST(coalesce(p.gaps_checked_to, p.last_seq), EXCLUDED.gaps_checked_to)"
)
# The devices whose seqs above the watermark wait for the grace period, a page at a time in name order.
_PENDING = (
    "SELECT device_id FROM device_progress WHERE coalesce(gaps_checked_to, last_seq) < last_seq AND device_id > %s"
    " ORDER BY device_id LIMIT %s"
)
# Their locks, those that are free (a sweep never waits for a claim: a device being claimed is swept next time).
_TRY_LOCKS = "SELECT d FROM unnest(%b::text[]) AS d WHERE pg_try_advisory_xact_lock(hashtext('seq:' || d))"
# After the locks (a new snapshot): per device, the highest seq above the watermark received at least the grace
# period ago; a gap for every seq missing up to it; the watermark moved there.
_OPEN_DUE = """
WITH due AS (
    SELECT p.device_id, coalesce(p.gaps_checked_to, p.last_seq) AS checked,
        (SELECT max(b.seq) FROM batches_seen b WHERE b.device_id = p.device_id
            AND b.seq > coalesce(p.gaps_checked_to, p.last_seq)
            AND b.received_at <= now() - make_interval(secs => %s)) AS upto
    FROM device_progress p WHERE p.device_id = ANY(%b::text[])
), holes AS (
    SELECT device_id, prev + 1 AS first_missing, seq - 1 AS last_missing FROM (
        SELECT b.device_id, b.seq, lag(b.seq, 1, due.checked) OVER (PARTITION BY b.device_id ORDER BY b.seq) AS prev
        FROM due JOIN batches_seen b ON b.device_id = due.device_id AND b.seq > due.checked AND b.seq <= due.upto
    ) AS s WHERE seq > prev + 1
), opened AS (
    INSERT INTO sequence_gaps (device_id, first_missing, last_missing)
    SELECT device_id, first_missing, last_missing FROM holes RETURNING 1
), moved AS (
    UPDATE device_progress p SET gaps_checked_to = due.upto FROM due
    WHERE p.device_id = due.device_id AND due.upto IS NOT NULL RETURNING 1
)
SELECT (SELECT count(*) FROM opened), (SELECT count(*) FROM moved)
"""


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


def record_all(
    conn: psycopg.Connection, batches: dict[str, list[tuple[int, int]]], *, immediate: bool = True
) -> dict[str, list[int]]:
    """Record (seq, readings) per device; update gaps and progress; return, per device, the seqs that were new.
    ``immediate``: a jump opens its gap now (else it waits for :func:`open_due_gaps`).

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
        state = {device: (top, checked) for device, top, _, checked in high.fetchall()}
        gaps: dict[str, list[_Gap]] = {}
        for gap_id, device, first, last, detected_at in held.fetchall():
            gaps.setdefault(device, []).append(_Gap(gap_id, device, first, last, detected_at))
        new: dict[str, list[tuple[int, int]]] = {device: [] for device in devices}
        for device, seq, count in seen.fetchall():
            new[device].append((seq, count))

    checked: dict[str, int] = {}
    for device in devices:
        new[device].sort()
        top, mark = state[device]
        checked[device] = _track(
            device, [s for s, _ in new[device]], top or 0, mark, gaps.setdefault(device, []), immediate
        )
    _write(conn, [g for device in devices for g in gaps[device]], new, checked)
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


def claim_all(
    conn: psycopg.Connection, claims: Sequence[Claim], bound: JumpBound, *, immediate: bool = True
) -> list[Verdict]:
    """Claim the seqs of a flush's valid batches: record the new ones (gaps, progress) and say, per claim, whether
    it is new, seen (same digest), a conflict (other digest) or a jump. Two round trips for the whole flush (three
    when some seqs are not above their device's highest: a redelivery, a replay, a late batch); runs in the
    caller's transaction (never commits), under the devices' advisory locks.

    A conflict or a jump is not recorded: the device's highest seq does not move and no gap opens. ``immediate``:
    a batch ahead of the highest opens its gap now; else the gap waits for :func:`open_due_gaps` (the grace period).
    """
    if not claims:
        return []
    devices = sorted({c.device_id for c in claims})
    with conn.cursor() as lock, conn.cursor() as high:
        with conn.pipeline():
            for device in devices:  # sorted: replicas take the locks in the same order
                lock.execute(_LOCK, (device,))
            high.execute(_MAX_SEEN, (devices,))
        state = {device: (highest, idle, checked) for device, highest, idle, checked in high.fetchall()}
    # Only a seq at or below its device's highest can have been seen before, and only one at or below its gap
    # watermark can lie in an open gap; the locks keep both where they are. In order, batch after batch, nothing
    # is probed; two consumers' interleaved batches probe digests only.
    keys = sorted({(c.device_id, c.seq) for c in claims if (top := state[c.device_id][0]) is not None and c.seq <= top})
    held_keys = [(d, s) for d, s in keys if s <= (state[d][2] or 0)]
    known: dict[tuple[str, int], bytes | None] = {}
    gaps: dict[str, list[_Gap]] = {}
    if keys:
        with conn.cursor() as digests, conn.cursor() as held:
            with conn.pipeline():
                digests.execute(_DIGESTS, ([d for d, _ in keys], [s for _, s in keys]))
                if held_keys:
                    held.execute(_GAPS_HOLDING, ([d for d, _ in held_keys], [s for _, s in held_keys]))
            known = {(d, s): g for d, s, g in digests.fetchall()}
            if held_keys:
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
    checked: dict[str, int] = {}
    for device in devices:
        seqs = [s for s, _ in accepted[device]]
        top, _, mark = state[device]
        if top is None and device in no_gap_before:
            top = seqs[0] - 1  # the device's first accepted seq is where it starts: no gap before it
        checked[device] = _track(device, seqs, top or 0, mark, gaps.setdefault(device, []), immediate)
    _write(conn, [g for device in devices for g in gaps[device]], accepted, checked)
    return verdicts


def _track(device_id: str, new: Iterable[int], top: int, checked: int | None, gaps: list[_Gap], immediate: bool) -> int:
    """Work out a device's new seqs (ascending) against its highest seq before them (``top``, 0 for a new device)
    and its gap watermark (None: a new device, ``top``); return the new watermark.

    A seq at or below the watermark fills the gap that holds it. Above the highest, when the watermark is there:
    ``immediate`` opens a gap for each jump and the watermark follows the highest; otherwise the watermark follows
    the seqs that continue it without a hole, and the rest waits for :func:`open_due_gaps`. Seqs between the
    watermark and the highest are only recorded (the sweep sees them)."""
    mark = top if checked is None else checked
    caught_up = mark == top
    for seq in new:
        if seq <= mark:
            _fill(gaps, seq)
        elif caught_up:  # here mark is the highest seen, and seq above it
            if seq > mark + 1 and not immediate:
                caught_up = False  # the hole waits for the grace period; so does everything above it
            else:
                if seq > mark + 1:
                    gaps.append(_Gap(None, device_id, mark + 1, seq - 1, None, changed=True))
                mark = seq
    return mark


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


def _write(
    conn: psycopg.Connection, gaps: list[_Gap], new: dict[str, list[tuple[int, int]]], checked: dict[str, int]
) -> None:
    """Gap changes, progress counters and gap watermarks of all devices, in one pipeline."""
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
                    [checked[device] for device, _ in progressed],
                ),
            )


def open_due_gaps(
    conn: psycopg.Connection, grace_s: float, *, after: str = "", limit: int = 500
) -> tuple[int, int, str | None]:
    """Open the gaps of seqs still missing below a batch received ``grace_s`` or more ago, for the devices whose
    seqs above their watermark wait, whose name sorts after ``after`` (at most ``limit`` of them: one advisory lock
    each, and PostgreSQL's lock table is shared and bounded) and whose lock is free. Return the gaps opened, the
    devices whose watermark moved, and the last device of a full page (the next page starts after it; None: no
    device after these waits). Runs in the caller's transaction (never commits)."""
    pending = [d for (d,) in conn.execute(_PENDING, (after, limit))]
    last = pending[-1] if len(pending) == limit else None
    if not pending:
        return 0, 0, None
    locked = [d for (d,) in conn.execute(_TRY_LOCKS, (pending,))]
    if not locked:
        return 0, 0, last
    row = conn.execute(_OPEN_DUE, (grace_s, locked)).fetchone()
    assert row is not None
    return int(row[0]), int(row[1]), last


class SequenceClaimer:
    """Claims a flush's sequence numbers before its messages are routed (:func:`claim_all`), on its own
    connection to the control store (the control thread commits decision logs on another, concurrently), and
    opens the gaps whose grace period is over (:meth:`open_due_gaps`)."""

    def __init__(self, dsn: str, bound: JumpBound, gap_grace_s: float = 0.0) -> None:
        self._store = StoreConnection("control", dsn)
        self.bound = bound
        self.gap_grace_s = gap_grace_s
        self._sweep_after = ""  # where the next sweep's first page starts (pages in device name order)

    @property
    def sweep_every_s(self) -> float:
        """How often :meth:`open_due_gaps` should run: about twice per grace period, every second without one."""
        return max(0.25, self.gap_grace_s / 2) if self.gap_grace_s > 0 else 1.0

    def claim(self, claims: Sequence[Claim]) -> list[Verdict]:
        """Claim and commit; raise StoreUnavailableError (or, for data it cannot hold, StoreDataError)."""
        if not claims:
            return []
        conn = self._store.get()
        try:
            with conn.transaction():
                return claim_all(conn, claims, self.bound, immediate=self.gap_grace_s <= 0)
        except (psycopg.Error, *ENCODING_ERRORS) as exc:
            raise self._store.error(exc) from None

    def open_due_gaps(self, pages: int = 20, page_size: int = 500) -> tuple[int, int]:
        """Open the gaps whose grace period is over, up to ``pages`` pages of waiting devices, each page in its own
        transaction; the next call goes on where this one stopped, so every waiting device is reached however many
        there are. Returns (gaps opened, devices whose watermark moved). Raises like :meth:`claim`."""
        conn = self._store.get()
        opened = moved = 0
        try:
            for _ in range(pages):
                with conn.transaction():
                    n_opened, n_moved, last = open_due_gaps(
                        conn, self.gap_grace_s, after=self._sweep_after, limit=page_size
                    )
                opened, moved = opened + n_opened, moved + n_moved
                self._sweep_after = last or ""
                if last is None:
                    break
        except (psycopg.Error, *ENCODING_ERRORS) as exc:
            raise self._store.error(exc) from None
        return opened, moved

    def close(self) -> None:
        self._store.close()
