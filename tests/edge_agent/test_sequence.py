"""Per-device sequence numbers: monotonic, persisted, and never reused after a restart."""

from __future__ import annotations

import multiprocessing
import sqlite3
from pathlib import Path

import pytest

from edge_agent.errors import StateError
from edge_agent.sequence import DB_NAME, SequenceStore


def test_numbers_start_at_one_and_are_per_device(tmp_path: Path) -> None:
    with SequenceStore(tmp_path / "state") as store:
        assert store.last("a") is None
        assert [store.next("a") for _ in range(3)] == [1, 2, 3]
        assert store.next("b") == 1
        assert store.last("a") == 3


def test_numbers_survive_a_restart(tmp_path: Path) -> None:
    with SequenceStore(tmp_path) as store:
        handed_out = [store.next("a") for _ in range(5)]
    with SequenceStore(tmp_path) as store:  # "restart": a new store on the same directory
        assert store.last("a") == 5
        assert store.next("a") > max(handed_out)


def _hand_out_and_die(state_dir: str, n: int) -> None:
    store = SequenceStore(state_dir)
    for _ in range(n):
        store.next("dev")
    # no close(): the process ends abruptly
    import os

    os._exit(0)


def test_numbers_survive_a_process_that_dies_without_closing(tmp_path: Path) -> None:
    proc = multiprocessing.get_context("fork").Process(target=_hand_out_and_die, args=(str(tmp_path), 7))
    proc.start()
    proc.join(10)
    assert proc.exitcode == 0
    with SequenceStore(tmp_path) as store:
        assert store.next("dev") == 8


def test_database_uses_wal(tmp_path: Path) -> None:
    with SequenceStore(tmp_path) as store:
        store.next("a")
        mode = sqlite3.connect(tmp_path / DB_NAME).execute("PRAGMA journal_mode").fetchone()[0]
    assert mode == "wal"


def test_a_second_agent_on_the_same_state_dir_is_refused(tmp_path: Path) -> None:
    with SequenceStore(tmp_path), pytest.raises(StateError, match="in use by another agent"):
        SequenceStore(tmp_path)
    SequenceStore(tmp_path).close()  # released on close


def test_unusable_state_dir(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("not a directory")
    with pytest.raises(StateError, match="cannot create"):
        SequenceStore(blocker / "state")
