"""The in-memory outbox: order, acknowledgement, requeue after a lost connection, capacity."""

from __future__ import annotations

import random

from edge_agent.backoff import Backoff
from edge_agent.outbox import MemoryOutbox, OutboxItem


def item(seq: int, device: str = "a") -> OutboxItem:
    return OutboxItem(device, seq, f"tele/v1/s/{device}", b"{}", 1)


def test_take_in_order_ack_removes() -> None:
    box = MemoryOutbox(10)
    for seq in range(1, 5):
        assert box.put(item(seq)) == []
    taken = box.take(2)
    assert [i.seq for i in taken] == [1, 2]
    assert len(box) == 4 and box.unsent == 2
    assert box.ack(taken[0]) and not box.ack(taken[0])
    assert len(box) == 3


def test_requeue_puts_in_flight_batches_back_in_front() -> None:
    box = MemoryOutbox(10)
    for seq in range(1, 6):
        box.put(item(seq))
    taken = box.take(3)
    box.ack(taken[1])  # seq 2 acknowledged before the connection dropped
    assert box.requeue() == 2
    assert [i.seq for i in box.take(10)] == [1, 3, 4, 5]


def test_full_outbox_drops_the_oldest_unsent_batch() -> None:
    box = MemoryOutbox(3)
    for seq in (1, 2, 3):
        box.put(item(seq))
    box.take(1)  # seq 1 is in flight and is kept
    dropped = box.put(item(4))
    assert [i.seq for i in dropped] == [2]
    assert box.requeue() == 1
    assert [i.seq for i in box.take(10)] == [1, 3, 4]


def test_everything_in_flight_refuses_the_newcomer() -> None:
    box = MemoryOutbox(2)
    box.put(item(1))
    box.put(item(2))
    box.take(2)
    assert [i.seq for i in box.put(item(3))] == [3]
    assert len(box) == 2


def test_backoff_doubles_with_jitter_and_resets() -> None:
    b = Backoff(0.5, 4.0, random.Random(1))
    delays = [b.next_delay() for _ in range(6)]
    bases = [0.5, 1.0, 2.0, 4.0, 4.0, 4.0]
    assert all(base / 2 <= d <= base for d, base in zip(delays, bases, strict=True))
    assert len(set(delays)) == len(delays)  # jittered
    b.reset()
    assert b.next_delay() <= 0.5
