"""Baselines measured in the same run, on the same rows as the ingest writes.

- **B_copy**: the router's rows of the workload written to files and loaded with
  ``psql -c "\\copy readings (...) FROM file"`` into empty ``readings`` tables (same schema, same
  indexes), one psql per region, one after the other. Text and binary COPY; the faster one is B_copy.
- **B_raw**: C only, no validation, no policy: the same rows as text COPY lines, published as MQTT
  payloads (one message per workload message and region), ``mosquitto_sub -q 1`` per region piped
  into ``psql \\copy ... FROM pstdin``. Time from first publish to the last psql commit.
- **Writer stage** (goal G2): the ingest's own ``RegionWriter.write`` (new rows: binary COPY straight
  into ``readings`` and rollups upserted from aggregates of the same rows; a duplicate sends the flush
  through the staging merge), in-process, rows grouped as the ingest's flushes would be.
- **Route stage**: ``Router.route`` alone, in-process (the Python CPU cost per message).
"""

from __future__ import annotations

import io
import shutil
import subprocess
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

import psycopg
from psycopg.copy import FileWriter

from bench.ingest.load import LoadMeter
from bench.ingest.publish import Publisher
from bench.ingest.stack import Stack
from bench.ingest.workload import COPY_COLUMNS, Message, merge_rows, route_rows
from ingest.pipeline.router import Router
from ingest.store.control import ControlWriter
from ingest.store.region import COPY_TYPES, RegionWriter


@dataclass
class Timed:
    rows: int
    seconds: float
    detail: dict[str, Any]

    @property
    def rate(self) -> float:
        return self.rows / self.seconds if self.seconds > 0 else 0.0


def encode_copy(conn: psycopg.Connection, rows: Sequence[tuple[object, ...]], binary: bool) -> bytes:
    """Rows in PostgreSQL COPY format (text or binary), encoded by psycopg's C adapters (no I/O:
    the connection only provides the adaptation context)."""
    buf = io.BytesIO()
    with psycopg.Copy(conn.cursor(), binary=binary, writer=FileWriter(buf)) as copy:
        copy.set_types(list(COPY_TYPES))
        for row in rows:
            copy.write_row(row)
    return buf.getvalue()


def _psql(dsn: str, command: str, stdin: IO[bytes] | None = None) -> subprocess.Popen[bytes]:
    psql = shutil.which("psql")
    if psql is None:
        raise RuntimeError("psql not found (apt-get install postgresql-client)")
    return subprocess.Popen(
        [psql, "-X", "-q", "-v", "ON_ERROR_STOP=1", "-d", dsn, "-c", command],
        stdin=stdin if stdin is not None else subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )


def _check(proc: subprocess.Popen[bytes], what: str) -> None:
    proc.wait()
    if proc.returncode != 0:
        err = proc.stderr.read().decode(errors="replace") if proc.stderr else ""
        raise RuntimeError(f"{what}: psql exited with {proc.returncode}: {err.strip()[:500]}")


def copy_files(stack: Stack, per_region: dict[str, list[tuple[object, ...]]]) -> dict[str, dict[str, Path]]:
    """The rows of each region as COPY files, text and binary: format -> region -> path (written once)."""
    assert stack.db is not None
    files: dict[str, dict[str, Path]] = {"text": {}, "binary": {}}
    with psycopg.connect(stack.db.control) as conn:
        for fmt in files:
            for region, rows in per_region.items():
                path = stack.dir / f"bcopy-{region}.{fmt}"
                path.write_bytes(encode_copy(conn, rows, binary=fmt == "binary"))
                files[fmt][region] = path
    return files


def b_copy(
    stack: Stack,
    files: dict[str, Path],
    counts: dict[str, int],
    fmt: str,
    parallel: bool,
    meter: LoadMeter,
    say: Callable[[str], None] = lambda _s: None,
) -> Timed:
    """``psql \\copy`` of every region's file into empty tables: one region after the other (as the ingest's
    single flush thread writes), or all regions at once (one psql each)."""
    assert stack.db is not None
    db = stack.db  # not None: also in load() below
    stack.reset_databases()
    key = f"b_copy_{fmt}{'_parallel' if parallel else ''}"
    total = sum(counts.values())
    say(f"B_copy ({fmt}, {'regions in parallel' if parallel else 'one region after the other'}): {total:,} rows")
    meter.start(key)
    per: dict[str, object] = {}

    def load(region: str) -> subprocess.Popen[bytes]:
        command = f"\\copy readings ({COPY_COLUMNS}) FROM '{files[region]}' WITH (FORMAT {fmt})"
        return _psql(db.regions[region], command)

    t0 = time.perf_counter()

    if parallel:
        procs = {region: load(region) for region in files}
        for region, proc in procs.items():
            _check(proc, f"B_copy {region}")
    else:
        for region in files:
            t = time.perf_counter()
            _check(load(region), f"B_copy {region}")
            per[region] = round(counts[region] / (time.perf_counter() - t))
    seconds = time.perf_counter() - t0
    meter.stop(key)
    loaded = stack.count_rows()
    if any(loaded.get(r) != n for r, n in counts.items()):
        raise RuntimeError(f"B_copy loaded {loaded}, expected {counts}")
    return Timed(
        total,
        seconds,
        {
            "format": fmt,
            "parallel": parallel,
            "rows_per_s_by_region": per,
            "rollup_rebuild_s": rebuild_rollups(stack, list(counts)),
        },
    )


def rebuild_rollups(stack: Stack, regions: list[str]) -> float | None:
    """Seconds to build the rollup tables from the loaded rows (plain PostgreSQL path), or None when the
    store has no rollup tables the writer maintains. The ingest maintains them at write time, so
    ``B_copy + rebuild`` is the like-for-like bulk baseline of that extra work."""
    try:
        from ingest.store import rollups
    except ImportError:
        return None
    assert stack.db is not None
    seconds = 0.0
    for region in regions:
        with psycopg.connect(stack.db.regions[region]) as conn:
            if not rollups.maintained_at_write(conn):
                return None
            t = time.perf_counter()
            with conn.transaction():
                rollups.rebuild(conn)
            seconds += time.perf_counter() - t
    return seconds


def b_raw(
    stack: Stack,
    per_message: Sequence[dict[str, list[tuple[object, ...]]]],
    meter: LoadMeter,
    publisher_kind: str = "paho",
    say: Callable[[str], None] = lambda _s: None,
) -> Timed:
    """mosquitto_sub -q 1 | psql COPY, one pipeline per region; payload = that message's rows as COPY text."""
    assert stack.db is not None and stack.mqtt is not None
    if shutil.which("mosquitto_sub") is None:
        raise RuntimeError("mosquitto_sub not found (apt-get install mosquitto-clients)")
    raw: list[tuple[str, bytes]] = []
    rows_total = 0
    per_count: dict[str, int] = {}
    with psycopg.connect(stack.db.control) as conn:
        for routed in per_message:
            for region, rows in routed.items():
                raw.append((f"raw/{region}", encode_copy(conn, rows, binary=False)))
                per_count[region] = per_count.get(region, 0) + 1
                rows_total += len(rows)
    stack.reset_databases()
    pipes = []
    for region, n in per_count.items():
        sub = subprocess.Popen(
            [
                "mosquitto_sub",
                "-h",
                "127.0.0.1",
                "-p",
                str(stack.mqtt_port),
                "-V",
                "5",
                "-q",
                "1",
                "-i",
                f"bench-raw-{region}",
                "-t",
                f"raw/{region}",
                "-C",
                str(n),
                "-N",
                "-F",
                "%p",
            ],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )
        psql = _psql(stack.db.regions[region], f"\\copy readings ({COPY_COLUMNS}) FROM pstdin", stdin=sub.stdout)
        assert sub.stdout is not None
        sub.stdout.close()  # psql owns the read end now
        pipes.append((region, sub, psql))
    time.sleep(0.5)  # subscriptions in place before anything is published
    say(f"B_raw: {len(raw):,} messages, {rows_total:,} rows, {len(pipes)} mosquitto_sub | psql pipelines")
    publisher = Publisher(publisher_kind, stack.mqtt_port, raw, processes=2, workdir=stack.dir)
    meter.start("b_raw")
    pub = publisher.run()
    for region, sub, psql in pipes:
        sub.wait(300)
        _check(psql, f"B_raw {region}")
    t_done = time.time()
    meter.stop("b_raw")
    counts = stack.count_rows()
    loaded = sum(counts.values())
    if loaded != rows_total:
        raise RuntimeError(f"B_raw loaded {loaded} rows, expected {rows_total}")
    return Timed(
        rows_total,
        t_done - pub.t0,
        {"messages": len(raw), "publisher": f"{pub.kind} x{pub.processes}", "publisher_msgs_per_s": round(pub.rate)},
    )


def writer_stage(
    stack: Stack,
    per_message: Sequence[dict[str, list[tuple[object, ...]]]],
    per_flush: int,
    meter: LoadMeter,
    concurrent: bool = True,
) -> Timed:
    """The ingest's RegionWriter on the workload's rows, ``per_flush`` messages per transaction and region.

    ``concurrent``: a flush's regions are written at once, one thread per region, as the ingest's
    consumer does; otherwise one region after the other (key ``writer_stage_serial``)."""
    assert stack.db is not None
    groups = [merge_rows(per_message[i : i + per_flush]) for i in range(0, len(per_message), per_flush)]
    stack.reset_databases()
    writers = {r: RegionWriter(r, dsn) for r, dsn in stack.db.regions.items()}
    for w in writers.values():  # connect (and let the writer inspect the store) outside the timed part
        w.write([])
    key = "writer_stage" if concurrent else "writer_stage_serial"
    total = sum(len(rows) for group in groups for rows in group.values())
    pool = ThreadPoolExecutor(len(writers), thread_name_prefix="bench-region") if concurrent else None
    try:
        meter.start(key)
        t = time.perf_counter()
        for group in groups:
            if pool is not None:
                for future in [pool.submit(writers[region].write, rows) for region, rows in group.items()]:
                    future.result()
            else:
                for region, rows in group.items():
                    writers[region].write(rows)
        seconds = time.perf_counter() - t
        meter.stop(key)
    finally:
        if pool is not None:
            pool.shutdown()
        for w in writers.values():
            w.close()
    return Timed(
        total,
        seconds,
        {
            "messages_per_transaction": per_flush,
            "regions": "at once, a thread each" if concurrent else "one after the other",
        },
    )


def route_stage(router: Router, messages: Sequence[Message], meter: LoadMeter, key: str = "route_stage") -> Timed:
    """Router.route alone (decode, registry, policy via the decision cache, rows): rows/s of Python CPU."""
    route_rows(router, messages[:24])  # policy cache warm, as in the service after its first messages
    meter.start(key)
    t = time.perf_counter()
    rows = 0
    for m in messages:
        routed = router.route(m.topic, m.payload)
        rows += sum(len(r) for r in routed.rows.values())
    seconds = time.perf_counter() - t
    meter.stop(key)
    return Timed(
        rows,
        seconds,
        {
            "messages": len(messages),
            "messages_per_s": round(len(messages) / seconds),
            "us_per_message": round(seconds / len(messages) * 1e6, 1),
        },
    )


def control_stage(stack: Stack, router: Router, messages: Sequence[Message], per_flush: int, meter: LoadMeter) -> Timed:
    """The ingest's ControlWriter on 1-reading messages (the G3 workload), ``per_flush`` messages per
    transaction: decision log, sequence tracking, commit. ``rows`` are logged decisions; the detail gives
    the time per flush and the bytes the decision log takes per decision (tables and indexes)."""
    assert stack.db is not None
    routed = [router.route(m.topic, m.payload) for m in messages]
    flushes = []
    for i in range(0, len(routed), per_flush):
        part = routed[i : i + per_flush]
        batches: dict[str, list[tuple[int, int]]] = {}
        for m in part:
            if m.device_id is not None and m.seq is not None:
                batches.setdefault(m.device_id, []).append((m.seq, m.readings))
        flushes.append(([d for m in part for d in m.decisions], batches))
    stack.reset_databases()
    writer = ControlWriter(stack.db.control)
    decisions = 0
    try:
        meter.start("control_stage")
        t = time.perf_counter()
        for logged, batches in flushes:
            writer.write(decisions=logged, rejections=[], batches=batches, statuses=[])
            decisions += len(logged)
        seconds = time.perf_counter() - t
        meter.stop("control_stage")
    finally:
        writer.close()
    with psycopg.connect(stack.db.control) as conn:
        row = conn.execute(
            "SELECT pg_total_relation_size('decision_log') + pg_total_relation_size('decision_docs'),"
            " (SELECT coalesce(sum(cardinality(seqs)), 0) FROM decision_log), (SELECT count(*) FROM decision_log)"
        ).fetchone()
    assert row is not None
    size, count, log_rows = row
    return Timed(
        decisions,
        seconds,
        {
            "messages": len(messages),
            "messages_per_flush": per_flush,
            "flushes": len(flushes),
            "ms_per_flush": round(seconds / len(flushes) * 1000, 2),
            "decisions_per_message": round(decisions / len(messages), 2),
            "bytes_per_decision": round(size / count) if count else None,
            "log_rows_per_flush": round(log_rows / len(flushes), 1),
        },
    )
