"""Who may connect to the broker and which topics each identity may use.

MQTT identity = the connection, not the device: one edge agent (a gateway) publishes the batches of
several devices over one connection, so its user name is its ``gateway_id`` (also its client id and
the last segment of its status topic). The registry knows sites and devices but not gateways, so a
small identities file (``deploy/local/broker-identities.yaml``) names the gateways and the ingest
accounts:

    ingest: [ingest-1, ingest-2]        # one account per replica (the user name is the client id)
    share_group: ingest                 # the replicas' INGEST_SHARE_GROUP (default: ingest)
    gateways:
      de-munich-gw-01: {site: de-munich}                 # every registry device of the site ...
      fr-lyon-gw-02: {site: fr-lyon, devices: [fr-lyon-comp-01]}   # ... or exactly these

A gateway without ``devices`` serves every device the registry places at its site that no gateway
lists explicitly (at most one such gateway per site). A registry device that no gateway serves gets
its own identity (user name = device id): a device with its own MQTT stack. The registry decides:
a device registered later (YAML or API) is added at the next generation, a decommissioned one
disappears from the ACL.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from broker.errors import BrokerConfigError
from ingest.registry import Registry
from ingest.yaml_model import load_model
from wire import DataTopic, StatusTopic
from wire.sparkplug import NAMESPACE as SPB
from wire.sparkplug import subscriptions as spb_subscriptions
from wire.topics import DATA_PREFIX, STATUS_PREFIX, data_subscription, status_subscription, valid_id

__all__ = ["GatewaySpec", "IdentitiesSpec", "Identity", "Kind", "load_identities", "plan"]

Kind = Literal["gateway", "device", "ingest", "cell", "sparkplug"]


def _check_ids(values: Iterable[str], what: str) -> None:
    for value in values:
        if not valid_id(value):
            raise ValueError(f"{what} {value!r} must be 1-64 letters, digits, '_', '.', '-' (no '/', '+', '#')")


class GatewaySpec(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    site: str = Field(description="Site of the gateway (a registry site).")
    devices: list[str] | None = Field(
        default=None, description="Devices it publishes for; omitted: every registry device of the site."
    )


class IdentitiesSpec(BaseModel):
    """The identities file: gateways and ingest accounts (devices come from the registry)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    ingest: list[str] = Field(default_factory=lambda: ["ingest-1"], min_length=1)
    share_group: str = Field(
        default="ingest",
        description="The ingest replicas' shared subscription group (INGEST_SHARE_GROUP): the only group "
        "they may subscribe to.",
    )
    gateways: dict[str, GatewaySpec] = Field(default_factory=dict)

    @field_validator("ingest")
    @classmethod
    def _ingest_ids(cls, value: list[str]) -> list[str]:
        _check_ids(value, "ingest account")
        if len(set(value)) != len(value):
            raise ValueError("ingest accounts must be distinct")
        return value

    @field_validator("share_group")
    @classmethod
    def _share_group(cls, value: str) -> str:
        if not valid_id(value):
            raise ValueError(f"{value!r} must be 1-64 letters, digits, '_', '.', '-' (no '/', '+', '#')")
        return value

    @field_validator("gateways")
    @classmethod
    def _gateway_ids(cls, value: dict[str, GatewaySpec]) -> dict[str, GatewaySpec]:
        _check_ids(value, "gateway id")
        return value

    @model_validator(mode="after")
    def _distinct(self) -> IdentitiesSpec:
        both = set(self.ingest) & set(self.gateways)
        if both:
            raise ValueError(f"gateways: {sorted(both)[0]!r} is also an ingest account")
        return self


def load_identities(path: Path) -> IdentitiesSpec:
    """Load and validate the identities file; errors name the file, the line when known, and the field."""
    return load_model(
        path,
        IdentitiesSpec,
        what="identities file",
        error=BrokerConfigError,
        not_a_mapping="must be a mapping with 'ingest' and 'gateways'",
    )


@dataclass(frozen=True, slots=True)
class Identity:
    """One broker user: its user name, what it is, the topics it may write and read, and the exact
    subscription filters it may SUBSCRIBE with (``reads`` is what the broker may deliver to it)."""

    name: str
    kind: Kind
    site: str | None
    writes: tuple[str, ...]
    reads: tuple[str, ...]
    devices: tuple[str, ...] = ()
    subscribes: tuple[str, ...] = ()


def plan(registry: Registry, spec: IdentitiesSpec, *, source: str = "identities") -> list[Identity]:
    """Every identity with its topics, sorted by kind then name. ``source`` names the file in errors."""
    owner: dict[str, str] = {}  # device -> gateway that lists it explicitly
    for gw_id, gw in spec.gateways.items():
        if gw.site not in registry.sites:
            raise BrokerConfigError(f"{source}: gateways.{gw_id}.site: {gw.site!r} is not a registry site")
        for device_id in gw.devices or ():
            device = registry.devices.get(device_id)
            if device is None:
                raise BrokerConfigError(
                    f"{source}: gateways.{gw_id}.devices: {device_id!r} is not a registry device "
                    "(decommissioned? remove it here)"
                )
            if device.site != gw.site:
                raise BrokerConfigError(
                    f"{source}: gateways.{gw_id}.devices: {device_id!r} belongs to site {device.site!r}, "
                    f"not {gw.site!r}"
                )
            if device.sparkplug is not None:
                raise BrokerConfigError(
                    f"{source}: gateways.{gw_id}.devices: {device_id!r} is a Sparkplug B device: its edge node "
                    "connects with an identity of its own"
                )
            if device_id in owner:
                raise BrokerConfigError(
                    f"{source}: gateways.{gw_id}.devices: {device_id!r} is already served by {owner[device_id]!r}"
                )
            owner[device_id] = gw_id
    site_wide: dict[str, str] = {}
    for gw_id, gw in spec.gateways.items():
        if gw.devices is None:
            if gw.site in site_wide:
                raise BrokerConfigError(
                    f"{source}: gateways.{gw_id}: site {gw.site!r} already has a gateway for all its devices "
                    f"({site_wide[gw.site]!r}); list the devices of one of them"
                )
            site_wide[gw.site] = gw_id
    taken = set(spec.gateways) | set(spec.ingest)
    for device_id in registry.devices:
        if device_id in taken:
            raise BrokerConfigError(
                f"{source}: {device_id!r} is both a registry device and a gateway or ingest account: "
                "user names must be unique"
            )

    served: dict[str, list[str]] = {gw_id: [] for gw_id in spec.gateways}
    direct: list[Identity] = []
    nodes: dict[tuple[str, str], list[str]] = {}
    for device_id, device in sorted(registry.devices.items()):
        if device.sparkplug is not None:
            nodes.setdefault((device.sparkplug.group, device.sparkplug.edge_node), []).append(device_id)
            continue
        serving = owner.get(device_id) or site_wide.get(device.site)
        if serving is not None:
            served[serving].append(device_id)
            continue
        direct.append(
            Identity(
                name=device_id,
                kind="device",
                site=device.site,
                writes=(str(DataTopic(device.site, device_id)), str(StatusTopic(device.site, device_id))),
                reads=(),
                devices=(device_id,),
            )
        )
    gateways = [
        Identity(
            name=gw_id,
            kind="gateway",
            site=gw.site,
            writes=(
                *(str(DataTopic(gw.site, d)) for d in served[gw_id]),
                str(StatusTopic(gw.site, gw_id)),
            ),
            reads=(),
            devices=tuple(served[gw_id]),
        )
        for gw_id, gw in sorted(spec.gateways.items())
    ]
    readers = [
        Identity(
            name=name,
            kind="ingest",
            site=None,
            writes=(f"{SPB}/+/NCMD/+",),
            reads=(f"{DATA_PREFIX}/#", f"{STATUS_PREFIX}/#", f"{SPB}/#"),
            subscribes=(
                data_subscription(spec.share_group),
                status_subscription(),
                *spb_subscriptions(spec.share_group),
            ),
        )
        for name in sorted(spec.ingest)
    ]
    return [*gateways, *direct, *_sparkplug_nodes(registry, nodes, taken, source), *readers]


def _sparkplug_nodes(
    registry: Registry, nodes: dict[tuple[str, str], list[str]], taken: set[str], source: str
) -> list[Identity]:
    """One identity per Sparkplug B edge node (docs/sparkplug.md), user name ``<group>.<edge node>`` (the broker
    makes it the client id): it publishes its births, data and deaths (the Will included) and receives its
    commands (NCMD, DCMD: the ingest's Rebirth requests) and the hosts' STATE."""
    out = []
    for (group, edge_node), devices in sorted(nodes.items()):
        name = f"{group}.{edge_node}"
        if not valid_id(name) or name in taken or name in registry.devices:
            raise BrokerConfigError(
                f"{source}: Sparkplug edge node {group}/{edge_node}: its user name {name!r} is "
                "not a valid id or is taken by a gateway, ingest account or device"
            )
        n = f"{SPB}/{group}"
        out.append(
            Identity(
                name=name,
                kind="sparkplug",
                site=registry.devices[devices[0]].site,
                writes=(
                    f"{n}/NBIRTH/{edge_node}",
                    f"{n}/NDATA/{edge_node}",
                    f"{n}/NDEATH/{edge_node}",
                    f"{n}/DBIRTH/{edge_node}/+",
                    f"{n}/DDATA/{edge_node}/+",
                    f"{n}/DDEATH/{edge_node}/+",
                ),
                reads=(f"{n}/NCMD/{edge_node}", f"{n}/DCMD/{edge_node}/+", f"{SPB}/STATE/+"),
                subscribes=(
                    f"{n}/NCMD/{edge_node}",
                    f"{n}/NCMD/{edge_node}/#",
                    f"{n}/DCMD/{edge_node}/+",
                    f"{n}/DCMD/{edge_node}/#",
                    f"{SPB}/STATE/+",
                    f"{SPB}/STATE/#",
                ),
                devices=tuple(devices),
            )
        )
    return out
