"""ControlWriter: the decision log is written by COPY, idempotently, with the exact JSON documents."""

import uuid

import psycopg

from devstack import PostgresServer
from ingest.pipeline.router import DecisionRecord
from ingest.store.control import ControlWriter
from ingest.store.migrate import migrate
from policy.models import Decision

DECISION = Decision(allow=True, localization="none", requires=["SCC"], transforms={"operator_badge": "pseudonymize"},
                    reasons=["GDPR Art 46: SCC in force"], policy_revision="sha256:rev")
INPUT = {"origin": {"country": "DE", "site": "de-munich"}, "destination": {"country": "US"}, "category": "personal"}


def _record(seq: int, region: str = "us-east", *, policy_input: dict | None = None) -> DecisionRecord:
    return DecisionRecord(
        decision_id=uuid.uuid5(uuid.NAMESPACE_URL, f"dev-1/{seq}/personal/{region}"), device_id="dev-1", seq=seq,
        site_id="de-munich", origin_country="DE", category="personal", region=region, destination_country="US",
        outcome="transformed", decision=DECISION, readings=3, input=policy_input if policy_input is not None else INPUT,
    )


def _logged(dsn: str) -> list[tuple]:
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
    assert rows[0][2:] == ("DE", "US", "transformed", True, "none", ["SCC"], {"operator_badge": "pseudonymize"},
                           ["GDPR Art 46: SCC in force"], "sha256:rev", 3, INPUT)
    assert rows[2][-1] == other_input  # each row keeps its own document, though encodings are shared

    # a redelivered message: its decisions are already logged; the new one is added, nothing doubles
    writer.write(decisions=[_record(2, policy_input=other_input), _record(3)], rejections=[], batches={},
                 statuses=[])
    assert writer.merges == 1
    assert [r[:2] for r in _logged(dsn)] == [(1, "eu-central"), (1, "us-east"), (2, "us-east"), (3, "us-east")]
    writer.close()
