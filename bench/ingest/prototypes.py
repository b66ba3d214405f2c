"""Prototypes of proposed ingest optimizations, measured in-process on the benchmark's rows.

Nothing here changes the ingest: writer variants are separate functions; router variants patch the
router module *in this process only* for the duration of one measurement, and every variant's output
is checked against the unmodified code (same rows, same rollups).

Writer (same rows, same flush grouping, fresh tables, one transaction per flush and region):
  W0  current RegionWriter: COPY into a temp staging table, INSERT ... ON CONFLICT DO NOTHING RETURNING
      feeding the rollup upserts (one statement)
  W0p W0 with a flush's regions written concurrently (one thread and connection per region)
  W1  staging + merge without the rollup upserts (what the rollups cost)
  W2  optimistic direct binary COPY into ``readings`` + rollups aggregated in Python from the same rows and
      upserted (executemany); on a unique violation the transaction is rolled back and W0 runs instead
  W3  direct COPY only (no rollups): the floor of the writer

Router (same payloads, rows compared with the unmodified router):
  R0  current Router.route
  R1  ``_split`` without ``isinstance(value, int | float)`` (a union object built per call): exact-type
      dispatch
  R2  R1 + decode with ``Batch.model_validate_json`` (pydantic-core's JSON parser; one pass, no dict
      tree), falling back to ``decode_batch`` for anything invalid (same error messages)
  R3  R2 + memoized policy input: one ``Flow`` per (site, region, category, edge flag) and its decision
      per flow object (the decision cache's key is a JSON dump of the flow at every call)
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from typing import Any

import psycopg

from bench.ingest.stack import Stack
from bench.ingest.workload import COPY_COLUMNS, Message, merge_rows, route_rows
from ingest.pipeline import router as router_mod
from ingest.pipeline.router import Router
from ingest.store.region import COPY_TYPES

Rows = dict[str, list[tuple[object, ...]]]


@dataclass
class Variant:
    name: str
    rows: int
    seconds: float
    note: str = ""

    @property
    def rate(self) -> float:
        return self.rows / self.seconds if self.seconds > 0 else 0.0


# --- writer variants --------------------------------------------------------------------------------


def _direct_copy(cur: psycopg.Cursor, rows: Sequence[tuple[object, ...]]) -> None:
    with cur.copy(f"COPY readings ({COPY_COLUMNS}) FROM STDIN (FORMAT BINARY)") as copy:
        copy.set_types(list(COPY_TYPES))
        for row in rows:
            copy.write_row(row)


def _python_rollups(cur: psycopg.Cursor, rows: Sequence[tuple[object, ...]]) -> None:
    """Fold rows known to be new into readings_1m / readings_1h (same upsert as ingest.store.rollups)."""
    from ingest.store import rollups

    for rollup in rollups.ROLLUPS:
        agg: dict[tuple[Any, ...], list[Any]] = {}
        width = rollup.width
        for row in rows:
            num = row[8]
            if num is None:
                continue
            # arg-type: rows are readings rows (ingest.records.Row order): column 4 is ts, a datetime
            key = (row[0], row[3], rollups.floor_to(row[4], width))  # type: ignore[arg-type]
            a = agg.get(key)
            if a is None:
                agg[key] = [1, num, num, num]
            else:
                a[0] += 1
                a[1] += num
                if num < a[2]:
                    a[2] = num
                if num > a[3]:
                    a[3] = num
        cur.executemany(
            f"INSERT INTO {rollup.table} AS r (device_id, name, bucket, count, sum, min, max)"
            " VALUES (%s, %s, %s, %s, %s, %s, %s) ON CONFLICT (device_id, name, bucket) DO UPDATE SET"
            " count = r.count + EXCLUDED.count, sum = r.sum + EXCLUDED.sum,"
            " min = least(r.min, EXCLUDED.min), max = greatest(r.max, EXCLUDED.max)",
            [(*k, *v) for k, v in sorted(agg.items())],
        )


def writer_variants(
    stack: Stack, per_message: Sequence[Rows], per_flush: int, say: Callable[[str], None], repeats: int = 2
) -> list[Variant]:
    from ingest.store.region import RegionWriter

    assert stack.db is not None
    db = stack.db  # not None: also in the closures below
    groups = [merge_rows(per_message[i : i + per_flush]) for i in range(0, len(per_message), per_flush)]
    total = sum(len(r) for g in groups for r in g.values())
    out: list[Variant] = []

    def timed(
        name: str,
        write: Callable[[str, psycopg.Connection | None, Sequence[tuple[object, ...]]], object],
        own_conn: bool,
        note: str = "",
    ) -> None:
        best = float("inf")
        for _ in range(repeats):  # fresh tables each round; the least disturbed round counts
            stack.reset_databases()
            conns = {r: psycopg.connect(dsn) for r, dsn in db.regions.items()} if own_conn else {}
            try:
                t = time.perf_counter()
                for group in groups:
                    for region, rows in group.items():
                        write(region, conns.get(region), rows)
                best = min(best, time.perf_counter() - t)
            finally:
                for c in conns.values():
                    c.close()
            counts = stack.count_rows()
            if sum(counts.values()) != total:
                raise RuntimeError(f"writer variant {name}: {sum(counts.values())} rows, expected {total}")
        out.append(Variant(name, total, best, note))
        say(f"{name}: {total / best:,.0f} rows/s")

    def timed_groups(name: str) -> None:
        """Like timed(), for writers that run a flush's regions concurrently: each flush is awaited."""
        best = float("inf")
        for _ in range(repeats):
            stack.reset_databases()
            t = time.perf_counter()
            for group in groups:
                futures = [pool.submit(pool_writers[region].write, rows) for region, rows in group.items()]
                for f in futures:
                    f.result()
            best = min(best, time.perf_counter() - t)
            if sum(stack.count_rows().values()) != total:
                raise RuntimeError(f"writer variant {name}: wrong row count")
        out.append(Variant(name, total, best))
        say(f"{name}: {total / best:,.0f} rows/s")

    writers = {r: RegionWriter(r, dsn) for r, dsn in stack.db.regions.items()}
    try:
        timed(
            "W0 current RegionWriter (staging + merge + rollups)",
            lambda region, _c, rows: writers[region].write(rows),
            own_conn=False,
        )
    finally:
        for w in writers.values():
            w.close()

    pool_writers = {r: RegionWriter(r, dsn) for r, dsn in stack.db.regions.items()}
    pool = ThreadPoolExecutor(max_workers=len(pool_writers), thread_name_prefix="region")
    try:
        timed_groups("W0p current RegionWriter, a flush's regions written in parallel threads")
    finally:
        pool.shutdown()
        for w in pool_writers.values():
            w.close()

    def staging_merge(_region: str, conn: psycopg.Connection | None, rows: Sequence[tuple[object, ...]]) -> None:
        assert conn is not None
        with conn.transaction(), conn.cursor() as cur:
            cur.execute(
                "CREATE TEMP TABLE IF NOT EXISTS readings_in (LIKE readings INCLUDING DEFAULTS) ON COMMIT DELETE ROWS"
            )
            with cur.copy(f"COPY readings_in ({COPY_COLUMNS}) FROM STDIN (FORMAT BINARY)") as copy:
                copy.set_types(list(COPY_TYPES))
                for row in rows:
                    copy.write_row(row)
            cur.execute(
                f"INSERT INTO readings ({COPY_COLUMNS}) SELECT {COPY_COLUMNS} FROM readings_in"
                " ORDER BY device_id, seq, idx, name, ts ON CONFLICT DO NOTHING"
            )

    timed("W1 staging + merge, no rollups", staging_merge, own_conn=True)

    fallback = {r: RegionWriter(r, dsn) for r, dsn in stack.db.regions.items()}
    fallbacks = 0

    def optimistic(region: str, conn: psycopg.Connection | None, rows: Sequence[tuple[object, ...]]) -> None:
        nonlocal fallbacks
        assert conn is not None
        try:
            with conn.transaction(), conn.cursor() as cur:
                _direct_copy(cur, rows)
                _python_rollups(cur, rows)
        except psycopg.errors.UniqueViolation:
            fallbacks += 1
            fallback[region].write(rows)

    try:
        timed("W2 direct COPY + Python rollups (fallback W0)", optimistic, own_conn=True)
        if fallbacks:
            raise RuntimeError(f"W2: {fallbacks} fallbacks on fresh tables")
        # the rollups W2 wrote must equal the ones W0 writes: check them against the raw rows
        _check_rollups(stack)
        # a redelivered flush takes the fallback and changes nothing
        region, rows = next(iter(groups[0].items()))
        before = stack.count_rows()
        fallbacks = 0
        with psycopg.connect(stack.db.regions[region]) as conn:
            optimistic(region, conn, rows)
        if stack.count_rows() != before or fallbacks != 1:
            raise RuntimeError("W2: a duplicate flush was not absorbed by the fallback")
        _check_rollups(stack)
    finally:
        for w in fallback.values():
            w.close()

    def direct(_region: str, conn: psycopg.Connection | None, rows: Sequence[tuple[object, ...]]) -> None:
        assert conn is not None
        with conn.transaction(), conn.cursor() as cur:
            _direct_copy(cur, rows)

    timed("W3 direct COPY only (floor)", direct, own_conn=True)
    return out


def _check_rollups(stack: Stack) -> None:
    from datetime import UTC, datetime, timedelta

    from ingest.store import rollups

    assert stack.db is not None
    for region, dsn in stack.db.regions.items():
        with psycopg.connect(dsn) as conn:
            lo, hi = conn.execute("SELECT min(ts), max(ts) FROM readings").fetchone() or (None, None)
            if lo is None:
                continue
            bad = rollups.verify(conn, start=lo, end=hi + timedelta(seconds=1))
            if bad:
                raise RuntimeError(f"W2 rollups differ in {region}: {bad[:3]} (checked {datetime.now(UTC)})")


# --- router variants --------------------------------------------------------------------------------


def _fast_split(value: Any) -> tuple[float | None, str | None]:
    t = type(value)
    if t is float:
        return value, None
    if t is int:
        return float(value), None
    if t is bool:
        return (1.0 if value else 0.0), None
    if value is None:
        return None, None
    if isinstance(value, (int, float)):  # a tuple: no union object built per call
        return float(value), None
    return None, str(value)


def _fast_decode(original: Callable[[bytes | str], Any]) -> Callable[[bytes | str], Any]:
    from pydantic import ValidationError

    from wire import Batch

    def decode(payload: bytes | str) -> Any:
        try:
            return Batch.model_validate_json(payload)
        except (ValidationError, ValueError):
            return original(payload)  # the exact error of the current decoder

    return decode


@contextmanager
def _patched(target: Any, name: str, value: Any) -> Iterator[None]:
    old = getattr(target, name)
    setattr(target, name, value)
    try:
        yield
    finally:
        setattr(target, name, old)


class _MemoPolicy:
    """Decision per Flow object (flows are memoized, so identity is the key); same revision only."""

    def __init__(self, inner: Any) -> None:
        self.inner = inner
        self._memo: dict[int, tuple[Any, Any]] = {}

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)

    def decide(self, flow: Any) -> Any:
        hit = self._memo.get(id(flow))
        if hit is not None and hit[0] is flow:
            return hit[1]
        decision = self.inner.decide(flow)
        self._memo[id(flow)] = (flow, decision)
        return decision


def _memo_flow(original: Callable[..., Any]) -> Callable[..., Any]:
    memo: dict[tuple[Any, ...], Any] = {}

    def flow(self: Router, site: Any, region_name: str, category: str, edge: bool) -> Any:
        key = (id(site), region_name, category, edge)
        found = memo.get(key)
        if found is None:
            found = memo[key] = original(self, site, region_name, category, edge)
        return found

    return flow


@contextmanager
def _variant(router: Router, level: int) -> Iterator[None]:
    """Patches of router variant R<level> (cumulative), undone on exit."""
    with ExitStack() as stack:
        if level >= 1:
            stack.enter_context(_patched(router_mod, "_split", _fast_split))
        if level >= 2:
            # attr-defined: the router imports decode_batch from wire without re-exporting it; this patches its binding
            original = router_mod.decode_batch  # type: ignore[attr-defined]
            stack.enter_context(_patched(router_mod, "decode_batch", _fast_decode(original)))
        if level >= 3:
            stack.enter_context(_patched(Router, "_flow", _memo_flow(Router._flow)))
            stack.enter_context(_patched(router, "policy", _MemoPolicy(router.policy)))
        yield


ROUTER_VARIANTS = (
    "R0 current Router.route",
    "R1 exact-type _split",
    "R2 R1 + Batch.model_validate_json",
    "R3 R2 + memoized Flow and decision",
)


def router_variants(
    router: Router,
    messages_100: Sequence[Message],
    messages_1: Sequence[Message],
    say: Callable[[str], None],
    repeats: int = 5,
) -> list[Variant]:
    """Each variant on both workloads, ``repeats`` rounds interleaved; the best round counts (the
    machine may be shared: the minimum is the least disturbed measurement)."""
    workloads = (("100", messages_100), ("1", messages_1))
    reference = {label: route_rows(router, msgs) for label, msgs in workloads}
    levels = range(len(ROUTER_VARIANTS)) if hasattr(Router, "_flow") else range(3)
    best: dict[tuple[int, str], tuple[float, int]] = {}
    for level in levels:  # correctness first: the same rows as the current code
        with _variant(router, level):
            for label, msgs in workloads:
                if route_rows(router, msgs) != reference[label]:
                    raise RuntimeError(f"router variant {ROUTER_VARIANTS[level]} produced different rows")
    for _ in range(repeats):
        for level in levels:
            with _variant(router, level):
                for label, msgs in workloads:
                    t = time.perf_counter()
                    rows = 0
                    for m in msgs:
                        rows += sum(len(r) for r in router.route(m.topic, m.payload).rows.values())
                    seconds = time.perf_counter() - t
                    key = (level, label)
                    if key not in best or seconds < best[key][0]:
                        best[key] = (seconds, rows)
    out: list[Variant] = []
    for level in levels:
        for label, msgs in workloads:
            seconds, rows = best[(level, label)]
            v = Variant(
                f"{ROUTER_VARIANTS[level]} [{label} reading(s)/msg]",
                len(msgs),
                seconds,
                f"{rows / seconds:,.0f} rows/s; x{best[(0, label)][0] / seconds:.2f} vs R0",
            )
            out.append(v)
            say(f"{v.name}: {v.rate:,.0f} msg/s ({v.note})")
    return out
