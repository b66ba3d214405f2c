"""PostgreSQL watch of the benchmark's timed windows (bench/ingest/pgwatch.py), on a real server."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

import psycopg
import pytest

from bench.ingest.pgwatch import PostgresWatch, waits_line
from devstack import PostgresServer


@pytest.mark.integration
def _wait(predicate: Callable[[], bool], what: str, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.01)


def test_watch_counts_wal_and_sees_a_backend_waiting_on_a_lock(pg_server: PostgresServer) -> None:
    dsn = pg_server.create_database("t_pgwatch")
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute("CREATE TABLE w (id int PRIMARY KEY, pad text)")
        conn.execute("INSERT INTO w VALUES (1, '')")
    watch = PostgresWatch(dsn, only={"load"}, period_s=0.01)
    watch.start("ignored")  # not watched: nothing recorded, stop is harmless
    watch.stop("ignored")
    watch.start("load")
    with psycopg.connect(dsn) as holder, psycopg.connect(dsn, autocommit=True) as writer:
        holder.execute("UPDATE w SET pad = 'x' WHERE id = 1")  # holds the row lock until rollback
        blocked = threading.Thread(target=writer.execute, args=("UPDATE w SET pad = 'y' WHERE id = 1",))
        blocked.start()
        with psycopg.connect(dsn, autocommit=True) as probe:  # wait for the conditions, not for a time
            _wait(
                lambda: (
                    probe.execute("SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock'").fetchone()
                    == (1,)
                ),
                "the UPDATE waiting on the row lock",
            )
            seen = watch.samples("load")
            _wait(lambda: watch.samples("load") >= seen + 5, "the watch sampling while it waits")
        holder.rollback()
        blocked.join(5)
        with psycopg.connect(dsn, autocommit=True) as bulk:
            bulk.execute("INSERT INTO w SELECT g, repeat('p', 100) FROM generate_series(2, 20001) g")
    watch.stop("load")
    assert "ignored" not in watch.wal_bytes and "ignored" not in watch.waits
    assert watch.wal_bytes["load"] > 20_000 * 100  # the 20,000 rows of 100+ bytes went through the WAL
    lock_waits = {k: v for k, v in watch.waits["load"].items() if k.startswith("Lock:")}
    assert lock_waits, watch.waits["load"]  # the blocked UPDATE was seen waiting (Lock:transactionid)
    assert "Lock:" in waits_line(watch.waits["load"], limit=10)


def test_waits_line_shows_the_most_frequent_states() -> None:
    assert waits_line({"CPU": 0.6, "LWLock:WALWrite": 0.31, "IO:WALSync": 0.001}) == "CPU 0.60, LWLock:WALWrite 0.31"
    assert waits_line({}) == "no active backend sampled"
