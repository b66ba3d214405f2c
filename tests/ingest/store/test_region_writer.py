import uuid
from datetime import UTC, datetime

import psycopg
import pytest

from devstack import PostgresServer
from ingest.errors import StoreUnavailableError
from ingest.store.migrate import migrate
from ingest.store.region import RegionWriter


def _row(seq: int, idx: int, name: str, num: float | None = None, txt: str | None = None) -> tuple:
    return ("dev-1", seq, idx, name, datetime(2026, 11, 22, 7, 0, idx, tzinfo=UTC), "site-1", "DE", "machine",
            num, txt, None, uuid.uuid4(), "sha256:abc")


def test_write_is_idempotent(pg_server: PostgresServer) -> None:
    dsn = pg_server.create_database("writer_idem")
    migrate(dsn, "region", store="eu")
    writer = RegionWriter("eu", dsn)
    rows = [_row(1, 0, "power_kw", 1.5), _row(1, 1, "power_kw", 2.5), _row(1, 0, "badge", txt="B-1")]
    assert writer.write(rows) == 3
    assert writer.write(rows) == 0  # redelivery: nothing new
    assert writer.write([*rows, _row(2, 0, "power_kw", 9.0)]) == 1
    with psycopg.connect(dsn) as conn:
        got = conn.execute("SELECT seq, idx, name, num, txt FROM readings ORDER BY seq, idx, name").fetchall()
    assert got == [(1, 0, "badge", None, "B-1"), (1, 0, "power_kw", 1.5, None), (1, 1, "power_kw", 2.5, None),
                   (2, 0, "power_kw", 9.0, None)]
    writer.close()


def test_unreachable_store_names_the_region() -> None:
    from devstack.ports import free_port

    writer = RegionWriter("cn-north", f"postgresql://x@127.0.0.1:{free_port()}/none")
    with pytest.raises(StoreUnavailableError, match="store cn-north"):
        writer.write([_row(1, 0, "power_kw", 1.0)])
