"""ControlWriter: the decision log holds one row per distinct decision per write, logs each message once (also when
redelivered), and keeps the exact JSON documents; the view ``decisions`` reads one row per message as before."""

import threading
import time
import uuid
from typing import Any

import psycopg
import pytest
from psycopg.types.json import Jsonb

from devstack import PostgresServer
from ingest.decision_ids import decision_id, doc_id
from ingest.records import DecisionRecord
from ingest.store.control import ControlRecords, ControlWriter
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


def _record(
    seq: int, region: str = "us-east", *, policy_input: dict[str, Any] | None = None, device: str = "dev-1"
) -> DecisionRecord:
    policy_input = policy_input if policy_input is not None else INPUT
    doc = doc_id(DECISION, policy_input)
    return DecisionRecord(
        decision_id=decision_id(device, "personal", region, "transformed", doc),
        device_id=device,
        seq=seq,
        site_id="de-munich",
        origin_country="DE",
        category="personal",
        region=region,
        destination_country="US",
        outcome="transformed",
        decision=DECISION,
        readings=seq % 5 + 1,
        input=policy_input,
        doc_id=doc,
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
        2,
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


def _log_rows(dsn: str) -> list[tuple[Any, ...]]:
    with psycopg.connect(dsn) as conn:
        return conn.execute(
            "SELECT region, device_id, first_seq, last_seq, seqs, readings FROM decision_log ORDER BY region, last_seq"
        ).fetchall()


def test_a_write_logs_one_row_per_distinct_decision_with_its_messages(pg_server: PostgresServer) -> None:
    dsn = pg_server.create_database("control_groups")
    migrate(dsn, "control", store="control")
    writer = ControlWriter(dsn)
    # 50 messages of one device, decided for two regions, and 10 of another device: three distinct decisions
    decisions = [_record(s, region) for s in range(1, 51) for region in ("us-east", "eu-central")]
    decisions += [_record(s, device="dev-2") for s in range(100, 110)]
    writer.write(decisions=decisions, rejections=[], batches={}, statuses=[])
    rows = _log_rows(dsn)
    assert [r[:4] for r in rows] == [
        ("eu-central", "dev-1", 1, 50),
        ("us-east", "dev-1", 1, 50),
        ("us-east", "dev-2", 100, 109),
    ]
    assert rows[0][4] == list(range(1, 51)) and rows[0][5] == [s % 5 + 1 for s in range(1, 51)]
    assert writer.logged == 3 and writer.merges == 0
    # the view: one row per message x region, with its own readings, as the per-message log had
    with psycopg.connect(dsn) as conn:
        assert conn.execute("SELECT count(*), count(DISTINCT (device_id, seq)) FROM decisions").fetchone() == (110, 60)
        assert conn.execute(
            "SELECT seq, readings FROM decisions WHERE device_id = 'dev-1' AND region = 'us-east' AND seq IN (7, 8)"
            " ORDER BY seq"
        ).fetchall() == [(7, 3), (8, 4)]
    writer.close()


def test_redelivered_messages_are_logged_once_however_they_are_regrouped(pg_server: PostgresServer) -> None:
    """A crash after the control commit, before the acknowledgement: the broker redelivers, and the flushes that
    take the messages again group them differently (here: a window straddling logged and new seqs, a duplicate
    within one write, and one message alone)."""
    dsn = pg_server.create_database("control_redelivery")
    migrate(dsn, "control", store="control")
    writer = ControlWriter(dsn)
    writer.write(decisions=[_record(s) for s in range(1, 21)], rejections=[], batches={}, statuses=[])
    writer.write(decisions=[_record(s) for s in [*range(15, 31), 30]], rejections=[], batches={}, statuses=[])
    assert writer.merges == 1
    assert writer.write(decisions=[_record(7)], rejections=[], batches={}, statuses=[]) == {}
    assert writer.merges == 2
    rows = _log_rows(dsn)
    assert [(r[2], r[3], r[4]) for r in rows] == [(1, 20, list(range(1, 21))), (21, 30, list(range(21, 31)))]
    # another replica (its own writer and connection) gets a redelivery too
    other = ControlWriter(dsn)
    other.write(decisions=[_record(s) for s in range(25, 36)], rejections=[], batches={}, statuses=[])
    with psycopg.connect(dsn) as conn:
        assert conn.execute("SELECT count(*), count(DISTINCT seq) FROM decisions").fetchone() == (35, 35)
    assert other.merges == 1 and other.logged == 1
    writer.close()
    other.close()


def _wait_for_a_lock_wait(dsn: str, failure: str) -> None:
    """Until one session waits for an advisory lock (30 s at most, then ``failure``)."""
    deadline = time.monotonic() + 30
    with psycopg.connect(dsn, autocommit=True) as watcher:
        waiting = "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND NOT granted"
        while watcher.execute(waiting).fetchone() != (1,):
            assert time.monotonic() < deadline, failure
            time.sleep(0.01)


def test_a_write_waits_for_another_writer_logging_the_same_device(pg_server: PostgresServer) -> None:
    """Two replicas logging the same redelivered message at once: the second waits for the first's commit (the
    device's lock), then sees its row and leaves the message out."""
    dsn = pg_server.create_database("control_lock")
    migrate(dsn, "control", store="control")
    writer = ControlWriter(dsn)
    first = _record(5)
    with psycopg.connect(dsn) as holder:
        holder.execute("SELECT pg_advisory_xact_lock(hashtext('log:dev-1'))")  # a replica's write in progress
        done = threading.Event()

        def write() -> None:
            writer.write(decisions=[_record(4), first, _record(6)], rejections=[], batches={}, statuses=[])
            done.set()

        thread = threading.Thread(target=write)
        thread.start()
        _wait_for_a_lock_wait(dsn, "the write did not wait for the device's lock")
        assert not done.is_set()
        holder.execute(
            "INSERT INTO decision_docs (doc_id, allow, localization, policy_revision, input)"
            " VALUES (%s, true, 'none', 'sha256:rev', %s) ON CONFLICT DO NOTHING",
            (first.doc_id, Jsonb(INPUT)),
        )
        holder.execute(
            "INSERT INTO decision_log (decision_id, last_seq, first_seq, device_id, site_id, origin_country, category,"
            " region, destination_country, outcome, doc_id, seqs, readings)"
            " VALUES (%s, 5, 5, 'dev-1', 'de-munich', 'DE', 'personal', 'us-east', 'US', 'transformed', %s,"
            " '{5}', '{1}')",
            (first.decision_id, first.doc_id),
        )
    thread.join(30)
    assert done.is_set()
    assert [(r[2], r[3], r[4]) for r in _log_rows(dsn)] == [(5, 5, [5]), (4, 6, [4, 6])]
    assert writer.merges == 1
    writer.close()


def test_first_claims_share_the_device_lock_and_a_redelivery_waits_for_them(pg_server: PostgresServer) -> None:
    """Replicas (and workers) logging messages they claimed first never wait for each other; a write with a
    redelivered message of the device waits until they commit."""
    dsn = pg_server.create_database("control_lock_modes")
    migrate(dsn, "control", store="control")
    writer = ControlWriter(dsn)
    with psycopg.connect(dsn) as holder:
        holder.execute("SELECT pg_advisory_xact_lock_shared(hashtext('log:dev-1'))")  # another first-claim write
        writer.write(decisions=[_record(1)], rejections=[], batches={}, statuses=[], first_claims={"dev-1"})
        assert writer.logged == 1  # did not wait
        done = threading.Event()

        def redelivery() -> None:
            writer.write(decisions=[_record(1), _record(2)], rejections=[], batches={}, statuses=[])
            done.set()

        thread = threading.Thread(target=redelivery)
        thread.start()
        _wait_for_a_lock_wait(dsn, "the redelivery did not wait for the write in progress")
        assert not done.is_set()
    thread.join(30)
    assert done.is_set() and writer.merges == 1
    assert [(r[2], r[3], r[4]) for r in _log_rows(dsn)] == [(1, 1, [1]), (2, 2, [2])]
    writer.close()


def test_write_groups_locks_exclusively_only_the_devices_of_redelivered_messages(
    pg_server: PostgresServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    dsn = pg_server.create_database("control_lock_groups")
    migrate(dsn, "control", store="control")
    writer = ControlWriter(dsn)
    seen: list[tuple[list[str], list[bool]]] = []
    original = ControlWriter.write

    def spy(self: ControlWriter, **kwargs: Any) -> dict[str, list[int]]:
        devices = {d.device_id for d in kwargs["decisions"]}
        seen.append((sorted(devices), [d not in kwargs["first_claims"] for d in sorted(devices)]))
        return original(self, **kwargs)

    groups = [
        ControlRecords([_record(1)], redelivered=False),
        ControlRecords([_record(5, device="dev-2")], redelivered=True),
        ControlRecords([_record(6, device="dev-2")], redelivered=False),
        ControlRecords([_record(7, device="dev-3")]),  # no claim known: exclusive
    ]
    monkeypatch.setattr(ControlWriter, "write", spy)
    writer.write_groups(groups)
    assert seen == [(["dev-1", "dev-2", "dev-3"], [False, True, True])]
    writer.close()
