"""Writing several messages' records at once, and finding the one a store refuses (docs/message-isolation.md).

The writers commit a whole flush in one transaction. When the store refuses the *data* (``StoreDataError``:
a value out of range, text it cannot hold), the flush is written again one message per transaction, so that
the message at fault is found and quarantined and every other one is stored. The writes are idempotent, so
nothing is written twice.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import TypeVar

from ingest.errors import StoreDataError, StoreUnavailableError

G = TypeVar("G")


@dataclass
class GroupsWritten:
    """What :func:`write_isolated` did: what the writes returned (summed), and the groups the store refused
    (index -> the store's error)."""

    new: int = 0
    refused: dict[int, StoreDataError] = field(default_factory=dict)


def write_isolated(store: str, write: Callable[[Sequence[G]], int], groups: Sequence[G]) -> GroupsWritten:
    """``write`` every group in one call; on a data error, once per group. An outage propagates.

    When every group is refused on its own and there are several, the cause is the store, not the messages:
    that is reported as an outage (``StoreUnavailableError``), so a broken store never turns the traffic into
    quarantine."""
    if not groups:
        return GroupsWritten()
    try:
        return GroupsWritten(write(groups))
    except StoreDataError as exc:
        first = exc
    if len(groups) == 1:
        return GroupsWritten(0, {0: first})
    result = GroupsWritten()
    for i, group in enumerate(groups):
        try:
            result.new += write([group])
        except StoreDataError as exc:
            result.refused[i] = exc
    if len(result.refused) == len(groups):
        raise StoreUnavailableError(
            store,
            f"each of {len(groups)} messages was refused on its own ({first.reason}): a store problem, not the data",
        )
    return result
