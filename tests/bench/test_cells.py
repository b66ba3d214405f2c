"""The two-cell files of the benchmark's C1/C2 phases (bench/ingest/cells.py): derived from the demo's topology and
registry, accepted by the ingest's own start checks, and giving the CN site's messages exactly the rows the one-cell
router gives (the premise of comparing the two runs)."""

from __future__ import annotations

from pathlib import Path
from typing import cast

import pytest
import yaml

from bench.ingest.cells import HOME_REGION, REMOTE_REGION, SITE, derive_two_cells, link_stage
from bench.ingest.load import LoadMeter
from bench.ingest.publish import Login, Publisher
from bench.ingest.stack import BenchError
from bench.ingest.workload import REGISTRY_FILE, Workload, make_router
from devstack.cells import DEFAULT_TOPOLOGY
from ingest.cells.receive import CellContext
from ingest.cells.topology import load_checked
from ingest.registry import load_registry
from policy import load_engine
from policy.processing import DocumentEngine


def _engine() -> DocumentEngine:
    """The ingest's engine, as load_engine gives it."""
    # cast: load_engine is typed PolicyEngine, which does not declare document(); every engine it returns has it
    return cast(DocumentEngine, load_engine("embedded"))


def test_the_two_cells_are_the_demo_topology_without_the_ap_cell(tmp_path: Path) -> None:
    files = derive_two_cells(tmp_path)
    demo = yaml.safe_load(DEFAULT_TOPOLOGY.read_text())["cells"]
    derived = yaml.safe_load(files.topology.read_text())["cells"]
    assert derived == {"cn": demo["cn"], "global": demo["global"]}
    registry = load_registry(files.registry)
    assert set(registry.regions) == {"cn-north", "eu-central", "us-east"}
    assert not {"sg-jurong", "th-rayong", "vn-hanoi"} & set(registry.sites)
    assert not [d for d, dev in registry.devices.items() if dev.site in ("sg-jurong", "th-rayong", "vn-hanoi")]
    assert files.left_out == {
        "cells": ["ap"],
        "regions": ["ap-southeast"],
        "sites": ["sg-jurong", "th-rayong", "vn-hanoi"],
        "devices": [
            "sg-jurong-cnc-01",
            "sg-jurong-comp-01",
            "th-rayong-cnc-01",
            "th-rayong-press-01",
            "vn-hanoi-comp-01",
            "vn-hanoi-press-01",
        ],
    }
    # what the ingest checks at start, the policy's raw-processing rule included
    topology = load_checked(files.topology, registry, _engine())
    assert topology.links(registry) == {("cn", "global")}


def test_the_cn_site_gets_the_same_rows_as_with_the_demo_registry(tmp_path: Path) -> None:
    files = derive_two_cells(tmp_path)
    workload = Workload(readings_per_device=200)
    messages = workload.messages(4, 100, devices=workload.of_site(SITE))
    one_cell = make_router(load_registry(REGISTRY_FILE))
    registry = load_registry(files.registry)
    cn_cell = make_router(registry, CellContext("cn", load_checked(files.topology, registry, _engine())))
    for m in messages:
        want, got = one_cell.route(m.topic, m.payload), cn_cell.route(m.topic, m.payload)
        assert not want.rejections and set(want.rows) == {HOME_REGION, REMOTE_REGION}
        assert got.rows == want.rows
        assert {r[7] for r in got.rows[REMOTE_REGION]} == {"machine"}  # only machine data for the remote region


def test_the_link_stage_measures_parts_the_receiving_cell_accepts(tmp_path: Path) -> None:
    files = derive_two_cells(tmp_path)
    workload = Workload(readings_per_device=200)
    stage = link_stage(files, workload.messages(4, 100, devices=workload.of_site(SITE)), LoadMeter())
    assert stage.messages == 4 and stage.rows_per_part == 600  # 100 readings x 6 machine fields
    assert stage.route_us > 0 and stage.part_us > 0 and stage.receive_us > 0
    assert stage.bytes_per_part > 0 and stage.bytes_per_message > 0


def test_a_cell_missing_from_the_topology_is_named(tmp_path: Path) -> None:
    with pytest.raises(BenchError, match=r"cells\.yaml: no cell\(s\) \['mars'\]"):
        derive_two_cells(tmp_path, cells=("cn", "mars"))


def test_a_login_is_one_paho_connection(tmp_path: Path) -> None:
    login = Login("cn-shenzhen-gw-01", tmp_path / "password")
    for kind, processes in (("c", 1), ("paho", 2)):
        with pytest.raises(ValueError, match="a login is one connection"):
            Publisher(kind, 1, [("t", b"x")], processes=processes, login=login, workdir=tmp_path)
