"""Broker credentials and bridges of residency cells (docs/cells.md).

Each cell's broker gets its own dynamic-security file (:func:`plan_cell`):

- the gateways (and directly connected devices) of the sites **this cell serves**, and no others: a gateway
  pointed at the wrong cell's broker is refused at CONNECT;
- the cell's ingest accounts, which also read the parts addressed to the cell
  (``$share/<group>/xfer/v1/<cell>/+/+``), its receipts (``xack/v1/<cell>/+/receipts``) and its bridges'
  states, and write the parts it sends (``xfer/v1/+/<cell>/+``) and the receipts it returns;
- one account ``cell-<peer>`` per peer cell that sends parts here, for that peer's bridge: it may publish
  only ``xfer/v1/<cell>/<peer>/#`` (under its own name, to this cell) and read only the receipts for it. No
  other client may publish in the transfer namespace.

Each cell's broker also gets a bridge per peer it sends to (:func:`bridge_conf`): a persistent MQTT v5
session (``cleansession false``), QoS 1 both ways, the peer account's secret, TLS when the peer's broker
listens with TLS, and local notifications of the bridge's state for the link sender.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import replace
from pathlib import Path

from broker.credentials import IDENTITIES_DIR, Report, generate, read_secret
from broker.credentials import _write_atomic as write_atomic
from broker.errors import BrokerConfigError
from broker.identities import IdentitiesSpec, Identity, plan
from ingest.cells.envelope import XACK_PREFIX, XFER_PREFIX
from ingest.cells.link import bridge_name, bridge_state_topic
from ingest.cells.topology import Topology
from ingest.registry import Registry

__all__ = ["BRIDGES_FILE", "bridge_conf", "generate_cells", "peer_account", "plan_cell"]


def peer_account(peer: str) -> str:
    """The user name a peer cell's bridge logs in with (also its client id)."""
    return f"cell-{peer}"


def plan_cell(
    registry: Registry, spec: IdentitiesSpec, topology: Topology, cell: str, *, source: str = "identities"
) -> list[Identity]:
    """The identities of one cell's broker (see the module docstring)."""
    sites = set(topology.cells[cell].sites)
    _, receives_from = topology.peers(cell, registry)
    sends_to, _ = topology.peers(cell, registry)
    own = IdentitiesSpec.model_validate(
        {
            "ingest": spec.ingest,
            "share_group": spec.share_group,
            "gateways": {gw: g.model_dump() for gw, g in spec.gateways.items() if g.site in sites},
        }
    )
    served = {d: dev for d, dev in registry.devices.items() if dev.site in sites}
    scoped = registry.model_copy(update={"devices": served})
    identities = []
    for ident in plan(scoped, own, source=source):
        if ident.kind != "ingest":
            identities.append(ident)
            continue
        identities.append(
            replace(
                ident,
                reads=(*ident.reads, f"{XFER_PREFIX}/{cell}/#", f"{XACK_PREFIX}/{cell}/#", "bridge/v1/#"),
                subscribes=(
                    *ident.subscribes,
                    f"$share/{spec.share_group}/{XFER_PREFIX}/{cell}/+/+",
                    f"{XACK_PREFIX}/{cell}/+/receipts",
                    *(bridge_state_topic(cell, p) for p in sorted(sends_to)),
                ),
                writes=(*ident.writes, f"{XFER_PREFIX}/+/{cell}/+", f"{XACK_PREFIX}/+/{cell}/receipts"),
            )
        )
    for peer in sorted(receives_from):
        identities.append(
            Identity(
                name=peer_account(peer),
                kind="cell",
                site=None,
                writes=(f"{XFER_PREFIX}/{cell}/{peer}/#",),
                reads=(f"{XACK_PREFIX}/{peer}/{cell}/#",),
                subscribes=(f"{XACK_PREFIX}/{peer}/{cell}/#",),
            )
        )
    return identities


def bridge_conf(
    topology: Topology,
    registry: Registry,
    cell: str,
    secrets: Mapping[str, str],
    *,
    addresses: Mapping[str, tuple[str, int]] | None = None,
    ca_file: Path | None = None,
) -> str:
    """Mosquitto configuration lines for the bridges of ``cell``'s broker: one per peer it sends parts to.

    ``secrets[peer]``: the secret of account ``cell-<cell>`` on that peer's broker. ``addresses`` overrides a
    peer's broker address (a relay in tests, a load balancer); ``ca_file`` verifies a TLS peer."""
    sends_to, _ = topology.peers(cell, registry)
    lines = [f"# Bridges of cell {cell} (generated from the topology: docs/cells.md). Do not edit."]
    for peer in sorted(sends_to):
        broker = topology.cells[peer].broker
        host, port = (addresses or {}).get(peer, (broker.host, broker.port))
        name = bridge_name(cell, peer)
        lines += [
            "",
            f"connection {name}",
            f"address {host}:{port}",
            "bridge_protocol_version mqttv50",
            "cleansession false",
            f"local_clientid bridge-{name}",
            f"remote_clientid {peer_account(cell)}",
            f"remote_username {peer_account(cell)}",
            f"remote_password {secrets[peer]}",
            "try_private false",
            f"topic {XFER_PREFIX}/{peer}/{cell}/# out 1",
            f"topic {XACK_PREFIX}/{cell}/{peer}/# in 1",
            f"notification_topic {bridge_state_topic(cell, peer)}",
            "notifications_local_only true",
            "restart_timeout 1 10",
            "keepalive_interval 10",
        ]
        if broker.tls:
            if ca_file is None:
                raise ValueError(f"cell {peer}'s broker uses TLS: a CA file is needed to verify it")
            lines.append(f"bridge_cafile {ca_file}")
    return "\n".join(lines) + "\n"


BRIDGES_FILE = "broker/bridges.conf"


def generate_cells(
    registry: Registry,
    spec: IdentitiesSpec,
    topology: Topology,
    out_dir: Path,
    *,
    source: str = "identities",
    ca_file: Path | None = None,
    addresses: Mapping[str, Mapping[str, tuple[str, int]]] | None = None,
    bridge_ca_file: Path | None = None,
    rotate: Mapping[str, Iterable[str]] | None = None,
    **options: object,
) -> dict[str, Report]:
    """Credentials of every cell's broker under ``out_dir/<cell>/`` (the layout of
    :func:`broker.credentials.generate`), plus ``out_dir/<cell>/broker/bridges.conf``: its bridges, with the
    secrets of its accounts on its peers' brokers. ``addresses[cell][peer]`` overrides a peer's address.

    ``bridge_ca_file``: where the broker reads the CA that verifies its TLS peers (e.g.
    ``/mosquitto/security/ca.crt`` in its container, where compose mounts ``<cell>/broker/``); by default the
    generated ``out_dir/<cell>/broker/ca.crt`` (with ``ca_file``). ``rotate[cell]``: identities of that cell
    to issue new secrets for. ``options`` as for :func:`broker.credentials.generate`; its ``owners["broker"]``
    also receives ``bridges.conf``."""
    unknown = sorted(set(rotate or {}) - set(topology.cells))
    if unknown:
        raise BrokerConfigError(
            f"--rotate: {', '.join(map(repr, unknown))} is not a cell of the topology "
            f"(cells: {', '.join(sorted(topology.cells))})"
        )
    reports = {
        cell: generate(
            plan_cell(registry, spec, topology, cell, source=source),
            out_dir / cell,
            header=f"Cell {cell} of the topology; identities from {source}.",
            ca_file=ca_file,
            rotate=tuple((rotate or {}).get(cell, ())),
            **options,  # type: ignore[arg-type]  # options: generate()'s keywords
        )
        for cell in sorted(topology.cells)
    }
    owners = options.get("owners") or {}
    broker_owner = owners.get("broker") if isinstance(owners, Mapping) else None
    for cell in sorted(topology.cells):
        sends_to, _ = topology.peers(cell, registry)
        secrets = {
            peer: read_secret(out_dir / peer / IDENTITIES_DIR / peer_account(cell) / "password") for peer in sends_to
        }
        peer_ca = bridge_ca_file or (out_dir / cell / "broker" / "ca.crt" if ca_file is not None else None)
        text = bridge_conf(topology, registry, cell, secrets, addresses=(addresses or {}).get(cell), ca_file=peer_ca)
        path = out_dir / cell / BRIDGES_FILE
        path.parent.mkdir(parents=True, exist_ok=True)
        # 0600 and the broker's account: it holds the secrets of this cell's accounts on its peers' brokers
        write_atomic(path, text, 0o600, broker_owner)
    return reports
