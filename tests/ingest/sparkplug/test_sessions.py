"""Sparkplug sessions in a real control store (ingest.sparkplug.sessions): positions across seq wraps and sessions,
a redelivery after a newer birth resolved against its own session, NDEATH matched by bdSeq."""

from __future__ import annotations

import time

from ingest.sparkplug.sessions import Incoming, SessionStore, message_digest
from ingest.store.sequences import JumpBound
from tests.integration.ingest_harness import query
from wire.sparkplug import SparkplugTopic, decode
from wire.sparkplug import sparkplug_b_pb2 as pb

GROUP, NODE = "g", "n1"


def msg(
    kind: str, seq: int | None, metrics: list[dict[str, object]], device: str | None = None, ts: int | None = None
) -> Incoming:
    topic = f"spBv1.0/{GROUP}/{kind}/{NODE}" + (f"/{device}" if device else "")
    p = pb.Payload(timestamp=ts if ts is not None else int(time.time() * 1000))
    if seq is not None:
        p.seq = seq
    for m in metrics:
        p.metrics.add(**m)
    payload = p.SerializeToString()
    return Incoming(SparkplugTopic.parse(topic), decode(payload), message_digest(topic, payload))


def birth(seq: int, bd: int, ts: int) -> Incoming:
    return msg("NBIRTH", seq, [{"name": "bdSeq", "datatype": 8, "long_value": bd}], ts=ts)


def dbirth(seq: int, name: str, ts: int) -> Incoming:
    return msg("DBIRTH", seq, [{"name": name, "alias": 1, "datatype": 10, "double_value": 0.0}], "d", ts=ts)


def ddata(seq: int, value: float, ts: int) -> Incoming:
    return msg("DDATA", seq, [{"alias": 1, "datatype": 10, "double_value": value}], "d", ts=ts)


def test_positions_wrap_and_continue_across_sessions_and_redeliveries_keep_their_session(control: str) -> None:
    store = SessionStore(control, JumpBound())
    t0 = int(time.time() * 1000) - 100_000
    first = store.process([birth(0, 5, t0), dbirth(1, "A/x", t0 + 1)])
    assert [(r.session, r.position, r.verdict) for r in first.resolved] == [(1, 1, "new"), (1, 2, "new")]
    # 300 DDATA: seq wraps past 255, positions go on without a gap
    datas = [ddata((2 + i) % 256, float(i), t0 + 10 + i) for i in range(300)]
    out = store.process(datas[:150])
    out2 = store.process(datas[150:])
    positions = [r.position for r in (*out.resolved, *out2.resolved)]
    assert positions == list(range(3, 303))
    assert not out.gaps and not out2.gaps
    assert query(control, "SELECT count(*) FROM sequence_gaps WHERE device_id = 'spb:g/n1'") == [(0,)]
    assert out.resolved[0].metrics[0][0] == "A/x"

    # A new session whose birth gives alias 1 another name; then a redelivery of a DDATA of session 1
    second = store.process([birth(0, 6, t0 + 1000), dbirth(1, "B/y", t0 + 1001), ddata(2, 9.0, t0 + 1002)])
    assert [(r.session, r.position) for r in second.resolved] == [(2, 303), (2, 304), (2, 305)]
    assert second.resolved[2].metrics[0][0] == "B/y"
    again = store.process([datas[7]])
    r = again.resolved[0]
    assert (r.seen, r.session, r.position, r.verdict, r.metrics[0][0]) == (True, 1, positions[7], "seen", "A/x")

    # A message dated before the current session's birth that was never seen: an earlier session's, refused
    late = store.process([ddata(9, 1.0, t0 + 500)])
    assert late.resolved[0].refused is not None and late.resolved[0].refused[0] == "spb_stale_session"

    # A gap asks for a Rebirth; the Will of an earlier connection (bdSeq 5) changes nothing, the session's closes it
    gap = store.process([ddata(7, 1.0, t0 + 1003)])
    assert gap.gaps == {(GROUP, NODE)} and not gap.rebirth and gap.resolved[0].position == 310
    assert store.open_gaps(["spb:g/n1", "spb:g/other"]) == {"spb:g/n1"}
    store.process([msg("NDEATH", None, [{"name": "bdSeq", "datatype": 8, "long_value": 5}])])
    assert query(control, "SELECT online FROM sparkplug_nodes") == [(True,)]
    store.process([msg("NDEATH", None, [{"name": "bdSeq", "datatype": 8, "long_value": 6}])])
    assert query(control, "SELECT online, session, bd_seq FROM sparkplug_nodes") == [(False, 2, 6)]
    assert query(control, "SELECT device, online FROM sparkplug_births WHERE session = 2 ORDER BY device") == [
        ("", True),
        ("d", False),
    ]
    after = store.process([ddata(8, 1.0, t0 + 1004)])
    assert after.resolved[0].refused is not None and after.resolved[0].refused[0] == "spb_no_birth"
    # the next birth closes the gap
    store.process([birth(0, 7, t0 + 2000)])
    assert query(control, "SELECT first_missing, last_missing, closed_by FROM sequence_gaps") == [(306, 309, "rebirth")]
    store.close()
