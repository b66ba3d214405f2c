"""ControlWriter: the decision log is written by COPY, idempotently, with the exact JSON documents."""

import uuid
from typing import Any

import psycopg
import pytest
from psycopg.types.json import Jsonb

from devstack import PostgresServer
from ingest.records import DecisionRecord
from ingest.store.control import ControlWriter
from ingest.store.migrate import migrate
from policy.models import Decision

DECISION = Decision(
    allow=True,
    localization="none",
    requires=["SCC"],
    transforms={"operator_badge": "pseudonymize"},
    reasons=["GDPR Art 46: SCC in force"],
    policy_revision="sha256:rev",
)
INPUT = {"origin": {"country": "DE", "site": "de-munich"}, "destination": {"country": "US"}, "category": "personal"}


def _record(seq: int, region: str = "us-east", *, policy_input: dict[str, Any] | None = None) -> DecisionRecord:
    return DecisionRecord(
        decision_id=uuid.uuid5(uuid.NAMESPACE_URL, f"dev-1/{seq}/personal/{region}"),
        device_id="dev-1",
        seq=seq,
        site_id="de-munich",
        origin_country="DE",
        category="personal",
        region=region,
        destination_country="US",
        outcome="transformed",
        decision=DECISION,
        readings=3,
        input=policy_input if policy_input is not None else INPUT,
    )


def _logged(dsn: str) -> list[tuple[Any, ...]]:
    with psycopg.connect(dsn) as conn:
        return conn.execute(
            "SELECT seq, region, origin_country, destination_country, outcome, allow, localization, requires,"
            " transforms, reasons, policy_revision, readings, input FROM decisions ORDER BY seq, region"
        ).fetchall()


def test_decisions_are_copied_once_with_their_documents(pg_server: PostgresServer) -> None:
    dsn = pg_server.create_database("control_writer")
    migrate(dsn, "control", store="control")
    writer = ControlWriter(dsn)
    other_input = {**INPUT, "category": "machine"}
    first = [_record(1), _record(1, "eu-central"), _record(2, policy_input=other_input)]
    writer.write(decisions=first, rejections=[], batches={}, statuses=[])
    assert writer.merges == 0
    rows = _logged(dsn)
    assert [r[:2] for r in rows] == [(1, "eu-central"), (1, "us-east"), (2, "us-east")]
    assert rows[0][2:] == (
        "DE",
        "US",
        "transformed",
        True,
        "none",
        ["SCC"],
        {"operator_badge": "pseudonymize"},
        ["GDPR Art 46: SCC in force"],
        "sha256:rev",
        3,
        INPUT,
    )
    assert rows[2][-1] == other_input  # each row keeps its own document, though encodings are shared

    # a redelivered message: its decisions are already logged; the new one is added, nothing doubles
    writer.write(decisions=[_record(2, policy_input=other_input), _record(3)], rejections=[], batches={}, statuses=[])
    assert writer.merges == 1
    assert [r[:2] for r in _logged(dsn)] == [(1, "eu-central"), (1, "us-east"), (2, "us-east"), (3, "us-east")]
    writer.close()


def _docs(dsn: str) -> list[tuple[Any, ...]]:
    with psycopg.connect(dsn) as conn:
        return conn.execute("SELECT input->>'category', reasons FROM decision_docs ORDER BY 1").fetchall()


def test_each_document_is_stored_once_and_sent_once(pg_server: PostgresServer) -> None:
    dsn = pg_server.create_database("control_docs")
    migrate(dsn, "control", store="control")
    writer = ControlWriter(dsn)
    machine = {**INPUT, "category": "machine"}
    # 40 decisions over two flows: two documents
    writer.write(
        decisions=[_record(s, policy_input=INPUT if s % 2 else machine) for s in range(1, 41)],
        rejections=[],
        batches={},
        statuses=[],
    )
    assert _docs(dsn) == [("machine", ["GDPR Art 46: SCC in force"]), ("personal", ["GDPR Art 46: SCC in force"])]
    assert writer.docs_written == 2
    # equal content in new objects (a new router, another replica): same id, nothing sent again
    writer.write(decisions=[_record(41, policy_input=dict(INPUT))], rejections=[], batches={}, statuses=[])
    assert writer.docs_written == 2 and len(_docs(dsn)) == 2
    # another writer (replica) sends the document again: ON CONFLICT keeps one row
    other = ControlWriter(dsn)
    other.write(decisions=[_record(42)], rejections=[], batches={}, statuses=[])
    assert other.docs_written == 1 and len(_docs(dsn)) == 2
    assert len(_logged(dsn)) == 42
    writer.close()
    other.close()


def test_a_rolled_back_write_sends_its_documents_again(pg_server: PostgresServer) -> None:
    dsn = pg_server.create_database("control_docs_rollback")
    migrate(dsn, "control", store="control")
    writer = ControlWriter(dsn)
    bad_status = object()  # not a Status: the transaction fails after the documents were inserted
    with pytest.raises(AttributeError):  # list-item: the point of the test, a status that is not a Status
        writer.write(decisions=[_record(1)], rejections=[], batches={}, statuses=[bad_status])  # type: ignore[list-item]
    assert _docs(dsn) == [] and _logged(dsn) == []
    writer.write(decisions=[_record(1)], rejections=[], batches={}, statuses=[])
    assert len(_docs(dsn)) == 1 and len(_logged(dsn)) == 1
    writer.close()


def test_the_decisions_view_reads_and_inserts_like_the_old_table(pg_server: PostgresServer) -> None:
    """Readers keep ``SELECT ... FROM decisions``; an INSERT into the view (seeds, scripts) still works and
    shares the document of an equal decision written by SQL."""
    dsn = pg_server.create_database("control_view")
    migrate(dsn, "control", store="control")
    insert = (
        "INSERT INTO decisions (decision_id, device_id, seq, site_id, origin_country, category, region,"
        " destination_country, outcome, allow, localization, requires, transforms, reasons, policy_revision,"
        " readings, input) VALUES (%s, 'dev-9', %s, 's', 'DE', 'machine', 'eu-central', 'DE', 'stored', true,"
        " 'none', '[]', '{}', '[\"ok\"]', 'sha256:r', 1, %s)"
    )
    with psycopg.connect(dsn) as conn:
        for seq in (1, 2):
            conn.execute(insert, (uuid.uuid4(), seq, Jsonb(INPUT)))
        rows = conn.execute(
            "SELECT seq, allow, reasons, input, decided_at IS NOT NULL FROM decisions ORDER BY seq"
        ).fetchall()
        assert rows == [(1, True, ["ok"], INPUT, True), (2, True, ["ok"], INPUT, True)]
        assert conn.execute("SELECT count(*) FROM decision_docs").fetchone() == (1,)
