"""Region-store benchmark: rollups vs raw rows for the engineers' series query, in one run.

    .venv/bin/python -m bench.stores                    # 10,368,000 readings, 30 timed repetitions
    .venv/bin/python -m bench.stores --readings 1000000 --repeats 10   # a quick look
    .venv/bin/python -m bench.stores --backend timescaledb             # where TimescaleDB is installed

What it does, on a throwaway PostgreSQL (its own temporary directory) with the region schema of
ingest/store/migrations: ``--backend plain`` (daily partitions and rollup tables), ``timescaledb``
(hypertable and continuous aggregates; devstack preloads the extension), or ``auto`` (the default:
TimescaleDB where it is installed for the PostgreSQL found, else plain):

1. loads N readings of one region store with ``INSERT ... SELECT generate_series`` inside PostgreSQL
   (devices x 5 metrics at 1 Hz over two days; two loader connections), into daily partitions made by
   the real partition code (ingest.store.partitions), or a hypertable's chunks;
2. builds the rollups in bulk: ``ingest.store.rollups.rebuild`` (plain: the same bucket definitions as
   the incremental path) or ``refresh_continuous_aggregate`` over everything (TimescaleDB); writes one
   more device through the real ``RegionWriter`` (plain: incremental rollups; TimescaleDB: refreshed
   again after it), with a redelivered batch, and checks that rollups equal raw aggregates: the
   writer's device in full, and a sample of the bulk rows; and (plain) that a bulk rebuild of the
   writer's rows gives exactly the rows the incremental path produced;
3. times ``GET /devices/{id}/series?bucket=1m`` over 24 h for one device and metric through the API's
   service function (``ingest.api.service.readings.series``: the same SQL, pool, read-only transaction
   and response model as the endpoint), once served from the rollups and once computed from the raw
   rows (``use_rollups=False``), alternating, after a warm-up; checks both answers are equal; prints
   median and p95 of each, and their ratio, against the targets (rollups >= 20x faster, < 50 ms).
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import threading
import time
import uuid
from dataclasses import dataclass, field
from datetime import date, timedelta
from pathlib import Path

import psycopg
from psycopg_pool import ConnectionPool

from devstack import PostgresServer
from devstack.postgres import find_pg_bin, timescaledb_installed
from ingest.api.config import ApiSettings
from ingest.api.deps import DeviceRef, RegionStore
from ingest.api.service import readings as reading_service
from ingest.registry import Device, FieldSpec, Profile, Site
from ingest.store import partitions, rollups, timescale
from ingest.store.migrate import migrate
from ingest.store.region import RegionWriter

DAY0 = date(2026, 1, 5)
DAYS = 2
SECONDS = DAYS * 86400
METRICS = ("power_kw", "spindle_temp_c", "spindle_speed_rpm", "vibration_mm_s", "tool_wear_pct")
TARGET_RATIO = 20.0
TARGET_MS = 50.0
WRITER_DEVICE = "bench-writer-01"

# One hour of every device and metric, time-major: rows land in the table in the order the ingest writes
# them (each flush holds the latest readings of all devices), not grouped by device.
_LOAD = """
INSERT INTO readings (device_id, seq, idx, name, ts, site_id, origin_country, category, num, decision_id,
                      policy_revision)
SELECT d.device, g / 10, g %% 10, m.name, %(t0)s + g * INTERVAL '1 second', 'bench-site', 'DE', 'machine',
       m.k * 10 + 5 * sin(g / 600.0 + m.k + d.n) + (g %% 13) * 0.1, d.decision, 'sha256:bench'
FROM generate_series(%(lo)s::int, %(hi)s::int) AS g
CROSS JOIN LATERAL (
    SELECT n, 'bench-cnc-' || lpad(n::text, 2, '0') AS device, md5('bench/' || n)::uuid AS decision, g AS at
    FROM generate_series(0, %(devices)s::int - 1) AS n
) AS d
CROSS JOIN unnest(%(names)s::text[]) WITH ORDINALITY AS m(name, k)
"""


class Progress:
    """``[n/N] phase`` lines with elapsed time, and a counter that rewrites one line on a terminal."""

    def __init__(self, phases: int) -> None:
        self.phases, self.n, self.t0 = phases, 0, time.monotonic()
        self.tty = sys.stderr.isatty()
        self._last = 0.0

    def phase(self, name: str) -> None:
        self.n += 1
        print(f"[{self.n}/{self.phases}] {name}  (t+{time.monotonic() - self.t0:.0f}s)", file=sys.stderr, flush=True)

    def count(self, done: int, total: int, unit: str, *, final: bool = False) -> None:
        now = time.monotonic()
        if not final and now - self._last < (0.2 if self.tty else 5.0):
            return
        self._last = now
        text = f"      {done:,}/{total:,} {unit} ({100 * done / max(total, 1):.0f}%)"
        print(
            ("\r" + text) if self.tty else text, end="" if self.tty and not final else "\n", file=sys.stderr, flush=True
        )


def _server(base: Path, *, timescaledb: bool) -> PostgresServer:
    base.chmod(0o755)  # the server runs as the postgres account when we are root
    return PostgresServer(
        base_dir=base,
        timescaledb=timescaledb,
        timescaledb_databases=1,
        settings={
            "fsync": "off",
            "synchronous_commit": "off",
            "full_page_writes": "off",
            "shared_buffers": "1GB",
            "maintenance_work_mem": "512MB",
            "work_mem": "64MB",
            "max_wal_size": "8GB",
            "checkpoint_timeout": "30min",
        },
    )


def load(dsn: str, devices: int, progress: Progress) -> int:
    """``devices`` x 5 metrics x 2 days at 1 Hz, an hour at a time (time-major), two loader connections;
    returns the row count."""
    hours = SECONDS // 3600
    per_hour = 3600 * devices * len(METRICS)
    total = hours * per_hour
    done = [0]
    lock = threading.Lock()
    errors: list[BaseException] = []
    queue = list(range(hours))

    def worker() -> None:
        try:
            with psycopg.connect(dsn, autocommit=True) as conn:
                while not errors:
                    with lock:
                        if not queue:
                            return
                        hour = queue.pop(0)
                    conn.execute(
                        _LOAD,
                        {
                            "t0": partitions.day_start(DAY0),
                            "lo": hour * 3600,
                            "hi": hour * 3600 + 3599,
                            "devices": devices,
                            "names": list(METRICS),
                        },
                    )
                    with lock:
                        done[0] += per_hour
                        progress.count(done[0], total, "readings")
        except BaseException as exc:  # surfaced by the caller
            errors.append(exc)

    threads = [threading.Thread(target=worker) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    if errors:
        raise errors[0]
    progress.count(total, total, "readings", final=True)
    return total


def write_sample(dsn: str) -> int:
    """One more device through the real writer (incremental rollups), 1 h at 1 Hz, with a redelivery."""
    writer = RegionWriter("bench", dsn)
    t0 = partitions.day_start(DAY0) + timedelta(hours=10, seconds=17)
    decision = uuid.uuid4()
    batches = [
        [
            (
                WRITER_DEVICE,
                seq,
                i,
                name,
                t0 + timedelta(seconds=seq * 10 + i),
                "bench-site",
                "DE",
                "machine",
                float((seq * 31 + i * 7) % 101) / 3,
                None,
                None,
                decision,
                "sha256:bench",
            )
            for i in range(10)
            for name in METRICS
        ]
        for seq in range(360)
    ]
    new = 0
    for start in range(0, len(batches), 10):
        rows = [row for batch in batches[start : start + 10] for row in batch]
        new += writer.write(rows)
        if start == 100:
            writer.write(rows)  # redelivered: must not count twice
    writer.close()
    return new


def refresh_aggregates(dsn: str) -> None:
    """TimescaleDB: materialize both continuous aggregates over everything (instead of ``rollups.rebuild``)."""
    with psycopg.connect(dsn, autocommit=True) as conn:
        for statement in timescale.refresh_all_statements():
            statement.execute(conn)


def check_rollups(dsn: str, devices: int, *, incremental_path: bool = True) -> list[str]:
    """Problems found (empty = rollups exactly equal raw aggregates where checked)."""
    problems: list[str] = []
    day = partitions.day_start(DAY0)
    with psycopg.connect(dsn) as conn:
        wrong = rollups.verify(conn, start=day, end=day + timedelta(days=1), device_id=WRITER_DEVICE)
        if wrong:
            problems.append(f"writer device: {len(wrong)} rollup rows differ from raw, e.g. {wrong[0]}")
        for d in sorted({0, devices // 2, devices - 1}):
            for hour in (0, 13, 30):
                lo = day + timedelta(hours=hour)
                wrong = rollups.verify(conn, start=lo, end=lo + timedelta(hours=2), device_id=f"bench-cnc-{d:02d}")
                if wrong:
                    problems.append(f"bench-cnc-{d:02d} from +{hour}h: {len(wrong)} rows differ, e.g. {wrong[0]}")
        query = "SELECT device_id, name, bucket, count, sum, min, max FROM {} WHERE device_id = %s ORDER BY 2, 3"
        if not incremental_path:  # continuous aggregates: no rollup tables the writer maintains
            return problems
        incremental = {
            r.table: conn.execute(query.format(r.table), (WRITER_DEVICE,)).fetchall() for r in rollups.ROLLUPS
        }
        with conn.transaction():
            rollups.rebuild(conn, day + timedelta(hours=10), day + timedelta(hours=12))
            for r in rollups.ROLLUPS:
                bulk = conn.execute(query.format(r.table), (WRITER_DEVICE,)).fetchall()
                if [row[:4] for row in bulk] != [row[:4] for row in incremental[r.table]] or not all(
                    abs(a[4] - b[4]) <= 1e-9 * max(1.0, abs(a[4])) and a[5:] == b[5:]
                    for a, b in zip(bulk, incremental[r.table], strict=True)
                ):
                    problems.append(f"{r.table}: bulk rebuild differs from the incremental rows of the writer")
        n = conn.execute("SELECT sum(count) FROM readings_1m WHERE device_id = %s", (WRITER_DEVICE,)).fetchone()
        if n != (360 * 10 * len(METRICS),):
            problems.append(f"writer device: rollups count {n}, expected {360 * 10 * len(METRICS)}")
    return problems


def _device(device_id: str) -> DeviceRef:
    fields = {name: FieldSpec(category="machine", unit=None) for name in METRICS}
    site = Site(country="DE", home_region="bench", name="bench")
    return DeviceRef(
        device_id=device_id,
        device=Device(site="bench-site", profile="bench"),
        site_id="bench-site",
        site=site,
        profile=Profile(fields=fields),
    )


def _pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(q * (len(ordered) - 1))))]


class _AllRegions:
    def require(self, *_: object) -> None:
        return None


@dataclass
class Timings:
    service: dict[bool, list[float]] = field(default_factory=lambda: {True: [], False: []})
    sql: dict[bool, list[float]] = field(default_factory=lambda: {True: [], False: []})


def time_series(dsn: str, devices: int, repeats: int, progress: Progress, *, aligned: bool = True) -> Timings:
    """Wall times (ms) of the 24 h / 1-minute series, from rollups (True) and from raw rows (False),
    alternating which goes first: through the API's service function, and the same SQL statement alone."""
    settings = ApiSettings(statement_timeout_ms=60_000, max_series_buckets=10_000)
    pool = ConnectionPool(dsn, min_size=1, max_size=1, open=True)
    store = RegionStore("bench", pool)
    caller = _AllRegions()
    start0 = partitions.day_start(DAY0) + timedelta(hours=12) + (timedelta() if aligned else timedelta(seconds=30))
    timings = Timings()
    sql_conn = psycopg.connect(dsn, autocommit=True)
    try:
        for i in range(repeats + 3):  # 3 warm-up rounds
            device = _device(f"bench-cnc-{i % devices:02d}")
            name = METRICS[i % len(METRICS)]
            start = start0 + timedelta(minutes=7 * (i % 5))
            answers = {}
            order = (True, False) if i % 2 == 0 else (False, True)
            for use_rollups in order:
                t = time.perf_counter()
                answers[use_rollups] = reading_service.series(
                    ref=device,
                    store=store,
                    settings=settings,
                    caller=caller,  # type: ignore[arg-type]  # caller: a stand-in
                    name=name,
                    start=start,
                    end=start + timedelta(hours=24),
                    bucket="1m",
                    use_rollups=use_rollups,
                )
                elapsed = (time.perf_counter() - t) * 1000
                p = reading_service.plan(start, start + timedelta(hours=24), "1m", use_rollups=use_rollups)
                t = time.perf_counter()
                sql_conn.execute(
                    reading_service.bucketed_sql(p),
                    {**p.params(), "device": device.device_id, "name": name},
                    prepare=False,
                ).fetchall()
                sql_elapsed = (time.perf_counter() - t) * 1000
                if i >= 3:
                    timings.service[use_rollups].append(elapsed)
                    timings.sql[use_rollups].append(sql_elapsed)
            a, b = answers[True], answers[False]
            expected = reading_service.bucket_count(start, start + timedelta(hours=24), timedelta(minutes=1))
            if (
                len(a.points) != expected
                or [(p.ts, p.min, p.max, p.count) for p in a.points]
                != [(p.ts, p.min, p.max, p.count) for p in b.points]
                or any(
                    abs(p.avg - q.avg) > 1e-9 * max(1.0, abs(q.avg)) for p, q in zip(a.points, b.points, strict=True)
                )
            ):
                raise SystemExit(f"rollup and raw answers differ for {device.device_id}/{name} from {start}")
            progress.count(min(i + 1, repeats + 3), repeats + 3, "repetitions", final=i == repeats + 2)
    finally:
        pool.close()
        sql_conn.close()
    return timings


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.stores", description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--readings",
        type=int,
        default=10_000_000,
        help="approximate number of readings to load (rounded up to whole devices; default 10M)",
    )
    parser.add_argument("--repeats", type=int, default=30, help="timed repetitions of each query (default 30)")
    parser.add_argument("--keep", action="store_true", help="leave the server's directory in place")
    parser.add_argument(
        "--backend",
        choices=("auto", "plain", "timescaledb"),
        default="auto",
        help="region store backend (auto: TimescaleDB where it is installed for this PostgreSQL)",
    )
    args = parser.parse_args(argv)
    use_timescaledb = args.backend == "timescaledb" or (
        args.backend == "auto" and timescaledb_installed(find_pg_bin()) is not None
    )
    backend = "timescaledb" if use_timescaledb else "plain"
    devices = max(1, -(-args.readings // (SECONDS * len(METRICS))))

    progress = Progress(6)
    base = Path(tempfile.mkdtemp(prefix="bench-stores-"))
    server = _server(base, timescaledb=use_timescaledb)
    progress.phase(f"PostgreSQL {base}, {backend} region store (fsync off: query timings, not durability)")
    server.start()
    try:
        dsn = server.create_database("bench_region")
        migrate(dsn, "region", store="bench", timescaledb="on" if use_timescaledb else "off")
        if not use_timescaledb:  # TimescaleDB makes its chunks as rows arrive
            with psycopg.connect(dsn, autocommit=True) as conn:
                for n in range(DAYS):
                    partitions.create_partition(conn, DAY0 + timedelta(days=n))

        progress.phase(
            f"load {devices} devices x {len(METRICS)} metrics x {DAYS} days at 1 Hz "
            f"= {devices * SECONDS * len(METRICS):,} readings (INSERT ... SELECT generate_series, "
            "time-major as the ingest writes)"
        )
        t = time.monotonic()
        total = load(dsn, devices, progress)
        load_s = time.monotonic() - t

        progress.phase(
            "rollups: bulk rebuild (plain) or aggregate refresh (TimescaleDB), one device through RegionWriter, checks"
        )
        t = time.monotonic()
        if use_timescaledb:
            refresh_aggregates(dsn)
        else:
            with psycopg.connect(dsn) as conn:
                rollups.rebuild(conn)
        rebuild_s = time.monotonic() - t
        written = write_sample(dsn)
        if use_timescaledb:  # the writer's rows are below the aggregates' watermark: refresh them in
            refresh_aggregates(dsn)
        with psycopg.connect(dsn, autocommit=True) as conn:
            conn.execute("VACUUM ANALYZE")
            sizes = conn.execute(
                "SELECT (SELECT count(*) FROM readings), (SELECT count(*) FROM readings_1m),"
                " (SELECT count(*) FROM readings_1h), pg_size_pretty(pg_database_size(current_database()))"
            ).fetchone()
        problems = check_rollups(dsn, devices, incremental_path=not use_timescaledb)
        if problems:
            for problem in problems:
                print("ROLLUP CHECK FAILED:", problem, file=sys.stderr)
            return 1
        assert sizes is not None

        progress.phase(
            f"time 24 h at 1-minute buckets, rollups vs raw rows, {args.repeats} repetitions each "
            "(window on minute boundaries)"
        )
        load_before = os.getloadavg()[0]
        main_run = time_series(dsn, devices, args.repeats, progress)
        progress.phase("same, window starting 30 s past a minute (edge minutes from raw rows)")
        edge_run = time_series(dsn, devices, max(5, args.repeats // 3), progress, aligned=False)

        load_after = os.getloadavg()[0]
        progress.phase("results")
        fast, slow = main_run.service[True], main_run.service[False]
        med_fast, med_slow = statistics.median(fast), statistics.median(slow)
        p95_fast, p95_slow = _pct(fast, 0.95), _pct(slow, 0.95)
        ratio = med_slow / med_fast
        print()
        print(
            f"{backend} region store: {sizes[0]:,} readings ({total:,} bulk + {written:,} through RegionWriter), "
            f"{sizes[1]:,} rows in readings_1m, {sizes[2]:,} in readings_1h, database {sizes[3]}"
        )
        print(
            f"load: {total / load_s:,.0f} readings/s ({load_s:.0f} s); rollup rebuild {rebuild_s:.1f} s; "
            "rollups = raw aggregates: checked (writer device in full, bulk sample"
            f"{', bulk == incremental' if not use_timescaledb else ''})"
        )
        print()
        print("24 h series at 1-minute buckets (1440 points; 1441 off the minute), one device and metric:")
        print("  service = ingest.api.service.readings.series (what GET /devices/{id}/series runs: pool, read-only")
        print("  transaction, statement timeout, numeric check, response model); SQL = the same statement alone")
        print(
            f"  machine: {os.cpu_count()} CPUs, load average {load_before:.1f} before timing, {load_after:.1f} after "
            "(other processes share the cores: wall times include their contention)"
        )
        print(f"{'':40}{'median ms':>10}{'p95 ms':>10}{'n':>5}")
        rows = [
            ("service, from rollups (readings_1m)", main_run.service[True]),
            ("service, from raw rows (baseline)", main_run.service[False]),
            ("SQL only, from rollups", main_run.sql[True]),
            ("SQL only, from raw rows", main_run.sql[False]),
            ("service, rollups, window off the minute", edge_run.service[True]),
            ("service, raw, window off the minute", edge_run.service[False]),
        ]
        for label, values in rows:
            print(f"  {label:38}{statistics.median(values):>10.2f}{_pct(values, 0.95):>10.2f}{len(values):>5}")
        print()
        sql_ratio = statistics.median(main_run.sql[False]) / statistics.median(main_run.sql[True])
        edge_ratio = statistics.median(edge_run.service[False]) / statistics.median(edge_run.service[True])
        ok_ratio, ok_ms = ratio >= TARGET_RATIO, med_fast < TARGET_MS
        print(
            f"ratio raw / rollups, service (median): {ratio:.1f}x  (p95: {p95_slow / p95_fast:.1f}x; SQL only: "
            f"{sql_ratio:.1f}x; off the minute: {edge_ratio:.1f}x)   target >= {TARGET_RATIO:.0f}x: "
            f"{'PASS' if ok_ratio else 'FAIL'}"
        )
        print(
            f"rollup answer, service: median {med_fast:.2f} ms, p95 {p95_fast:.2f} ms   "
            f"target < {TARGET_MS:.0f} ms: {'PASS' if ok_ms else 'FAIL'}"
        )
        print(f"total {time.monotonic() - progress.t0:.0f} s")
        return 0 if ok_ratio and ok_ms else 2
    finally:
        if args.keep:
            server.stop()
            print(f"kept {base}", file=sys.stderr)
        else:
            server.cleanup()
            import shutil

            shutil.rmtree(base, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
