"""The cells' topology: which cells exist, where each runs, which regions it hosts and which sites it serves.

A YAML file (``INGEST_TOPOLOGY_FILE``), validated at load like the registry (errors name the file, line and
field), then against the registry (every region hosted by one cell, every site served by one) and the
policy: a site may be served only by a cell in a country where its raw payload may be processed
(``data.residency.raw_processing``, docs/cells.md).
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, model_validator

from ingest.errors import ConfigError
from ingest.registry import Registry, Site
from ingest.yaml_model import load_model
from policy.processing import DocumentEngine, raw_processing

CellName = Annotated[str, Field(pattern=r"^[a-z][a-z0-9-]{0,31}$", description="A cell's name (lower case).")]
UNCLASSIFIED = ("personal", "sensitive_personal")
"""Categories a raw payload may hold whatever the profiles say: an undeclared field cannot be classified."""


class TopologyError(ConfigError):
    """The topology file is unusable, or does not fit the registry or the policy; names file, field and rule."""


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class BrokerAddress(_Model):
    """Where a cell's broker listens, for its gateways and for the bridges of peer cells."""

    host: str = Field(min_length=1)
    port: int = Field(ge=1, le=65535)
    tls: bool = False


class Cell(_Model):
    """One jurisdiction's processing unit."""

    country: Annotated[str, Field(pattern=r"^[A-Z]{2}$", description="Where its broker and ingest run.")]
    regions: list[str] = Field(min_length=1, description="Region stores it hosts (each region: one cell).")
    sites: list[str] = Field(default_factory=list, description="Sites whose gateways connect to it.")
    broker: BrokerAddress
    api: str | None = Field(default=None, description="Its API's base URL, for queries from other cells.")
    description: str = ""


class Topology(_Model):
    cells: dict[CellName, Cell] = Field(min_length=1)

    @model_validator(mode="after")
    def _each_once(self) -> Topology:
        for what in ("regions", "sites"):
            owner: dict[str, str] = {}
            for name, cell in self.cells.items():
                for item in getattr(cell, what):
                    if item in owner:
                        raise ValueError(
                            f"cells.{name}.{what}: {item!r} is already in cell {owner[item]!r}; "
                            f"each {what[:-1]} belongs to exactly one cell"
                        )
                    owner[item] = name
        return self

    def cell_of_region(self, region: str) -> str:
        return next(name for name, cell in self.cells.items() if region in cell.regions)

    def cell_of_site(self, site: str) -> str | None:
        return next((name for name, cell in self.cells.items() if site in cell.sites), None)

    def links(self, registry: Registry) -> set[tuple[str, str]]:
        """(from cell, to cell) pairs over which parts may travel: a site's cell to the cell of one of its
        candidate regions."""
        pairs = set()
        for site_id, site in registry.sites.items():
            source = self.cell_of_site(site_id)
            if source is None:
                continue
            for region in registry.candidate_regions(site):
                target = self.cell_of_region(region)
                if target != source:
                    pairs.add((source, target))
        return pairs

    def peers(self, cell: str, registry: Registry) -> tuple[set[str], set[str]]:
        """(cells this cell sends parts to, cells it receives parts from)."""
        links = self.links(registry)
        return {b for a, b in links if a == cell}, {a for a, b in links if b == cell}


def load_topology(path: Path) -> Topology:
    """Load and validate a topology file; errors name the file, the line when known, and the field."""
    return load_model(
        path, Topology, what="topology", error=TopologyError, not_a_mapping="topology must be a mapping with 'cells'"
    )


def check_against_registry(topology: Topology, registry: Registry, path: Path) -> None:
    """Every region of the registry hosted by exactly one cell, every site served by exactly one, nothing
    unknown; TopologyError names the file, the field and the entry."""
    hosted = {r for cell in topology.cells.values() for r in cell.regions}
    served = {s for cell in topology.cells.values() for s in cell.sites}
    for name, cell in topology.cells.items():
        unknown = sorted(set(cell.regions) - set(registry.regions))
        if unknown:
            raise TopologyError(
                f"{path}: cells.{name}.regions: {unknown} are not regions of the registry "
                f"(known: {sorted(registry.regions)})"
            )
        unknown = sorted(set(cell.sites) - set(registry.sites))
        if unknown:
            raise TopologyError(f"{path}: cells.{name}.sites: {unknown} are not sites of the registry")
    missing = sorted(set(registry.regions) - hosted)
    if missing:
        raise TopologyError(f"{path}: cells: region(s) {missing} of the registry are hosted by no cell")
    unserved = sorted(set(registry.sites) - served)
    if unserved:
        raise TopologyError(
            f"{path}: cells: site(s) {unserved} of the registry are served by no cell; a "
            "gateway must know which cell's broker to connect to"
        )


def raw_categories(registry: Registry, site_id: str) -> list[str]:
    """What a raw payload of the site may hold: the categories of its devices' profiles, plus what an
    undeclared field could hold (and ``machine`` for a site without devices yet)."""
    found = {
        spec.category
        for device in registry.devices.values()
        if device.site == site_id
        for spec in registry.profiles[device.profile].fields.values()
    }
    return sorted(found | set(UNCLASSIFIED) | ({"machine"} if not found else set()))


def _flow_fields(site: Site, country: str) -> dict[str, Any]:
    return {
        "safeguards": list(site.safeguards.get(country, [])),
        "safeguard_dates": dict(site.safeguard_dates.get(country, {})),
        "entity": site.entity.model_dump(),
        "purpose": site.purpose,
        "volume": site.volume.model_dump(),
    }


def check_raw_processing(
    topology: Topology, registry: Registry, engine: DocumentEngine, path: Path, *, cells: Iterable[str] | None = None
) -> None:
    """Each site may be served by its cell only if the policy lets its raw payload be processed in the cell's
    country; TopologyError names the site, the cell and the rule (the policy's reasons)."""
    for name in sorted(cells if cells is not None else topology.cells):
        cell = topology.cells[name]
        for site_id in cell.sites:
            site = registry.sites[site_id]
            answer = raw_processing(
                engine,
                origin=site.country,
                processing_country=cell.country,
                categories=raw_categories(registry, site_id),
                flow=_flow_fields(site, cell.country),
            )
            if not answer.allow:
                raise TopologyError(
                    f"{path}: cells.{name}.sites: site {site_id} ({site.country}) may not be served by cell "
                    f"{name} ({cell.country}): its raw payload may not be processed there. "
                    + " | ".join(answer.reasons)
                    + f" [data.residency.raw_processing, {answer.policy_revision}]"
                )


def load_checked(path: Path, registry: Registry, engine: DocumentEngine) -> Topology:
    """Load a topology and check it against the registry and the policy (at start and in ``ingest check``)."""
    topology = load_topology(path)
    check_against_registry(topology, registry, path)
    check_raw_processing(topology, registry, engine, path)
    return topology
