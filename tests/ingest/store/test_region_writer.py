"""RegionWriter on plain PostgreSQL: idempotent inserts, and rollups maintained from new rows only."""

import threading
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import psycopg
import pytest

from devstack import PostgresServer
from ingest.errors import StoreDataError, StoreUnavailableError
from ingest.store import rollups
from ingest.store.migrate import migrate
from ingest.store.region import RegionWriter

T0 = datetime(2026, 11, 22, 7, 0, 0, tzinfo=UTC)
DAY = (T0 - timedelta(days=1), T0 + timedelta(days=1))


def _row(
    seq: int,
    idx: int,
    name: str,
    num: float | None = None,
    txt: str | None = None,
    *,
    device: str = "dev-1",
    at: datetime | None = None,
) -> tuple[object, ...]:
    ts = at if at is not None else T0 + timedelta(seconds=idx)
    return (device, seq, idx, name, ts, "site-1", "DE", "machine", num, txt, None, uuid.uuid4(), "sha256:abc")


def _store(pg: PostgresServer, name: str) -> str:
    dsn = pg.create_database(name)
    migrate(dsn, "region", store="eu")
    return dsn


def _rollup(dsn: str, table: str) -> list[tuple[Any, ...]]:
    with psycopg.connect(dsn) as conn:
        return conn.execute(
            f"SELECT device_id, name, bucket, count, sum, min, max FROM {table} ORDER BY 1, 2, 3"
        ).fetchall()


def test_write_is_idempotent(pg_server: PostgresServer) -> None:
    dsn = _store(pg_server, "writer_idem")
    writer = RegionWriter("eu", dsn)
    rows = [_row(1, 0, "power_kw", 1.5), _row(1, 1, "power_kw", 2.5), _row(1, 0, "badge", txt="B-1")]
    assert writer.write(rows) == 3
    assert writer.write(rows) == 0  # redelivery: nothing new
    assert writer.write([*rows, _row(2, 0, "power_kw", 9.0)]) == 1
    with psycopg.connect(dsn) as conn:
        got = conn.execute("SELECT seq, idx, name, num, txt FROM readings ORDER BY seq, idx, name").fetchall()
    assert got == [
        (1, 0, "badge", None, "B-1"),
        (1, 0, "power_kw", 1.5, None),
        (1, 1, "power_kw", 2.5, None),
        (2, 0, "power_kw", 9.0, None),
    ]
    writer.close()


@pytest.mark.plain_only
def test_rollups_count_new_rows_only(pg_server: PostgresServer) -> None:
    dsn = _store(pg_server, "writer_rollups")
    writer = RegionWriter("eu", dsn)
    first = [_row(1, 0, "power_kw", 1.5), _row(1, 1, "power_kw", 2.5), _row(1, 0, "badge", txt="B-1")]
    assert writer.write(first) == 3
    assert writer.maintains_rollups
    minute = rollups.floor_to(T0, timedelta(minutes=1))
    assert _rollup(dsn, "readings_1m") == [("dev-1", "power_kw", minute, 2, 4.0, 1.5, 2.5)]  # text rows: none
    assert _rollup(dsn, "readings_1h") == [("dev-1", "power_kw", T0.replace(minute=0), 2, 4.0, 1.5, 2.5)]

    # a redelivery plus one new row, one new lower value, and a row in the next minute
    later = [_row(2, 0, "power_kw", 0.5), _row(3, 0, "power_kw", 7.0, at=T0 + timedelta(seconds=61))]
    assert writer.write([*first, *later]) == 2
    assert writer.write(later) == 0
    assert _rollup(dsn, "readings_1m") == [
        ("dev-1", "power_kw", minute, 3, 4.5, 0.5, 2.5),
        ("dev-1", "power_kw", minute + timedelta(minutes=1), 1, 7.0, 7.0, 7.0),
    ]
    assert _rollup(dsn, "readings_1h") == [("dev-1", "power_kw", T0.replace(minute=0), 4, 11.5, 0.5, 7.0)]
    with psycopg.connect(dsn) as conn:
        assert rollups.verify(conn, start=DAY[0], end=DAY[1]) == []
    writer.close()


def test_a_failed_write_changes_neither_rows_nor_rollups(pg_server: PostgresServer) -> None:
    dsn = _store(pg_server, "writer_atomic")
    writer = RegionWriter("eu", dsn)
    assert writer.write([_row(1, 0, "power_kw", 1.0)]) == 1
    bad = _row(2, 0, "power_kw", 5.0)
    bad = (*bad[:5], None, *bad[6:])  # site_id NULL violates NOT NULL: the whole flush fails, as a data error
    with pytest.raises(StoreDataError, match="store eu refused the data"):
        writer.write([_row(2, 1, "power_kw", 3.0), bad])
    assert _rollup(dsn, "readings_1m")[0][3:] == (1, 1.0, 1.0, 1.0)
    assert writer.write([_row(2, 1, "power_kw", 3.0)]) == 1  # reconnects and carries on
    assert _rollup(dsn, "readings_1m")[0][3:] == (2, 4.0, 1.0, 3.0)
    writer.close()


def test_concurrent_overlapping_writers_keep_rollups_exact(pg_server: PostgresServer) -> None:
    """Two replicas receiving the same batches (redelivery after a lost ack) in different orders."""
    dsn = _store(pg_server, "writer_concurrent")
    batches = [
        [
            _row(seq, i, name, float(seq * 10 + i), device=f"dev-{seq % 3}", at=T0 + timedelta(seconds=seq * 7 + i))
            for i in range(20)
            for name in ("a", "b")
        ]
        for seq in range(40)
    ]
    written: list[int] = []
    errors: list[BaseException] = []

    def replica(order: list[list[tuple[object, ...]]]) -> None:
        writer = RegionWriter("eu", dsn)
        try:
            written.append(sum(writer.write(batch) for batch in order))
        except BaseException as exc:
            errors.append(exc)
        finally:
            writer.close()

    threads = [
        threading.Thread(target=replica, args=(order,))
        for order in (batches, list(reversed(batches)), batches[::2] + batches[1::2])
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    assert sum(written) == 40 * 20 * 2  # every reading inserted exactly once, whoever wrote it
    with psycopg.connect(dsn) as conn:
        assert conn.execute("SELECT sum(count) FROM readings_1m").fetchone() == (1600,)
        assert conn.execute("SELECT sum(count) FROM readings_1h").fetchone() == (1600,)
        assert rollups.verify(conn, start=DAY[0], end=DAY[1]) == []


@pytest.mark.plain_only
def test_rollups_are_left_to_timescaledb_where_they_are_views(pg_server: PostgresServer) -> None:
    """Where readings_1m/1h are not tables (continuous aggregates), the writer inserts raw rows only."""
    dsn = _store(pg_server, "writer_views")
    with psycopg.connect(dsn) as conn:
        conn.execute("DROP TABLE readings_1m, readings_1h")
        for table, width in (("readings_1m", "1 minute"), ("readings_1h", "1 hour")):
            conn.execute(
                f"CREATE VIEW {table} AS SELECT device_id, name, date_bin('{width}', ts, '2000-01-01') AS bucket,"
                " count(num) AS count, sum(num) AS sum, min(num) AS min, max(num) AS max FROM readings"
                " WHERE num IS NOT NULL GROUP BY 1, 2, 3"
            )
    writer = RegionWriter("eu", dsn)
    assert writer.write([_row(1, 0, "power_kw", 1.0), _row(1, 0, "power_kw", 1.0)]) == 1
    assert not writer.maintains_rollups
    assert _rollup(dsn, "readings_1m")[0][3:] == (1, 1.0, 1.0, 1.0)
    writer.close()


@pytest.mark.plain_only
def test_rebuild_recomputes_rollups_from_raw_rows(pg_server: PostgresServer) -> None:
    dsn = _store(pg_server, "writer_rebuild")
    writer = RegionWriter("eu", dsn)
    writer.write([_row(1, i, "power_kw", float(i)) for i in range(5)])
    writer.close()
    with psycopg.connect(dsn) as conn:
        conn.execute("UPDATE readings_1m SET count = 99")
        conn.execute(
            "INSERT INTO readings (device_id, seq, idx, name, ts, site_id, origin_country, category, num,"
            " decision_id, policy_revision) VALUES ('dev-2', 1, 0, 'power_kw', %s, 's', 'DE', 'machine', 4,"
            " gen_random_uuid(), 'r')",
            (T0,),
        )
        broken = rollups.verify(conn, start=DAY[0], end=DAY[1])
        assert {(m.table, m.device_id) for m in broken} == {
            ("readings_1m", "dev-1"),
            ("readings_1m", "dev-2"),
            ("readings_1h", "dev-2"),
        }
        rollups.rebuild(conn, T0 - timedelta(minutes=5), T0 + timedelta(minutes=5))
        assert rollups.verify(conn, start=DAY[0], end=DAY[1]) == []


def test_unreachable_store_names_the_region() -> None:
    from devstack.ports import free_port

    writer = RegionWriter("cn-north", f"postgresql://x@127.0.0.1:{free_port()}/none")
    with pytest.raises(StoreUnavailableError, match="store cn-north"):
        writer.write([_row(1, 0, "power_kw", 1.0)])


def test_new_rows_take_the_fast_path_and_duplicates_the_merge_path(pg_server: PostgresServer) -> None:
    dsn = _store(pg_server, "writer_paths")
    writer = RegionWriter("eu", dsn)
    first = [_row(1, i, "power_kw", float(i)) for i in range(5)]
    assert writer.write(first) == 5
    assert writer.merges == 0  # COPY straight into readings, rollups from the same rows
    assert writer.write([_row(2, 0, "power_kw", 10.0)]) == 1
    assert writer.merges == 0
    assert writer.write([*first[:2], _row(3, 0, "power_kw", 20.0)]) == 1  # a replay: merge path
    assert writer.merges == 1
    dup_in_batch = [_row(4, 0, "power_kw", 1.0), _row(4, 0, "power_kw", 1.0)]
    assert writer.write(dup_in_batch) == 1  # the same key twice in one flush: stored once
    assert writer.merges == 2
    with psycopg.connect(dsn) as conn:
        assert conn.execute("SELECT count(*) FROM readings").fetchone() == (8,)
        assert conn.execute("SELECT sum(count) FROM readings_1m").fetchone() == (8,)
        assert rollups.verify(conn, start=DAY[0], end=DAY[1]) == []
    writer.close()


def test_fast_path_buckets_are_exact_at_minute_and_hour_boundaries(pg_server: PostgresServer) -> None:
    dsn = _store(pg_server, "writer_bounds")
    writer = RegionWriter("eu", dsn)
    hour = T0.replace(minute=0)
    stamps = [
        hour - timedelta(microseconds=1),
        hour,
        hour + timedelta(minutes=1) - timedelta(microseconds=1),
        hour + timedelta(minutes=1),
        hour + timedelta(hours=1) - timedelta(microseconds=1),
    ]
    rows = [_row(1, i, "t", float(i), at=at) for i, at in enumerate(stamps)]
    assert writer.write(rows) == len(rows)
    assert writer.merges == 0
    with psycopg.connect(dsn) as conn:
        assert rollups.verify(conn, start=DAY[0], end=DAY[1]) == []
    assert [r[2:4] for r in _rollup(dsn, "readings_1h")] == [(hour - timedelta(hours=1), 1), (hour, 4)]
    assert [r[2:4] for r in _rollup(dsn, "readings_1m")] == [
        (hour - timedelta(minutes=1), 1),
        (hour, 2),
        (hour + timedelta(minutes=1), 1),
        (hour + timedelta(minutes=59), 1),
    ]
    writer.close()


# --- data errors vs outages, and finding the message at fault (docs/message-isolation.md) ---------------------


@pytest.mark.parametrize(
    ("bad", "what"),
    [
        (_row(5, 0, "label", txt="a\x00b"), "invalid byte sequence"),  # a NUL: class 22
        ((*_row(2**63, 0, "power_kw", 1.0)[:1], 2**63, *_row(0, 0, "x")[2:]), "int too big"),  # encoding, client side
        (_row(6, 0, "power_kw", 1.5e308), "out of range"),  # with the 1.5e308 stored before: the rollup's sum overflows
    ],
)
def test_write_groups_quarantines_only_the_group_the_store_refuses(
    pg_server: PostgresServer, bad: tuple[object, ...], what: str
) -> None:
    dsn = _store(pg_server, f"writer_groups_{uuid.uuid4().hex[:8]}")
    writer = RegionWriter("eu", dsn)
    assert writer.write([_row(9, 0, "power_kw", 1.5e308)]) == 1  # an earlier flush, same device, field and minute
    groups = [[_row(1, 0, "power_kw", 1.0)], [bad], [_row(3, 0, "other", 2.0), _row(3, 1, "other", 3.0)]]
    result = writer.write_groups(groups)
    assert list(result.refused) == [1]
    assert what in result.refused[1].reason
    with psycopg.connect(dsn) as conn:
        seqs = {s for (s,) in conn.execute("SELECT DISTINCT seq FROM readings").fetchall()}
    assert seqs == {1, 3, 9}
    assert writer.write([_row(1, 0, "power_kw", 1.0)]) == 0  # the connection is still usable, nothing twice
    writer.close()


def test_write_groups_reports_an_outage_when_every_message_is_refused(pg_server: PostgresServer) -> None:
    """A store that refuses every message on its own has a problem of its own: nothing goes to quarantine."""
    dsn = _store(pg_server, "writer_all_refused")
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute("ALTER TABLE readings ADD CONSTRAINT never CHECK (seq < 0) NOT VALID")
    writer = RegionWriter("eu", dsn)
    with pytest.raises(StoreUnavailableError, match="each of 2 messages was refused on its own"):
        writer.write_groups([[_row(1, 0, "power_kw", 1.0)], [_row(2, 0, "power_kw", 2.0)]])
    writer.close()


def test_a_stopped_server_is_an_outage_not_a_data_error() -> None:
    writer = RegionWriter("eu", "postgresql://nobody@127.0.0.1:1/none?connect_timeout=2")
    with pytest.raises(StoreUnavailableError, match="store eu"):
        writer.write_groups([[_row(1, 0, "power_kw", 1.0)], [_row(2, 0, "power_kw", 2.0)]])
    writer.close()
