"""A cell's broker (docs/cells.md) with the dynamic-security file generated for it (broker/cells.py), loaded by
Debian's Mosquitto: only the gateways of its own sites log in, a peer cell's bridge account publishes only
under its own name to this cell and reads only its own receipts, and the ingest account reads the parts
addressed to this cell through its shared group."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from broker.cells import generate_cells, plan_cell
from broker.credentials import DYNSEC_FILE, read_secret
from broker.identities import load_identities
from devstack.mosquitto import BrokerAuth, MosquittoServer
from ingest.cells.topology import load_topology
from tests.broker.support import REPO, connect, demo_registry

pytestmark = pytest.mark.integration

NOT_AUTHORIZED = 0x87
NO_MATCHING_SUBSCRIBERS = 0x10
TOPOLOGY = REPO / "deploy" / "local" / "cells.yaml"
IDENTITIES = REPO / "deploy" / "local" / "broker-identities.yaml"


@pytest.fixture(scope="module")
def global_broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[MosquittoServer, Path]]:
    out = tmp_path_factory.mktemp("cells-credentials")
    topology = load_topology(TOPOLOGY).model_copy()
    # no TLS here: the compose topology's brokers use TLS, a plain copy of it is enough for the ACLs
    raw = topology.model_dump()
    for cell in raw["cells"].values():
        cell["broker"]["tls"] = False
    plain = out / "cells.yaml"
    import yaml

    plain.write_text(yaml.safe_dump(raw))
    generate_cells(demo_registry(), load_identities(IDENTITIES), load_topology(plain), out)
    server = MosquittoServer(auth=BrokerAuth(out / "global" / DYNSEC_FILE))
    server.start()
    yield server, out
    server.cleanup()


def _secret(out: Path, cell: str, identity: str) -> str:
    return read_secret(out / cell / "identities" / identity / "password")


def test_the_global_cells_identities() -> None:
    identities = {
        i.name: i for i in plan_cell(demo_registry(), load_identities(IDENTITIES), load_topology(TOPOLOGY), "global")
    }
    assert set(identities) == {
        "de-munich-gw-01",
        "fr-lyon-gw-01",
        "us-detroit-gw-01",
        "ingest-1",
        "ingest-2",
        "cell-cn",
        "cell-ap",
    }  # no gateway of a site another cell serves
    assert identities["cell-cn"].writes == ("xfer/v1/global/cn/#",)
    assert identities["cell-cn"].subscribes == ("xack/v1/cn/global/#",)


def test_a_peer_bridge_publishes_only_under_its_own_name(global_broker: tuple[MosquittoServer, Path]) -> None:
    server, out = global_broker
    reader = connect(server.port, "ingest-1", _secret(out, "global", "ingest-1"), client_id="ingest-1")
    assert reader.subscribe("$share/ingest/xfer/v1/global/+/+") == [1]
    ap = connect(server.port, "cell-ap", _secret(out, "global", "cell-ap"), client_id="cell-ap")
    assert ap.connack is not None and not ap.connack.is_failure
    assert ap.publish("xfer/v1/global/ap/vn-hanoi-press-01", b"{}").value == 0  # delivered to the ingest
    assert ap.publish("xfer/v1/global/cn/cn-shenzhen-cnc-01", b"{}").value == NOT_AUTHORIZED  # posing as cn
    assert ap.publish("tele/v1/de-munich/de-munich-cnc-01", b"{}").value == NOT_AUTHORIZED
    assert ap.subscribe("xack/v1/ap/global/#", "xack/v1/cn/global/#", "xfer/v1/#") == [
        1,
        NOT_AUTHORIZED,
        NOT_AUTHORIZED,
    ]
    assert [t for t, _ in reader.wait_messages(1)] == ["xfer/v1/global/ap/vn-hanoi-press-01"]
    for conn in (ap, reader):
        conn.close()


def test_gateways_of_other_cells_do_not_exist_here(global_broker: tuple[MosquittoServer, Path]) -> None:
    server, out = global_broker
    wrong = connect(
        server.port, "cn-shenzhen-gw-01", _secret(out, "cn", "cn-shenzhen-gw-01"), client_id="cn-shenzhen-gw-01"
    )
    assert wrong.connack is not None and wrong.connack.is_failure
    gateway = connect(
        server.port, "de-munich-gw-01", _secret(out, "global", "de-munich-gw-01"), client_id="de-munich-gw-01"
    )
    assert gateway.publish("xfer/v1/global/cn/x", b"{}").value == NOT_AUTHORIZED
    assert gateway.publish("tele/v1/de-munich/de-munich-cnc-01", b"{}").value == NO_MATCHING_SUBSCRIBERS
    gateway.close()
