"""Each plugin's ``sample.yaml`` is valid: it loads into an agent config and its sources initialise."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from edge_agent.config import AgentConfig
from edge_agent.privacy import generate_key_file
from edge_agent.sources import create_source

from .edge_support import REPO

SOURCES = REPO / "edge_agent" / "sources"


def agent_with(tmp_path: Path, sources: list[dict[str, Any]]) -> AgentConfig:
    key = tmp_path / "k1.key"
    generate_key_file(key)
    return AgentConfig.model_validate(
        {
            "gateway_id": "gw-01",
            "site_id": "de-munich",
            "state_dir": str(tmp_path / "state"),
            "privacy": {"key_id": "k1", "key_file": str(key)},
            "sources": sources,
        }
    )


@pytest.mark.parametrize("plugin", ["modbus", "opcua"])
def test_plugin_sample_is_valid(plugin: str, tmp_path: Path) -> None:
    text = (SOURCES / plugin / "sample.yaml").read_text()
    pki = tmp_path / "opcua"
    pki.mkdir()
    for name in ("client-cert.der", "client-key.pem", "server-cert.der"):
        (pki / name).write_bytes(b"placeholder")  # the config checks that the files exist
    sources = yaml.safe_load(text.replace("/etc/edge-agent/opcua/", f"{pki}/"))
    cfg = agent_with(tmp_path, sources)
    assert [s.type for s in cfg.sources] == [plugin]
    fields, keys = cfg.privacy_of(0)
    assert fields == ["operator_badge"] and keys.active_key == "k1"
    source = create_source(cfg.sources[0])
    source.init()  # no I/O: validates node ids / plans the register reads
    assert source.device_id == cfg.sources[0].device_id


def test_modbus_sample_plans_few_requests(tmp_path: Path) -> None:
    from edge_agent.sources.modbus.codec import plan_reads

    cfg = agent_with(tmp_path, yaml.safe_load((SOURCES / "modbus" / "sample.yaml").read_text()))
    spans = plan_reads(cfg.sources[0].registers)  # type: ignore[union-attr]  # the sample's first source is a Modbus one
    assert [(s.table, s.start, s.count) for s in spans] == [
        ("holding", 100, 4),
        ("holding", 200, 2),
        ("holding", 300, 4),
        ("input", 0, 2),
    ]
