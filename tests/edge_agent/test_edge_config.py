"""Config loading: the sample is valid, and every error names the file, the line and the field."""

from __future__ import annotations

from pathlib import Path

import pytest

from edge_agent.config import AgentConfig, load_config
from edge_agent.errors import ConfigError
from edge_agent.sources.simulated import SimulatedSettings

SAMPLE = Path(__file__).resolve().parents[2] / "edge_agent" / "sample.yaml"

VALID = """\
gateway_id: gw-01
site_id: de-munich
state_dir: ./state
broker:
  host: 127.0.0.1
  port: 1883
sources:
  - type: simulated
    device_id: cnc-01
    machine: cnc_mill
    interval_ms: 100
"""


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "agent.yaml"
    path.write_text(text)
    return path


def error_of(tmp_path: Path, text: str) -> ConfigError:
    with pytest.raises(ConfigError) as info:
        load_config(write(tmp_path, text))
    return info.value


def test_sample_config_is_valid() -> None:
    cfg = load_config(SAMPLE)
    assert cfg.gateway_id == "de-munich-gw-01"
    assert cfg.country == "DE"
    assert cfg.broker.reconnect.max_delay_s == 30
    assert cfg.batch.max_readings == 50
    first = cfg.sources[0]
    assert isinstance(first, SimulatedSettings)
    assert (first.device_id, first.machine, first.interval_ms, first.seed) == ("de-munich-cnc-01", "cnc_mill", 100, 1)
    assert first.operators == ["B-1001", "B-1002"]


def test_defaults(tmp_path: Path) -> None:
    cfg = load_config(write(tmp_path, VALID))
    assert cfg.country is None
    assert cfg.broker.keepalive_s == 30 and not cfg.broker.tls.enabled
    assert cfg.batch.max_latency_ms == 1000
    assert isinstance(cfg.sources[0], SimulatedSettings)
    assert cfg.sources[0].operators == []
    assert cfg.device_ids == ["cnc-01"]


def test_out_of_range_value_names_file_line_and_field(tmp_path: Path) -> None:
    err = error_of(tmp_path, VALID.replace("port: 1883", "port: 70000"))
    assert err.line == 6
    assert err.field == "broker.port"
    assert err.file is not None and err.file.endswith("agent.yaml")
    assert str(err).startswith(f"{err.file}:6: broker.port: ")
    assert "70000" in str(err)


def test_unknown_key_points_at_its_line(tmp_path: Path) -> None:
    err = error_of(tmp_path, VALID.replace("  port: 1883\n", "  port: 1883\n  prot: 1884\n"))
    assert (err.line, err.field) == (7, "broker.prot")
    assert "Extra inputs" in err.reason


def test_missing_field_points_at_its_parent(tmp_path: Path) -> None:
    err = error_of(tmp_path, VALID.replace("    machine: cnc_mill\n", ""))
    assert err.field == "sources.0.machine"
    assert err.line == 8  # the list item that lacks it
    assert "required" in err.reason


def test_invalid_machine_and_source_type(tmp_path: Path) -> None:
    err = error_of(tmp_path, VALID.replace("machine: cnc_mill", "machine: lathe"))
    assert (err.line, err.field) == (10, "sources.0.machine")
    assert "cnc_mill" in err.reason
    err = error_of(tmp_path, VALID.replace("type: simulated", "type: profinet"))
    assert (err.line, err.field) == (8, "sources.0.type")


def test_invalid_ids_and_country(tmp_path: Path) -> None:
    err = error_of(tmp_path, VALID.replace("device_id: cnc-01", "device_id: cnc/01"))
    assert (err.line, err.field) == (9, "sources.0.device_id")
    err = error_of(tmp_path, VALID.replace("site_id: de-munich", "site_id: de-munich\ncountry: Germany"))
    assert (err.line, err.field) == (3, "country")


def test_every_error_is_reported(tmp_path: Path) -> None:
    err = error_of(tmp_path, VALID.replace("port: 1883", "port: 0").replace("interval_ms: 100", "interval_ms: 0"))
    assert err.field == "broker.port"
    assert [e.field for e in err.more] == ["sources.0.interval_ms"]
    assert "sources.0.interval_ms" in str(err).splitlines()[1]


def test_duplicate_device_ids(tmp_path: Path) -> None:
    text = VALID + "  - {type: simulated, device_id: cnc-01, machine: compressor}\n"
    err = error_of(tmp_path, text)
    assert err.field == "sources"
    assert "used by sources 0 and 1" in err.reason


def test_duplicate_yaml_key(tmp_path: Path) -> None:
    err = error_of(tmp_path, VALID.replace("  port: 1883\n", "  port: 1883\n  port: 1884\n"))
    assert (err.line, err.field) == (7, "port")
    assert "duplicate key" in err.reason and "line 6" in err.reason


def test_yaml_syntax_error_names_the_line(tmp_path: Path) -> None:
    err = error_of(tmp_path, VALID.replace("  host: 127.0.0.1", "  host: [127.0.0.1"))
    assert err.line is not None and err.line >= 5
    assert "invalid YAML" in err.reason


def test_missing_file_and_non_mapping(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="cannot read the config file"):
        load_config(tmp_path / "nope.yaml")
    err = error_of(tmp_path, "- just\n- a list\n")
    assert "mapping" in err.reason


def test_tls_files_must_exist_and_pair(tmp_path: Path) -> None:
    text = VALID.replace("  port: 1883\n", "  port: 8883\n  tls: {enabled: true, ca_file: /nonexistent/ca.pem}\n")
    err = error_of(tmp_path, text)
    assert err.field == "broker.tls.ca_file" and err.line == 7
    cert = tmp_path / "client.pem"
    cert.write_text("x")
    text = VALID.replace("  port: 1883\n", f"  port: 8883\n  tls: {{enabled: true, cert_file: {cert}}}\n")
    err = error_of(tmp_path, text)
    assert err.field == "broker.tls" and "together" in err.reason


def test_password_needs_username(tmp_path: Path) -> None:
    err = error_of(tmp_path, VALID.replace("  port: 1883\n", "  port: 1883\n  password: secret\n"))
    assert err.field == "broker" and "username" in err.reason
    assert "secret" not in str(err)


def test_password_file(tmp_path: Path) -> None:
    """The secret comes from a file (e.g. identities/<gateway>/password of `python -m broker credentials`)."""
    secret = tmp_path / "password"
    secret.write_text("s3cret-value\n")
    with_file = VALID.replace("  port: 1883\n", f"  port: 1883\n  username: gw-01\n  password_file: {secret}\n")
    cfg = load_config(write(tmp_path, with_file))
    assert cfg.broker.secret() == "s3cret-value"
    assert "s3cret-value" not in repr(cfg)
    err = error_of(tmp_path, with_file.replace(str(secret), str(tmp_path / "missing")))
    assert err.field == "broker.password_file" and "file not found" in err.reason
    secret.write_text("\n")
    err = error_of(tmp_path, with_file)
    assert err.field == "broker.password_file" and "exactly one non-empty line" in err.reason
    secret.write_text("x")
    both = with_file.replace("  username: gw-01\n", "  username: gw-01\n  password: y\n")
    err = error_of(tmp_path, both)
    assert err.field == "broker" and "password and password_file are both set" in err.reason
    err = error_of(tmp_path, with_file.replace("  username: gw-01\n", ""))
    assert err.field == "broker" and "username" in err.reason


def test_models_are_frozen(tmp_path: Path) -> None:
    cfg = load_config(write(tmp_path, VALID))
    assert isinstance(cfg, AgentConfig)
    with pytest.raises(ValueError):
        cfg.broker.port = 1  # type: ignore[misc]  # assigning to the frozen model is what the test checks


def test_queue_publish_and_privacy_sections(tmp_path: Path) -> None:
    cfg = load_config(write(tmp_path, VALID))
    assert (cfg.queue.kind, cfg.queue.when_full, int(cfg.queue.max_bytes)) == ("disk", "drop_oldest", 256 * 1024**2)
    assert (cfg.publish.compression, cfg.publish.max_messages_per_s) == ("none", 0)
    assert cfg.privacy.pseudonymize == [] and cfg.privacy.active is None
    sized = load_config(write(tmp_path, VALID + "queue: {max_bytes: 2GB, when_full: reject_new}\n"))
    assert int(sized.queue.max_bytes) == 2_000_000_000 and sized.queue.when_full == "reject_new"
    err = error_of(tmp_path, VALID + "queue:\n  kind: disk\n  when_full: overwrite\n")
    assert (err.line, err.field) == (14, "queue.when_full")
    assert "'drop_oldest' or 'reject_new'" in err.reason
    err = error_of(tmp_path, VALID + "publish:\n  compression: zstd\n")
    assert (err.line, err.field) == (13, "publish.compression")


MODBUS = """\
gateway_id: gw-01
site_id: de-munich
state_dir: ./state
sources:
  - type: modbus
    device_id: plc-01
    host: 10.0.0.5
    registers:
      - field: temp_c
        address: 10
        type: float32
      - field: speed_rpm
        address: 12
        type: int24
"""


def test_source_plugin_errors_name_the_line_and_field(tmp_path: Path) -> None:
    err = error_of(tmp_path, MODBUS)
    assert (err.line, err.field) == (14, "sources.0.registers.1.type")  # no union tag in the path
    err = error_of(tmp_path, MODBUS.replace("    host: 10.0.0.5\n", ""))
    assert (err.line, err.field) == (5, "sources.0.host")
    opcua = MODBUS.split("  - type: modbus")[0] + (
        "  - type: opcua\n"
        "    device_id: press-01\n"
        "    endpoint: opc.tcp://10.0.0.6:4840\n"
        "    security:\n"
        "      mode: SignAndEncrypt\n"
        "    nodes: [{node_id: 'ns=2;s=T', field: t}]\n"
    )
    err = error_of(tmp_path, opcua)
    assert (err.line, err.field) == (8, "sources.0.security")
    assert "mode SignAndEncrypt needs policy, certificate, private_key" in err.reason
