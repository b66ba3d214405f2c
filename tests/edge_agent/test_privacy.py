"""Pseudonymization at the edge: keyed HMAC, settings (short and rotation forms, site and source
level), the batch's key_id/edge_transforms on the wire, and the keygen/pseudonym commands."""

from __future__ import annotations

import hashlib
import hmac
import os
import stat
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

import pytest
import yaml
from pydantic import ValidationError
from typer.testing import CliRunner, Result

from edge_agent.agent import Agent
from edge_agent.cli import app
from edge_agent.config import AgentConfig
from edge_agent.privacy import PrivacySettings, Pseudonymizer, generate_key_file, read_key
from wire import Reading, decode_batch

from .edge_support import Mosquitto, Subscriber, agent_config_dict, free_port

CNC, PRESS = "de-munich-cnc-01", "de-munich-press-01"


def key_file(directory: Path, name: str) -> Path:
    path = directory / f"{name}.key"
    generate_key_file(path)
    return path


def test_pseudonym_is_a_truncated_keyed_hmac(tmp_path: Path) -> None:
    path = key_file(tmp_path, "k1")
    key = read_key(path)
    p = Pseudonymizer(["operator_badge"], "k1", key)
    expected = hmac.new(key, b"B-1001", hashlib.sha256).hexdigest()[:32]
    assert p.pseudonym("B-1001") == expected
    assert p.pseudonym(1001) == p.pseudonym("1001")  # numbers are hashed in their text form
    other = Pseudonymizer(["operator_badge"], "k2", read_key(key_file(tmp_path, "k2")))
    assert other.pseudonym("B-1001") != expected  # another key, another pseudonym
    readings = [
        Reading(ts=datetime(2026, 1, 1, tzinfo=UTC), values={"operator_badge": "B-1001", "power_kw": 3.5}),
        Reading(ts=datetime(2026, 1, 1, tzinfo=UTC), values={"power_kw": 3.6}),
        Reading(ts=datetime(2026, 1, 1, tzinfo=UTC), values={"operator_badge": None}),
    ]
    out, transforms = p.apply(readings)
    assert out[0].values == {"operator_badge": expected, "power_kw": 3.5}
    assert out[1] is readings[1] and out[2].values == {"operator_badge": None}
    assert transforms == {"operator_badge": "pseudonymized"}
    assert readings[0].values["operator_badge"] == "B-1001"  # the input is not modified


def test_generated_keys_are_private_and_never_overwritten(tmp_path: Path) -> None:
    path = key_file(tmp_path, "k1")
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert len(read_key(path)) == 64
    with pytest.raises(FileExistsError):
        generate_key_file(path)
    short = tmp_path / "short.key"
    short.write_text("too short\n")
    with pytest.raises(ValueError, match="holds 9 bytes; a key needs at least 32"):
        read_key(short)


def test_settings_short_and_rotation_forms(tmp_path: Path) -> None:
    k1, k2 = key_file(tmp_path, "k1"), key_file(tmp_path, "k2")
    short = PrivacySettings.model_validate({"pseudonymize": ["operator_badge"], "key_id": "k1", "key_file": str(k1)})
    assert short.active is not None and (short.active.id, short.active.file) == ("k1", k1)
    rotation = PrivacySettings.model_validate(
        {"keys": [{"id": "k1", "file": str(k1)}, {"id": "k2", "file": str(k2)}], "active_key": "k2"}
    )
    assert rotation.active is not None and rotation.active.id == "k2"
    with pytest.raises(ValidationError, match="name the one to use in active_key"):
        PrivacySettings.model_validate({"keys": [{"id": "k1", "file": str(k1)}, {"id": "k2", "file": str(k2)}]})
    with pytest.raises(ValidationError, match="active_key 'k3' is not among the keys"):
        PrivacySettings.model_validate({"keys": [{"id": "k1", "file": str(k1)}], "active_key": "k3"})
    with pytest.raises(ValidationError, match="listed twice"):
        PrivacySettings.model_validate({"keys": [{"id": "k1", "file": str(k1)}, {"id": "k1", "file": str(k2)}]})
    with pytest.raises(ValidationError, match="key_id and key_file must be given together"):
        PrivacySettings.model_validate({"key_id": "k1"})
    with pytest.raises(ValidationError, match="file not found"):
        PrivacySettings.model_validate({"key_id": "k1", "key_file": str(tmp_path / "nope.key")})


def test_personal_fields_without_a_key_are_a_config_error(tmp_path: Path) -> None:
    from edge_agent.config import load_config
    from edge_agent.errors import ConfigError

    cfg = agent_config_dict(tmp_path, 1883, privacy={"pseudonymize": ["operator_badge"]})
    path = tmp_path / "agent.yaml"
    path.write_text(yaml.safe_dump(cfg, sort_keys=False))
    with pytest.raises(ConfigError) as info:
        load_config(path)
    assert info.value.field == "privacy"
    assert info.value.line == next(i for i, t in enumerate(path.read_text().splitlines(), 1) if t == "privacy:")
    assert "operator_badge of de-munich-cnc-01 must be pseudonymized but no key is configured" in str(info.value)


def test_site_and_source_level_rules_combine(tmp_path: Path) -> None:
    site_key, own_key = key_file(tmp_path, "site"), key_file(tmp_path, "own")
    cfg = AgentConfig.model_validate(
        agent_config_dict(
            tmp_path,
            1883,
            privacy={"pseudonymize": ["operator_badge"], "key_id": "site-k1", "key_file": str(site_key)},
        )
    )
    data = cfg.model_dump(mode="json")
    data["sources"][1]["privacy"] = {"pseudonymize": ["fault_code"], "key_id": "press-k1", "key_file": str(own_key)}
    cfg = AgentConfig.model_validate(data)
    assert cfg.privacy_of(0)[0] == ["operator_badge"] and cfg.privacy_of(0)[1].active_key == "site-k1"
    fields, keys = cfg.privacy_of(1)
    assert fields == ["operator_badge", "fault_code"] and keys.active_key == "press-k1"


@pytest.mark.integration
def test_personal_fields_leave_the_site_pseudonymized(
    broker: Mosquitto, subscriber_factory: Callable[..., Subscriber], tmp_path: Path
) -> None:
    k1, k2 = key_file(tmp_path, "k1"), key_file(tmp_path, "k2")
    privacy = {
        "pseudonymize": ["operator_badge"],
        "keys": [{"id": "k1", "file": str(k1)}, {"id": "k2", "file": str(k2)}],
        "active_key": "k2",
    }
    sub = subscriber_factory(broker.port)
    Agent(AgentConfig.model_validate(agent_config_dict(tmp_path, broker.port, privacy=privacy))).run(
        max_batches_per_device=2
    )
    assert sub.wait_for(lambda ms: sum(m.topic.startswith("tele/") for m in ms) >= 4)
    active = Pseudonymizer([], "k2", read_key(k2))
    clear = {"B-1001", "B-1002"}
    for m in sub.on("tele/"):
        assert b"B-100" not in m.payload  # no clear badge ever leaves
        batch = decode_batch(m.payload)
        if batch.device_id == CNC:
            assert batch.key_id == "k2" and batch.edge_transforms == {"operator_badge": "pseudonymized"}
            assert {r.values["operator_badge"] for r in batch.readings} <= {active.pseudonym(b) for b in clear}
        else:  # the press has no operators configured: nothing transformed, no key id
            assert batch.device_id == PRESS and batch.key_id is None and batch.edge_transforms == {}


def test_keygen_and_pseudonym_commands(tmp_path: Path) -> None:
    runner = CliRunner()

    def cli(*args: str) -> Result:
        return runner.invoke(app, list(args))

    k1, k2 = tmp_path / "k1.key", tmp_path / "k2.key"
    assert cli("keygen", str(k1)).exit_code == 0 and cli("keygen", str(k2)).exit_code == 0
    again = cli("keygen", str(k1))
    assert again.exit_code == 1 and "a key is never overwritten" in again.output
    cfg = agent_config_dict(
        tmp_path,
        1883,
        privacy={
            "pseudonymize": ["operator_badge"],
            "keys": [{"id": "k1", "file": str(k1)}, {"id": "k2", "file": str(k2)}],
            "active_key": "k2",
        },
    )
    path = tmp_path / "agent.yaml"
    path.write_text(yaml.safe_dump(cfg, sort_keys=False))
    done = cli("pseudonym", "--config", str(path), "B-1001")
    assert done.exit_code == 0, done.output
    expected = {k: Pseudonymizer([], k, read_key(f)).pseudonym("B-1001") for k, f in (("k1", k1), ("k2", k2))}
    assert done.output.splitlines() == [f"k1: {expected['k1']}", f"k2: {expected['k2']} (active)"]
    os.chmod(k1, 0o644)
    cfg["broker"]["port"] = free_port()
    path.write_text(yaml.safe_dump(cfg, sort_keys=False))
    check = cli("check", "--config", str(path))
    privacy_line = next(line for line in check.output.splitlines() if line.split(":")[0].endswith("privacy"))
    assert privacy_line.startswith("FAIL  privacy:") and "readable by group/others" in privacy_line
