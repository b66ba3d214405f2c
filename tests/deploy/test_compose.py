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

import pytest
import yaml

from tests.deploy import compose_checks as cc

TEST_KEY = "test-only-pseudonymization-key-0123456789"
TEST_ENV = {"INGEST_PSEUDONYMIZATION_KEY": TEST_KEY, "GRAFANA_ADMIN_PASSWORD": "test-only-grafana-admin"}
REGION_DBS = ("db-eu-central", "db-us-east", "db-cn-north", "db-ap-southeast")
SITES = ("de-munich", "fr-lyon", "us-detroit", "cn-shenzhen", "vn-hanoi", "sg-jurong")


@pytest.fixture(scope="module")
def raw() -> cc.Compose:
    return cc.load_raw()


@pytest.fixture
def compose(raw: cc.Compose) -> cc.Compose:
    """A fresh interpolated copy per test, so that tests may mutate it."""
    return cc.interpolate_tree(raw, TEST_ENV)


@pytest.fixture(scope="module")
def registry_data() -> dict[str, Any]:
    return cc.load_registry(cc.REPO_ROOT / "deploy" / "local" / "registry.yaml")


def _env(compose: cc.Compose, service: str = "ingest") -> dict[str, Any]:
    return compose["services"][service]["environment"]


# --- the real file ----------------------------------------------------------------------------------


def test_topology_has_the_expected_services(compose: cc.Compose) -> None:
    services = compose["services"]
    expected = {*REGION_DBS, "db-control", "mosquitto", "policy-bundle", "opa", "ingest", "ingest-2"}
    expected |= {"grafana", "prometheus"}
    expected |= {f"edge-{site}" for site in SITES}
    assert expected <= services.keys(), sorted(expected - services.keys())
    for name in REGION_DBS:
        assert services[name]["image"].startswith("timescale/timescaledb:")
        assert cc.environment(services[name])["POSTGRES_DB"] == "telemetry"
    assert cc.environment(services["db-control"])["POSTGRES_DB"] == "control"
    assert services["mosquitto"]["image"].startswith("eclipse-mosquitto:2")
    assert services["opa"]["image"].startswith("openpolicyagent/opa:")
    assert cc.command(services["ingest"]) == ["ingest", "serve"]
    assert services["ingest"]["build"]["dockerfile"] == "deploy/docker/Dockerfile"
    assert services["edge-de-munich"]["build"]["dockerfile"] == "deploy/docker/Dockerfile.edge"
    assert services["policy-bundle"]["build"]["dockerfile"] == "deploy/docker/Dockerfile"
    assert services["grafana"]["image"].startswith("grafana/grafana-oss:")


def test_databases_run_with_the_wal_buffers_the_benchmark_measured(compose: cc.Compose) -> None:
    """The ingest benchmark runs devstack's PostgreSQL settings; production's databases get the same WAL
    buffers (over what the TimescaleDB image's timescaledb-tune would pick)."""
    from devstack.postgres import DEFAULT_SETTINGS

    wanted = DEFAULT_SETTINGS["wal_buffers"]
    for name in (*REGION_DBS, "db-control"):
        cmd = cc.command(compose["services"][name])
        assert cmd[:1] == ["postgres"] and f"wal_buffers={wanted}" in cmd, (name, cmd)


def test_databases_have_background_workers_for_their_jobs(compose: cc.Compose) -> None:
    """Each database server holds three databases with TimescaleDB (the image creates the extension in
    postgres, template1 and POSTGRES_DB) and one region store whose jobs may all run at once."""
    from ingest.store.timescale import worker_settings

    for name in (*REGION_DBS, "db-control"):
        cmd = cc.command(compose["services"][name])
        for key, value in worker_settings(databases=3, stores=1).items():
            assert f"{key}={value}" in cmd, (name, key, cmd)


@pytest.mark.parametrize(("image", "problem"), [
    ("timescale/timescaledb:2.31.2-pg18", None),
    ("timescale/timescaledb:2.28.4-pg15", None),
    ("timescale/timescaledb:2.28.3-pg15", "use 2.28.4 or later"),
    ("timescale/timescaledb:2.17.2-pg16", "use 2.31.2 or later"),
    ("timescale/timescaledb:2.32.0-pg18", "not a release known to run jobs"),
    ("timescale/timescaledb:latest-pg18", "pin a release"),
])
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
    assert "GRAFANA_READER_PASSWORD" not in cc.environment(compose["services"]["db-control"])


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
    broken["services"]["ingest"]["depend_on"] = broken["services"]["ingest"].pop("depends_on")
    broken["services"]["opa"]["healthcheck"]["start_perod"] = "5s"
    broken["services"]["mosquitto"]["restart"] = "sometimes"
    broken["servics"] = {}
    assert cc.check_keys(broken) == [
        "top level: unknown key 'servics'",
        "mosquitto: restart policy 'sometimes' is not one of ['always', 'no', 'on-failure', 'unless-stopped']",
        "opa: unknown healthcheck key 'start_perod'",
        "ingest: unknown service key 'depend_on'",
    ]


def test_check_all_is_clean_with_another_password(raw: cc.Compose) -> None:
    """DSNs follow POSTGRES_PASSWORD, datasources GRAFANA_READER_PASSWORD (no password hard-coded on one
    side only)."""
    env = {**TEST_ENV, "POSTGRES_PASSWORD": "s3cret-Pw_1", "GRAFANA_READER_PASSWORD": "other-Pw_2"}
    compose = cc.interpolate_tree(raw, env)
    assert cc.check_all(raw, compose) == []
    dsns = json.loads(_env(compose)["INGEST_REGION_DSNS"])
    assert all(":s3cret-Pw_1@" in dsn for dsn in dsns.values())


def test_ingest_settings_accept_the_compose_environment(
    compose: cc.Compose, registry_data: dict[str, Any], monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """The ingest's own pydantic-settings model loads each replica's environment."""
    from ingest.auth import tokens
    from ingest.config import IngestSettings

    # The bootstrap admin token is a Docker secret from the environment of `docker compose up`, mounted at
    # /run/secrets/admin_token; here a generated token in a file stands in for the mounted secret.
    assert compose["secrets"]["ingest-admin-token"] == {"environment": "INGEST_BOOTSTRAP_ADMIN_TOKEN"}
    stand_in = tmp_path / "admin_token"
    stand_in.write_text(tokens.generate().text + "\n")
    client_ids = set()
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
            settings = IngestSettings()  # type: ignore[call-arg]
        assert set(settings.region_dsns) == set(registry_data["regions"])
        assert settings.control_dsn.endswith("@db-control:5432/control")
        assert settings.policy_engine == "opa"
        assert settings.opa_url == "http://opa:8181"
        assert settings.policy_watch_s == 5.0  # how often each replica asks OPA for the bundle revision
        assert settings.environment == "production"
        assert settings.timescaledb == "on"
        assert settings.pseudonymization_key.get_secret_value() == TEST_KEY
        assert str(settings.registry_file) == "/etc/telemetry/registry.yaml"
        assert (settings.api_host, settings.api_port) == ("0.0.0.0", 8000)
        assert (settings.mqtt_host, settings.mqtt_port, settings.share_group) == ("mosquitto", 8883, "ingest")
        assert settings.mqtt_tls and str(settings.mqtt_ca_file) == "/run/secrets/mqtt/ca.crt"
        assert settings.mqtt_username == settings.mqtt_client_id
        client_ids.add(settings.mqtt_client_id)
    assert client_ids == {"ingest-1", "ingest-2"}


def test_mounted_registry_loads_with_the_ingest_loader(compose: cc.Compose) -> None:
    from ingest.registry import load_registry

    svc = compose["services"]["ingest"]
    path = cc.host_path(svc, cc.environment(svc)["INGEST_REGISTRY_FILE"], cc.REPO_ROOT)
    assert path is not None
    assert set(load_registry(path).regions) == {"eu-central", "us-east", "cn-north", "ap-southeast"}


def test_agent_configs_load_with_the_edge_agent_loader(compose: cc.Compose, tmp_path: Path) -> None:
    """Each agent config loads once the files its broker identity mount provides exist: they are
    generated here by the credentials job's own code and put where the mount's subpath points."""
    from broker.credentials import generate_for_registry
    from broker.identities import load_identities
    from edge_agent.config import load_config
    from ingest.registry import load_registry

    ca = tmp_path / "ca.crt"
    ca.write_text("-----BEGIN CERTIFICATE-----\nnot checked here\n-----END CERTIFICATE-----\n")
    out = tmp_path / "credentials"
    generate_for_registry(
        load_registry(cc.REPO_ROOT / "deploy/local/registry.yaml"),
        load_identities(cc.REPO_ROOT / "deploy/local/broker-identities.yaml"),
        out,
        ca_file=ca,
    )
    for name in cc.agent_services(compose):
        svc = compose["services"][name]
        path = cc.host_path(svc, "/etc/edge-agent/agent.yaml", cc.REPO_ROOT)
        assert path is not None, name
        secrets_mount = next(m for m in cc.mounts(svc) if m.source == "broker-credentials")
        text = path.read_text().replace(secrets_mount.target, str(out / secrets_mount.subpath))
        local = tmp_path / f"{name}.yaml"
        local.write_text(text)
        config = load_config(local)
        assert config.broker.host == "mosquitto"
        assert f"edge-{config.site_id}" == name
        assert str(config.state_dir) == "/var/lib/edge-agent"
        assert config.broker.username == config.gateway_id
        assert config.broker.secret() == (out / "identities" / config.gateway_id / "password").read_text().strip()


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


def _opa_args(compose: cc.Compose, change: Callable[[list[str]], list[str]]) -> None:
    compose["services"]["opa"]["command"] = change(list(compose["services"]["opa"]["command"]))


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


BROKEN: dict[str, tuple[Callable[[cc.Compose], object], str, str]] = {
    "ingest replica with another replica's secrets": (
        lambda c: _credentials_mount(c, "ingest-2").update(volume={"subpath": "identities/ingest-1"}),
        "broker_security",
        "ingest-2: INGEST_MQTT_CA_FILE is not in the identities/ingest-2 directory",
    ),
    "agent with another gateway's secrets": (
        lambda c: _credentials_mount(c, "edge-de-munich").update(volume={"subpath": "identities/fr-lyon-gw-01"}),
        "broker_security",
        "edge-de-munich: broker.password_file is not in the identities/de-munich-gw-01 directory",
    ),
    "ingest user name is not its client id": (
        lambda c: _env(c).update(INGEST_MQTT_USERNAME="ingest-2"),
        "broker_security",
        "differs from INGEST_MQTT_CLIENT_ID",
    ),
    "ingest over plain MQTT": (
        lambda c: _env(c).update(INGEST_MQTT_TLS="false"),
        "broker_security",
        "ingest: INGEST_MQTT_TLS is not true",
    ),
    "broker sees every identity's secret": (
        lambda c: _credentials_mount(c, "mosquitto").pop("volume"),
        "broker_security",
        "mosquitto: mount the broker/ directory",
    ),
    "broker starts before its credentials exist": (
        lambda c: c["services"]["mosquitto"].pop("depends_on"),
        "broker_security",
        "mosquitto: must depend_on broker-credentials",
    ),
    # name: (mutation, checker key, expected fragment of a problem)
    "unknown dependency": (
        lambda c: c["services"]["ingest"]["depends_on"].update({"db-mars": {"condition": "service_started"}}),
        "depends_on",
        "'db-mars' is not a defined service",
    ),
    "healthy wait without healthcheck": (
        lambda c: c["services"]["opa"].pop("healthcheck"),
        "depends_on",
        "opa has no healthcheck",
    ),
    "region missing from DSNs": (
        lambda c: _set_dsn(c, "cn-north", None),
        "ingest",
        "lacks regions of the registry: ['cn-north']",
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
        lambda c: _replace_in_dsns(c, "@db-ap-southeast:", "@db-cn-north:"),
        "ingest",
        "share database db-cn-north",
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
        lambda c: c["services"]["ingest"]["depends_on"].pop("db-cn-north"),
        "ingest",
        "uses db-cn-north (store of region cn-north) but does not depend_on it",
    ),
    "store waited for only started": (
        lambda c: c["services"]["ingest"]["depends_on"].update({"db-us-east": {"condition": "service_started"}}),
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
        lambda c: _env(c).update(INGEST_OPA_URL="http://opa:8282"),
        "ingest",
        "but opa listens on 8181",
    ),
    "MQTT port no listener serves": (
        lambda c: _env(c).update(INGEST_MQTT_PORT="1883"),
        "ingest",
        "but mosquitto listens on {8883}",
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
        lambda c: _env(c, "ingest-2").update(INGEST_MQTT_CLIENT_ID="ingest-1"),
        "ingest_replicas",
        "'ingest-1' is also used by ingest",
    ),
    "replicas in different groups": (
        lambda c: _env(c, "ingest-2").update(INGEST_SHARE_GROUP="other"),
        "ingest_replicas",
        "one non-empty",
    ),
    "floating latest tag": (
        lambda c: c["services"]["opa"].update(image="openpolicyagent/opa:latest"),
        "images",
        "floating tag latest",
    ),
    "untagged image": (lambda c: c["services"]["mosquitto"].update(image="eclipse-mosquitto"), "images", "has no tag"),
    "port on all interfaces": (
        lambda c: c["services"]["ingest"].update(ports=["8000:8000"]),
        "ports",
        "published on all interfaces",
    ),
    "long-syntax port on 0.0.0.0": (
        lambda c: c["services"]["opa"].update(ports=[{"target": 8181, "published": 8181, "host_ip": "0.0.0.0"}]),
        "ports",
        "published on all interfaces",
    ),
    "bind mount of a missing file": (
        lambda c: _mount(
            c, "ingest", "./deploy/local/registry.yaml", "./deploy/local/nope.yaml:/etc/telemetry/registry.yaml:ro"
        ),
        "mounts",
        "./deploy/local/nope.yaml does not exist",
    ),
    "writable bind mount": (
        lambda c: _mount(
            c, "mosquitto", "./broker/mosquitto.conf", "./broker/mosquitto.conf:/mosquitto/config/mosquitto.conf"
        ),
        "mounts",
        "is not read-only",
    ),
    "undeclared named volume": (
        lambda c: c["volumes"].pop("mosquitto-data"),
        "mounts",
        "'mosquitto-data' is not declared",
    ),
    "declared volume unused": (
        lambda c: c["volumes"].update({"orphan": None}),
        "mounts",
        "'orphan' is declared but no service uses it",
    ),
    "missing dockerfile": (
        lambda c: c["services"]["ingest"]["build"].update(dockerfile="deploy/docker/Nope"),
        "builds",
        "'deploy/docker/Nope' does not exist",
    ),
    "OPA loads policy/ directly (no revision)": (
        lambda c: c["services"]["opa"].update(
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
        lambda c: _mount(c, "opa", "policy-bundles", "mosquitto-data:/bundles:ro"),
        "opa",
        "no service builds the bundle /bundles/residency.tar.gz (volume mosquitto-data",
    ),
    "OPA starts before the bundle is built": (
        lambda c: c["services"]["opa"]["depends_on"].update({"policy-bundle": {"condition": "service_started"}}),
        "opa",
        "must depend_on policy-bundle with condition service_completed_successfully",
    ),
    "OPA can write the bundle volume": (
        lambda c: _mount(c, "opa", "policy-bundles", "policy-bundles:/bundles"),
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
    "OPA not a server": (lambda c: c["services"]["opa"].update(command=["run", "/policy/rego"]), "opa", "run --server"),
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
        lambda c: c["services"]["ingest-2"]["environment"].update(INGEST_API_PORT="8001"),
        "prometheus",
        "does not scrape the ingest replicas ['ingest-2:8001']",
    ),
    "Prometheus TSDB not on a volume": (
        lambda c: _mount(c, "prometheus", "prometheus-data", None),
        "prometheus",
        "the TSDB /prometheus is not on a named volume",
    ),
    "broker config not mounted": (
        lambda c: _mount(c, "mosquitto", "./broker/mosquitto.conf", None),
        "broker",
        "no existing config file",
    ),
    "broker persistence not on a volume": (
        lambda c: _mount(c, "mosquitto", "mosquitto-data", None),
        "broker",
        "is not on a named volume",
    ),
    "database without a volume": (
        lambda c: c["services"]["db-control"].pop("volumes"),
        "databases",
        "db-control: /var/lib/postgresql is not on a named volume",
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
