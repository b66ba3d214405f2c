"""docker-compose.yml, checked without a Docker engine: parsed with PyYAML and cross-checked against the
files it mounts, the registry, the Dockerfiles, pyproject.toml and the ingest's own settings model."""

from __future__ import annotations

import copy
import json
import os
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
import yaml

from tests.deploy import compose_checks as cc

TOPOLOGY_FILE = cc.REPO_ROOT / "deploy" / "local" / "cells.yaml"

TEST_KEY = "test-only-pseudonymization-key-0123456789"
TEST_ENV = {"INGEST_PSEUDONYMIZATION_KEY": TEST_KEY, "GRAFANA_ADMIN_PASSWORD": "test-only-grafana-admin"}
REGION_DBS = ("db-eu-central", "db-us-east", "db-cn-north", "db-ap-southeast")
SITES = ("de-munich", "fr-lyon", "us-detroit", "cn-shenzhen", "vn-hanoi", "sg-jurong", "th-rayong")
# The cells of deploy/local/cells.yaml as the compose file runs them.
CELLS: dict[str, dict[str, Any]] = {
    "cn": {"ingests": ["ingest-cn"], "regions": {"cn-north": "db-cn-north"}, "sites": ["cn-shenzhen"]},
    "ap": {
        "ingests": ["ingest-ap"],
        "regions": {"ap-southeast": "db-ap-southeast"},
        "sites": ["sg-jurong", "th-rayong", "vn-hanoi"],
    },
    "global": {
        "ingests": ["ingest-global", "ingest-global-2"],
        "regions": {"eu-central": "db-eu-central", "us-east": "db-us-east"},
        "sites": ["de-munich", "fr-lyon", "us-detroit"],
    },
}
CONTROL_DBS = tuple(f"db-control-{cell}" for cell in CELLS)


@pytest.fixture(scope="module")
def raw() -> cc.Compose:
    return cc.load_raw()


@pytest.fixture
def compose(raw: cc.Compose) -> cc.Compose:
    """A fresh interpolated copy per test, so that tests may mutate it."""
    copy: cc.Compose = cc.interpolate_tree(raw, TEST_ENV)
    return copy


@pytest.fixture(scope="module")
def registry_data() -> dict[str, Any]:
    return cc.load_registry(cc.REPO_ROOT / "deploy" / "local" / "registry.yaml")


def _env(compose: cc.Compose, service: str = "ingest-global") -> dict[str, Any]:
    env: dict[str, Any] = compose["services"][service]["environment"]
    return env


# --- the real file ----------------------------------------------------------------------------------


def test_topology_has_the_expected_services(compose: cc.Compose) -> None:
    """Per cell: its broker, OPA, control store, region stores, ingest replica(s) and its sites' agents; shared:
    the two one-shot jobs, Prometheus and Grafana. Nothing else."""
    services = compose["services"]
    expected = {"broker-credentials", "policy-bundle", "grafana", "prometheus"}
    for cell, spec in CELLS.items():
        expected |= {
            f"mosquitto-{cell}",
            f"opa-{cell}",
            f"db-control-{cell}",
            *spec["ingests"],
            *spec["regions"].values(),
            *(f"edge-{site}" for site in spec["sites"]),
        }
    assert set(services) == expected, sorted(set(services) ^ expected)
    assert len(CELLS["global"]["ingests"]) >= 2  # the replica checks stay meaningful
    for name in REGION_DBS:
        assert services[name]["image"].startswith("timescale/timescaledb:")
        assert cc.environment(services[name])["POSTGRES_DB"] == "telemetry"
    for cell in CELLS:
        assert cc.environment(services[f"db-control-{cell}"])["POSTGRES_DB"] == "control"
        assert services[f"mosquitto-{cell}"]["image"].startswith("eclipse-mosquitto:2")
        assert services[f"opa-{cell}"]["image"].startswith("openpolicyagent/opa:")
    assert set(cc.ingest_services(compose)) == {n for spec in CELLS.values() for n in spec["ingests"]}
    assert services["ingest-cn"]["build"]["dockerfile"] == "deploy/docker/Dockerfile"
    assert services["edge-de-munich"]["build"]["dockerfile"] == "deploy/docker/Dockerfile.edge"
    assert services["policy-bundle"]["build"]["dockerfile"] == "deploy/docker/Dockerfile"
    assert services["grafana"]["image"].startswith("grafana/grafana-oss:")


def test_each_cell_runs_its_own_part_of_the_topology(compose: cc.Compose) -> None:
    """What check_cells derives from the topology, spelled out for the demo's three cells."""
    services = compose["services"]
    owners = cc.service_cells(compose, cc.REPO_ROOT)
    for cell, spec in CELLS.items():
        for name in spec["ingests"]:
            env = cc.environment(services[name])
            assert env["INGEST_CELL"] == cell and env["INGEST_TOPOLOGY_FILE"] == "/etc/telemetry/cells.yaml"
            assert env["INGEST_MQTT_HOST"] == f"mosquitto-{cell}"
            assert env["INGEST_OPA_URL"] == f"http://opa-{cell}:8181"
            assert cc.ingest_uses(env).keys() == {
                f"mosquitto-{cell}",
                f"opa-{cell}",
                f"db-control-{cell}",
                *spec["regions"].values(),
            }
            dsns = json.loads(env["INGEST_REGION_DSNS"])
            assert {region: urlsplit(dsn).hostname for region, dsn in dsns.items()} == spec["regions"]
            assert cc.host_path(services[name], "/etc/telemetry/cells.yaml", cc.REPO_ROOT) == TOPOLOGY_FILE
        for site in spec["sites"]:
            assert owners[f"edge-{site}"] == cell
        # the cell's private services are on its network only
        for private in (f"opa-{cell}", f"db-control-{cell}", *spec["regions"].values()):
            assert cc.service_networks(services[private]) == {f"cell-{cell}"}
    assert cc.service_networks(services["broker-credentials"]) == set()  # network_mode none: it needs none


def test_databases_run_with_the_wal_buffers_the_benchmark_measured(compose: cc.Compose) -> None:
    """The ingest benchmark runs devstack's PostgreSQL settings; production's databases get the same WAL
    buffers (over what the TimescaleDB image's timescaledb-tune would pick)."""
    from devstack.postgres import DEFAULT_SETTINGS

    wanted = DEFAULT_SETTINGS["wal_buffers"]
    for name in (*REGION_DBS, *CONTROL_DBS):
        cmd = cc.command(compose["services"][name])
        assert cmd[:1] == ["postgres"] and f"wal_buffers={wanted}" in cmd, (name, cmd)


def test_databases_have_background_workers_for_their_jobs(compose: cc.Compose) -> None:
    """Each database server holds three databases with TimescaleDB (the image creates the extension in
    postgres, template1 and POSTGRES_DB) and one region store whose jobs may all run at once."""
    from ingest.store.timescale import worker_settings

    for name in (*REGION_DBS, *CONTROL_DBS):
        cmd = cc.command(compose["services"][name])
        for key, value in worker_settings(databases=3, stores=1).items():
            assert f"{key}={value}" in cmd, (name, key, cmd)


@pytest.mark.parametrize(
    ("image", "problem"),
    [
        ("timescale/timescaledb:2.31.2-pg18", None),
        ("timescale/timescaledb:2.28.4-pg15", None),
        ("timescale/timescaledb:2.28.3-pg15", "use 2.28.4 or later"),
        ("timescale/timescaledb:2.17.2-pg16", "use 2.31.2 or later"),
        ("timescale/timescaledb:2.32.0-pg18", "not a release known to run jobs"),
        ("timescale/timescaledb:latest-pg18", "pin a release"),
    ],
)
def test_timescaledb_image_must_run_jobs_on_current_postgresql(image: str, problem: str | None) -> None:
    found = cc.check_timescaledb_image(image)
    assert (found == []) if problem is None else (len(found) == 1 and problem in found[0]), found


def test_postgresql_18_data_is_mounted_where_the_image_keeps_it(compose: cc.Compose) -> None:
    broken = copy.deepcopy(compose)
    svc = broken["services"]["db-us-east"]
    svc["volumes"] = [v if "data" not in str(v) else "db-us-east-data:/var/lib/postgresql/data" for v in svc["volumes"]]
    assert cc.check_databases(broken) == [
        "db-us-east: /var/lib/postgresql is not on a named volume",
        "db-us-east: PostgreSQL 18 images refuse a mount at /var/lib/postgresql/data; mount /var/lib/postgresql",
    ]


def test_defaults_only_for_local_use(raw: cc.Compose) -> None:
    """The DB passwords have local defaults; the pseudonymization key and the Grafana admin password have
    none and stop compose."""
    db_env = raw["services"]["db-eu-central"]["environment"]
    assert db_env["POSTGRES_PASSWORD"] == "${POSTGRES_PASSWORD:-change-me}"
    assert db_env["GRAFANA_READER_PASSWORD"] == "${GRAFANA_READER_PASSWORD:-change-me-reader}"
    with pytest.raises(cc.InterpolationError, match="INGEST_PSEUDONYMIZATION_KEY"):
        cc.interpolate_tree(raw, {})
    with pytest.raises(cc.InterpolationError, match="GRAFANA_ADMIN_PASSWORD"):
        cc.interpolate_tree(raw, {"INGEST_PSEUDONYMIZATION_KEY": TEST_KEY})
    compose = cc.interpolate_tree(raw, {**TEST_ENV, "GRAFANA_READER_PASSWORD": "r3ader"})
    assert cc.environment(compose["services"]["grafana"])["GF_SECURITY_ADMIN_PASSWORD"] == "test-only-grafana-admin"
    for name in (*REGION_DBS, "grafana"):
        assert cc.environment(compose["services"][name])["GRAFANA_READER_PASSWORD"] == "r3ader"
    for name in CONTROL_DBS:
        assert "GRAFANA_READER_PASSWORD" not in cc.environment(compose["services"][name])


CHECKS: dict[str, Callable[[cc.Compose, Path], list[str]]] = {
    "builds": cc.check_builds,
    "mounts": cc.check_mounts,
    "depends_on": lambda c, _root: cc.check_depends_on(c),
    "images": lambda c, _root: cc.check_images(c),
    "ports": lambda c, _root: cc.check_ports(c),
    "healthchecks": lambda c, _root: cc.check_healthchecks(c),
    "ingest": cc.check_ingest,
    "ingest_replicas": lambda c, _root: cc.check_ingest_replicas(c),
    "opa": cc.check_opa,
    "broker": cc.check_broker,
    "broker_security": cc.check_broker_security,
    "databases": lambda c, _root: cc.check_databases(c),
    "dockerfiles": cc.check_dockerfiles,
    "grafana": cc.check_grafana,
    "prometheus": cc.check_prometheus,
    "cells": cc.check_cells,
    "networks": cc.check_networks,
}


@pytest.mark.parametrize("check", CHECKS.values(), ids=CHECKS.keys())
def test_compose_file_passes(check: Callable[[cc.Compose, Path], list[str]], compose: cc.Compose) -> None:
    assert check(compose, cc.REPO_ROOT) == []


def test_agents_match_the_registry(compose: cc.Compose, registry_data: dict[str, Any]) -> None:
    assert cc.check_agents(compose, cc.REPO_ROOT, registry_data) == []
    assert len(cc.agent_services(compose)) == len(registry_data["sites"]) == len(SITES)


def test_environment_values_are_strings(raw: cc.Compose) -> None:
    assert cc.check_environment_types(raw) == []


def test_keys_are_compose_keys(raw: cc.Compose) -> None:
    assert cc.check_keys(raw) == []


def test_unknown_keys_are_reported(raw: cc.Compose) -> None:
    broken = cc.interpolate_tree(raw, TEST_ENV)
    broken["services"]["ingest-global"]["depend_on"] = broken["services"]["ingest-global"].pop("depends_on")
    broken["services"]["opa-global"]["healthcheck"]["start_perod"] = "5s"
    broken["services"]["mosquitto-global"]["restart"] = "sometimes"
    broken["servics"] = {}
    assert cc.check_keys(broken) == [
        "top level: unknown key 'servics'",
        "mosquitto-global: restart policy 'sometimes' is not one of ['always', 'no', 'on-failure', 'unless-stopped']",
        "opa-global: unknown healthcheck key 'start_perod'",
        "ingest-global: unknown service key 'depend_on'",
    ]


def test_check_all_is_clean_with_another_password(raw: cc.Compose) -> None:
    """DSNs follow POSTGRES_PASSWORD, datasources GRAFANA_READER_PASSWORD (no password hard-coded on one
    side only)."""
    env = {**TEST_ENV, "POSTGRES_PASSWORD": "s3cret-Pw_1", "GRAFANA_READER_PASSWORD": "other-Pw_2"}
    compose = cc.interpolate_tree(raw, env)
    assert cc.check_all(raw, compose) == []
    for name in cc.ingest_services(compose):
        dsns = json.loads(_env(compose, name)["INGEST_REGION_DSNS"])
        assert all(":s3cret-Pw_1@" in dsn for dsn in dsns.values())


def test_ingest_settings_accept_the_compose_environment(
    compose: cc.Compose, registry_data: dict[str, Any], monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """The ingest's own pydantic-settings model loads each replica's environment, and the ingest's own start
    checks of its cell pass: the topology it mounts names its cell (load_cell), and its DSNs are exactly the
    regions that cell hosts (check_regions)."""
    from ingest.auth import tokens
    from ingest.config import IngestSettings
    from ingest.registry import load_registry
    from ingest.service import check_regions, load_cell

    # The bootstrap admin token is a Docker secret from the environment of `docker compose up`, mounted at
    # /run/secrets/admin_token; here a generated token in a file stands in for the mounted secret.
    assert compose["secrets"]["ingest-admin-token"] == {"environment": "INGEST_BOOTSTRAP_ADMIN_TOKEN"}
    stand_in = tmp_path / "admin_token"
    stand_in.write_text(tokens.generate().text + "\n")
    registry = load_registry(cc.REPO_ROOT / "deploy" / "local" / "registry.yaml")
    client_ids: dict[str, set[str]] = {}
    for name in cc.ingest_services(compose):
        service = compose["services"][name]
        assert {"source": "ingest-admin-token", "target": "admin_token"} in service["secrets"]
        env = cc.environment(service)
        assert env["INGEST_BOOTSTRAP_ADMIN_TOKEN_FILE"] == "/run/secrets/admin_token"
        with monkeypatch.context() as m:
            for key in [k for k in os.environ if k.startswith("INGEST_")]:
                m.delenv(key)
            for key, value in {**env, "INGEST_BOOTSTRAP_ADMIN_TOKEN_FILE": str(stand_in)}.items():
                m.setenv(key, value)
            settings = IngestSettings()
        cell = settings.cell
        assert cell in CELLS and name in CELLS[cell]["ingests"]
        assert str(settings.topology_file) == "/etc/telemetry/cells.yaml"
        assert set(settings.region_dsns) == set(CELLS[cell]["regions"]) < set(registry_data["regions"])
        assert settings.control_dsn.endswith(f"@db-control-{cell}:5432/control")
        assert settings.policy_engine == "opa"
        assert settings.opa_url == f"http://opa-{cell}:8181"
        assert settings.policy_watch_s == 5.0  # how often each replica asks OPA for the bundle revision
        assert settings.environment == "production"
        assert settings.timescaledb == "on"
        assert settings.pseudonymization_key.get_secret_value() == TEST_KEY
        assert str(settings.registry_file) == "/etc/telemetry/registry.yaml"
        assert (settings.api_host, settings.api_port) == ("0.0.0.0", 8000)
        assert (settings.mqtt_host, settings.mqtt_port, settings.share_group) == (f"mosquitto-{cell}", 8883, "ingest")
        assert settings.mqtt_tls and str(settings.mqtt_ca_file) == "/run/secrets/mqtt/ca.crt"
        assert settings.mqtt_username == settings.mqtt_client_id
        client_ids.setdefault(cell, set()).add(settings.mqtt_client_id)
        # the ingest's start checks, on the files the mounts provide
        on_host = settings.model_copy(
            update={"topology_file": cc.host_path(service, str(settings.topology_file), cc.REPO_ROOT)}
        )
        topology = load_cell(on_host, registry)
        assert topology is not None
        check_regions(on_host, registry, topology)
    assert client_ids == {"cn": {"ingest-1"}, "ap": {"ingest-1"}, "global": {"ingest-1", "ingest-2"}}


def test_mounted_registry_loads_with_the_ingest_loader(compose: cc.Compose) -> None:
    from ingest.registry import load_registry

    for name in cc.ingest_services(compose):
        svc = compose["services"][name]
        path = cc.host_path(svc, cc.environment(svc)["INGEST_REGISTRY_FILE"], cc.REPO_ROOT)
        assert path is not None
        assert set(load_registry(path).regions) == {"eu-central", "us-east", "cn-north", "ap-southeast"}


def test_agent_configs_load_with_the_edge_agent_loader(compose: cc.Compose, tmp_path: Path) -> None:
    """Each agent config loads once the files its broker identity mount provides exist: they are
    generated here by the credentials job's own code (every cell's) and put where the mount's subpath
    points."""
    from broker.cells import generate_cells
    from broker.identities import load_identities
    from edge_agent.config import load_config
    from ingest.cells.topology import load_topology
    from ingest.registry import load_registry

    (job,) = cc.credentials_jobs(compose, cc.REPO_ROOT)
    assert job.topology == TOPOLOGY_FILE
    ca = tmp_path / "ca.crt"
    ca.write_text("-----BEGIN CERTIFICATE-----\nnot checked here\n-----END CERTIFICATE-----\n")
    volume = tmp_path / "credentials"
    generate_cells(
        load_registry(cc.REPO_ROOT / "deploy/local/registry.yaml"),
        load_identities(cc.REPO_ROOT / "deploy/local/broker-identities.yaml"),
        load_topology(TOPOLOGY_FILE),
        volume / job.out_in_volume,
        ca_file=ca,
    )
    for name in cc.agent_services(compose):
        svc = compose["services"][name]
        path = cc.host_path(svc, "/etc/edge-agent/agent.yaml", cc.REPO_ROOT)
        assert path is not None, name
        secrets_mount = next(m for m in cc.mounts(svc) if m.source == "broker-credentials")
        text = path.read_text().replace(secrets_mount.target, str(volume / secrets_mount.subpath))
        local = tmp_path / f"{name}.yaml"
        local.write_text(text)
        config = load_config(local)
        cell = next(c for c, spec in CELLS.items() if config.site_id in spec["sites"])
        assert config.broker.host == f"mosquitto-{cell}"
        assert f"edge-{config.site_id}" == name
        assert str(config.state_dir) == "/var/lib/edge-agent"
        assert config.broker.username == config.gateway_id
        secret = volume / job.out_in_volume / cell / "identities" / config.gateway_id / "password"
        assert config.broker.secret() == secret.read_text().strip()


# --- the checkers catch broken files ---------------------------------------------------------------


def _set_dsn(compose: cc.Compose, region: str, dsn: str | None) -> None:
    env = _env(compose)
    dsns = json.loads(env["INGEST_REGION_DSNS"])
    if dsn is None:
        dsns.pop(region)
    else:
        dsns[region] = dsn
    env["INGEST_REGION_DSNS"] = json.dumps(dsns)


def _replace_in_dsns(compose: cc.Compose, old: str, new: str) -> None:
    env = _env(compose)
    env["INGEST_REGION_DSNS"] = env["INGEST_REGION_DSNS"].replace(old, new)


def _mount(compose: cc.Compose, service: str, old: str, new: str | None) -> None:
    """Replace (or with ``new=None`` remove) the volume entries of ``service`` that start with ``old``."""
    volumes = []
    for entry in compose["services"][service]["volumes"]:
        if not isinstance(entry, str) or not entry.startswith(old):
            volumes.append(entry)
        elif new is not None:
            volumes.append(new)
    compose["services"][service]["volumes"] = volumes


def _without_bridges(compose: cc.Compose) -> None:
    """The cn broker mounting the repository's broker/mosquitto.conf instead of its cell.conf."""
    _mount(compose, "mosquitto-cn", "./deploy/compose/mosquitto/cell.conf", None)
    _mount(
        compose,
        "mosquitto-cn",
        "./broker/mosquitto.conf",
        "./broker/mosquitto.conf:/mosquitto/config/mosquitto.conf:ro",
    )


def _opa_args(compose: cc.Compose, change: Callable[[list[str]], list[str]]) -> None:
    compose["services"]["opa-global"]["command"] = change(list(compose["services"]["opa-global"]["command"]))


def _without(args: list[str], flag: str) -> list[str]:
    return [a for a in args if a != flag]


def _script(compose: cc.Compose, change: Callable[[list[str]], list[str]]) -> None:
    """Edit the lines of the policy-bundle service's shell script."""
    svc = compose["services"]["policy-bundle"]
    svc["command"] = ["\n".join(change(svc["command"][0].splitlines()))]


def _credentials_mount(compose: cc.Compose, service: str) -> dict[str, Any]:
    """The long-syntax mount of the broker-credentials volume in ``service`` (mutable)."""
    return next(
        entry
        for entry in compose["services"][service]["volumes"]
        if isinstance(entry, dict) and entry.get("source") == "broker-credentials"
    )


def _job_script(compose: cc.Compose, old: str, new: str) -> None:
    """Edit the broker-credentials job's shell script."""
    svc = compose["services"]["broker-credentials"]
    assert old in svc["command"][0], old
    svc["command"] = [svc["command"][0].replace(old, new)]


def _set_dsns(compose: cc.Compose, service: str, dsns: dict[str, str]) -> None:
    _env(compose, service)["INGEST_REGION_DSNS"] = json.dumps(
        {region: f"postgresql://telemetry:change-me@{host}:5432/telemetry" for region, host in dsns.items()}
    )


BROKEN: dict[str, tuple[Callable[[cc.Compose], object], str, str]] = {
    # --- residency cells ---
    "ingest serving no cell": (
        lambda c: _env(c, "ingest-cn").pop("INGEST_CELL"),
        "cells",
        "ingest-cn: INGEST_TOPOLOGY_FILE and INGEST_CELL must be set",
    ),
    "ingest of an unknown cell": (
        lambda c: _env(c, "ingest-cn").update(INGEST_CELL="mars"),
        "cells",
        "ingest-cn: INGEST_CELL 'mars' is not a cell of deploy/local/cells.yaml",
    ),
    "cell without an ingest": (lambda c: c["services"].pop("ingest-cn"), "cells", "cell cn: no ingest serves it"),
    "ingest on another cell's broker": (
        lambda c: _env(c, "ingest-ap").update(INGEST_MQTT_HOST="mosquitto-global"),
        "cells",
        "ingest-ap: INGEST_MQTT_HOST/PORT mosquitto-global:8883 is not cell ap's broker mosquitto-ap:8883",
    ),
    "ingest writes a region of another cell": (
        lambda c: _set_dsns(c, "ingest-cn", {"cn-north": "db-cn-north", "us-east": "db-us-east"}),
        "cells",
        "ingest-cn: INGEST_REGION_DSNS has ['cn-north', 'us-east'] but cell cn hosts exactly ['cn-north']",
    ),
    "a region store shared by two cells": (
        lambda c: _set_dsns(c, "ingest-ap", {"ap-southeast": "db-cn-north"}),
        "cells",
        "db-cn-north: used by the ingests of cells ['ap', 'cn'] (ingest-ap, ingest-cn)",
    ),
    "a control store shared by two cells": (
        lambda c: _env(c, "ingest-cn").update(
            INGEST_CONTROL_DSN="postgresql://telemetry:change-me@db-control-global:5432/control"
        ),
        "cells",
        "db-control-global: used by the ingests of cells ['cn', 'global']",
    ),
    "a cell asks another cell's OPA": (
        lambda c: _env(c, "ingest-ap").update(INGEST_OPA_URL="http://opa-global:8181"),
        "cells",
        "opa-global: used by the ingests of cells ['ap', 'global']",
    ),
    "replicas of a cell disagree": (
        lambda c: _env(c, "ingest-global-2").update(
            INGEST_CONTROL_DSN="postgresql://telemetry:change-me@db-control-cn:5432/control"
        ),
        "cells",
        "ingest-global-2: INGEST_CONTROL_DSN differs from ingest-global's (replicas of cell global)",
    ),
    "credentials job without the topology": (
        lambda c: _job_script(c, "--topology /etc/telemetry/cells.yaml ", ""),
        "cells",
        "broker-credentials: runs without --topology",
    ),
    # --- each cell's broker and identities come from its own directory of the credentials volume ---
    "broker mounts another cell's directory": (
        lambda c: _credentials_mount(c, "mosquitto-cn").update(volume={"subpath": "cells/global/broker"}),
        "broker_security",
        "mosquitto-cn: mount the cells/cn/broker directory of 'broker-credentials' read-only",
    ),
    "broker without its bridges": (
        _without_bridges,
        "broker_security",
        "mosquitto-cn: does not include_dir the directory of its bridges (cells/cn/broker/bridges.conf",
    ),
    "bridges verify peers with a CA the broker does not have": (
        lambda c: _job_script(c, "--bridge-ca-file /mosquitto/security/ca.crt", "--bridge-ca-file /etc/ssl/ca.crt"),
        "broker_security",
        "mosquitto-cn: --bridge-ca-file /etc/ssl/ca.crt of broker-credentials is not the cells/cn/broker/ca.crt",
    ),
    "bridges verify peers with the job's path": (
        lambda c: _job_script(c, "--bridge-ca-file /mosquitto/security/ca.crt ", ""),
        "broker_security",
        "broker-credentials: no --bridge-ca-file",
    ),
    "ingest with the identity of another cell's broker": (
        lambda c: _credentials_mount(c, "ingest-cn").update(volume={"subpath": "cells/global/identities/ingest-1"}),
        "broker_security",
        "ingest-cn: INGEST_MQTT_CA_FILE is not in the cells/cn/identities/ingest-1 directory",
    ),
    "agent with its gateway's secret of another cell": (
        lambda c: _credentials_mount(c, "edge-cn-shenzhen").update(
            volume={"subpath": "cells/global/identities/cn-shenzhen-gw-01"}
        ),
        "broker_security",
        "edge-cn-shenzhen: broker.password_file is not in the cells/cn/identities/cn-shenzhen-gw-01 directory",
    ),
    "broker config without the production settings": (
        lambda c: _mount(c, "mosquitto-ap", "./broker/mosquitto.conf", None),
        "broker",
        "mosquitto-ap: include_dir /mosquitto/config/conf.d is provided by no mount",
    ),
    # --- networks ---
    "a region store on the interconnect": (
        lambda c: c["services"]["db-cn-north"].update(networks=["cell-cn", "interconnect"]),
        "networks",
        "db-cn-north (cell cn) shares network ['interconnect'] with ingest-ap of cell ap",
    ),
    "an OPA on another cell's network": (
        lambda c: c["services"]["opa-cn"].update(networks=["cell-cn", "cell-global"]),
        "networks",
        "opa-cn (cell cn) shares network ['cell-global'] with db-control-global of cell global",
    ),
    "ingest off its cell's network": (
        lambda c: c["services"]["ingest-cn"].update(networks=["interconnect"]),
        "networks",
        "ingest-cn: cannot reach db-cn-north (store of region cn-north): they share no network",
    ),
    "bridge between cells cut": (
        lambda c: c["services"]["mosquitto-ap"].update(networks=["cell-ap"]),
        "networks",
        "mosquitto-ap: cannot reach mosquitto-global (bridge ap -> global): they share no network",
    ),
    "agent cannot reach its broker": (
        lambda c: c["services"]["edge-vn-hanoi"].update(networks=["cell-global"]),
        "networks",
        "edge-vn-hanoi: cannot reach mosquitto-ap (broker)",
    ),
    "Prometheus cannot reach a cell's ingest": (
        lambda c: c["services"]["prometheus"].update(networks=["cell-global"]),
        "networks",
        "prometheus: cannot reach ingest-cn (scrape target ingest-cn:8000)",
    ),
    "undeclared network": (
        lambda c: c["services"]["grafana"]["networks"].append("cell-eu"),
        "networks",
        "grafana: network 'cell-eu' is not declared under networks",
    ),
    "unused network": (
        lambda c: c["networks"].update({"spare": None}),
        "networks",
        "networks: 'spare' is declared but no service uses it",
    ),
    "two services on one host port": (
        lambda c: c["services"]["ingest-cn"].update(ports=["127.0.0.1:8000:8000"]),
        "ports",
        "ingest-global: host port 127.0.0.1:8000 is also published by ingest-cn",
    ),
    "ingest replica with another replica's secrets": (
        lambda c: _credentials_mount(c, "ingest-global-2").update(
            volume={"subpath": "cells/global/identities/ingest-1"}
        ),
        "broker_security",
        "ingest-global-2: INGEST_MQTT_CA_FILE is not in the cells/global/identities/ingest-2 directory",
    ),
    "agent with another gateway's secrets": (
        lambda c: _credentials_mount(c, "edge-de-munich").update(
            volume={"subpath": "cells/global/identities/fr-lyon-gw-01"}
        ),
        "broker_security",
        "edge-de-munich: broker.password_file is not in the cells/global/identities/de-munich-gw-01 directory",
    ),
    "ingest user name is not its client id": (
        lambda c: _env(c).update(INGEST_MQTT_USERNAME="ingest-2"),
        "broker_security",
        "differs from INGEST_MQTT_CLIENT_ID",
    ),
    "ingest over plain MQTT": (
        lambda c: _env(c).update(INGEST_MQTT_TLS="false"),
        "broker_security",
        "ingest-global: INGEST_MQTT_TLS is not true",
    ),
    "broker sees every identity's secret": (
        lambda c: _credentials_mount(c, "mosquitto-global").pop("volume"),
        "broker_security",
        "mosquitto-global: mount the cells/global/broker directory",
    ),
    "broker starts before its credentials exist": (
        lambda c: c["services"]["mosquitto-global"].pop("depends_on"),
        "broker_security",
        "mosquitto-global: must depend_on broker-credentials",
    ),
    # name: (mutation, checker key, expected fragment of a problem)
    "unknown dependency": (
        lambda c: c["services"]["ingest-global"]["depends_on"].update({"db-mars": {"condition": "service_started"}}),
        "depends_on",
        "'db-mars' is not a defined service",
    ),
    "healthy wait without healthcheck": (
        lambda c: c["services"]["opa-global"].pop("healthcheck"),
        "depends_on",
        "opa-global has no healthcheck",
    ),
    "region of the cell missing from DSNs": (
        lambda c: _set_dsn(c, "us-east", None),
        "cells",
        "ingest-global: INGEST_REGION_DSNS has ['eu-central'] but cell global hosts exactly ['eu-central', 'us-east']",
    ),
    "region not in registry": (
        lambda c: _set_dsn(c, "mars", "postgresql://telemetry:change-me@db-us-east:5432/telemetry"),
        "ingest",
        "not in the registry: ['mars']",
    ),
    "DSN host is no service": (
        lambda c: _replace_in_dsns(c, "@db-us-east:", "@db-us-west:"),
        "ingest",
        "'db-us-west' is not a service",
    ),
    "two regions share one database": (
        lambda c: _replace_in_dsns(c, "@db-us-east:", "@db-eu-central:"),
        "ingest",
        "share database db-eu-central",
    ),
    "DSN password differs": (
        lambda c: _replace_in_dsns(c, "telemetry:change-me@db-eu-central", "telemetry:other@db-eu-central"),
        "ingest",
        "password differs from db-eu-central",
    ),
    "DSN database differs": (
        lambda c: _replace_in_dsns(c, "db-eu-central:5432/telemetry", "db-eu-central:5432/control"),
        "ingest",
        "database 'control'",
    ),
    "DSNs not JSON": (
        lambda c: _env(c).update(INGEST_REGION_DSNS="eu-central=postgresql://x"),
        "ingest",
        "not valid JSON",
    ),
    "store not in depends_on": (
        lambda c: c["services"]["ingest-global"]["depends_on"].pop("db-us-east"),
        "ingest",
        "uses db-us-east (store of region us-east) but does not depend_on it",
    ),
    "store waited for only started": (
        lambda c: c["services"]["ingest-global"]["depends_on"].update({"db-us-east": {"condition": "service_started"}}),
        "ingest",
        "depends_on db-us-east should wait for service_healthy",
    ),
    "control DSN host unknown": (
        lambda c: _env(c).update(INGEST_CONTROL_DSN="postgresql://telemetry:change-me@db-ctl:5432/control"),
        "ingest",
        "INGEST_CONTROL_DSN host 'db-ctl' is not a service",
    ),
    "control database is a region store": (
        lambda c: _env(c).update(INGEST_CONTROL_DSN="postgresql://telemetry:change-me@db-us-east:5432/telemetry"),
        "ingest",
        "also a region store",
    ),
    "embedded policy engine": (lambda c: _env(c).update(INGEST_POLICY_ENGINE="embedded"), "ingest", "expected opa"),
    "OPA URL on the wrong port": (
        lambda c: _env(c).update(INGEST_OPA_URL="http://opa-global:8282"),
        "ingest",
        "but opa-global listens on 8181",
    ),
    "MQTT port no listener serves": (
        lambda c: _env(c).update(INGEST_MQTT_PORT="1883"),
        "ingest",
        "but mosquitto-global listens on {8883}",
    ),
    "timescaledb on a plain postgres": (
        lambda c: c["services"]["db-us-east"].update(image="postgres:16"),
        "ingest",
        "not TimescaleDB",
    ),
    "health check on another port": (
        lambda c: _env(c).update(INGEST_API_PORT="9000"),
        "ingest",
        "does not query :9000/api/v1/health",
    ),
    "replicas share a client id": (
        lambda c: _env(c, "ingest-global-2").update(INGEST_MQTT_CLIENT_ID="ingest-1"),
        "ingest_replicas",
        "'ingest-1' is also used by ingest-global on mosquitto-global",
    ),
    "replicas in different groups": (
        lambda c: _env(c, "ingest-global-2").update(INGEST_SHARE_GROUP="other"),
        "ingest_replicas",
        "one non-empty",
    ),
    "floating latest tag": (
        lambda c: c["services"]["opa-global"].update(image="openpolicyagent/opa:latest"),
        "images",
        "floating tag latest",
    ),
    "untagged image": (
        lambda c: c["services"]["mosquitto-global"].update(image="eclipse-mosquitto"),
        "images",
        "has no tag",
    ),
    "port on all interfaces": (
        lambda c: c["services"]["ingest-global"].update(ports=["8000:8000"]),
        "ports",
        "published on all interfaces",
    ),
    "long-syntax port on 0.0.0.0": (
        lambda c: c["services"]["opa-global"].update(ports=[{"target": 8181, "published": 8181, "host_ip": "0.0.0.0"}]),
        "ports",
        "published on all interfaces",
    ),
    "bind mount of a missing file": (
        lambda c: _mount(
            c,
            "ingest-global",
            "./deploy/local/registry.yaml",
            "./deploy/local/nope.yaml:/etc/telemetry/registry.yaml:ro",
        ),
        "mounts",
        "./deploy/local/nope.yaml does not exist",
    ),
    "writable bind mount": (
        lambda c: _mount(
            c,
            "mosquitto-global",
            "./deploy/compose/mosquitto/cell.conf",
            "./deploy/compose/mosquitto/cell.conf:/mosquitto/config/mosquitto.conf",
        ),
        "mounts",
        "is not read-only",
    ),
    "undeclared named volume": (
        lambda c: c["volumes"].pop("mosquitto-global-data"),
        "mounts",
        "'mosquitto-global-data' is not declared",
    ),
    "declared volume unused": (
        lambda c: c["volumes"].update({"orphan": None}),
        "mounts",
        "'orphan' is declared but no service uses it",
    ),
    "missing dockerfile": (
        lambda c: c["services"]["ingest-global"]["build"].update(dockerfile="deploy/docker/Nope"),
        "builds",
        "'deploy/docker/Nope' does not exist",
    ),
    "OPA loads policy/ directly (no revision)": (
        lambda c: c["services"]["opa-global"].update(
            command=["run", "--server", "--addr=0.0.0.0:8181", "--watch", "/policy/rego"],
            volumes=["./policy/rego:/policy/rego:ro"],
        ),
        "opa",
        "loads /policy/rego straight from the repository",
    ),
    "OPA without --bundle": (lambda c: _opa_args(c, lambda a: _without(a, "--bundle")), "opa", "without --bundle"),
    "OPA without --watch": (lambda c: _opa_args(c, lambda a: _without(a, "--watch")), "opa", "without --watch"),
    "OPA loads a data file with a prefix": (
        lambda c: _opa_args(c, lambda a: [*a, "residency_data.groups:/bundles/groups.json"]),
        "opa",
        "has a prefix",
    ),
    "OPA loads another file than the job writes": (
        lambda c: _opa_args(c, lambda a: [x.replace("residency.tar.gz", "other.tar.gz") for x in a]),
        "opa",
        "no service builds the bundle /bundles/other.tar.gz",
    ),
    "OPA reads another volume": (
        lambda c: _mount(c, "opa-global", "policy-bundles", "mosquitto-global-data:/bundles:ro"),
        "opa",
        "no service builds the bundle /bundles/residency.tar.gz (volume mosquitto-global-data",
    ),
    "OPA starts before the bundle is built": (
        lambda c: c["services"]["opa-global"]["depends_on"].update({"policy-bundle": {"condition": "service_started"}}),
        "opa",
        "must depend_on policy-bundle with condition service_completed_successfully",
    ),
    "OPA can write the bundle volume": (
        lambda c: _mount(c, "opa-global", "policy-bundles", "policy-bundles:/bundles"),
        "opa",
        "mounted writable",
    ),
    "bundle job skips the Rego tests": (
        lambda c: _script(c, lambda lines: [x for x in lines if "policy test" not in x]),
        "opa",
        "without running the Rego tests of /app/policy first",
    ),
    "bundle job goes on after failing tests": (
        lambda c: c["services"]["policy-bundle"].update(entrypoint=["/bin/sh", "-c"]),
        "opa",
        "goes on when the Rego tests fail",
    ),
    "bundle job builds another directory": (
        lambda c: _script(c, lambda lines: [x.replace("/app/policy", "/app/ingest") for x in lines]),
        "opa",
        "bundles /app/ingest, which is",
    ),
    "bundle job renames across filesystems": (
        lambda c: _script(
            c, lambda lines: [x.replace("/bundles/.residency.next", "/tmp/residency.next") for x in lines]
        ),
        "opa",
        "on different filesystems",
    ),
    "bundle job publishes a directory": (
        lambda c: _script(c, lambda lines: [x.replace(".residency.next.tar.gz", ".residency.next") for x in lines]),
        "opa",
        "writes /bundles/.residency.next as a directory, not a .tar.gz bundle",
    ),
    "bundle job passes an unknown CLI option": (
        lambda c: _script(
            c, lambda lines: [x.replace("bundle --policy-dir", "bundle --revision x --policy-dir") for x in lines]
        ),
        "opa",
        "is not valid for `python -m policy bundle --help`",
    ),
    "bundle job restarts forever": (
        lambda c: c["services"]["policy-bundle"].update(restart="unless-stopped"),
        "opa",
        "is a one-shot job",
    ),
    "OPA not a server": (
        lambda c: c["services"]["opa-global"].update(command=["run", "/policy/rego"]),
        "opa",
        "run --server",
    ),
    "Grafana admin password empty": (
        lambda c: _env(c, "grafana").update(GF_SECURITY_ADMIN_PASSWORD=""),
        "grafana",
        "GF_SECURITY_ADMIN_PASSWORD is empty",
    ),
    "Grafana anonymous access": (
        lambda c: _env(c, "grafana").update(GF_AUTH_ANONYMOUS_ENABLED="true"),
        "grafana",
        'GF_AUTH_ANONYMOUS_ENABLED must be "false"',
    ),
    "Grafana published on all interfaces": (
        lambda c: c["services"]["grafana"].update(ports=["3000:3000"]),
        "ports",
        "grafana: port '3000:3000' is published on all interfaces",
    ),
    "Grafana starts before a region store is healthy": (
        lambda c: c["services"]["grafana"]["depends_on"].pop("db-cn-north"),
        "grafana",
        "reads db-cn-north but does not depend_on it being healthy",
    ),
    "reader password differs between Grafana and a store": (
        lambda c: _env(c, "db-us-east").update(GRAFANA_READER_PASSWORD="other"),
        "grafana",
        "password variable GRAFANA_READER_PASSWORD differs between grafana and db-us-east",
    ),
    "region store without the reader init script": (
        lambda c: _mount(c, "db-ap-southeast", "./deploy/compose/db/initdb", None),
        "grafana",
        "user 'grafana_reader' is not a role that an init script of db-ap-southeast creates",
    ),
    "init directory hides TimescaleDB's scripts": (
        lambda c: _mount(
            c,
            "db-eu-central",
            "./deploy/compose/db/initdb",
            "./deploy/compose/db/initdb:/docker-entrypoint-initdb.d:ro",
        ),
        "grafana",
        "mounts a directory over /docker-entrypoint-initdb.d",
    ),
    "init script runs before TimescaleDB's": (
        lambda c: _mount(
            c,
            "db-us-east",
            "./deploy/compose/db/initdb",
            "./deploy/compose/db/initdb/grafana-reader.sh:/docker-entrypoint-initdb.d/000_grafana.sh:ro",
        ),
        "grafana",
        "000_grafana.sh would run before the image's 000_install_timescaledb.sh",
    ),
    "Grafana provisioning not mounted": (
        lambda c: _mount(c, "grafana", "./deploy/compose/grafana/provisioning/datasources", None),
        "grafana",
        "no directory of the repository is mounted at /etc/grafana/provisioning/datasources",
    ),
    "Prometheus misses a replica": (
        lambda c: c["services"]["ingest-global-2"]["environment"].update(INGEST_API_PORT="8001"),
        "prometheus",
        "does not scrape the ingest replicas ['ingest-global-2:8001']",
    ),
    "Prometheus TSDB not on a volume": (
        lambda c: _mount(c, "prometheus", "prometheus-data", None),
        "prometheus",
        "the TSDB /prometheus is not on a named volume",
    ),
    "broker config not mounted": (
        lambda c: _mount(c, "mosquitto-global", "./deploy/compose/mosquitto/cell.conf", None),
        "broker",
        "no existing config file",
    ),
    "broker persistence not on a volume": (
        lambda c: _mount(c, "mosquitto-global", "mosquitto-global-data", None),
        "broker",
        "is not on a named volume",
    ),
    "database without a volume": (
        lambda c: c["services"]["db-control-global"].pop("volumes"),
        "databases",
        "db-control-global: /var/lib/postgresql is not on a named volume",
    ),
}


@pytest.mark.parametrize(("mutate", "check", "expected"), BROKEN.values(), ids=BROKEN.keys())
def test_checkers_report_broken_compose(
    compose: cc.Compose, mutate: Callable[[cc.Compose], object], check: str, expected: str
) -> None:
    assert CHECKS[check](compose, cc.REPO_ROOT) == []  # the unbroken file passes this check
    mutate(compose)
    problems = CHECKS[check](compose, cc.REPO_ROOT)
    assert any(expected in problem for problem in problems), problems


def _remount(compose: cc.Compose, repo_file: str, edit: Callable[[Any], object], tmp_path: Path) -> Path:
    """Copy a mounted repository file (YAML), edit it, and mount the copy wherever the file was mounted."""
    data = yaml.safe_load((cc.REPO_ROOT / repo_file).read_text())
    edit(data)
    copy = tmp_path / Path(repo_file).name
    copy.write_text(yaml.safe_dump(data, sort_keys=False))
    for svc in compose["services"].values():
        svc["volumes"] = [
            v.replace(f"./{repo_file}:", f"{copy}:") if isinstance(v, str) else v for v in svc.get("volumes") or []
        ]
    return copy


def _cell(name: str, change: Callable[[dict[str, Any]], object]) -> Callable[[Any], object]:
    return lambda data: change(data["cells"][name])


def _move_site(site: str, source: str, target: str) -> Callable[[Any], object]:
    def edit(data: Any) -> None:
        data["cells"][source]["sites"].remove(site)
        data["cells"][target]["sites"].append(site)

    return edit


TOPOLOGY_BREAKS: dict[str, tuple[Callable[[Any], object], str, str]] = {
    "broker host that is no service": (
        _cell("cn", lambda c: c["broker"].update(host="mosquitto-china")),
        "cells",
        "cells.cn.broker.host 'mosquitto-china' is not a Mosquitto service of the compose file",
    ),
    "broker port no listener serves": (
        _cell("ap", lambda c: c["broker"].update(port=1883)),
        "cells",
        "cells.ap.broker.port 1883 but mosquitto-ap listens on [8883]",
    ),
    "plain broker in the topology, TLS in compose": (
        _cell("global", lambda c: c["broker"].update(tls=False)),
        "cells",
        "cells.global.broker.tls is False but mosquitto-global serves TLS",
    ),
    "API of another cell's ingest": (
        _cell("cn", lambda c: c.update(api="http://ingest-global:8000")),
        "cells",
        "cells.cn.api 'http://ingest-global:8000' is not an ingest of cell cn (['ingest-cn'])",
    ),
    "API on another port": (
        _cell("ap", lambda c: c.update(api="http://ingest-ap:9000")),
        "cells",
        "cells.ap.api 'http://ingest-ap:9000' but ingest-ap serves its API on 8000",
    ),
    # the policy's raw-processing check, as the ingest runs it at start
    "CN site served from the global cell": (
        _move_site("cn-shenzhen", "cn", "global"),
        "cells",
        "cells.global.sites: site cn-shenzhen (CN) may not be served by cell global (DE)",
    ),
    "a region hosted by no cell": (
        _cell("ap", lambda c: c.update(regions=["ap-southeast", "ap-south"])),
        "cells",
        "cells.ap.regions: ['ap-south'] are not regions of the registry",
    ),
}


@pytest.mark.parametrize(("edit", "check", "expected"), TOPOLOGY_BREAKS.values(), ids=TOPOLOGY_BREAKS.keys())
def test_topology_problems_are_reported(
    compose: cc.Compose, tmp_path: Path, edit: Callable[[Any], object], check: str, expected: str
) -> None:
    """A copy of deploy/local/cells.yaml, edited, mounted into every ingest and the credentials job."""
    copy = _remount(compose, "deploy/local/cells.yaml", lambda _data: None, tmp_path)
    assert CHECKS[check](compose, cc.REPO_ROOT) == []  # an unedited copy passes
    _remount(compose, "deploy/local/cells.yaml", edit, tmp_path)
    assert copy.is_file()
    problems = "\n".join(CHECKS[check](compose, cc.REPO_ROOT))
    assert expected in problems, problems


def test_the_credentials_job_generates_from_the_topology_the_ingests_run(compose: cc.Compose, tmp_path: Path) -> None:
    svc = compose["services"]["broker-credentials"]
    copy = tmp_path / "cells.yaml"
    copy.write_text(TOPOLOGY_FILE.read_text())
    svc["volumes"] = [
        v.replace("./deploy/local/cells.yaml:", f"{copy}:") if isinstance(v, str) else v for v in svc["volumes"]
    ]
    assert f"broker-credentials: --topology {copy} is not the topology the ingests mount (deploy/local/cells.yaml)" in (
        cc.check_cells(compose, cc.REPO_ROOT)
    )


def test_ingests_of_different_topologies_are_reported(compose: cc.Compose, tmp_path: Path) -> None:
    copy = tmp_path / "cells.yaml"
    copy.write_text(TOPOLOGY_FILE.read_text())
    _mount(compose, "ingest-ap", "./deploy/local/cells.yaml", f"{copy}:/etc/telemetry/cells.yaml:ro")
    problems = "\n".join(cc.check_cells(compose, cc.REPO_ROOT))
    assert "the ingests mount different topology files: " in problems and "(ingest-ap)" in problems


def test_agent_on_another_cells_broker_is_reported(compose: cc.Compose, tmp_path: Path) -> None:
    """The Shenzhen gateway pointed at the global cell's broker: its raw payload would leave China."""
    _remount(
        compose,
        "deploy/compose/agents/cn-shenzhen.yaml",
        lambda cfg: cfg["broker"].update(host="mosquitto-global"),
        tmp_path,
    )
    assert (
        "edge-cn-shenzhen (cn-shenzhen.yaml): site cn-shenzhen is served by cell cn: its broker is "
        "mosquitto-cn:8883, not mosquitto-global:8883"
    ) in cc.check_cells(compose, cc.REPO_ROOT)


def test_prometheus_cell_labels_are_checked(compose: cc.Compose, tmp_path: Path) -> None:
    def mislabel(config: Any) -> None:
        statics = config["scrape_configs"][0]["static_configs"]
        next(sc for sc in statics if "ingest-ap:8000" in sc["targets"])["labels"]["cell"] = "cn"

    _remount(compose, "deploy/compose/prometheus/prometheus.yml", mislabel, tmp_path)
    assert cc.check_prometheus(compose, cc.REPO_ROOT) == [
        "prometheus: target ingest-ap:8000 is labelled cell='cn', but it serves 'ap'"
    ]


def test_yaml_boolean_in_environment_is_reported(raw: cc.Compose) -> None:
    broken = yaml.safe_load("services: {ingest: {environment: {INGEST_TIMESCALEDB: on}}}")
    assert cc.check_environment_types(broken) == [
        "ingest: environment INGEST_TIMESCALEDB=True is a YAML boolean; quote it"
    ]
    assert cc.check_environment_types(raw) == []


def test_agent_problems_are_reported(compose: cc.Compose, registry_data: dict[str, Any]) -> None:
    path = cc.REPO_ROOT / "deploy" / "compose" / "agents" / "fr-lyon.yaml"
    good = yaml.safe_load(path.read_text())
    assert cc.check_agent_config(good, registry_data, compose, "lyon") == []

    bad = yaml.safe_load(path.read_text())
    bad["country"] = "DE"
    bad["broker"]["host"] = "localhost"
    bad["sources"][0]["machine"] = "injection_press"  # fr-lyon-cnc-01 is a cnc_mill
    bad["sources"].pop()  # fr-lyon-comp-01
    bad["sources"].append({"type": "simulated", "device_id": "de-munich-cnc-01", "machine": "cnc_mill"})
    problems = "\n".join(cc.check_agent_config(bad, registry_data, compose, "lyon"))
    assert "country 'DE' but the registry says 'FR'" in problems
    assert "broker.host 'localhost' is not the mosquitto service" in problems
    assert "fr-lyon-cnc-01 simulates 'injection_press' but its profile is 'cnc_mill'" in problems
    assert "lacks devices of site fr-lyon in the registry: ['fr-lyon-comp-01']" in problems
    assert "does not place at fr-lyon: ['de-munich-cnc-01']" in problems


def test_agent_service_problems_are_reported(compose: cc.Compose, registry_data: dict[str, Any]) -> None:
    """The Munich agent mounting Lyon's config leaves Munich uncovered; a lost state volume is caught."""
    _mount(
        compose,
        "edge-de-munich",
        "./deploy/compose/agents/de-munich.yaml",
        "./deploy/compose/agents/fr-lyon.yaml:/etc/edge-agent/agent.yaml:ro",
    )
    _mount(compose, "edge-sg-jurong", "edge-sg-jurong-state", None)
    problems = "\n".join(cc.check_agents(compose, cc.REPO_ROOT, registry_data))
    assert "site fr-lyon already has an agent" in problems
    assert "sites without an edge agent: ['de-munich']" in problems
    assert "edge-sg-jurong: state_dir /var/lib/edge-agent is not on a named volume" in problems


@pytest.fixture
def build_root(tmp_path: Path) -> Path:
    """A copy of what check_dockerfiles reads: pyproject, .dockerignore, Dockerfiles, package dirs."""
    for name in ("pyproject.toml", ".dockerignore"):
        shutil.copy(cc.REPO_ROOT / name, tmp_path / name)
    shutil.copytree(cc.REPO_ROOT / "deploy" / "docker", tmp_path / "deploy" / "docker")
    for package in ("wire", "ingest", "policy", "edge_agent", "broker"):
        (tmp_path / package).mkdir()
    return tmp_path


def test_dockerfile_problems_are_reported(compose: cc.Compose, build_root: Path) -> None:
    assert cc.check_dockerfiles(compose, build_root) == []
    edge = build_root / "deploy" / "docker" / "Dockerfile.edge"
    text = edge.read_text()
    edge.write_text(
        text.replace('pip install ".[edge]"', 'pip install ".[edge,server]"')
        .replace("USER edge:edge", "")
        .replace("COPY edge_agent/ edge_agent/", "COPY edge/ edge/")
        .replace("FROM python:3.11-slim-bookworm", "FROM python")
    )
    (build_root / ".dockerignore").write_text(".git\n")
    problems = "\n".join(cc.check_dockerfiles(compose, build_root))
    assert "installs extras ['edge', 'server']; edge-agent needs exactly [edge]" in problems
    assert "Dockerfile.edge): runs as root" in problems
    assert "COPY source edge/ does not exist" in problems
    assert "does not COPY edge_agent/" in problems
    assert "FROM image 'python' has no tag" in problems
    assert "does not exclude .venv" in problems


def test_interpolation_follows_compose_rules() -> None:
    env = {"SET": "x", "EMPTY": ""}
    assert cc.interpolate("$$SET ${SET} $SET", env) == "$SET x x"
    assert cc.interpolate("${UNSET:-d} ${EMPTY:-d} ${EMPTY-d} ${UNSET-d}", env) == "d d  d"
    assert cc.interpolate("${SET:+alt}|${UNSET:+alt}", env) == "alt|"
    with pytest.raises(cc.InterpolationError, match="EMPTY is missing: need it"):
        cc.interpolate("${EMPTY:?need it}", env)
    assert cc.interpolate("${EMPTY?need it}", env) == ""


def test_bundle_job_needs_its_volume_writable_and_the_policy_copied(compose: cc.Compose, build_root: Path) -> None:
    """The image runs as telemetry: without /bundles created and chown'ed in the Dockerfile, the new
    named volume would be root-owned; without COPY policy/, /app/policy is nothing of the repository."""
    assert cc.check_opa(compose, build_root) == []
    dockerfile = build_root / "deploy" / "docker" / "Dockerfile"
    text = dockerfile.read_text()
    dockerfile.write_text(text.replace("RUN mkdir /bundles && chown telemetry:telemetry /bundles\n", ""))
    problems = "\n".join(cc.check_opa(compose, build_root))
    assert "policy-bundle: runs as telemetry but its Dockerfile does not create and chown /bundles" in problems
    dockerfile.write_text(text.replace("COPY policy/ policy/\n", ""))
    assert "policy-bundle: bundles /app/policy, which is nothing of the repository" in "\n".join(
        cc.check_opa(compose, build_root)
    )
    assert "policy-bundle (deploy/docker/Dockerfile): runs python -m policy but does not COPY policy/" in "\n".join(
        cc.check_dockerfiles(compose, build_root)
    )


def test_shell_scripts_are_split_into_commands() -> None:
    script = "set -e\npython -m policy test && \\\n  python -m policy bundle out.tar.gz\nmv -f a b  # done\n"
    commands = cc.service_commands({"entrypoint": ["/bin/sh", "-c"], "command": [script]})
    assert commands.argvs == [
        ["python", "-m", "policy", "test"],
        ["python", "-m", "policy", "bundle", "out.tar.gz"],
        ["mv", "-f", "a", "b"],
    ]
    assert commands.stops_on_error and commands.script
    assert not cc.service_commands({"entrypoint": "sh -c", "command": ["a; b"]}).stops_on_error
    assert cc.service_commands({"entrypoint": ["sh", "-c"], "command": ["a && b"]}).stops_on_error
    assert cc.service_commands({"command": "ingest serve"}).argvs == [["ingest", "serve"]]
