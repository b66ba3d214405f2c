"""Registry entries in the control store (migration 0005) on a real PostgreSQL: revisions, upserts,
tombstones, consistent snapshots, and the write lock that serialises concurrent changes."""

from __future__ import annotations

import threading

import psycopg
import pytest

from ingest.store import registry_store

SITE = {"country": "DE", "home_region": "eu-central", "name": "Berlin plant"}


def test_a_fresh_store_is_at_revision_zero_with_no_entries(control: str) -> None:
    with psycopg.connect(control) as conn:
        assert registry_store.current_revision(conn) == 0
        snapshot = registry_store.load_snapshot(conn)
    assert snapshot.revision == 0 and snapshot.entries == ()


def test_every_write_bumps_the_revision_and_upserts_the_entry(control: str) -> None:
    with psycopg.connect(control) as conn:
        with conn.transaction():
            assert registry_store.lock_revision(conn) == 0
            r1 = registry_store.write_entry(conn, kind="site", entry_id="de-berlin", spec=SITE, actor="olga")
        with conn.transaction():
            registry_store.lock_revision(conn)
            r2 = registry_store.write_entry(
                conn, kind="site", entry_id="de-berlin", spec={**SITE, "name": "Berlin"}, actor="piet"
            )
        with conn.transaction():
            registry_store.lock_revision(conn)
            r3 = registry_store.write_entry(conn, kind="device", entry_id="de-berlin-cnc-01", spec=None, actor="olga")
        snapshot = registry_store.load_snapshot(conn)
    assert (r1, r2, r3) == (1, 2, 3)
    assert snapshot.revision == 3
    by_id = {(e.kind, e.entry_id): e for e in snapshot.entries}
    assert set(by_id) == {("site", "de-berlin"), ("device", "de-berlin-cnc-01")}
    site = by_id[("site", "de-berlin")]
    assert site.spec == {**SITE, "name": "Berlin"} and site.revision == 2 and site.updated_by == "piet"
    assert not site.decommissioned
    tombstone = by_id[("device", "de-berlin-cnc-01")]
    assert tombstone.spec is None and tombstone.decommissioned and tombstone.revision == 3


def test_a_rolled_back_change_leaves_revision_and_entries_as_they_were(control: str) -> None:
    with psycopg.connect(control) as conn:
        with pytest.raises(RuntimeError, match="boom"), conn.transaction():
            registry_store.lock_revision(conn)
            registry_store.write_entry(conn, kind="site", entry_id="de-berlin", spec=SITE, actor="olga")
            raise RuntimeError("boom")
        assert registry_store.load_snapshot(conn) == registry_store.RegistrySnapshot(0, ())


def test_the_lock_needs_a_transaction_and_kinds_are_checked(control: str) -> None:
    with psycopg.connect(control, autocommit=True) as conn, pytest.raises(RuntimeError, match="open transaction"):
        registry_store.lock_revision(conn)
    with psycopg.connect(control) as conn, conn.transaction():
        registry_store.lock_revision(conn)
        with pytest.raises(ValueError, match="kind: 'profile'"):  # arg-type: a kind it must refuse
            registry_store.write_entry(conn, kind="profile", entry_id="x", spec={}, actor="olga")  # type: ignore[arg-type]


def test_concurrent_changes_are_serialised_and_commit_in_revision_order(control: str) -> None:
    """A second writer waits for the first one's commit, so a reader that sees revision N has seen every
    change up to N (what the replicas' refreshers rely on)."""
    first = psycopg.connect(control)
    second = psycopg.connect(control)
    result: dict[str, int] = {}
    try:
        first.execute("BEGIN")
        registry_store.lock_revision(first)

        def other_writer() -> None:
            with second.transaction():
                result["locked_at"] = registry_store.lock_revision(second)
                result["revision"] = registry_store.write_entry(second, kind="site", entry_id="b", spec=SITE, actor="b")

        thread = threading.Thread(target=other_writer)
        thread.start()
        thread.join(0.5)
        assert thread.is_alive(), "the second writer must wait for the first one's lock"
        assert registry_store.write_entry(first, kind="site", entry_id="a", spec=SITE, actor="a") == 1
        first.commit()
        thread.join(10)
        assert not thread.is_alive()
        assert result == {"locked_at": 1, "revision": 2}
    finally:
        first.close()
        second.close()
    with psycopg.connect(control) as conn:
        snapshot = registry_store.load_snapshot(conn)
    assert snapshot.revision == 2
    assert [(e.entry_id, e.revision) for e in snapshot.entries] == [("a", 1), ("b", 2)]
