"""Each plugin's ``sample.yaml`` is valid: it loads into an agent config and its sources initialise."""

from __future__ import annotations

from collections.abc import Callable
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


@pytest.mark.parametrize("plugin", ["simulated", "modbus", "opcua"])
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
    from edge_agent.sources.modbus import ModbusSettings
    from edge_agent.sources.modbus.codec import plan_reads

    cfg = agent_with(tmp_path, yaml.safe_load((SOURCES / "modbus" / "sample.yaml").read_text()))
    modbus = cfg.sources[0]
    assert isinstance(modbus, ModbusSettings)
    spans = plan_reads(modbus.registers)
    assert [(s.table, s.start, s.count) for s in spans] == [
        ("holding", 100, 4),
        ("holding", 200, 2),
        ("holding", 300, 4),
        ("input", 0, 2),
    ]


PLUGIN_FOLDERS = sorted(p.name for p in SOURCES.iterdir() if (p / "__init__.py").is_file())


def test_every_plugin_folder_is_registered_once_and_has_the_same_shape() -> None:
    """One registration per folder (``PLUGIN``), listed once in ``PLUGINS``: it builds both the config's
    union of source settings and the runtime registry."""
    import importlib
    import typing

    from edge_agent.config import AgentConfig
    from edge_agent.sources import registry

    assert PLUGIN_FOLDERS == ["modbus", "opcua", "simulated"]
    for folder in PLUGIN_FOLDERS:
        files = {p.name for p in (SOURCES / folder).iterdir()}
        assert {"README.md", "sample.yaml", "settings.py", "source.py"} <= files
        plugin = importlib.import_module(f"edge_agent.sources.{folder}").PLUGIN
        assert plugin.type == folder and registry.SOURCES[folder] is plugin
    assert sorted(registry.SOURCE_TYPES) == PLUGIN_FOLDERS == sorted(p.type for p in registry.PLUGINS)
    union = typing.get_args(AgentConfig.model_fields["sources"].annotation)[0]
    members, discriminator = typing.get_args(typing.get_args(union)[0]), typing.get_args(union)[1].discriminator
    assert list(members) == [p.settings for p in registry.PLUGINS] and discriminator == "type"


def test_a_modbus_config_loads_without_importing_any_protocol_library(tmp_path: Path) -> None:
    """Plugins are imported lazily: a gateway without asyncua loads (and builds) a modbus config."""
    import subprocess
    import sys

    config = tmp_path / "agent.yaml"
    key = tmp_path / "k1.key"
    generate_key_file(key)
    config.write_text(
        yaml.safe_dump(
            {
                "gateway_id": "gw-01",
                "site_id": "de-munich",
                "state_dir": str(tmp_path / "state"),
                "privacy": {"key_id": "k1", "key_file": str(key)},
                "sources": yaml.safe_load((SOURCES / "modbus" / "sample.yaml").read_text()),
            }
        )
    )
    script = (
        "import sys\n"
        "sys.modules['asyncua'] = None  # no OPC UA library on this gateway: importing it raises ImportError\n"
        "from edge_agent.config import load_config\n"
        "from edge_agent.sources import create_source\n"
        "cfg = load_config(sys.argv[1])\n"
        "print(cfg.sources[0].type, sorted(m for m in sys.modules if m.split('.')[0] in ('asyncua', 'pymodbus')"
        " and sys.modules[m] is not None))\n"
        "create_source(cfg.sources[0]).init()\n"
        "print(sorted({m.split('.')[0] for m in sys.modules if m.split('.')[0] in ('asyncua', 'pymodbus')"
        " and sys.modules[m] is not None}))\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", script, str(config)], capture_output=True, text=True, cwd=REPO, timeout=120, check=False
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines() == ["modbus []", "['pymodbus']"]


def test_a_missing_protocol_library_is_named_with_the_install_command() -> None:
    from edge_agent.errors import SourceError
    from edge_agent.sources.base import Source, SourcePlugin
    from edge_agent.sources.opcua import OpcUaSettings

    def load() -> Callable[[OpcUaSettings], Source]:
        raise ModuleNotFoundError("No module named 'asyncua'", name="asyncua")

    settings = OpcUaSettings.model_validate(
        {
            "type": "opcua",
            "device_id": "press-1",
            "endpoint": "opc.tcp://127.0.0.1:4840",
            "nodes": [{"field": "barrel_temp_c", "node_id": "ns=2;i=1"}],
        }
    )
    with pytest.raises(
        SourceError,
        match=r"source press-1: the opcua source needs asyncua: "
        r"pip install 'residency-telemetry\[edge\]'",
    ):
        SourcePlugin(OpcUaSettings, load).create(settings)
