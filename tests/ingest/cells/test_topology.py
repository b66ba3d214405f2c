"""The cells' topology: validated at load (errors name file, line, field), against the registry, and against the
policy's raw-processing document (docs/cells.md)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml

from ingest.cells.topology import TopologyError, check_against_registry, load_checked, load_topology, raw_categories
from ingest.registry import Registry
from policy import EmbeddedPolicyEngine

REPO = Path(__file__).resolve().parents[3]
CELLS = REPO / "deploy" / "local" / "cells.yaml"


@pytest.fixture(scope="module")
def engine() -> EmbeddedPolicyEngine:
    return EmbeddedPolicyEngine.from_dir()


def _variant(tmp_path: Path, change: Callable[[Any], object]) -> Path:
    raw = yaml.safe_load(CELLS.read_text())
    change(raw)
    path = tmp_path / "cells.yaml"
    path.write_text(yaml.safe_dump(raw, sort_keys=False))
    return path


def test_the_demo_topology_is_lawful_and_its_links_follow_the_analytics_region(
    registry: Registry, engine: EmbeddedPolicyEngine
) -> None:
    topology = load_checked(CELLS, registry, engine)
    assert topology.cell_of_site("cn-shenzhen") == "cn" and topology.cell_of_region("us-east") == "global"
    assert topology.links(registry) == {("cn", "global"), ("ap", "global")}
    assert topology.peers("global", registry) == (set(), {"cn", "ap"})


def test_a_region_in_two_cells_is_refused_naming_both(tmp_path: Path) -> None:
    path = _variant(tmp_path, lambda raw: raw["cells"]["ap"]["regions"].append("cn-north"))
    with pytest.raises(TopologyError, match=r"cells\.ap\.regions: 'cn-north' is already in cell 'cn'"):
        load_topology(path)


def test_load_errors_name_the_file_line_and_field(tmp_path: Path) -> None:
    path = _variant(tmp_path, lambda raw: raw["cells"]["cn"]["broker"].update(port=0))
    with pytest.raises(TopologyError) as info:
        load_topology(path)
    assert str(path) in str(info.value) and "cells.cn.broker.port" in str(info.value)
    assert f"{path}:" in str(info.value)  # with a line number


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda raw: raw["cells"]["cn"]["regions"].append("mars-1"), r"cells\.cn\.regions: \['mars-1'\]"),
        (lambda raw: raw["cells"]["ap"]["sites"].remove("vn-hanoi"), r"site\(s\) \['vn-hanoi'\].*served by no cell"),
        (lambda raw: raw["cells"]["global"]["regions"].remove("us-east"), r"region\(s\) \['us-east'\].*hosted by no"),
    ],
)
def test_the_topology_must_fit_the_registry(
    tmp_path: Path, registry: Registry, change: Callable[[Any], object], message: str
) -> None:
    path = _variant(tmp_path, change)
    with pytest.raises(TopologyError, match=message):
        check_against_registry(load_topology(path), registry, path)


def test_a_cn_site_served_from_outside_china_is_refused_naming_site_cell_and_rule(
    tmp_path: Path, registry: Registry, engine: EmbeddedPolicyEngine
) -> None:
    def move(raw: dict[str, Any]) -> None:
        raw["cells"]["cn"]["sites"].remove("cn-shenzhen")
        raw["cells"]["global"]["sites"].append("cn-shenzhen")

    path = _variant(tmp_path, move)
    with pytest.raises(TopologyError) as info:
        load_checked(path, registry, engine)
    text = str(info.value)
    assert "cells.global.sites: site cn-shenzhen (CN) may not be served by cell global (DE)" in text
    assert "personal: CN PIPL Art 40" in text and "primary_in_country" in text
    assert "[data.residency.raw_processing, sha256:" in text


def test_vietnam_needs_its_transfer_impact_assessment_for_the_sg_cell(
    registry: Registry, engine: EmbeddedPolicyEngine
) -> None:
    """The raw-processing check reads the safeguards in force for the cell's country from the registry."""
    sites = {**registry.sites, "vn-hanoi": registry.sites["vn-hanoi"].model_copy(update={"safeguards": {}})}
    without = registry.model_copy(update={"sites": sites})
    with pytest.raises(TopologyError, match=r"site vn-hanoi \(VN\) may not be served by cell ap \(SG\)"):
        load_checked(CELLS, without, engine)


def test_raw_categories_add_what_an_undeclared_field_could_hold(registry: Registry) -> None:
    assert raw_categories(registry, "de-munich") == ["machine", "personal", "sensitive_personal"]
