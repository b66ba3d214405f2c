"""The batch queues: one suite for both kinds (disk and memory), then what only the disk queue
promises (restart, kill -9, seq and batch in one transaction, read-only status from another process)."""

from __future__ import annotations

import multiprocessing
import os
import signal
import sqlite3
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from edge_agent.diskqueue import DiskQueue, read_snapshot
from edge_agent.errors import StateError
from edge_agent.outbox import BatchQueue, EnqueueResult, MemoryQueue
from edge_agent.sequence import DB_NAME, LEGACY_DB_NAME, SequenceStore

MakeQueue = Callable[..., BatchQueue]


@pytest.fixture(params=["disk", "memory"])
def make_queue(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[MakeQueue]:
    opened: list[BatchQueue] = []

    def make(**kw: Any) -> BatchQueue:
        kw.setdefault("max_batches", 1000)
        kw.setdefault("max_bytes", 1_000_000)
        q: BatchQueue = DiskQueue(tmp_path, **kw) if request.param == "disk" else MemoryQueue(tmp_path, **kw)
        opened.append(q)
        return q

    yield make
    for q in opened:
        q.close()


def put(q: BatchQueue, device: str = "a", size: int = 10, readings: int = 5, ts: float = 1000.0) -> EnqueueResult:
    return q.enqueue(
        device, f"tele/v1/s/{device}", lambda seq: f"{seq:0{size}d}".encode(), readings=readings, first_ts=ts
    )


# --- the shared suite -----------------------------------------------------------------------
def test_numbers_per_device_fifo_and_ack(make_queue: MakeQueue) -> None:
    q = make_queue()
    assert [put(q, "a").seq for _ in range(3)] + [put(q, "b").seq] == [1, 2, 3, 1]
    assert q.last_seq("a") == 3 and q.last_seq("zz") is None
    taken = q.take(3)
    assert [(i.device_id, i.seq) for i in taken] == [("a", 1), ("a", 2), ("a", 3)]
    assert taken[0].payload == b"0000000001"
    assert len(q) == 4 and q.unsent == 1
    assert q.ack(taken[0]) and not q.ack(taken[0])
    assert len(q) == 3
    snap = q.snapshot()
    assert (snap.batches, snap.readings, snap.bytes) == (3, 15, 30)


def test_requeue_sends_the_in_flight_batches_first_in_order(make_queue: MakeQueue) -> None:
    q = make_queue()
    for _ in range(5):
        put(q)
    taken = q.take(3)
    q.ack(taken[1])  # seq 2 acknowledged before the connection dropped
    assert q.requeue() == 2
    assert [i.seq for i in q.take(10)] == [1, 3, 4, 5]


def test_drop_oldest_evicts_the_oldest_unsent_batches(make_queue: MakeQueue) -> None:
    q = make_queue(max_batches=3, when_full="drop_oldest")
    for _ in range(3):
        put(q)
    q.take(1)  # seq 1 is in flight and is kept
    result = put(q)
    assert result.seq == 4 and not result.refused and [e.seq for e in result.evicted] == [2]
    snap = q.snapshot()
    assert (snap.evicted_batches, snap.evicted_readings, snap.refused_batches) == (1, 5, 0)
    assert snap.last_full_at is not None
    q.requeue()
    assert [i.seq for i in q.take(10)] == [1, 3, 4]


def test_drop_oldest_by_bytes(make_queue: MakeQueue) -> None:
    q = make_queue(max_bytes=35, when_full="drop_oldest")
    for _ in range(3):
        put(q)  # 30 bytes
    result = put(q, size=16)  # 46 > 35, then 36 > 35: drop two batches of 10
    assert [e.seq for e in result.evicted] == [1, 2]
    assert q.snapshot().bytes == 26


def test_reject_new_refuses_the_newcomer_and_keeps_its_number(make_queue: MakeQueue) -> None:
    q = make_queue(max_batches=2, when_full="reject_new")
    put(q)
    put(q)
    result = put(q, readings=7)
    assert result.refused and result.seq == 3 and result.evicted == []
    assert put(q).seq == 4  # the refused number is not reused: the ingest sees the gap
    snap = q.snapshot()
    assert (snap.batches, snap.refused_batches, snap.refused_readings, snap.evicted_batches) == (2, 2, 12, 0)
    assert [i.seq for i in q.take(10)] == [1, 2]


def test_a_batch_larger_than_the_queue_is_refused(make_queue: MakeQueue) -> None:
    q = make_queue(max_bytes=20, when_full="drop_oldest")
    put(q)
    assert put(q, size=25).refused
    assert len(q) == 1


def test_snapshot_reports_the_oldest_queued_reading(make_queue: MakeQueue) -> None:
    q = make_queue()
    put(q, ts=100.0)
    put(q, ts=200.0)
    assert q.snapshot().oldest_reading_ts == 100.0
    q.ack(q.take(1)[0])
    assert q.snapshot().oldest_reading_ts == 200.0


# --- the disk queue only --------------------------------------------------------------------
def test_the_disk_queue_survives_a_restart_and_replays_in_order(tmp_path: Path) -> None:
    with DiskQueue(tmp_path) as q:
        for device in ("a", "b", "a", "a"):
            put(q, device)
        q.ack(q.take(1)[0])  # a/1 acknowledged
        q.take(2)  # b/1 and a/2 in flight when the agent stops
    with DiskQueue(tmp_path) as q:
        assert len(q) == 3
        assert [(i.device_id, i.seq) for i in q.take(10)] == [("b", 1), ("a", 2), ("a", 3)]
        assert put(q, "a").seq == 4 and put(q, "b").seq == 2


def test_seq_and_batch_are_one_transaction(tmp_path: Path) -> None:
    with DiskQueue(tmp_path) as q:
        put(q)

        def broken(_seq: int) -> bytes:
            raise RuntimeError("encoder bug")

        with pytest.raises(RuntimeError):
            q.enqueue("a", "t", broken, readings=1, first_ts=0.0)
        assert q.last_seq("a") == 1 and len(q) == 1  # neither the number nor a batch was kept
        assert put(q).seq == 2


def _enqueue_until_killed(state_dir: str, conn: Any) -> None:
    q = DiskQueue(state_dir)
    for i in range(10_000):
        seq = put(q, "dev", readings=1).seq
        conn.send(seq)
        if i == 150:
            os.kill(os.getpid(), signal.SIGKILL)  # mid-run, no close(), no flush


def test_every_batch_enqueue_returned_survives_kill_9(tmp_path: Path) -> None:
    ctx = multiprocessing.get_context("fork")
    parent, child = ctx.Pipe(duplex=False)
    proc = ctx.Process(target=_enqueue_until_killed, args=(str(tmp_path), child))
    proc.start()
    child.close()
    confirmed = []
    try:
        while True:
            confirmed.append(parent.recv())
    except EOFError:
        pass
    proc.join(10)
    assert proc.exitcode == -signal.SIGKILL
    assert len(confirmed) == 151
    with DiskQueue(tmp_path) as q:
        stored = [i.seq for i in q.take(1000)]
        assert stored[: len(confirmed)] == confirmed  # nothing confirmed is lost, order kept
        assert put(q, "dev").seq == max(stored) + 1


def test_status_reads_the_queue_from_another_process_while_it_is_open(tmp_path: Path) -> None:
    assert read_snapshot(tmp_path, max_batches=1, max_bytes=1, when_full="drop_oldest") is None
    with DiskQueue(tmp_path, max_batches=2, when_full="drop_oldest") as q:
        put(q, ts=50.0)
        put(q, ts=60.0)
        put(q, ts=70.0)  # evicts seq 1
        snap = read_snapshot(tmp_path, max_batches=2, max_bytes=9, when_full="drop_oldest")
        assert snap is not None
        assert (snap.batches, snap.readings, snap.oldest_reading_ts, snap.evicted_batches) == (2, 10, 60.0, 1)


def test_sequence_numbers_of_an_older_agent_are_adopted(tmp_path: Path) -> None:
    legacy = sqlite3.connect(tmp_path / LEGACY_DB_NAME)
    legacy.execute("CREATE TABLE device_seq (device_id TEXT PRIMARY KEY, last_seq INTEGER NOT NULL)")
    legacy.execute("INSERT INTO device_seq VALUES ('a', 41)")
    legacy.commit()
    legacy.close()
    with DiskQueue(tmp_path) as q:
        assert put(q, "a").seq == 42
    assert (tmp_path / DB_NAME).exists() and not (tmp_path / LEGACY_DB_NAME).exists()
    with SequenceStore(tmp_path) as seqs:  # the memory kind shares the same numbers
        assert seqs.next("a") == 43


def test_one_agent_per_state_dir(tmp_path: Path) -> None:
    with DiskQueue(tmp_path), pytest.raises(StateError, match="in use by another agent"):
        DiskQueue(tmp_path)


def test_a_failing_disk_loses_the_batch_not_the_agent(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    from edge_agent.agent import Agent
    from edge_agent.config import AgentConfig

    from .edge_support import agent_config_dict, free_port

    class BrokenDisk(MemoryQueue):
        def enqueue(self, *args: Any, **kwargs: Any) -> EnqueueResult:
            raise StateError(tmp_path, "cannot store a batch: database or disk is full")

    cfg = AgentConfig.model_validate(
        agent_config_dict(tmp_path, free_port(), batch={"max_readings": 5, "max_latency_ms": 50})
    )
    queue = BrokenDisk(tmp_path / "q", max_batches=10, max_bytes=10_000)
    agent = Agent(cfg, batch_queue=queue)
    stats = agent.run(max_batches_per_device=2, ack_timeout_s=0.5)  # nothing stored: nothing to wait for
    assert all(s.batches_built == 2 and s.batches_refused == 2 and s.last_seq is None for s in stats.values())
    assert "database or disk is full" in caplog.text and "reading(s) of" in caplog.text
