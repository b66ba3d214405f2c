"""A part that arrived from a peer cell, checked against this cell's topology, registry and policy.

The receiving cell trusts nothing blindly (docs/cells.md): the broker lets only peer cells' bridges publish
on ``xfer/v1/<this cell>/<peer>/...``, each only under its own name; here the part must agree with its
topic, be addressed to a region this cell hosts, come from the cell that serves its site, carry only
declared fields with their declared categories, and every category must be allowed by *this* cell's policy
from the origin to the region, with the transforms that policy demands applied. Anything else is refused:
quarantined (``transfer_refused``) with metadata only, nothing stored.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from dataclasses import dataclass

from ingest.cells.envelope import Part, decode_part, parse_xfer_topic
from ingest.cells.topology import Topology
from ingest.records import Row
from ingest.registry import Registry
from policy import Decision, Flow
from wire.errors import DecodeError


class TransferRefused(Exception):
    """A part this cell does not accept; ``part`` when it could be decoded (it is receipted all the same)."""

    def __init__(self, reason: str, part: Part | None = None) -> None:
        super().__init__(reason)
        self.reason = reason
        self.part = part


@dataclass(frozen=True, slots=True)
class CellContext:
    """What a cell's ingest knows of the topology: its own name and the cells."""

    name: str
    topology: Topology

    @property
    def regions(self) -> frozenset[str]:
        return frozenset(self.topology.cells[self.name].regions)


@dataclass(frozen=True, slots=True)
class Accepted:
    """A part this cell accepts: its rows for the local region and this cell's own decision per category."""

    part: Part
    rows: list[Row]
    decisions: dict[str, tuple[Flow, Decision]]


def check_part(
    topic: str,
    payload: bytes,
    *,
    cell: CellContext,
    registry: Registry,
    decide: Callable[[str, str, str, bool], tuple[Flow, Decision]],
) -> Accepted:
    """Accept a part or raise :class:`TransferRefused` naming the reason.

    ``decide(site_id, region, category, pseudonymized)``: this cell's policy decision for that flow."""
    where = parse_xfer_topic(topic)
    if where is None:
        raise TransferRefused(f"not a transfer topic: {topic!r}")
    to_cell, from_cell, device = where
    if to_cell != cell.name:
        raise TransferRefused(f"addressed to cell {to_cell!r}, received by cell {cell.name!r}")
    if from_cell == cell.name or from_cell not in cell.topology.cells:
        raise TransferRefused(f"{from_cell!r} is not a peer cell of {cell.name!r}")
    try:
        part = decode_part(payload)
    except DecodeError as exc:
        raise TransferRefused(f"not a valid part: {exc}") from None
    if (part.from_cell, part.to_cell, part.device_id) != (from_cell, to_cell, device):
        raise TransferRefused(
            f"part says {part.from_cell}->{part.to_cell} device {part.device_id!r}; its topic "
            f"says {from_cell}->{to_cell} device {device!r}",
            part,
        )
    if part.region not in cell.regions:
        raise TransferRefused(f"region {part.region!r} is not hosted by cell {cell.name!r}", part)
    entry = registry.devices.get(part.device_id)
    if entry is None or entry.site != part.site_id:
        raise TransferRefused(
            f"device {part.device_id!r} is not a device of site {part.site_id!r} in this cell's registry", part
        )
    site = registry.sites[part.site_id]
    if site.country != part.origin_country:
        raise TransferRefused(f"part says origin {part.origin_country}; site {part.site_id} is in {site.country}", part)
    serving = cell.topology.cell_of_site(part.site_id)
    if serving != part.from_cell:
        raise TransferRefused(f"site {part.site_id} is served by cell {serving!r}, not by {part.from_cell!r}", part)
    fields = registry.profile_of(part.device_id).fields
    # One pass over the values (hundreds per part: the receiving cell's hot path): each checked against this
    # cell's registry, and made into the region row the sending cell made (same keys, decision id, revision).
    uses: dict[str, set[tuple[str, str | None]]] = {}  # category -> its (field, transform as carried)
    rows: list[Row] = []
    device_id, seq, site_id, origin, revision = (
        part.device_id,
        part.seq,
        part.site_id,
        part.origin_country,
        part.policy_revision,
    )
    for idx, ts, values in part.readings:
        for name, category, num, txt, transform in values:
            spec = fields.get(name)
            if spec is None:
                raise TransferRefused(f"field {name!r} is not declared for {part.device_id!r}", part)
            if spec.category != category:
                raise TransferRefused(f"field {name!r} is {spec.category} here, the part says {category}", part)
            uses.setdefault(category, set()).add((name, transform))
            rows.append(
                Row(
                    device_id,
                    seq,
                    idx,
                    name,
                    ts,
                    site_id,
                    origin,
                    category,
                    num,
                    txt,
                    transform,
                    part.decisions[category],
                    revision,
                )
            )
    decisions: dict[str, tuple[Flow, Decision]] = {}
    for category in sorted(uses):
        carried = sorted(uses[category], key=lambda use: (use[0], use[1] or ""))
        pseudonymized = all(transform == "pseudonymized" for _, transform in carried)
        flow, decision = decide(part.site_id, part.region, category, pseudonymized)
        if not decision.allow:
            raise TransferRefused(
                f"this cell's policy ({decision.policy_revision}) does not allow {category} data "
                f"from {site.country} in {part.region}: {'; '.join(decision.reasons)}",
                part,
            )
        for name, transform in carried:
            wanted = decision.transforms.get(name, decision.transforms.get(category))
            if wanted is None or (wanted == "pseudonymize" and transform == "pseudonymized"):
                continue
            raise TransferRefused(
                f"field {name!r} must be {wanted}d in {part.region} under this cell's policy; "
                f"the part carries it {transform or 'as it was'}",
                part,
            )
        decisions[category] = (flow, decision)
    return Accepted(part, rows, decisions)


def refused_part_id(exc: TransferRefused) -> uuid.UUID | None:
    return exc.part.part_id if exc.part is not None else None
