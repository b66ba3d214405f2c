"""``python -m bench.ingest.control_costs``: what the control store costs per one-reading message (docs/audit-log.md).

The ingest's ``ControlWriter`` on the benchmark's workload (the demo registry's devices round-robin, one reading per
message, routed by the real router and policy), 500 messages per write as a busy flush has them, against its own
PostgreSQL (started here, default settings: ``fsync`` and ``synchronous_commit`` on). Three writers on fresh control
stores: the decision log alone, the sequence tracking alone, both (one transaction, as the bench's control stage).
Then the sequence claims the flush thread makes before routing (``SequenceClaimer.claim``: locks, the devices'
highest seqs, digests of seqs seen before, gaps, the new seqs recorded), on a fresh store, a flush at a time: by one
consumer, and by two that get a device's messages alternately (``claims x2``, as two processes of a shared
subscription do: each finds the other's seqs missing). The two consumers with a gap grace period (holes wait; a
sweep every 10 flushes opens the gaps missing longer than the grace, as the consumers' sweep about every second does
at ~5,000 messages/s; the flushes here come ~15 times faster than a busy ingest's, so the grace is 0.1 s where the
ingest's ``INGEST_SEQ_GAP_GRACE_S`` is 2 s), and with a grace of 0 (``claims x2 at once``: every hole opens a gap
that the other consumer closes a moment later). Last, the gap sweep each consumer runs about once a second, with 10,000
and 100,000 devices none of which waits (its fixed cost).
For each: this process's CPU and the PostgreSQL server's (its postmaster and every backend, from ``/proc``) per
message, the wall time per write, and the decision-log rows per write.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import time
from pathlib import Path

import psycopg

from bench.ingest.workload import Workload, make_router
from devstack import PostgresServer
from ingest.records import DecisionRecord
from ingest.store.control import ControlWriter
from ingest.store.migrate import migrate
from ingest.store.sequences import Claim, JumpBound, SequenceClaimer, open_due_gaps

_HZ = os.sysconf("SC_CLK_TCK")


def _server_cpu_s(data_dir: Path) -> float:
    """CPU seconds of the postmaster of ``data_dir`` and of its children (backends, background processes)."""
    postmaster = int((data_dir / "postmaster.pid").read_text().split()[0])
    total = 0
    for pid in os.listdir("/proc"):
        if not pid.isdigit():
            continue
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(pid) == postmaster or int(fields[1]) == postmaster:
            total += int(fields[11]) + int(fields[12])
    return total / _HZ


def _log_rows(dsn: str) -> int:
    with psycopg.connect(dsn) as conn:
        row = conn.execute("SELECT count(*) FROM decision_log").fetchone()
    return int(row[0]) if row else 0


def _gap_rows(dsn: str) -> int:
    with psycopg.connect(dsn) as conn:
        row = conn.execute("SELECT count(*) FROM sequence_gaps").fetchone()
    return int(row[0]) if row else 0


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.ingest.control_costs", description=__doc__)
    parser.add_argument("--messages", type=int, default=24_000, help="one-reading messages (default 24,000)")
    parser.add_argument("--per-write", type=int, default=500, help="messages per write (default 500)")
    args = parser.parse_args()
    workload = Workload(readings_per_device=max(100, args.messages // 10))
    router = make_router(workload.registry)
    print(f"routing {args.messages:,} one-reading messages of {len(workload.devices)} devices ...", flush=True)
    messages = workload.messages(args.messages, 1)
    routed = [router.route(m.topic, m.payload) for m in messages]
    claims = [
        [
            Claim(r.device_id, r.seq, r.readings, hashlib.sha256(m.payload).digest())
            for m, r in zip(messages[i : i + args.per_write], routed[i : i + args.per_write], strict=True)
            if r.device_id is not None and r.seq is not None
        ]
        for i in range(0, len(routed), args.per_write)
    ]
    writes: list[tuple[list[DecisionRecord], dict[str, list[tuple[int, int]]]]] = []
    for i in range(0, len(routed), args.per_write):
        part = routed[i : i + args.per_write]
        batches: dict[str, list[tuple[int, int]]] = {}
        for m in part:
            if m.device_id is not None and m.seq is not None:
                batches.setdefault(m.device_id, []).append((m.seq, m.readings))
        writes.append(([d for m in part for d in m.decisions], batches))
    decisions = sum(len(d) for d, _ in writes)
    print(f"{decisions / len(routed):.2f} decisions per message, {len(writes)} writes of {args.per_write}", flush=True)
    server = PostgresServer()
    server.start()
    try:
        assert server.dir is not None
        for mode in ("decision log", "sequences", "both"):
            dsn = server.create_database(mode.replace(" ", "_"))
            migrate(dsn, "control", store="control")
            writer = ControlWriter(dsn)
            first, *rest = writes  # the first write fills the caches (documents, prepared statements)
            writer.write(decisions=first[0], rejections=[], batches=first[1], statuses=[])
            rows_before = _log_rows(dsn)
            client, postgres, wall = time.process_time(), _server_cpu_s(server.dir / "data"), time.perf_counter()
            for logged, batches in rest:
                writer.write(
                    decisions=logged if mode != "sequences" else [],
                    rejections=[],
                    batches=batches if mode != "decision log" else {},
                    statuses=[],
                )
            n = sum(len({(d.device_id, d.seq) for d in logged}) for logged, _ in rest)
            client_us = (time.process_time() - client) / n * 1e6
            postgres_us = (_server_cpu_s(server.dir / "data") - postgres) / n * 1e6
            ms = (time.perf_counter() - wall) / len(rest) * 1000
            rows = (_log_rows(dsn) - rows_before) / len(rest)
            writer.close()
            print(
                f"{mode:<13} client {client_us:5.1f} us/msg, PostgreSQL {postgres_us:5.1f} us/msg, "
                f"{ms:6.2f} ms per write, {rows:6.1f} decision-log rows per write"
            )
        # One consumer claims each flush whole; two consumers of a shared subscription get a device's messages
        # alternately (the broker hands out messages, not devices), the second a flush behind the first.
        first_claims, *rest_claims = claims
        halves = [([c for c in flush if c.seq % 2], [c for c in flush if not c.seq % 2]) for flush in rest_claims]
        two = [(0, a) for a, _ in halves[:1]]
        for k in range(1, len(halves)):
            two += [(0, halves[k][0]), (1, halves[k - 1][1])]
        grace = 0.1
        schedules = {
            "claims": ([(0, flush) for flush in rest_claims], grace),
            "claims x2": (two, grace),
            "claims x2 at once": (two, 0.0),
        }
        for mode, (schedule, grace_s) in schedules.items():
            dsn = server.create_database(mode.replace(" ", "_"))
            migrate(dsn, "control", store="control")
            claimers = [SequenceClaimer(dsn, JumpBound(), gap_grace_s=grace_s) for _ in range(2)]
            sweeper = SequenceClaimer(dsn, JumpBound(), gap_grace_s=grace_s)
            claimers[0].claim(first_claims)
            client, postgres, wall = time.process_time(), _server_cpu_s(server.dir / "data"), time.perf_counter()
            for k, (who, flush) in enumerate(schedule, 1):
                claimers[who].claim(flush)
                if k % 10 == 0 or k == len(schedule):
                    sweeper.open_due_gaps()
            n = sum(len(flush) for _, flush in schedule)
            client_us = (time.process_time() - client) / n * 1e6
            # read while the backends live: a backend that has exited is gone from /proc with its CPU time
            postgres_us = (_server_cpu_s(server.dir / "data") - postgres) / n * 1e6
            ms = (time.perf_counter() - wall) / len(schedule) * 1000
            for claimer in (*claimers, sweeper):
                claimer.close()
            print(
                f"{mode:<17} client {client_us:5.1f} us/msg, PostgreSQL {postgres_us:5.1f} us/msg, "
                f"{ms:6.2f} ms per flush, {_gap_rows(dsn)} gap rows written"
            )
        _sweep_costs(server)
    finally:
        server.cleanup()


def _sweep_costs(server: PostgresServer) -> None:
    """What each consumer's gap sweep (``open_due_gaps``, about once a second) costs when no device waits: one read
    of ``device_progress``, whose size is the number of devices."""
    dsn = server.create_database("sweep")
    migrate(dsn, "control", store="control")
    for devices in (10_000, 100_000):
        with psycopg.connect(dsn, autocommit=True) as conn:
            conn.execute("TRUNCATE device_progress")
            conn.execute(
                "INSERT INTO device_progress (device_id, last_seq, batches, readings, last_seen_at, gaps_checked_to)"
                " SELECT 'device-' || i, 100, 100, 100, now(), 100 FROM generate_series(1, %s) AS i",
                (devices,),
            )
            conn.execute("VACUUM ANALYZE device_progress")
        with psycopg.connect(dsn) as conn:
            sweeps = 50
            wall = time.perf_counter()
            for _ in range(sweeps):
                with conn.transaction():
                    open_due_gaps(conn, 2.0)
            ms = (time.perf_counter() - wall) / sweeps * 1000
        print(f"gap sweep, {devices:,} devices, none waiting: {ms:.2f} ms per sweep")


if __name__ == "__main__":
    main()
