"""Checks of docker-compose.yml that need no Docker engine.

Every ``check_*`` function takes an *interpolated* compose mapping (see :func:`load_compose`) and the
directory that relative paths are resolved against, and returns a list of problems, each a sentence
naming the service and the key at fault. An empty list means the check passed. The tests feed them
both the real file and deliberately broken copies.

Besides the compose file they read what it mounts or builds from: the registry, the Dockerfiles,
pyproject.toml, broker/mosquitto.conf, the agents' configs, the Grafana provisioning files and dashboards,
the Prometheus config and the databases' init scripts. The OPA check parses the policy-bundle job's
command with the policy CLI's own argument parser (``policy.cli.build_parser``).
"""

from __future__ import annotations

import contextlib
import fnmatch
import io
import json
import posixpath
import re
import shlex
import tomllib
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit

import yaml

from broker.cells import BRIDGES_FILE
from broker.credentials import IDENTITIES_DIR
from ingest.cells.topology import Topology, load_checked
from ingest.registry import Registry

REPO_ROOT = Path(__file__).resolve().parents[2]
COMPOSE_FILE = REPO_ROOT / "docker-compose.yml"
LOOPBACK = {"127.0.0.1", "::1", "[::1]"}
CONDITIONS = {"service_started", "service_healthy", "service_completed_successfully"}
Compose = dict[str, Any]


# --- loading and interpolation ----------------------------------------------------------------------


class InterpolationError(ValueError):
    """A ``${VAR:?message}`` variable is unset, or an expression is malformed."""


_DOLLAR = re.compile(r"\$(?:(?P<escaped>\$)|\{(?P<braced>[^}]*)\}|(?P<named>[A-Za-z_][A-Za-z0-9_]*))")
_BRACED = re.compile(r"(?P<name>[A-Za-z_][A-Za-z0-9_]*)(?:(?P<op>:?[-?+])(?P<arg>.*))?", re.DOTALL)


def interpolate(value: str, env: Mapping[str, str]) -> str:
    """Compose's variable substitution: ``$$``, ``$VAR``, ``${VAR}``, ``${VAR[:]-default}``,
    ``${VAR[:]?message}`` and ``${VAR[:]+alternative}``."""

    def replace(match: re.Match[str]) -> str:
        if match.group("escaped"):
            return "$"
        if match.group("named"):
            return env.get(match.group("named"), "")
        expr = _BRACED.fullmatch(match.group("braced"))
        if expr is None:
            raise InterpolationError(f"invalid interpolation {match.group(0)!r}")
        name, op, arg = expr.group("name"), expr.group("op"), expr.group("arg") or ""
        current = env.get(name)
        missing = current is None or (op is not None and op.startswith(":") and current == "")
        if op in (":-", "-"):
            return arg if missing else str(current)
        if op in (":?", "?"):
            if missing:
                raise InterpolationError(f"required variable {name} is missing: {arg}")
            return str(current)
        if op in (":+", "+"):
            return "" if missing else arg
        return current or ""

    return _DOLLAR.sub(replace, value)


def interpolate_tree(node: Any, env: Mapping[str, str]) -> Any:
    """Interpolate every string value (not the keys) of a parsed compose document."""
    if isinstance(node, str):
        return interpolate(node, env)
    if isinstance(node, list):
        return [interpolate_tree(item, env) for item in node]
    if isinstance(node, dict):
        return {key: interpolate_tree(value, env) for key, value in node.items()}
    return node


def load_raw(path: Path = COMPOSE_FILE) -> Compose:
    """The compose file as YAML (anchors and ``<<`` merges resolved), before interpolation."""
    data = yaml.safe_load(path.read_text(encoding="utf-8"))
    if not isinstance(data, dict) or not isinstance(data.get("services"), dict):
        raise ValueError(f"{path}: not a compose file (no services mapping)")
    compose: dict[str, Any] = data
    return compose


def load_compose(env: Mapping[str, str], path: Path = COMPOSE_FILE) -> Compose:
    compose: Compose = interpolate_tree(load_raw(path), env)  # a mapping stays a mapping
    return compose


# --- accessors --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Mount:
    kind: str  # "bind", "volume" (named) or "anonymous"
    source: str
    target: str
    read_only: bool
    subpath: str = ""  # long syntax volume.subpath: only this directory of the volume is mounted


def mounts(service: Mapping[str, Any]) -> list[Mount]:
    result = []
    for entry in service.get("volumes") or []:
        if isinstance(entry, dict):
            kind = entry.get("type", "volume")
            source = str(entry.get("source", ""))
            result.append(
                Mount(
                    kind if source else "anonymous",
                    source,
                    str(entry.get("target", "")),
                    bool(entry.get("read_only", False)),
                    str((entry.get("volume") or {}).get("subpath", "")).strip("/"),
                )
            )
            continue
        parts = str(entry).split(":")
        if len(parts) == 1:
            result.append(Mount("anonymous", "", parts[0], False))
            continue
        source, target, options = parts[0], parts[1], parts[2].split(",") if len(parts) > 2 else []
        kind = "bind" if source.startswith((".", "/", "~")) else "volume"
        result.append(Mount(kind, source, target, "ro" in options))
    return result


def environment(service: Mapping[str, Any]) -> dict[str, str]:
    env = service.get("environment") or {}
    if isinstance(env, list):
        pairs = (item.split("=", 1) if "=" in item else (item, "") for item in env)
        return dict(pairs)
    return {key: "" if value is None else str(value) for key, value in env.items()}


def command(service: Mapping[str, Any]) -> list[str]:
    cmd = service.get("command") or []
    return shlex.split(cmd) if isinstance(cmd, str) else [str(part) for part in cmd]


def depends_on(service: Mapping[str, Any]) -> dict[str, str]:
    """Target service -> condition (the list form means ``service_started``)."""
    deps = service.get("depends_on") or {}
    if isinstance(deps, list):
        return dict.fromkeys(deps, "service_started")
    return {name: (spec or {}).get("condition", "service_started") for name, spec in deps.items()}


def host_path(service: Mapping[str, Any], container_path: str, root: Path) -> Path | None:
    """The host file behind ``container_path`` when a bind mount provides it (or a parent of it)."""
    for mount in mounts(service):
        if mount.kind != "bind":
            continue
        if container_path == mount.target or container_path.startswith(mount.target.rstrip("/") + "/"):
            rest = container_path[len(mount.target) :].lstrip("/")
            base = root / mount.source
            return base / rest if rest else base
    return None


def services_running(compose: Compose, program: str, subcommand: str) -> list[str]:
    return [name for name, svc in compose["services"].items() if command(svc)[:2] == [program, subcommand]]


def load_registry(path: Path) -> dict[str, Any]:
    data = yaml.safe_load(path.read_text(encoding="utf-8"))
    if not isinstance(data, dict) or not {"regions", "sites", "devices"} <= data.keys():
        raise ValueError(f"{path}: not a registry (needs regions, sites, devices)")
    return data


def _flag(argv: list[str], name: str) -> str | None:
    for i, arg in enumerate(argv):
        if arg == name and i + 1 < len(argv):
            return argv[i + 1]
        if arg.startswith(name + "="):
            return arg.split("=", 1)[1]
    return None


def _services(compose: Compose) -> Iterator[tuple[str, dict[str, Any]]]:
    yield from compose["services"].items()


# --- generic checks ---------------------------------------------------------------------------------


def check_builds(compose: Compose, root: Path) -> list[str]:
    problems = []
    for name, svc in _services(compose):
        build = svc.get("build")
        if build is None:
            if not svc.get("image"):
                problems.append(f"{name}: neither image nor build")
            continue
        if isinstance(build, str):
            build = {"context": build}
        context = root / build.get("context", ".")
        if not context.is_dir():
            problems.append(f"{name}: build.context {build.get('context')!r} is not a directory")
            continue
        dockerfile = context / build.get("dockerfile", "Dockerfile")
        if not dockerfile.is_file():
            problems.append(f"{name}: build.dockerfile {build.get('dockerfile')!r} does not exist")
    return problems


def check_mounts(compose: Compose, root: Path) -> list[str]:
    """Bind-mounted host paths exist and are read-only; named volumes are declared; no anonymous ones."""
    problems = []
    declared = set((compose.get("volumes") or {}).keys())
    used: set[str] = set()
    for name, svc in _services(compose):
        for mount in mounts(svc):
            if mount.kind == "bind":
                if not (root / mount.source).exists():
                    problems.append(f"{name}: bind mount source {mount.source} does not exist")
                if not mount.read_only:
                    problems.append(f"{name}: bind mount {mount.source} is not read-only (:ro)")
            elif mount.kind == "volume":
                used.add(mount.source)
                if mount.source not in declared:
                    problems.append(f"{name}: named volume {mount.source!r} is not declared under volumes")
            else:
                problems.append(f"{name}: anonymous volume at {mount.target} (use a named volume)")
    problems += [f"volumes: {vol!r} is declared but no service uses it" for vol in sorted(declared - used)]
    return problems


def check_depends_on(compose: Compose) -> list[str]:
    problems = []
    services = compose["services"]
    for name, svc in _services(compose):
        for target, condition in depends_on(svc).items():
            if target not in services:
                problems.append(f"{name}: depends_on {target!r} is not a defined service")
                continue
            if condition not in CONDITIONS:
                problems.append(f"{name}: depends_on {target} has unknown condition {condition!r}")
            if condition == "service_healthy" and not services[target].get("healthcheck"):
                problems.append(f"{name}: waits for {target} to be healthy but {target} has no healthcheck")
    return problems


_TAG = re.compile(r"^(?P<repo>[^@]+?)(?::(?P<tag>[\w][\w.-]{0,127}))?(?:@sha256:[0-9a-f]{64})?$")


def image_problem(image: str) -> str | None:
    match = _TAG.match(image)
    if match is None:
        return f"image {image!r} is not a valid reference"
    if "@sha256:" in image:
        return None
    tag = match.group("tag")  # a registry port ("host:5000/repo") cannot match: tags have no "/"
    if tag is None:
        return f"image {image!r} has no tag (pin one)"
    if tag == "latest":
        return f"image {image!r} uses the floating tag latest (pin a version)"
    return None


def check_images(compose: Compose) -> list[str]:
    problems = []
    for name, svc in _services(compose):
        if svc.get("image"):
            problem = image_problem(str(svc["image"]))
            if problem:
                problems.append(f"{name}: {problem}")
    return problems


def check_ports(compose: Compose) -> list[str]:
    """Published ports bind the host's loopback only, each host port once; nothing uses the host network."""
    problems = []
    published: dict[str, str] = {}
    for name, svc in _services(compose):
        if svc.get("network_mode") == "host":
            problems.append(f"{name}: network_mode host bypasses the loopback-only port policy")
        for port in svc.get("ports") or []:
            if isinstance(port, dict):
                host_ip = str(port.get("host_ip", ""))
            else:
                text = str(port)
                host_ip = text.rsplit(":", 2)[0] if text.count(":") >= 2 else ""
            if host_ip not in LOOPBACK:
                problems.append(f"{name}: port {port!r} is published on all interfaces (bind 127.0.0.1)")
            parts = str(port).rsplit(":", 2)
            host_port = str(port.get("published", "")) if isinstance(port, dict) else (parts[-2:-1] or [""])[0]
            where = f"{host_ip}:{host_port}"
            if host_port and where in published:
                problems.append(f"{name}: host port {where} is also published by {published[where]}")
            published.setdefault(where, name)
    return problems


def check_environment_types(raw: Compose) -> list[str]:
    """Compose rejects YAML booleans in environment mappings (on/off/true/yes must be quoted)."""
    problems = []
    for name, svc in raw["services"].items():
        env = svc.get("environment") or {}
        if isinstance(env, dict):
            problems += [
                f"{name}: environment {key}={value!r} is a YAML boolean; quote it"
                for key, value in env.items()
                if isinstance(value, bool)
            ]
    return problems


# fmt: off
SERVICE_KEYS = frozenset({
    "annotations", "attach", "blkio_config", "build", "cap_add", "cap_drop", "cgroup", "cgroup_parent",
    "command", "configs", "container_name", "cpu_count", "cpu_percent", "cpu_period", "cpu_quota",
    "cpu_rt_period", "cpu_rt_runtime", "cpu_shares", "cpus", "cpuset", "credential_spec", "depends_on",
    "deploy", "develop", "device_cgroup_rules", "devices", "dns", "dns_opt", "dns_search", "domainname",
    "entrypoint", "env_file", "environment", "expose", "extends", "external_links", "extra_hosts", "gpus",
    "group_add", "healthcheck", "hostname", "image", "init", "ipc", "isolation", "labels", "links",
    "logging", "mac_address", "mem_limit", "mem_reservation", "mem_swappiness", "memswap_limit",
    "network_mode", "networks", "oom_kill_disable", "oom_score_adj", "pid", "pids_limit", "platform",
    "ports", "post_start", "pre_stop", "privileged", "profiles", "pull_policy", "read_only", "restart",
    "runtime", "scale", "secrets", "security_opt", "shm_size", "stdin_open", "stop_grace_period",
    "stop_signal", "storage_opt", "sysctls", "tmpfs", "tty", "ulimits", "user", "userns_mode", "uts",
    "volumes", "volumes_from", "working_dir",
})
# fmt: on
TOP_LEVEL_KEYS = frozenset({"name", "services", "volumes", "networks", "configs", "secrets", "include", "version"})
HEALTHCHECK_KEYS = frozenset({"test", "interval", "timeout", "retries", "start_period", "start_interval", "disable"})
DEPENDS_ON_KEYS = frozenset({"condition", "restart", "required"})
RESTART_POLICIES = frozenset({"no", "always", "on-failure", "unless-stopped"})


def check_keys(raw: Compose) -> list[str]:
    """Keys are those of the Compose specification (catches typos such as ``depend_on``)."""
    problems = [
        f"top level: unknown key {key!r}" for key in raw if key not in TOP_LEVEL_KEYS and not key.startswith("x-")
    ]
    for name, svc in raw["services"].items():
        problems += [
            f"{name}: unknown service key {key!r}"
            for key in svc
            if key not in SERVICE_KEYS and not key.startswith("x-")
        ]
        problems += [
            f"{name}: unknown healthcheck key {key!r}"
            for key in svc.get("healthcheck") or {}
            if key not in HEALTHCHECK_KEYS
        ]
        deps = svc.get("depends_on") or {}
        if isinstance(deps, dict):
            for target, spec in deps.items():
                problems += [
                    f"{name}: unknown depends_on.{target} key {key!r}"
                    for key in spec or {}
                    if key not in DEPENDS_ON_KEYS
                ]
        restart = svc.get("restart")
        if restart is not None and str(restart).split(":")[0] not in RESTART_POLICIES:
            problems.append(f"{name}: restart policy {restart!r} is not one of {sorted(RESTART_POLICIES)}")
    return problems


def check_healthchecks(compose: Compose) -> list[str]:
    problems = []
    for name, svc in _services(compose):
        check = svc.get("healthcheck")
        if not check:
            continue
        test = check.get("test")
        if not isinstance(test, list) or not test or test[0] not in ("CMD", "CMD-SHELL", "NONE"):
            problems.append(f"{name}: healthcheck.test must be a list starting with CMD or CMD-SHELL")
    return problems


# --- the ingest ------------------------------------------------------------------------------------

INGEST_REQUIRED = (
    "INGEST_MQTT_HOST",
    "INGEST_MQTT_PORT",
    "INGEST_MQTT_CLIENT_ID",
    "INGEST_SHARE_GROUP",
    "INGEST_REGISTRY_FILE",
    "INGEST_REGION_DSNS",
    "INGEST_CONTROL_DSN",
    "INGEST_POLICY_ENGINE",
    "INGEST_OPA_URL",
    "INGEST_TIMESCALEDB",
    "INGEST_ENVIRONMENT",
    "INGEST_PSEUDONYMIZATION_KEY",
    "INGEST_API_HOST",
    "INGEST_API_PORT",
    "INGEST_TOPOLOGY_FILE",  # the production topology is residency cells (docs/cells.md): check_cells
    "INGEST_CELL",
)
DEFAULT_PGDATA = "/var/lib/postgresql/data"  # the postgres images up to PostgreSQL 17
PG18_VOLUME = "/var/lib/postgresql"  # 18+: PGDATA is /var/lib/postgresql/18/docker, under one mount here
# TimescaleDB releases whose background jobs run on the current PostgreSQL minors (18.7, 17.12, 16.16,
# 15.20): earlier patch releases fail every job there with `cannot drop portal "" while it is being set up`
# (TimescaleDB #11015, fixed in 2.27.3, 2.28.4 and 2.31.2); 2.32.0 supports PostgreSQL only up to 18.6.
TIMESCALEDB_JOB_FIX = {(2, 27): (2, 27, 3), (2, 28): (2, 28, 4), (2, 31): (2, 31, 2)}
_TIMESCALEDB_TAG = re.compile(r"^timescale/timescaledb:(\d+)\.(\d+)\.(\d+)-pg(\d+)$")


def pg_major(image: str) -> int | None:
    """The PostgreSQL major version of a timescale/timescaledb:X.Y.Z-pgNN or postgres:NN[...] image."""
    if m := _TIMESCALEDB_TAG.match(image):
        return int(m.group(4))
    if m := re.match(r"^postgres:(\d+)", image):
        return int(m.group(1))
    return None


def check_timescaledb_image(image: str) -> list[str]:
    """A pinned X.Y.Z-pgNN tag of a release whose jobs run on current PostgreSQL minors."""
    m = _TIMESCALEDB_TAG.match(image)
    if m is None:
        return [f"{image!r}: pin a release as timescale/timescaledb:X.Y.Z-pgNN"]
    version = (int(m.group(1)), int(m.group(2)), int(m.group(3)))
    fixed = TIMESCALEDB_JOB_FIX.get(version[:2])
    newest = max(TIMESCALEDB_JOB_FIX.values())
    if (fixed is None and version < newest) or (fixed is not None and version < fixed):
        want = ".".join(map(str, fixed or newest))
        return [
            f"{image!r}: TimescaleDB {'.'.join(map(str, version))} fails every background job on current "
            f"PostgreSQL minors; use {want} or later"
        ]
    if fixed is None and version[:2] > newest[:2]:
        return [
            f"{image!r}: not a release known to run jobs on current PostgreSQL minors "
            f"({', '.join('.'.join(map(str, v)) for v in TIMESCALEDB_JOB_FIX.values())})"
        ]
    return []


def ingest_services(compose: Compose) -> list[str]:
    return services_running(compose, "ingest", "serve")


def ingest_registry_path(compose: Compose, root: Path) -> tuple[Path | None, list[str]]:
    """The host file behind the (first) ingest service's INGEST_REGISTRY_FILE."""
    names = ingest_services(compose)
    if not names:
        return None, ["no service runs `ingest serve`"]
    svc = compose["services"][names[0]]
    inside = environment(svc).get("INGEST_REGISTRY_FILE", "")
    path = host_path(svc, inside, root) if inside else None
    if path is None:
        return None, [f"{names[0]}: INGEST_REGISTRY_FILE {inside!r} is not provided by a bind mount"]
    if not path.is_file():
        return None, [f"{names[0]}: registry {path} does not exist"]
    return path, []


def ingest_registry(compose: Compose, root: Path) -> tuple[dict[str, Any] | None, list[str]]:
    """The registry file the (first) ingest service mounts, loaded from the host."""
    path, problems = ingest_registry_path(compose, root)
    if path is None:
        return None, problems
    try:
        return load_registry(path), []
    except (ValueError, yaml.YAMLError) as exc:
        return None, [f"{ingest_services(compose)[0]}: registry {path}: {exc}"]


def _check_dsn(compose: Compose, who: str, label: str, dsn: str) -> tuple[list[str], str | None]:
    """The DSN names a database service of this file with that service's user, password and db."""
    parts = urlsplit(dsn)
    if parts.scheme not in ("postgresql", "postgres"):
        return [f"{who}: {label} {dsn!r} is not a postgresql:// DSN"], None
    host = parts.hostname or ""
    services = compose["services"]
    if host not in services:
        return [f"{who}: {label} host {host!r} is not a service of the compose file"], None
    problems = []
    db_env = environment(services[host])
    expected_user = db_env.get("POSTGRES_USER") or "postgres"
    if parts.port not in (None, 5432):
        problems.append(f"{who}: {label} port {parts.port} (postgres listens on 5432 in {host})")
    if parts.username != expected_user:
        problems.append(f"{who}: {label} user {parts.username!r} but {host} creates {expected_user!r}")
    if unquote(parts.password or "") != db_env.get("POSTGRES_PASSWORD", ""):
        problems.append(f"{who}: {label} password differs from {host}'s POSTGRES_PASSWORD")
    dbname = parts.path.lstrip("/")
    if dbname != (db_env.get("POSTGRES_DB") or expected_user):
        problems.append(f"{who}: {label} database {dbname!r} but {host} creates {db_env.get('POSTGRES_DB')!r}")
    return problems, host


def broker_listener_ports(compose: Compose, broker: str, root: Path) -> set[int] | None:
    conf = mosquitto_conf_of(compose, broker, root)
    if conf is None:
        return None
    return {int(args[0]) for directive, args in conf if directive == "listener" and args}


def opa_listen_port(service: Mapping[str, Any]) -> int:
    addr = _flag(command(service), "--addr") or _flag(command(service), "-a") or ":8181"
    return int(addr.rsplit(":", 1)[1])


def check_ingest(compose: Compose, root: Path) -> list[str]:
    names = ingest_services(compose)
    if not names:
        return ["no service runs `ingest serve`"]
    registry, problems = ingest_registry(compose, root)
    for name in names:
        problems += _check_one_ingest(compose, name, root, registry)
    return problems


def _check_one_ingest(compose: Compose, name: str, root: Path, registry: dict[str, Any] | None) -> list[str]:
    services = compose["services"]
    svc = services[name]
    env = environment(svc)
    deps = depends_on(svc)
    problems = [f"{name}: {key} is not set" for key in INGEST_REQUIRED if not env.get(key)]
    if problems:
        return problems

    def needs(host: str, condition: str, why: str) -> None:
        if host not in deps:
            problems.append(f"{name}: uses {host} ({why}) but does not depend_on it")
        elif condition == "service_healthy" and deps[host] != condition:
            problems.append(f"{name}: depends_on {host} should wait for service_healthy ({why})")

    # Region stores: one database service per region of the registry, each used by no other region.
    try:
        dsns = json.loads(env["INGEST_REGION_DSNS"])
    except json.JSONDecodeError as exc:
        return [*problems, f"{name}: INGEST_REGION_DSNS is not valid JSON: {exc}"]
    if not isinstance(dsns, dict) or not all(isinstance(v, str) for v in dsns.values()):
        return [*problems, f"{name}: INGEST_REGION_DSNS must be a JSON object of region -> DSN"]
    if registry is not None:
        regions = set(registry["regions"])
        if extra := sorted(dsns.keys() - regions):
            problems.append(f"{name}: INGEST_REGION_DSNS has regions not in the registry: {extra}")
        # Which of them: exactly the regions its cell hosts (check_cells, against the topology it mounts).
    region_hosts: dict[str, str] = {}
    for region, dsn in dsns.items():
        dsn_problems, host = _check_dsn(compose, name, f"INGEST_REGION_DSNS[{region}]", dsn)
        problems += dsn_problems
        if host is None:
            continue
        if host in region_hosts:
            problems.append(f"{name}: regions {region_hosts[host]} and {region} share database {host}")
        region_hosts[host] = region
        needs(host, "service_healthy", f"store of region {region}")
        if env["INGEST_TIMESCALEDB"] == "on":
            image = str(services[host].get("image", ""))
            if not image.startswith("timescale/timescaledb"):
                problems.append(f"{name}: INGEST_TIMESCALEDB=on but {host} runs {image!r}, not TimescaleDB")

    dsn_problems, control = _check_dsn(compose, name, "INGEST_CONTROL_DSN", env["INGEST_CONTROL_DSN"])
    problems += dsn_problems
    if control is not None:
        needs(control, "service_healthy", "control database")
        if control in region_hosts:
            problems.append(f"{name}: the control database {control} is also a region store")

    # Broker.
    broker = env["INGEST_MQTT_HOST"]
    if broker not in services:
        problems.append(f"{name}: INGEST_MQTT_HOST {broker!r} is not a service")
    else:
        needs(broker, "service_started", "MQTT broker")
        ports = broker_listener_ports(compose, broker, root)
        if ports is None:
            problems.append(f"{name}: cannot find the mosquitto.conf mounted into {broker}")
        elif int(env["INGEST_MQTT_PORT"]) not in ports:
            problems.append(f"{name}: INGEST_MQTT_PORT {env['INGEST_MQTT_PORT']} but {broker} listens on {ports}")

    # Policy engine.
    if env["INGEST_POLICY_ENGINE"] != "opa":
        problems.append(f"{name}: INGEST_POLICY_ENGINE is {env['INGEST_POLICY_ENGINE']!r}, expected opa")
    opa = urlsplit(env["INGEST_OPA_URL"])
    if opa.scheme != "http" or opa.hostname is None or opa.hostname not in services:
        problems.append(f"{name}: INGEST_OPA_URL {env['INGEST_OPA_URL']!r} is not http://<service>:<port>")
    else:
        needs(opa.hostname, "service_healthy", "policy engine")
        expected = opa_listen_port(services[opa.hostname])
        if (opa.port or 80) != expected:
            problems.append(f"{name}: INGEST_OPA_URL port {opa.port or 80} but {opa.hostname} listens on {expected}")

    # Registry file.
    inside = env["INGEST_REGISTRY_FILE"]
    if host_path(svc, inside, root) is None:
        problems.append(f"{name}: INGEST_REGISTRY_FILE {inside} is not provided by a bind mount")

    # Mode, API and health.
    if env["INGEST_ENVIRONMENT"] != "production":
        problems.append(f"{name}: INGEST_ENVIRONMENT is {env['INGEST_ENVIRONMENT']!r}, expected production")
    if env["INGEST_API_HOST"] != "0.0.0.0":
        problems.append(f"{name}: INGEST_API_HOST must be 0.0.0.0 inside the container to be published")
    api_port = env["INGEST_API_PORT"]
    test = " ".join(str(part) for part in (svc.get("healthcheck") or {}).get("test", []))
    if f":{api_port}/api/v1/health" not in test:
        problems.append(f"{name}: healthcheck does not query :{api_port}/api/v1/health")
    for port in svc.get("ports") or []:
        target = str(port.get("target")) if isinstance(port, dict) else str(port).rsplit(":", 1)[-1]
        if target.split("/")[0] != api_port:
            problems.append(f"{name}: publishes container port {target} but the API listens on {api_port}")
    return problems


def check_ingest_replicas(compose: Compose) -> list[str]:
    """Replicas on one broker (a cell's) share one subscription group, but each has its own client id (its
    session on that broker); every broker's replicas use the same group name."""
    names = ingest_services(compose)
    envs = {name: environment(compose["services"][name]) for name in names}
    problems = []
    seen: dict[tuple[str, str], str] = {}
    for name, env in envs.items():
        key = (env.get("INGEST_MQTT_HOST", ""), env.get("INGEST_MQTT_CLIENT_ID", ""))
        if key in seen:
            problems.append(f"{name}: INGEST_MQTT_CLIENT_ID {key[1]!r} is also used by {seen[key]} on {key[0]}")
        seen[key] = name
    groups = {env.get("INGEST_SHARE_GROUP", "") for env in envs.values()}
    if len(groups) > 1 or "" in groups:
        problems.append(f"ingest replicas must share one non-empty INGEST_SHARE_GROUP, found {sorted(groups)}")
    return problems


# --- shell commands of a service ---------------------------------------------------------------------

SHELLS = frozenset({"sh", "bash", "ash", "dash"})


@dataclass(frozen=True)
class Commands:
    """The commands a service runs: its argv, or each simple command of its ``sh -c`` script."""

    argvs: list[list[str]]
    stops_on_error: bool  # a failing command stops the rest (one command; `sh -e`; `set -e`; only `&&`)
    script: bool  # the commands come from a shell script


def _script_commands(script: str) -> tuple[list[list[str]], bool]:
    """Simple commands of a shell script (lines, ``;``, ``&&``, ``||``, ``|``); whether only ``&&`` joins
    them (a new line is a ``;`` unless the previous one ended with ``&&``). Enough for the one-shot
    scripts of a compose file, not a shell parser."""
    argvs: list[list[str]] = []
    only_and = True
    joined = True  # the next command follows `&&` (or is the first)
    for line in script.replace("\\\n", " ").splitlines():
        lexer = shlex.shlex(line, posix=True, punctuation_chars=True)
        lexer.whitespace_split = True
        current: list[str] = []
        for token in lexer:
            if token in ("&&", ";", "||", "|", "&"):
                if current:
                    argvs.append(current)
                current = []
                joined = token == "&&"
                only_and = only_and and joined
            else:
                if not current and not joined:
                    only_and = False
                current.append(token)
                joined = True
        if current:
            argvs.append(current)
            joined = False
    return argvs, only_and


def service_commands(service: Mapping[str, Any]) -> Commands:
    entry = service.get("entrypoint")
    entrypoint = shlex.split(entry) if isinstance(entry, str) else [str(part) for part in entry or []]
    argv = [*entrypoint, *command(service)]
    if not argv or Path(argv[0]).name not in SHELLS:
        return Commands([argv] if argv else [], True, False)
    errexit, script = False, None
    for i, arg in enumerate(argv[1:], start=1):
        if arg.startswith("-") and not arg.startswith("--"):
            errexit = errexit or "e" in arg
            if "c" in arg:
                script = argv[i + 1] if i + 1 < len(argv) else ""
                break
    if script is None:
        return Commands([argv], True, False)
    argvs, only_and = _script_commands(script)
    # `sh -ec 'export X=...; exec "$@"' sh prog args`: the wrapped command is the positional arguments.
    positional = argv[argv.index(script) + 2 :] if script in argv else []
    argvs = [["exec", *positional] if a in (["exec", "$@"], ["$@"]) else a for a in argvs]
    errexit = errexit or any(a[:1] == ["set"] and any(o.startswith("-") and "e" in o for o in a[1:]) for a in argvs)
    argvs = [a for a in argvs if a[:1] != ["set"]]
    return Commands(argvs, errexit or only_and or len(argvs) <= 1, True)


PYTHONS = frozenset({"python", "python3"})


def python_module(argv: list[str]) -> tuple[str, list[str]] | None:
    """(module, arguments) of ``python -m module args...``, else None."""
    if len(argv) >= 3 and Path(argv[0]).name in PYTHONS and argv[1] == "-m":
        return argv[2], argv[3:]
    return None


def mount_of(service: Mapping[str, Any], container_path: str) -> tuple[Mount, str] | None:
    """The mount providing ``container_path`` (the deepest one) and the path inside it."""
    best: tuple[Mount, str] | None = None
    for mount in mounts(service):
        target = mount.target.rstrip("/")
        inside = container_path == target or container_path.startswith(target + "/")
        if inside and (best is None or len(target) > len(best[0].target.rstrip("/"))):
            best = (mount, container_path[len(target) :].lstrip("/"))
    return best


# --- images built from the repository's Dockerfiles ------------------------------------------------


@dataclass(frozen=True)
class ImageFacts:
    """What a service's own Dockerfile says about the filesystem it runs on."""

    workdir: str
    user: str | None
    copies: dict[str, Path]  # container path -> host source (COPY of one file or directory)
    owned_dirs: set[str]  # directories created and chown'ed by a RUN


def image_facts(service: Mapping[str, Any], root: Path) -> ImageFacts | None:
    build = service.get("build")
    if not build:
        return None
    build = {"context": build} if isinstance(build, str) else build
    context = root / build.get("context", ".")
    path = context / build.get("dockerfile", "Dockerfile")
    if not path.is_file():
        return None
    workdir, user = "/", None
    copies: dict[str, Path] = {}
    owned: set[str] = set()
    for keyword, args in parse_dockerfile(path):
        if keyword == "WORKDIR":
            workdir = posixpath.join(workdir, args.strip())
        elif keyword == "USER":
            user = args.split(":")[0]
        elif keyword in ("COPY", "ADD"):
            parts = [p for p in _exec_form(args) if not p.startswith("--")]
            sources, dest = parts[:-1], parts[-1]
            dest = posixpath.normpath(posixpath.join(workdir, dest))
            for source in sources:
                if any(ch in source for ch in "*?["):
                    continue
                host = context / source
                if host.is_dir() and len(sources) == 1:
                    copies[dest] = host  # a directory's contents land in dest
                elif host.is_file():
                    single = len(sources) == 1 and not parts[-1].endswith("/")
                    copies[dest if single else posixpath.join(dest, host.name)] = host
        elif keyword == "RUN" and "chown" in args:
            for chown in re.findall(r"chown\s+(?:-R\s+)?\S+((?:\s+/[^\s&;|]*)+)", args):
                owned |= {posixpath.normpath(p) for p in chown.split()}
    return ImageFacts(workdir, user, copies, owned)


def container_source(service: Mapping[str, Any], container_path: str, root: Path) -> Path | None:
    """The repository path behind ``container_path``: a bind mount, else what the Dockerfile COPYs there."""
    found = host_path(service, container_path, root)
    if found is not None:
        return found
    facts = image_facts(service, root)
    if facts is None:
        return None
    for dest, source in sorted(facts.copies.items(), key=lambda item: -len(item[0])):
        if container_path == dest or container_path.startswith(dest.rstrip("/") + "/"):
            rest = container_path[len(dest) :].lstrip("/")
            return source / rest if rest else source
    return None


# --- OPA and its policy bundle ---------------------------------------------------------------------

_OPA_VALUE_FLAGS = {
    "--ignore",
    "--addr",
    "-a",
    "--log-level",
    "-l",
    "--log-format",
    "--config-file",
    "-c",
    "--set",
    "--diagnostic-addr",
    "--tls-cert-file",
    "--tls-private-key-file",
    "--authentication",
    "--authorization",
}
BUNDLE_SUFFIXES = (".tar.gz", ".tgz")


def opa_services(compose: Compose) -> list[str]:
    return [n for n, s in _services(compose) if str(s.get("image", "")).startswith("openpolicyagent/opa")]


def opa_paths(argv: list[str]) -> list[tuple[str, str]]:
    """The (prefix, path) pairs OPA loads: positional arguments after ``run``, split like OPA's
    ``loader.SplitPrefix`` (``<dotted.path>:<file>``; the prefix is empty when absent)."""
    paths, skip = [], False
    for arg in argv[1:]:
        if skip:
            skip = False
        elif arg.startswith("-"):
            skip = arg in _OPA_VALUE_FLAGS
        elif "://" not in arg and ":" in arg and not arg.startswith(":"):
            prefix, path = arg.split(":", 1)
            paths.append((prefix, path))
        else:
            paths.append(("", arg))
    return paths


@dataclass
class BundleJob:
    """A service that runs ``python -m policy bundle``: where the bundle ends up, and what is wrong."""

    service: str
    argv: list[str]  # the `python -m policy bundle ...` command
    policy_dir: str  # inside the container
    out: str  # where the finished bundle is (after any `mv`), inside the container
    volume: str | None  # the named volume holding `out`
    path_in_volume: str | None
    problems: list[str]


def _policy_cli(argv: list[str]) -> tuple[str, list[str], Any] | None:
    """(subcommand, arguments, parsed namespace or None) of ``python -m policy <subcommand> ...``."""
    module = python_module(argv)
    if module is None or module[0] != "policy" or not module[1]:
        return None
    from policy.cli import build_parser  # the CLI's own parser: the compose file must use its real arguments

    try:
        with contextlib.redirect_stderr(io.StringIO()):
            parsed = build_parser().parse_args(module[1])
    except SystemExit:
        parsed = None
    return module[1][0], module[1], parsed


def _policy_dir_arg(args: list[str], workdir: str) -> str:
    """``--policy-dir`` as given, else the CLI's default: the package directory, i.e. ``<workdir>/policy``
    for ``python -m policy`` run from the directory the Dockerfile copied the package to."""
    value = _flag(args, "--policy-dir")
    if value is None:
        return posixpath.join(workdir, "policy")
    return value if value.startswith("/") else posixpath.normpath(posixpath.join(workdir, value))


def bundle_jobs(compose: Compose, root: Path) -> list[BundleJob]:
    """Every service running ``python -m policy bundle``, checked: the bundle is a .tar.gz of the
    repository's policy/, built after its Rego tests passed, left on a named volume the service may
    write, by a one-shot."""
    jobs = []
    policy_root = (root / "policy").resolve()
    for name, svc in _services(compose):
        cmds = service_commands(svc)
        facts = image_facts(svc, root)
        workdir = str(svc.get("working_dir") or (facts.workdir if facts else "/"))
        for index, argv in enumerate(cmds.argvs):
            cli = _policy_cli(argv)
            if cli is None or cli[0] != "bundle":
                continue
            _, args, parsed = cli
            problems: list[str] = []
            if parsed is None:
                problems.append(f"{name}: `{shlex.join(argv)}` is not valid for `python -m policy bundle --help`")
                jobs.append(BundleJob(name, argv, "", "", None, None, problems))
                continue
            out = str(parsed.out)
            out = out if out.startswith("/") else posixpath.normpath(posixpath.join(workdir, out))
            policy_dir = _policy_dir_arg(args, workdir)
            if getattr(parsed, "with_tests", False):
                problems.append(
                    f"{name}: --with-tests is the draft format of the ingest API; OPA should serve the policy "
                    "without its tests"
                )
            # Where the policy comes from.
            source = container_source(svc, policy_dir, root)
            if source is None or source.resolve() != policy_root:
                what = "nothing of the repository" if source is None else str(source)
                problems.append(f"{name}: bundles {policy_dir}, which is {what}, not the repository's policy/")
            # The Rego tests gate the bundle.
            tested = any(
                (c := _policy_cli(earlier)) is not None
                and c[0] == "test"
                and _policy_dir_arg(c[1], workdir) == policy_dir
                for earlier in cmds.argvs[:index]
            )
            if not tested:
                problems.append(
                    f"{name}: builds the bundle without running the Rego tests of {policy_dir} first "
                    "(python -m policy test --policy-dir ...): a failing policy would be published"
                )
            elif not cmds.stops_on_error:
                problems.append(
                    f"{name}: the script goes on when the Rego tests fail (run the shell with -e, or join with &&)"
                )
            # Renamed into place afterwards?
            written = out
            for later in cmds.argvs[index + 1 :]:
                operands = [a for a in later[1:] if not a.startswith("-")]
                if later[:1] == ["mv"] and len(operands) == 2 and operands[0] == out:
                    out = operands[1]
            if not written.endswith(BUNDLE_SUFFIXES):
                problems.append(
                    f"{name}: `python -m policy bundle` writes {written} as a directory, not a .tar.gz bundle "
                    "(a directory cannot be replaced atomically)"
                )
            where = mount_of(svc, out)
            volume = rel = None
            if where is None or where[0].kind != "volume":
                problems.append(f"{name}: writes the bundle to {out}, which is not on a named volume OPA can mount")
            else:
                mount, rel = where
                volume = mount.source
                if mount.read_only:
                    problems.append(f"{name}: the volume {volume} holding {out} is mounted read-only")
                if written != out:
                    first = mount_of(svc, written)
                    if first is None or first[0] != mount:
                        problems.append(
                            f"{name}: {written} and {out} are on different filesystems: the mv is not an atomic rename"
                        )
                if facts is not None and facts.user not in (None, "root", "0") and svc.get("user") is None:
                    target = mount.target.rstrip("/")
                    if target not in facts.owned_dirs:
                        problems.append(
                            f"{name}: runs as {facts.user} but its Dockerfile does not create and chown {target}: "
                            f"a new volume {volume} would be owned by root and not writable"
                        )
            restart = str(svc.get("restart", "no"))
            if restart not in ("no", "on-failure") and not restart.startswith("on-failure:"):
                problems.append(f"{name}: is a one-shot job; restart {restart!r} would run it again and again")
            jobs.append(BundleJob(name, argv, policy_dir, out, volume, rel, problems))
    return jobs


def check_opa(compose: Compose, root: Path) -> list[str]:
    """OPA serves the bundle that a one-shot service builds with ``python -m policy bundle`` from the
    repository's policy/: OPA runs ``--bundle`` (so the manifest's revision and roots count) and
    ``--watch`` (a rebuilt bundle is reloaded without a restart), reads it from the named volume the job
    writes, at the same path, read-only, and starts only after the job completed successfully. Loading
    policy/rego and policy/data directly is refused: decisions would carry no revision."""
    names = opa_services(compose)
    if not names:
        return ["no openpolicyagent/opa service"]
    problems: list[str] = []
    jobs = bundle_jobs(compose, root)
    for name in names:
        svc = compose["services"][name]
        argv = command(svc)
        if argv[:1] != ["run"] or "--server" not in argv:
            problems.append(f"{name}: command must be `run --server ...`, got {argv}")
            continue
        if not {"--bundle", "-b"} & set(argv):
            problems.append(f"{name}: runs without --bundle: the bundle's .manifest (revision, roots) would be ignored")
        if not {"--watch", "-w"} & set(argv):
            problems.append(f"{name}: runs without --watch: a rebuilt bundle would need an OPA restart")
        loaded = opa_paths(argv)
        if not loaded:
            problems.append(f"{name}: loads no bundle")
        for prefix, path in loaded:
            if prefix:
                problems.append(f"{name}: {prefix}:{path} has a prefix; a bundle's .manifest roots place its data")
            where = mount_of(svc, path)
            if where is None:
                problems.append(f"{name}: {path} is not provided by any mount")
                continue
            mount, rel = where
            if mount.kind == "bind":
                problems.append(
                    f"{name}: loads {path} straight from the repository ({mount.source}); serve the bundle "
                    "built by `python -m policy bundle` instead, or decisions carry no policy revision"
                )
                continue
            if mount.kind != "volume":
                problems.append(f"{name}: {path} is on an anonymous volume")
                continue
            if not mount.read_only:
                problems.append(f"{name}: the bundle volume {mount.source} is mounted writable; OPA only reads it")
            makers = [j for j in jobs if j.volume == mount.source and j.path_in_volume == rel]
            if not makers:
                written = sorted(f"{j.service} -> {j.volume}:{j.path_in_volume}" for j in jobs) or ["nothing"]
                problems.append(
                    f"{name}: no service builds the bundle {path} (volume {mount.source}, {rel}) with "
                    f"`python -m policy bundle`; bundle jobs write: {', '.join(written)}"
                )
            for job in makers:
                condition = depends_on(svc).get(job.service)
                if condition != "service_completed_successfully":
                    problems.append(
                        f"{name}: must depend_on {job.service} with condition service_completed_successfully "
                        f"(it has {condition or 'no dependency'}): OPA would start before the bundle exists"
                    )
        test = " ".join(str(p) for p in (svc.get("healthcheck") or {}).get("test", []))
        if f":{opa_listen_port(svc)}/health" not in test:
            problems.append(f"{name}: healthcheck does not query /health on port {opa_listen_port(svc)}")
    for job in jobs:
        problems += job.problems
    return problems


# --- Mosquitto -------------------------------------------------------------------------------------

MOSQUITTO_CONF_TARGET = "/mosquitto/config/mosquitto.conf"


def parse_mosquitto_conf(text: str) -> list[tuple[str, list[str]]]:
    """Directives in order, as (name, arguments); comments and blank lines dropped."""
    result = []
    for line in text.splitlines():
        stripped = line.strip()
        if stripped and not stripped.startswith("#"):
            name, *args = stripped.split()
            result.append((name, args))
    return result


def conf_values(conf: list[tuple[str, list[str]]], directive: str) -> list[str]:
    return [" ".join(args) for name, args in conf if name == directive]


@dataclass(frozen=True)
class MosquittoConf:
    """A broker service's configuration as Mosquitto reads it: the main file with every ``include_dir`` whose
    files come from the repository (bind mounts) expanded in place, in Mosquitto's order (alphabetical per
    directory), and the ``include_dir`` directories that a named volume provides (generated files)."""

    directives: list[tuple[str, list[str]]]
    generated: list[tuple[str, Mount, str]]  # (directory, its mount, the directory's path inside the mount)
    problems: list[str]


def _included_files(
    service: Mapping[str, Any], directory: str, root: Path
) -> tuple[list[Path], tuple[Mount, str] | None]:
    """Host files of the ``*.conf`` files that bind mounts put into ``directory``, and the named volume
    providing the directory itself, if one does."""
    directory = directory.rstrip("/")
    files: dict[str, Path] = {}
    volume = None
    found = mount_of(service, directory)
    if found is not None:
        mount, rel = found
        if mount.kind == "bind":
            host = root / mount.source / rel if rel else root / mount.source
            if host.is_dir():
                files |= {p.name: p for p in host.glob("*.conf")}
        elif mount.kind == "volume":
            volume = found
    for mount in mounts(service):  # single files mounted into the directory
        target = mount.target.rstrip("/")
        if mount.kind == "bind" and posixpath.dirname(target) == directory and target.endswith(".conf"):
            files[posixpath.basename(target)] = root / mount.source
    return [files[name] for name in sorted(files)], volume


def mosquitto_config(compose: Compose, name: str, root: Path) -> MosquittoConf | None:
    svc = compose["services"][name]
    path = host_path(svc, MOSQUITTO_CONF_TARGET, root)
    if path is None or not path.is_file():
        return None
    directives: list[tuple[str, list[str]]] = []
    generated: list[tuple[str, Mount, str]] = []
    problems: list[str] = []
    for directive, args in parse_mosquitto_conf(path.read_text(encoding="utf-8")):
        if directive != "include_dir":
            directives.append((directive, args))
            continue
        directory = " ".join(args)
        files, volume = _included_files(svc, directory, root)
        if volume is not None:
            generated.append((directory, *volume))
        elif not files:
            problems.append(f"{name}: include_dir {directory} is provided by no mount (Mosquitto would not start)")
        for file in files:
            if not file.is_file():
                continue  # reported by check_mounts
            for included in parse_mosquitto_conf(file.read_text(encoding="utf-8")):
                if included[0] == "include_dir":
                    problems.append(
                        f"{name}: {_rel(file, root)} uses include_dir, which Mosquitto allows only in the main file"
                    )
                else:
                    directives.append(included)
    return MosquittoConf(directives, generated, problems)


def mosquitto_conf_of(compose: Compose, name: str, root: Path) -> list[tuple[str, list[str]]] | None:
    """The directives a broker service runs with (see :class:`MosquittoConf`), or None without a config."""
    conf = mosquitto_config(compose, name, root)
    return None if conf is None else conf.directives


def broker_services(compose: Compose) -> list[str]:
    return [n for n, s in _services(compose) if str(s.get("image", "")).startswith("eclipse-mosquitto")]


def check_broker(compose: Compose, root: Path) -> list[str]:
    names = broker_services(compose)
    if not names:
        return ["no eclipse-mosquitto service"]
    problems = []
    for name in names:
        svc = compose["services"][name]
        config = mosquitto_config(compose, name, root)
        if config is None:
            problems.append(f"{name}: no existing config file is mounted at {MOSQUITTO_CONF_TARGET}")
            continue
        conf = config.directives
        problems += config.problems
        problems += [
            f"{name}: include_dir {directory} is on the volume {mount.source} mounted writable"
            for directory, mount, _ in config.generated
            if not mount.read_only
        ]
        listeners = {int(args[0]) for directive, args in conf if directive == "listener" and args}
        if not listeners:
            problems.append(f"{name}: the mounted config defines no listener")
        for port in svc.get("ports") or []:
            target = port.get("target") if isinstance(port, dict) else str(port).rsplit(":", 1)[-1]
            if int(str(target).split("/")[0]) not in listeners:
                problems.append(f"{name}: publishes port {target}, which no listener serves")
        if conf_values(conf, "persistence") == ["true"]:
            location = (conf_values(conf, "persistence_location") or [""])[-1].rstrip("/")
            volume_targets = {m.target.rstrip("/") for m in mounts(svc) if m.kind == "volume"}
            if location not in volume_targets:
                problems.append(f"{name}: persistence_location {location!r} is not on a named volume")
    return problems


# --- broker security: credentials job, broker files, each client's identity -----------------------

CREDENTIALS_MODULE = "broker"


@dataclass(frozen=True)
class CredentialsJob:
    service: str
    argv: list[str]  # its `python -m broker credentials ...` command
    volume: str  # the named volume it writes
    out: str  # --out inside the job
    out_in_volume: str  # where --out is inside that volume ("" for its root)
    identities: dict[str, Any] | None  # the parsed --identities file
    topology: Path | None  # --topology, the host file (residency cells: one directory per cell under --out)
    bridge_ca_file: str | None  # --bridge-ca-file: the bridges' CA as each cell's broker sees it
    problems: list[str]

    def dir_of(self, cell: str | None, *parts: str) -> str:
        """A directory the job writes, as a path inside its volume: ``<out>/[<cell>/]<parts>``."""
        return posixpath.join(self.out_in_volume, *([cell] if cell else []), *parts)


def credentials_jobs(compose: Compose, root: Path) -> list[CredentialsJob]:
    """Services that run ``python -m broker credentials --out <dir on a writable named volume>``."""
    jobs = []
    for name, svc in _services(compose):
        for argv in service_commands(svc).argvs:
            argv = argv[1:] if argv[:1] == ["exec"] else argv
            module = python_module(argv)
            if module is None or module[0] != CREDENTIALS_MODULE or module[1][:1] != ["credentials"]:
                continue
            problems: list[str] = []
            out = _flag(module[1], "--out") or _flag(module[1], "-o") or ""
            found = mount_of(svc, out)
            volume, out_in_volume = "", ""
            if found is None or found[0].kind != "volume" or found[0].read_only:
                problems.append(f"{name}: --out {out!r} is not on a writable named volume")
            else:
                volume, out_in_volume = found[0].source, posixpath.join(found[0].subpath, found[1]).strip("/")
            identities = None
            inside = _flag(module[1], "--identities")
            path = host_path(svc, inside, root) if inside else None
            if path is None or not path.is_file():
                problems.append(f"{name}: --identities {inside!r} is not a bind-mounted file")
            else:
                identities = yaml.safe_load(path.read_text(encoding="utf-8"))
            if "--ca-file" not in module[1]:
                problems.append(f"{name}: no --ca-file: clients would get no CA to verify the broker with")
            topology = None
            inside = _flag(module[1], "--topology")
            if inside is not None:
                topology = host_path(svc, inside, root)
                if topology is None or not topology.is_file():
                    problems.append(f"{name}: --topology {inside!r} is not a bind-mounted file of the repository")
                    topology = None
            jobs.append(
                CredentialsJob(
                    name,
                    argv,
                    volume,
                    out,
                    out_in_volume,
                    identities,
                    topology,
                    _flag(module[1], "--bridge-ca-file"),
                    problems,
                )
            )
    return jobs


def _secrets_dir(svc: Mapping[str, Any], path: str, volume: str) -> str | None:
    """The directory of ``volume`` (a path inside it) holding the file ``path`` of ``svc``; None when the file
    does not come from that volume."""
    found = mount_of(svc, path)
    if found is None or found[0].kind != "volume" or found[0].source != volume:
        return None
    return posixpath.dirname(posixpath.join(found[0].subpath, found[1]))


def check_broker_security(compose: Compose, root: Path) -> list[str]:
    """Every broker refuses anonymous clients and reads the files a credentials job writes for its cell (its
    own ``<cell>/broker/`` directory: dynamic-security file, TLS files and its bridges); every ingest replica
    and edge agent logs in over TLS as its own identity on its cell's broker, with that identity's files
    only."""
    jobs = credentials_jobs(compose, root)
    if len(jobs) != 1:
        return [f"expected one service running `python -m broker credentials`, found {len(jobs)}"]
    job = jobs[0]
    problems = list(job.problems)
    services = compose["services"]
    spec = job.identities if isinstance(job.identities, dict) else {}
    ingest_accounts = set(spec.get("ingest") or [])
    gateways = spec.get("gateways") or {}
    topology = None
    if job.topology is not None:
        cells, topology_problems = compose_topology(compose, root, job.topology)
        topology = cells.topology if cells else None
        if topology is None:
            return [*problems, *topology_problems]
        tls_peers = any(cell.broker.tls for cell in topology.cells.values())
        if tls_peers and job.bridge_ca_file is None:
            problems.append(
                f"{job.service}: no --bridge-ca-file: the bridges would verify their TLS peers with "
                f"{job.out}/<cell>/broker/ca.crt, a path of the job that no broker has"
            )

    def needs_job(name: str) -> None:
        if depends_on(services[name]).get(job.service) != "service_completed_successfully":
            problems.append(f"{name}: must depend_on {job.service} (service_completed_successfully)")

    def own_dir(name: str, what: str, path: str, expected: str) -> None:
        if _secrets_dir(services[name], path, job.volume) != expected:
            problems.append(f"{name}: {what} is not in the {expected} directory of {job.volume!r}")

    for name in broker_services(compose):
        config = mosquitto_config(compose, name, root)
        conf = config.directives if config else []
        if conf_values(conf, "allow_anonymous") != ["false"]:
            problems.append(f"{name}: the mounted config does not set allow_anonymous false")
        if conf_values(conf, "use_username_as_clientid") != ["true"]:
            problems.append(f"{name}: use_username_as_clientid true is missing (client ids could be taken over)")
        cell = None
        if topology is not None:
            cell = next((c for c, spec_ in topology.cells.items() if spec_.broker.host == name), None)
            if cell is None:
                problems.append(f"{name}: is the broker of no cell of {_rel(job.topology, root)}")  # type: ignore[arg-type]  # job.topology is set: a topology was loaded
                continue
        expected = job.dir_of(cell, "broker")
        for directive in ("plugin_opt_config_file", "cafile", "certfile", "keyfile"):
            values = conf_values(conf, directive)
            found = mount_of(services[name], values[-1]) if values else None
            if found is None or found[0].kind != "volume" or found[0].source != job.volume:
                problems.append(f"{name}: {directive} is not on the volume {job.volume!r} that {job.service} writes")
            elif found[0].subpath != expected or not found[0].read_only:
                problems.append(f"{name}: mount the {expected} directory of {job.volume!r} read-only, nothing else")
        if topology is not None and config is not None:
            # bridges.conf lies in the broker/ directory of its cell: it must be an include_dir of the broker
            bridges = posixpath.join(job.dir_of(cell), posixpath.dirname(BRIDGES_FILE))
            if not any(
                m.source == job.volume and posixpath.join(m.subpath, rel).rstrip("/") == bridges
                for _, m, rel in config.generated
            ):
                problems.append(
                    f"{name}: does not include_dir the directory of its bridges ({bridges}/"
                    f"{posixpath.basename(BRIDGES_FILE)} of {job.volume!r}): cell {cell}'s bridges "
                    "would not start"
                )
            if job.bridge_ca_file is not None:
                found = mount_of(services[name], job.bridge_ca_file)
                where = (found[0].source, posixpath.join(found[0].subpath, found[1])) if found else None
                if where != (job.volume, posixpath.join(expected, "ca.crt")):
                    problems.append(
                        f"{name}: --bridge-ca-file {job.bridge_ca_file} of {job.service} is not the "
                        f"{expected}/ca.crt of {job.volume!r} here: its bridges could not verify peers"
                    )
        needs_job(name)

    for name in ingest_services(compose):
        svc = services[name]
        env = environment(svc)
        user = env.get("INGEST_MQTT_USERNAME")
        if user not in ingest_accounts:
            problems.append(f"{name}: INGEST_MQTT_USERNAME {user!r} is not an ingest account of the identities file")
        if user != env.get("INGEST_MQTT_CLIENT_ID"):
            problems.append(
                f"{name}: INGEST_MQTT_USERNAME {user!r} differs from INGEST_MQTT_CLIENT_ID (the broker "
                "uses the user name as the client id)"
            )
        if env.get("INGEST_MQTT_TLS") != "true":
            problems.append(f"{name}: INGEST_MQTT_TLS is not true")
        expected = job.dir_of(env.get("INGEST_CELL") if topology is not None else None, IDENTITIES_DIR, str(user))
        own_dir(name, "INGEST_MQTT_CA_FILE", env.get("INGEST_MQTT_CA_FILE", ""), expected)
        script = " ".join(" ".join(a) for a in service_commands(svc).argvs)
        match = re.search(r"INGEST_MQTT_PASSWORD=\$\(cat (\S+)\)", script)
        if match is None or _secrets_dir(svc, match.group(1), job.volume) != expected:
            problems.append(f"{name}: INGEST_MQTT_PASSWORD is not read from {expected}/password of {job.volume!r}")
        needs_job(name)

    for name in agent_services(compose):
        svc = services[name]
        inside = _flag(command(svc), "--config")
        path = host_path(svc, inside, root) if inside else None
        if path is None or not path.is_file():
            continue  # reported by check_agents
        cfg = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
        broker = cfg.get("broker") or {}
        gw = cfg.get("gateway_id")
        if broker.get("username") != gw:
            problems.append(f"{name}: broker.username {broker.get('username')!r} is not the gateway_id {gw!r}")
        if gw not in gateways or (gateways[gw] or {}).get("site") != cfg.get("site_id"):
            problems.append(f"{name}: gateway {gw!r} of site {cfg.get('site_id')!r} is not in the identities file")
        tls = broker.get("tls") or {}
        if not tls.get("enabled"):
            problems.append(f"{name}: broker.tls.enabled is not true")
        cell = topology.cell_of_site(str(cfg.get("site_id"))) if topology is not None else None
        expected = job.dir_of(cell, IDENTITIES_DIR, str(gw))
        for key, value in (("password_file", broker.get("password_file")), ("tls.ca_file", tls.get("ca_file"))):
            own_dir(name, f"broker.{key}", str(value or ""), expected)
        needs_job(name)
    return problems


# --- residency cells --------------------------------------------------------------------------------


@dataclass(frozen=True)
class Cells:
    """The topology the compose file runs, checked like the ingest checks it at start."""

    path: Path
    topology: Topology
    registry: Registry


_CHECKED_TOPOLOGIES: dict[tuple[str, ...], tuple[Topology | None, Registry | None, str | None]] = {}


def _checked_topology(
    path: Path, registry_path: Path, policy_dir: Path
) -> tuple[Topology | None, Registry | None, str | None]:
    """``ingest.cells.topology.load_checked`` with the real policy (the ingest's own check at start), memoised
    on the files' contents: the policy engine takes a second to load and decide."""
    from ingest.errors import ConfigError
    from ingest.registry import load_registry as load_ingest_registry
    from policy import EmbeddedPolicyEngine, compute_revision

    key = (
        str(path),
        path.read_text(encoding="utf-8"),
        str(registry_path),
        registry_path.read_text(encoding="utf-8"),
        str(policy_dir),
        compute_revision(policy_dir),
    )
    if key not in _CHECKED_TOPOLOGIES:
        try:
            registry = load_ingest_registry(registry_path)
            engine = EmbeddedPolicyEngine.from_dir(policy_dir)
            _CHECKED_TOPOLOGIES[key] = (load_checked(path, registry, engine), registry, None)
        except ConfigError as exc:
            _CHECKED_TOPOLOGIES[key] = (None, None, str(exc))
    return _CHECKED_TOPOLOGIES[key]


def served_policy_dir(compose: Compose, root: Path) -> Path:
    """The repository directory of the policy that OPA serves: what the bundle job bundles."""
    for job in bundle_jobs(compose, root):
        source = container_source(compose["services"][job.service], job.policy_dir, root)
        if source is not None and source.is_dir():
            return source
    return root / "policy"


def compose_topology(compose: Compose, root: Path, path: Path) -> tuple[Cells | None, list[str]]:
    """The topology file at ``path`` loaded and checked against the ingest's registry and the policy OPA
    serves (every region hosted by one cell, every site served by one, each site's raw payload allowed in
    its cell's country: ``data.residency.raw_processing``)."""
    registry_path, problems = ingest_registry_path(compose, root)
    if registry_path is None:
        return None, problems
    topology, registry, error = _checked_topology(path, registry_path, served_policy_dir(compose, root))
    if topology is None or registry is None:
        return None, [f"topology: {error}"]
    return Cells(path, topology, registry), []


def ingest_topology(compose: Compose, root: Path) -> tuple[Cells | None, list[str]]:
    """The one topology file every ingest mounts (INGEST_TOPOLOGY_FILE), checked (:func:`compose_topology`)."""
    names = ingest_services(compose)
    if not names:
        return None, ["no service runs `ingest serve`"]
    problems: list[str] = []
    files: dict[Path, list[str]] = {}
    for name in names:
        svc = compose["services"][name]
        env = environment(svc)
        inside = env.get("INGEST_TOPOLOGY_FILE")
        if not inside or not env.get("INGEST_CELL"):
            problems.append(
                f"{name}: INGEST_TOPOLOGY_FILE and INGEST_CELL must be set: each ingest serves one "
                "residency cell (docs/cells.md)"
            )
            continue
        path = host_path(svc, inside, root)
        if path is None or not path.is_file():
            problems.append(f"{name}: INGEST_TOPOLOGY_FILE {inside} is not a bind-mounted file of the repository")
            continue
        files.setdefault(path.resolve(), []).append(name)
    if len(files) > 1:
        problems.append(
            "the ingests mount different topology files: "
            + "; ".join(f"{_rel(p, root)} ({', '.join(n)})" for p, n in sorted(files.items()))
        )
    if len(files) != 1:
        return None, problems
    cells, found = compose_topology(compose, root, next(iter(files)))
    return cells, problems + found


def _api_port(env: Mapping[str, str]) -> int:
    return int(env.get("INGEST_API_PORT") or 8000)


def _dsn_host(dsn: str) -> str:
    return urlsplit(dsn).hostname or ""


def ingest_uses(env: Mapping[str, str]) -> dict[str, str]:
    """The services an ingest's settings name: database, broker and OPA hosts -> what for."""
    uses = {env.get("INGEST_MQTT_HOST", ""): "broker", _dsn_host(env.get("INGEST_CONTROL_DSN", "")): "control store"}
    try:
        dsns = json.loads(env.get("INGEST_REGION_DSNS", "{}"))
    except json.JSONDecodeError:
        dsns = {}
    if isinstance(dsns, dict):
        uses |= {_dsn_host(str(dsn)): f"store of region {region}" for region, dsn in dsns.items()}
    uses[urlsplit(env.get("INGEST_OPA_URL", "")).hostname or ""] = "policy engine"
    uses.pop("", None)
    return uses


def check_cells(compose: Compose, root: Path) -> list[str]:
    """The residency cells of the topology every ingest mounts, as the compose file runs them.

    - The topology passes the ingest's own start check with the real policy (``load_checked``), and the
      credentials job generates from that same file.
    - Its cells' broker and API addresses are the compose services: ``broker.host`` a Mosquitto service
      listening on ``broker.port`` (with TLS when ``tls``), ``api`` an ingest of that cell on its API port.
    - Every cell has an ingest; each ingest serves a cell of the file (INGEST_CELL) on that cell's broker,
      with INGEST_REGION_DSNS holding exactly the regions the cell hosts; a cell's replicas agree on their
      stores and OPA; no database or OPA is used by the ingests of two cells (a cell's stores and policy
      engine are its own).
    - Every agent connects to the broker of its site's cell.
    """
    cells, problems = ingest_topology(compose, root)
    jobs = credentials_jobs(compose, root)
    if cells is None:
        return problems
    where = _rel(cells.path, root)
    for job in jobs:
        if job.topology is None:
            problems.append(f"{job.service}: runs without --topology: one set of broker credentials for every cell")
        elif job.topology.resolve() != cells.path:
            problems.append(
                f"{job.service}: --topology {_rel(job.topology, root)} is not the topology the ingests mount ({where})"
            )
    topology = cells.topology
    services = compose["services"]
    envs = {name: environment(services[name]) for name in ingest_services(compose)}
    by_cell: dict[str, list[str]] = {}
    for name, env in envs.items():
        if env.get("INGEST_CELL") not in topology.cells:
            problems.append(
                f"{name}: INGEST_CELL {env.get('INGEST_CELL')!r} is not a cell of {where} ({sorted(topology.cells)})"
            )
        else:
            by_cell.setdefault(env["INGEST_CELL"], []).append(name)

    for cell_name, cell in sorted(topology.cells.items()):
        field = f"{where}: cells.{cell_name}"
        replicas = by_cell.get(cell_name, [])
        if not replicas:
            problems.append(f"cell {cell_name}: no ingest serves it (INGEST_CELL={cell_name})")
        broker = cell.broker
        conf = mosquitto_conf_of(compose, broker.host, root) if broker.host in broker_services(compose) else None
        if conf is None:
            problems.append(
                f"{field}.broker.host {broker.host!r} is not a Mosquitto service of the compose file "
                f"with a config ({broker_services(compose)})"
            )
        else:
            ports = {int(args[0]) for directive, args in conf if directive == "listener" and args}
            if broker.port not in ports:
                problems.append(f"{field}.broker.port {broker.port} but {broker.host} listens on {sorted(ports)}")
            if broker.tls != bool(conf_values(conf, "certfile")):
                problems.append(
                    f"{field}.broker.tls is {broker.tls} but {broker.host} "
                    f"{'serves TLS' if conf_values(conf, 'certfile') else 'has no TLS listener'}"
                )
        api = urlsplit(cell.api or "")
        if not cell.api:
            problems.append(f"{field}.api is not set (other cells query the cell there)")
        elif api.hostname not in replicas:
            problems.append(f"{field}.api {cell.api!r} is not an ingest of cell {cell_name} ({replicas})")
        elif (api.port or 80) != _api_port(envs[api.hostname]):
            problems.append(
                f"{field}.api {cell.api!r} but {api.hostname} serves its API on {_api_port(envs[api.hostname])}"
            )
        for name in replicas:
            env = envs[name]
            if env.get("INGEST_MQTT_HOST") != broker.host or env.get("INGEST_MQTT_PORT") != str(broker.port):
                problems.append(
                    f"{name}: INGEST_MQTT_HOST/PORT {env.get('INGEST_MQTT_HOST')}:"
                    f"{env.get('INGEST_MQTT_PORT')} is not cell {cell_name}'s broker "
                    f"{broker.host}:{broker.port}"
                )
            if (env.get("INGEST_MQTT_TLS") == "true") != broker.tls:
                problems.append(
                    f"{name}: INGEST_MQTT_TLS {env.get('INGEST_MQTT_TLS')!r} but cell {cell_name}'s "
                    f"broker tls is {broker.tls}"
                )
            try:
                regions = set(json.loads(env.get("INGEST_REGION_DSNS", "{}")))
            except (json.JSONDecodeError, TypeError):
                continue  # reported by check_ingest
            if regions != set(cell.regions):
                problems.append(
                    f"{name}: INGEST_REGION_DSNS has {sorted(regions)} but cell {cell_name} hosts "
                    f"exactly {sorted(cell.regions)}"
                )
        for other in replicas[1:]:
            for key in ("INGEST_REGION_DSNS", "INGEST_CONTROL_DSN", "INGEST_OPA_URL"):
                if _normalized(envs[other].get(key, "")) != _normalized(envs[replicas[0]].get(key, "")):
                    problems.append(f"{other}: {key} differs from {replicas[0]}'s (replicas of cell {cell_name})")

    users: dict[str, dict[str, str]] = {}  # database or OPA service -> cell -> an ingest of it
    for name, env in envs.items():
        for host, what in ingest_uses(env).items():
            if what != "broker" and env.get("INGEST_CELL") in topology.cells:
                users.setdefault(host, {}).setdefault(env["INGEST_CELL"], name)
    for host, of_cells in sorted(users.items()):
        if len(of_cells) > 1:
            problems.append(
                f"{host}: used by the ingests of cells {sorted(of_cells)} "
                f"({', '.join(sorted(of_cells.values()))}); a cell's stores and OPA are its own"
            )

    for name in agent_services(compose):
        svc = services[name]
        inside = _flag(command(svc), "--config")
        path = host_path(svc, inside, root) if inside else None
        if path is None or not path.is_file():
            continue  # reported by check_agents
        cfg = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
        site = str(cfg.get("site_id"))
        home = topology.cell_of_site(site)
        if home is None:
            problems.append(f"{name}: site {site} is served by no cell of {where}")
            continue
        want = topology.cells[home].broker
        agent_broker = cfg.get("broker") or {}
        if (agent_broker.get("host"), agent_broker.get("port")) != (want.host, want.port):
            problems.append(
                f"{name} ({path.name}): site {site} is served by cell {home}: its broker is "
                f"{want.host}:{want.port}, not {agent_broker.get('host')}:{agent_broker.get('port')}"
            )
        if bool((agent_broker.get("tls") or {}).get("enabled")) != want.tls:
            problems.append(
                f"{name} ({path.name}): broker.tls.enabled disagrees with cell {home}'s broker (tls {want.tls})"
            )
    return problems


def _normalized(value: str) -> Any:
    try:
        return json.loads(value)
    except json.JSONDecodeError:
        return value


# --- networks --------------------------------------------------------------------------------------


def service_networks(service: Mapping[str, Any]) -> set[str]:
    """The networks a service is attached to (``default`` without a ``networks`` key; none with a
    ``network_mode``: none, host or another service's are outside this check)."""
    if service.get("network_mode") is not None:
        return set()
    nets = service.get("networks")
    if nets is None:
        return {"default"}
    return set(nets) if isinstance(nets, list | dict) else set()


def use_edges(compose: Compose, root: Path) -> list[tuple[str, str, str]]:
    """(client service, server service, what for): every connection the configuration implies."""
    services = compose["services"]
    edges = []
    for name in ingest_services(compose):
        edges += [(name, host, what) for host, what in ingest_uses(environment(services[name])).items()]
    for name in agent_services(compose):
        inside = _flag(command(services[name]), "--config")
        path = host_path(services[name], inside, root) if inside else None
        if path is not None and path.is_file():
            cfg = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
            edges.append((name, str((cfg.get("broker") or {}).get("host")), "broker"))
    for name in grafana_services(compose):
        datasources, _ = grafana_datasources(services[name], root)
        for ds in datasources:
            address = _url_host_port(str(ds.get("url", "")), 5432)
            if address:
                edges.append((name, address[0], f"datasource {ds.get('name')!r}"))
    for name in prometheus_services(compose):
        for target in prometheus_targets(services[name], root):
            edges.append((name, target.rsplit(":", 1)[0], f"scrape target {target}"))
    cells, _ = ingest_topology(compose, root)
    if cells is not None:
        topology = cells.topology
        for source, target in sorted(topology.links(cells.registry)):
            edges.append(
                (topology.cells[source].broker.host, topology.cells[target].broker.host, f"bridge {source} -> {target}")
            )
        for name in ingest_services(compose):
            mine = environment(services[name]).get("INGEST_CELL")
            for cell_name, cell in sorted(topology.cells.items()):
                host = urlsplit(cell.api or "").hostname
                if cell_name != mine and host:
                    edges.append((name, host, f"API of cell {cell_name}"))
    return edges


def service_cells(compose: Compose, root: Path) -> dict[str, str]:
    """Service -> the cell it belongs to: ingests (INGEST_CELL), the databases and OPA they use, the cells'
    brokers, and the agents (their site's cell)."""
    cells, _ = ingest_topology(compose, root)
    if cells is None:
        return {}
    services = compose["services"]
    owner: dict[str, str] = {}
    for name in ingest_services(compose):
        env = environment(services[name])
        if env.get("INGEST_CELL") in cells.topology.cells:
            owner[name] = env["INGEST_CELL"]
            owner |= {host: env["INGEST_CELL"] for host in ingest_uses(env) if host in services}
    owner |= {cell.broker.host: c for c, cell in cells.topology.cells.items() if cell.broker.host in services}
    for name in agent_services(compose):
        inside = _flag(command(services[name]), "--config")
        path = host_path(services[name], inside, root) if inside else None
        if path is not None and path.is_file():
            home = cells.topology.cell_of_site(
                str((yaml.safe_load(path.read_text(encoding="utf-8")) or {}).get("site_id"))
            )
            if home is not None:
                owner[name] = home
    return owner


def check_networks(compose: Compose, root: Path) -> list[str]:
    """Networks are declared and used; every connection the configuration implies (stores, brokers, OPA,
    bridges between cells, scrape targets, datasources, the cells' APIs) joins services that share a
    network; a cell's databases and OPA share no network with another cell's services."""
    services = compose["services"]
    declared = set((compose.get("networks") or {}).keys())
    problems = []
    used: set[str] = set()
    for name, svc in _services(compose):
        for net in sorted(service_networks(svc) - {"default"}):
            used.add(net)
            if net not in declared:
                problems.append(f"{name}: network {net!r} is not declared under networks")
    problems += [f"networks: {net!r} is declared but no service uses it" for net in sorted(declared - used)]
    for client, server, what in use_edges(compose, root):
        if server not in services or client not in services:
            continue  # reported by the check of that connection
        if not service_networks(services[client]) & service_networks(services[server]):
            problems.append(f"{client}: cannot reach {server} ({what}): they share no network")
    owner = service_cells(compose, root)
    private = set(database_services(compose)) | set(opa_services(compose))
    for name in sorted(private & owner.keys()):
        mine = service_networks(services[name])
        for other, cell in sorted(owner.items()):
            if cell != owner[name] and (shared := mine & service_networks(services[other])):
                problems.append(
                    f"{name} (cell {owner[name]}) shares network {sorted(shared)} with {other} of cell "
                    f"{cell}: a cell's stores and policy engine are reachable from inside it only"
                )
    return problems


# --- databases -------------------------------------------------------------------------------------


def database_services(compose: Compose) -> list[str]:
    return [
        n
        for n, s in _services(compose)
        if str(s.get("image", "")).split(":")[0] in ("timescale/timescaledb", "postgres")
    ]


def check_databases(compose: Compose) -> list[str]:
    problems = []
    for name in database_services(compose):
        svc = compose["services"][name]
        env = environment(svc)
        if not env.get("POSTGRES_PASSWORD"):
            problems.append(f"{name}: POSTGRES_PASSWORD is empty")
        major = pg_major(str(svc.get("image", "")))
        pgdata = env.get("PGDATA", PG18_VOLUME if major is not None and major >= 18 else DEFAULT_PGDATA).rstrip("/")
        if not any(m.kind == "volume" and m.target.rstrip("/") == pgdata for m in mounts(svc)):
            problems.append(f"{name}: {pgdata} is not on a named volume")
        if (
            major is not None
            and major >= 18
            and "PGDATA" not in env
            and any(m.target.rstrip("/") == DEFAULT_PGDATA for m in mounts(svc))
        ):
            problems.append(
                f"{name}: PostgreSQL {major} images refuse a mount at {DEFAULT_PGDATA}; mount {PG18_VOLUME}"
            )
        if str(svc.get("image", "")).startswith("timescale/timescaledb"):
            problems += [f"{name}: {p}" for p in check_timescaledb_image(str(svc["image"]))]
        test = (svc.get("healthcheck") or {}).get("test", [])
        if "pg_isready" not in " ".join(str(p) for p in test):
            problems.append(f"{name}: healthcheck does not use pg_isready")
    return problems


# --- edge agents -----------------------------------------------------------------------------------

AGENT_STATE_DIR_KEY = "state_dir"


def agent_services(compose: Compose) -> list[str]:
    return services_running(compose, "edge-agent", "run")


def check_agent_config(cfg: Any, registry: Mapping[str, Any], compose: Compose, who: str) -> list[str]:
    """An agent config names a broker service and exactly the registry's devices of its site."""
    if not isinstance(cfg, dict):
        return [f"{who}: agent config is not a mapping"]
    problems = []
    site = cfg.get("site_id")
    sites = registry["sites"]
    if site not in sites:
        return [f"{who}: site_id {site!r} is not a site of the registry"]
    if cfg.get("country") != sites[site]["country"]:
        problems.append(f"{who}: country {cfg.get('country')!r} but the registry says {sites[site]['country']!r}")
    broker = cfg.get("broker") or {}
    host = broker.get("host")
    services = compose["services"]
    if host not in services or not str(services[host].get("image", "")).startswith("eclipse-mosquitto"):
        problems.append(f"{who}: broker.host {host!r} is not the mosquitto service")
    sources = cfg.get("sources") or []
    have: dict[Any, Any] = {}  # device_id -> machine, as the YAML has them
    for source in sources:
        if not isinstance(source, dict):
            problems.append(f"{who}: source {source!r} is not a mapping")
            continue
        device = source.get("device_id")
        if device in have:
            problems.append(f"{who}: device {device} is listed twice")
        have[device] = source.get("machine")
    want = {dev: spec["profile"] for dev, spec in registry["devices"].items() if spec["site"] == site}
    if missing := sorted(want.keys() - have.keys()):
        problems.append(f"{who}: lacks devices of site {site} in the registry: {missing}")
    if extra := sorted(have.keys() - want.keys()):
        problems.append(f"{who}: has devices that the registry does not place at {site}: {extra}")
    for device in sorted(want.keys() & have.keys()):
        if have[device] != want[device]:
            problems.append(f"{who}: {device} simulates {have[device]!r} but its profile is {want[device]!r}")
    if not cfg.get(AGENT_STATE_DIR_KEY):
        problems.append(f"{who}: no {AGENT_STATE_DIR_KEY}")
    return problems


def check_agents(compose: Compose, root: Path, registry: Mapping[str, Any]) -> list[str]:
    names = agent_services(compose)
    if not names:
        return ["no service runs `edge-agent run`"]
    problems = []
    covered: dict[str, str] = {}
    for name in names:
        svc = compose["services"][name]
        inside = _flag(command(svc), "--config")
        path = host_path(svc, inside, root) if inside else None
        if path is None or not path.is_file():
            problems.append(f"{name}: --config {inside!r} is not an existing bind-mounted file")
            continue
        try:
            cfg = yaml.safe_load(path.read_text(encoding="utf-8"))
        except yaml.YAMLError as exc:
            problems.append(f"{name}: {path} is not valid YAML: {exc}")
            continue
        problems += check_agent_config(cfg, registry, compose, f"{name} ({path.name})")
        if not isinstance(cfg, dict):
            continue
        site = cfg.get("site_id")
        if site in covered:
            problems.append(f"{name}: site {site} already has an agent ({covered[site]})")
        covered[str(site)] = name
        state = str(cfg.get(AGENT_STATE_DIR_KEY, "")).rstrip("/")
        if not any(m.kind == "volume" and m.target.rstrip("/") == state for m in mounts(svc)):
            problems.append(f"{name}: state_dir {state} is not on a named volume")
        broker = cfg.get("broker") or {}
        host = broker.get("host")
        if host not in depends_on(svc):
            problems.append(f"{name}: publishes to {host} but does not depend_on it")
        elif (ports := broker_listener_ports(compose, host, root)) is not None and broker.get("port") not in ports:
            problems.append(f"{name}: broker.port {broker.get('port')} but {host} listens on {sorted(ports)}")
    if missing := sorted(set(registry["sites"]) - covered.keys()):
        problems.append(f"sites without an edge agent: {missing}")
    return problems


# --- Dockerfiles -----------------------------------------------------------------------------------

# The pyproject extra each console script needs (the gateway image must not pull in the server).
EXTRA_OF_PROGRAM = {"ingest": "server", "edge-agent": "edge"}
# ... and of each package run as `python -m <package>` (the policy tools need regopy: server; the broker
# credentials tool loads the registry with the ingest's loader: server).
EXTRA_OF_PACKAGE = {"policy": "server", "ingest": "server", "edge_agent": "edge", "broker": "server"}
# Commands a one-shot script may run besides the project's programs.
SHELL_UTILITIES = frozenset(
    {
        "mv",
        "cp",
        "rm",
        "mkdir",
        "echo",
        "printf",
        "test",
        "[",
        "true",
        "chmod",
        "ls",
        "cat",
        "chown",
        "export",
        "dev-ca.sh",  # broker/dev-ca.sh (bash + openssl), copied into the image with broker/
    }
)
DOCKERIGNORE_REQUIRED = (".venv", ".git", "var", "tests")


def parse_dockerfile(path: Path) -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) pairs, continuation lines joined, comments dropped."""
    instructions, pending = [], ""
    for line in path.read_text(encoding="utf-8").splitlines():
        stripped = line.strip()
        if not stripped or stripped.startswith("#"):
            continue
        if stripped.endswith("\\"):
            pending += stripped[:-1] + " "
            continue
        full = pending + stripped
        pending = ""
        keyword, _, args = full.partition(" ")
        instructions.append((keyword.upper(), args.strip()))
    return instructions


def dockerignore(context: Path) -> list[str]:
    path = context / ".dockerignore"
    if not path.is_file():
        return []
    lines = (line.strip() for line in path.read_text(encoding="utf-8").splitlines())
    return [line.rstrip("/") for line in lines if line and not line.startswith("#")]


def _ignored(source: str, patterns: list[str]) -> bool:
    clean = source.strip("./") or "."
    return any(
        fnmatch.fnmatch(clean, pattern) or fnmatch.fnmatch(clean.split("/")[0], pattern)
        for pattern in patterns
        if not pattern.startswith("!")
    )


def _exec_form(args: str) -> list[str]:
    try:
        value = json.loads(args)
    except json.JSONDecodeError:
        return shlex.split(args)
    return [str(v) for v in value] if isinstance(value, list) else shlex.split(args)


def check_dockerfiles(compose: Compose, root: Path) -> list[str]:
    pyproject = tomllib.loads((root / "pyproject.toml").read_text(encoding="utf-8"))
    scripts: dict[str, str] = pyproject.get("project", {}).get("scripts", {})
    extras = set(pyproject.get("project", {}).get("optional-dependencies", {}))
    problems = []
    for name, svc in _services(compose):
        build = svc.get("build")
        if not build:
            continue
        build = {"context": build} if isinstance(build, str) else build
        context = root / build.get("context", ".")
        path = context / build.get("dockerfile", "Dockerfile")
        if not path.is_file():
            continue  # reported by check_builds
        where = f"{name} ({path.relative_to(root)})"
        ignore = dockerignore(context)
        for required in DOCKERIGNORE_REQUIRED:
            if required not in ignore:
                problems.append(f"{where}: .dockerignore of the context does not exclude {required}")
        instructions = parse_dockerfile(path)
        copied: set[str] = set()
        user, cmd, installed = None, [], None
        for keyword, args in instructions:
            if keyword == "FROM":
                image = args.split()[0]
                if problem := image_problem(image):
                    problems.append(f"{where}: FROM {problem}")
            elif keyword in ("COPY", "ADD"):
                parts = [p for p in _exec_form(args) if not p.startswith("--")]
                for source in parts[:-1]:
                    copied.add(source.strip("./").split("/")[0])
                    if any(ch in source for ch in "*?["):
                        continue
                    if not (context / source).exists():
                        problems.append(f"{where}: {keyword} source {source} does not exist")
                    elif _ignored(source, ignore):
                        problems.append(f"{where}: {keyword} source {source} is excluded by .dockerignore")
            elif keyword == "USER":
                user = args.split(":")[0]
            elif keyword == "CMD":
                cmd = _exec_form(args)
            elif keyword == "RUN" and (match := re.search(r"pip install [^&;]*\.\[([\w,-]+)\]", args)):
                installed = set(match.group(1).split(","))
        if user in (None, "root", "0"):
            problems.append(f"{where}: runs as root (add a USER)")
        cmds = service_commands(svc)
        argvs = cmds.argvs if (svc.get("command") or svc.get("entrypoint")) else [cmd]
        ran = False
        for argv in argvs:
            argv = argv[1:] if argv[:1] == ["exec"] else argv
            module = python_module(argv)
            if module is not None:
                program = f"python -m {module[0]}"
                package = module[0].split(".")[0]
                wanted = EXTRA_OF_PACKAGE.get(package)
                what = program
            elif argv and argv[0] in scripts:
                program = argv[0]
                package = scripts[program].split(":")[0].split(".")[0]
                wanted = EXTRA_OF_PROGRAM.get(program)
                what = f"{program} ({scripts[program]})"
            elif argv and cmds.script and Path(argv[0]).name in SHELL_UTILITIES:
                continue
            else:
                program = argv[0] if argv else ""
                problems.append(
                    f"{where}: command {program!r} is not a [project.scripts] entry of pyproject.toml "
                    "nor `python -m <package>`"
                )
                continue
            ran = True
            if package not in copied:
                problems.append(f"{where}: runs {what} but does not COPY {package}/")
            if installed is not None and wanted is not None and installed != {wanted}:
                problems.append(f"{where}: installs extras {sorted(installed)}; {program} needs exactly [{wanted}]")
        if not ran:
            continue
        if "wire" not in copied:
            problems.append(f"{where}: does not COPY wire/ (the shared wire format)")
        if installed is None:
            problems.append(f"{where}: no `pip install .[extra]` found")
        elif unknown := sorted(installed - extras):
            problems.append(f"{where}: installs unknown extras {unknown}")
    return problems


# --- Grafana ---------------------------------------------------------------------------------------

GRAFANA_PROVISIONING = "/etc/grafana/provisioning"
POSTGRES_DATASOURCE = "grafana-postgresql-datasource"  # the core plugin's id since Grafana 10 (was "postgres")
BUILTIN_DATASOURCES = frozenset({"-- Mixed --", "-- Grafana --", "-- Dashboard --"})
INITDB_DIR = "/docker-entrypoint-initdb.d"
# Scripts the TimescaleDB image ships in /docker-entrypoint-initdb.d (run in file-name order).
TIMESCALEDB_INITDB_SCRIPTS = ("000_install_timescaledb.sh", "001_timescaledb_tune.sh")
_ENV_REF = re.compile(r"^\$(?:\{(\w+)\}|(\w+)|__env\{(\w+)\})$")
_CREATE_ROLE = re.compile(r"\bCREATE\s+(?:ROLE|USER)\s+\"?(\w+)", re.I)


def _rel(path: Path, root: Path) -> Path:
    return path.relative_to(root) if path.is_relative_to(root) else path


def grafana_services(compose: Compose) -> list[str]:
    return [n for n, s in _services(compose) if str(s.get("image", "")).startswith("grafana/grafana")]


def _yaml_files(directory: Path) -> list[Path]:
    return sorted(p for p in directory.iterdir() if p.suffix in (".yaml", ".yml")) if directory.is_dir() else []


def _provisioning(svc: Mapping[str, Any], kind: str, root: Path) -> tuple[list[tuple[Path, Any]], list[str]]:
    """Parsed provisioning files of ``kind`` (datasources, dashboards) bind-mounted into Grafana."""
    inside = f"{GRAFANA_PROVISIONING}/{kind}"
    directory = host_path(svc, inside, root)
    if directory is None or not directory.is_dir():
        return [], [f"grafana: no directory of the repository is mounted at {inside}"]
    parsed, problems = [], []
    for path in _yaml_files(directory):
        try:
            doc = yaml.safe_load(path.read_text(encoding="utf-8"))
        except yaml.YAMLError as exc:
            problems.append(f"grafana: {_rel(path, root)} is not valid YAML: {exc}")
            continue
        if not isinstance(doc, dict) or doc.get("apiVersion") != 1:
            problems.append(f"grafana: {_rel(path, root)} lacks apiVersion: 1")
            continue
        parsed.append((path, doc))
    if not parsed and not problems:
        problems.append(f"grafana: {_rel(directory, root)} holds no provisioning file")
    return parsed, problems


def grafana_datasources(svc: Mapping[str, Any], root: Path) -> tuple[list[dict[str, Any]], list[str]]:
    files, problems = _provisioning(svc, "datasources", root)
    found: list[dict[str, Any]] = []
    for path, doc in files:
        entries = doc.get("datasources") or []
        if not isinstance(entries, list) or not all(isinstance(e, dict) for e in entries):
            problems.append(f"grafana: {_rel(path, root)}: datasources must be a list of mappings")
            continue
        found += entries
    return found, problems


def grafana_dashboards(svc: Mapping[str, Any], root: Path) -> tuple[dict[Path, Any], list[str]]:
    """Dashboard JSON files of every file provider, parsed, by host path."""
    files, problems = _provisioning(svc, "dashboards", root)
    dashboards: dict[Path, Any] = {}
    for path, doc in files:
        for provider in doc.get("providers") or []:
            if not isinstance(provider, dict) or provider.get("type", "file") != "file":
                continue
            inside = str((provider.get("options") or {}).get("path", ""))
            directory = host_path(svc, inside, root) if inside else None
            if directory is None or not directory.is_dir():
                problems.append(
                    f"grafana: provider {provider.get('name')!r} of {path.name} reads {inside!r}, "
                    "which no bind mount of the repository provides"
                )
                continue
            for json_path in sorted(directory.rglob("*.json")):
                try:
                    dashboards[json_path] = json.loads(json_path.read_text(encoding="utf-8"))
                except json.JSONDecodeError as exc:
                    problems.append(f"grafana: {_rel(json_path, root)} is not valid JSON: {exc}")
            if not any(p.is_relative_to(directory) for p in dashboards):
                problems.append(f"grafana: {_rel(directory, root)} holds no dashboard")
    return dashboards, problems


def initdb_roles(compose: Compose, db: str, root: Path) -> tuple[set[str], list[str]]:
    """Roles the init scripts mounted into ``db`` create, and problems with how they are mounted."""
    svc = compose["services"][db]
    roles: set[str] = set()
    problems = []
    image = str(svc.get("image", ""))
    for mount in mounts(svc):
        target = mount.target.rstrip("/")
        if target == INITDB_DIR:
            problems.append(
                f"{db}: mounts a directory over {INITDB_DIR}, hiding the image's own init scripts; mount files"
            )
            continue
        if posixpath.dirname(target) != INITDB_DIR:
            continue
        script = posixpath.basename(target)
        if image.startswith("timescale/timescaledb") and script <= TIMESCALEDB_INITDB_SCRIPTS[-1]:
            problems.append(f"{db}: {script} would run before the image's {', '.join(TIMESCALEDB_INITDB_SCRIPTS)}")
        if mount.kind == "bind" and (root / mount.source).is_file():
            roles |= set(_CREATE_ROLE.findall((root / mount.source).read_text(encoding="utf-8")))
    return roles, problems


def _url_host_port(url: str, default_port: int) -> tuple[str, int] | None:
    parts = urlsplit(url if "://" in url else f"tcp://{url}")
    if not parts.hostname:
        return None
    try:
        return parts.hostname, parts.port or default_port
    except ValueError:
        return None


def _listen_port(argv: list[str], flag: str, default: int) -> int:
    value = _flag(argv, flag)
    return int(value.rsplit(":", 1)[1]) if value and ":" in value else default


def check_grafana(compose: Compose, root: Path) -> list[str]:
    """Grafana: admin password set, no anonymous access; one PostgreSQL datasource per region store of
    the ingest (the compose service, its database, a role an init script of that database creates, the
    same password variable), Prometheus datasources on the prometheus service; dashboards reference only
    provisioned datasources or datasource variables of their own."""
    names = grafana_services(compose)
    if not names:
        return ["no grafana/grafana service"]
    services = compose["services"]
    problems: list[str] = []
    for name in names:
        svc = services[name]
        env = environment(svc)
        if not env.get("GF_SECURITY_ADMIN_PASSWORD"):
            problems.append(f"{name}: GF_SECURITY_ADMIN_PASSWORD is empty (Grafana would keep admin/admin)")
        if env.get("GF_AUTH_ANONYMOUS_ENABLED") != "false":
            problems.append(f'{name}: GF_AUTH_ANONYMOUS_ENABLED must be "false"')
        if env.get("GF_USERS_ALLOW_SIGN_UP", "false") != "false":
            problems.append(f'{name}: GF_USERS_ALLOW_SIGN_UP must be "false"')
        datasources, found = grafana_datasources(svc, root)
        problems += found
        uids: dict[str, str] = {}
        seen_names: set[str] = set()
        stores: dict[str, str] = {}  # database service -> datasource name
        deps = depends_on(svc)
        for ds in datasources:
            label = f"{name}: datasource {ds.get('name')!r}"
            uid, ds_type = str(ds.get("uid") or ""), str(ds.get("type") or "")
            if not uid:
                problems.append(f"{label} has no uid (dashboards reference datasources by uid)")
            elif uid in uids:
                problems.append(f"{label}: uid {uid!r} is also used by {uids[uid]!r}")
            uids[uid] = ds_type
            if ds.get("name") in seen_names:
                problems.append(f"{label}: name used twice")
            seen_names.add(str(ds.get("name")))
            if ds_type in ("postgres", POSTGRES_DATASOURCE):
                problems += _check_pg_datasource(compose, name, ds, label, root)
                target = _url_host_port(str(ds.get("url", "")), 5432)
                if target and target[0] in services:
                    if target[0] in stores:
                        problems.append(f"{label}: {target[0]} already has datasource {stores[target[0]]!r}")
                    stores[target[0]] = str(ds.get("name"))
                    if deps.get(target[0]) != "service_healthy":
                        problems.append(f"{name}: reads {target[0]} but does not depend_on it being healthy")
            elif ds_type == "prometheus":
                target = _url_host_port(str(ds.get("url", "")), 80)
                proms = prometheus_services(compose)
                if target is None or target[0] not in proms:
                    problems.append(f"{label}: url {ds.get('url')!r} is not a prometheus service")
                else:
                    port = _listen_port(command(services[target[0]]), "--web.listen-address", 9090)
                    if target[1] != port:
                        problems.append(f"{label}: port {target[1]} but {target[0]} listens on {port}")
        region_stores: dict[str, str] = {}  # every cell's ingests together: each region store once
        for ingest in ingest_services(compose):
            try:
                dsns = json.loads(environment(services[ingest]).get("INGEST_REGION_DSNS", "{}"))
            except json.JSONDecodeError:
                continue
            region_stores |= {region: _dsn_host(str(dsn)) for region, dsn in dsns.items()}
        for region, host in sorted(region_stores.items()):
            if host and host not in stores:
                problems.append(f"{name}: no PostgreSQL datasource for region {region} (store {host})")
        dashboards, found = grafana_dashboards(svc, root)
        problems += found
        for path, dashboard in dashboards.items():
            problems += check_dashboard_datasources(dashboard, uids, f"{name}: {path.name}")
    return problems


def _check_pg_datasource(compose: Compose, grafana: str, ds: Mapping[str, Any], label: str, root: Path) -> list[str]:
    services = compose["services"]
    problems = []
    if ds.get("type") != POSTGRES_DATASOURCE:
        problems.append(f"{label}: type {ds.get('type')!r}; Grafana 11 names the plugin {POSTGRES_DATASOURCE!r}")
    target = _url_host_port(str(ds.get("url", "")), 5432)
    if target is None or target[0] not in services or target[0] not in database_services(compose):
        return [*problems, f"{label}: url {ds.get('url')!r} is not a database service of the compose file"]
    host, port = target
    db_env = environment(services[host])
    json_data = ds.get("jsonData") or {}
    if port != 5432:
        problems.append(f"{label}: port {port} (postgres listens on 5432 in {host})")
    database = db_env.get("POSTGRES_DB") or db_env.get("POSTGRES_USER") or "postgres"
    if json_data.get("database") != database:
        problems.append(f"{label}: jsonData.database {json_data.get('database')!r} but {host} creates {database!r}")
    if not json_data.get("sslmode"):
        problems.append(f"{label}: jsonData.sslmode is not set")
    timescale = str(services[host].get("image", "")).startswith("timescale/timescaledb")
    if bool(json_data.get("timescaledb")) != timescale:
        problems.append(
            f"{label}: jsonData.timescaledb is {json_data.get('timescaledb')!r} but {host} runs "
            f"{services[host].get('image')!r}"
        )
    user = str(ds.get("user") or "")
    roles, found = initdb_roles(compose, host, root)
    problems += found
    if user == (db_env.get("POSTGRES_USER") or "postgres"):
        problems.append(f"{label}: reads as {user!r}, the owner of the store's tables (use a read-only role)")
    elif user not in roles:
        problems.append(f"{label}: user {user!r} is not a role that an init script of {host} creates ({sorted(roles)})")
    password = str((ds.get("secureJsonData") or {}).get("password") or "")
    ref = _ENV_REF.match(password)
    if ref is None:
        problems.append(f"{label}: secureJsonData.password is not an environment reference like ${{VAR}}")
    else:
        var = next(g for g in ref.groups() if g)
        mine = environment(services[grafana]).get(var)
        theirs = db_env.get(var)
        if mine is None:
            problems.append(f"{label}: password variable {var} is not in {grafana}'s environment")
        elif theirs is None:
            problems.append(f"{label}: password variable {var} is not in {host}'s environment (the role's password)")
        elif mine != theirs:
            problems.append(f"{label}: password variable {var} differs between {grafana} and {host}")
    return problems


def dashboard_panels(dashboard: Mapping[str, Any]) -> Iterator[dict[str, Any]]:
    """Every panel, rows' nested panels included (collapsed rows keep theirs in ``panels``)."""
    for panel in dashboard.get("panels") or []:
        yield panel
        yield from dashboard_panels(panel)


def datasource_variables(dashboard: Mapping[str, Any]) -> dict[str, str]:
    """Name -> plugin type of the dashboard's datasource variables."""
    return {
        str(v.get("name")): str(v.get("query"))
        for v in (dashboard.get("templating") or {}).get("list") or []
        if v.get("type") == "datasource"
    }


def _ds_ref(ref: Any) -> tuple[str, str | None]:
    if isinstance(ref, dict):
        return str(ref.get("uid") or ""), (str(ref["type"]) if ref.get("type") else None)
    return str(ref or ""), None


def check_dashboard_datasources(dashboard: Mapping[str, Any], uids: Mapping[str, str], who: str) -> list[str]:
    """Every datasource reference (panels, targets, query variables) is a provisioned uid, a datasource
    variable of the dashboard (``$region``, ``${region}``) or a built-in; types agree."""
    variables = datasource_variables(dashboard)
    problems = []
    for var, plugin in variables.items():
        if plugin not in set(uids.values()):
            problems.append(f"{who}: datasource variable ${var} lists type {plugin!r}, which no datasource has")

    def check(ref: Any, where: str) -> str | None:
        uid, kind = _ds_ref(ref)
        if not uid:
            return None
        match = re.fullmatch(r"\$\{?(\w+)\}?", uid)
        if match:
            if match.group(1) not in variables:
                problems.append(f"{who}: {where} uses ${match.group(1)}, which is no datasource variable")
                return None
            expected = variables[match.group(1)]
        elif uid in BUILTIN_DATASOURCES:
            return uid
        elif uid not in uids:
            problems.append(f"{who}: {where} references datasource uid {uid!r}, which is not provisioned")
            return None
        else:
            expected = uids[uid]
        if kind is not None and kind != expected:
            problems.append(f"{who}: {where} says type {kind!r} for {uid!r}, which is a {expected!r}")
        return uid

    for var in (dashboard.get("templating") or {}).get("list") or []:
        if var.get("type") == "query" and check(var.get("datasource"), f"variable ${var.get('name')}") is None:
            problems.append(f"{who}: variable ${var.get('name')} has no usable datasource")
    for panel in dashboard_panels(dashboard):
        if panel.get("type") == "row":
            continue
        where = f"panel {panel.get('title')!r}"
        panel_uid = check(panel.get("datasource"), where)
        for target in panel.get("targets") or []:
            target_uid = check(target.get("datasource"), f"{where} target {target.get('refId')}")
            if target_uid is None and panel_uid in (None, "-- Mixed --"):
                problems.append(f"{who}: {where} target {target.get('refId')} has no datasource")
    return problems


# --- SQL of the dashboards -------------------------------------------------------------------------

_SQL_RELATION = re.compile(r"\b(?:FROM|JOIN)\s+(?!\()([A-Za-z_][\w.]*)", re.I)
_CTE = re.compile(r"(?:\bWITH|,)\s*([A-Za-z_]\w*)\s+AS\s*\(", re.I)


def sql_relations(sql: str) -> set[str]:
    """Relations a query reads (``FROM x`` / ``JOIN x``), its own CTEs left out. A regex: enough for
    dashboard queries, which name their tables plainly."""
    ctes = {c.lower() for c in _CTE.findall(sql)}
    return {r.lower() for r in _SQL_RELATION.findall(sql)} - ctes


_CREATED = re.compile(r"\bCREATE\s+(?:TABLE|(?:MATERIALIZED\s+)?VIEW)\s+(?:IF\s+NOT\s+EXISTS\s+)?([A-Za-z_]\w*)", re.I)
_RENAMED = re.compile(r"\bALTER\s+TABLE\s+(?:IF\s+EXISTS\s+)?([A-Za-z_]\w*)\s+RENAME\s+TO\s+([A-Za-z_]\w*)", re.I)
_DROPPED = re.compile(r"\bDROP\s+(?:TABLE|(?:MATERIALIZED\s+)?VIEW)\s+(?:IF\s+EXISTS\s+)?([A-Za-z_]\w*)", re.I)


def relations_created(statements: list[str]) -> set[str]:
    """Tables and views that a sequence of migrations leaves (created, renamed, dropped, in order)."""
    live: set[str] = set()
    for sql in statements:
        events = [(m.start(), "create", m.group(1).lower(), "") for m in _CREATED.finditer(sql)]
        events += [(m.start(), "rename", m.group(1).lower(), m.group(2).lower()) for m in _RENAMED.finditer(sql)]
        events += [(m.start(), "drop", m.group(1).lower(), "") for m in _DROPPED.finditer(sql)]
        for _, kind, name, new in sorted(events):
            if kind == "create":
                live.add(name)
            elif kind == "rename":
                live.discard(name)
                live.add(new)
            else:
                live.discard(name)
    return live


def dashboard_sql(dashboard: Mapping[str, Any]) -> Iterator[tuple[str, str]]:
    """(where, SQL) of every SQL target and SQL query variable of a dashboard."""
    for var in (dashboard.get("templating") or {}).get("list") or []:
        query = var.get("query")
        if var.get("type") == "query" and isinstance(query, dict):
            query = query.get("rawSql") or query.get("query")
        if var.get("type") == "query" and isinstance(query, str) and re.search(r"\bSELECT\b", query, re.I):
            yield f"variable ${var.get('name')}", query
    for panel in dashboard_panels(dashboard):
        for target in panel.get("targets") or []:
            if target.get("rawSql"):
                yield f"panel {panel.get('title')!r} target {target.get('refId')}", str(target["rawSql"])


def check_dashboard_sql(dashboard: Mapping[str, Any], relations: set[str], who: str) -> list[str]:
    return [
        f"{who}: {where} reads {rel!r}, which the region migrations do not create ({sorted(relations)})"
        for where, sql in dashboard_sql(dashboard)
        for rel in sorted(sql_relations(sql) - relations)
    ]


# --- Prometheus ------------------------------------------------------------------------------------

INGEST_METRICS_PATH = "/api/v1/metrics"  # the ingest API's Prometheus endpoint (tests/deploy checks the app)


def prometheus_services(compose: Compose) -> list[str]:
    images = ("prom/prometheus", "quay.io/prometheus/prometheus")
    return [n for n, s in _services(compose) if str(s.get("image", "")).startswith(images)]


def prometheus_config(service: Mapping[str, Any], root: Path) -> tuple[dict[str, Any] | None, str | None]:
    """The bind-mounted --config.file of a Prometheus service, parsed, or a problem."""
    inside = _flag(command(service), "--config.file") or "/etc/prometheus/prometheus.yml"
    path = host_path(service, inside, root)
    if path is None or not path.is_file():
        return None, f"--config.file {inside} is not a bind-mounted file of the repository"
    try:
        return yaml.safe_load(path.read_text(encoding="utf-8")) or {}, None
    except yaml.YAMLError as exc:
        return None, f"{_rel(path, root)} is not valid YAML: {exc}"


def prometheus_targets(service: Mapping[str, Any], root: Path) -> list[str]:
    config, _ = prometheus_config(service, root)
    return [
        t
        for job in (config or {}).get("scrape_configs") or []
        for sc in job.get("static_configs") or []
        for t in sc.get("targets") or []
    ]


def check_prometheus(compose: Compose, root: Path) -> list[str]:
    """Prometheus scrapes every ``ingest serve`` service at its API port and /api/v1/metrics, labelled with
    its cell (``cell``: the replica's INGEST_CELL), keeps its TSDB on a named volume and is not published
    beyond loopback (check_ports)."""
    problems: list[str] = []
    services = compose["services"]
    ingests = set(ingest_services(compose))
    expected = {f"{n}:{_api_port(environment(services[n]))}" for n in ingests}
    for name in prometheus_services(compose):
        svc = services[name]
        argv = command(svc)
        config, problem = prometheus_config(svc, root)
        if config is None:
            problems.append(f"{name}: {problem}")
            continue
        scraped: set[str] = set()
        for job in config.get("scrape_configs") or []:
            targets = {t for sc in job.get("static_configs") or [] for t in sc.get("targets") or []}
            ingest_targets = targets & expected
            if ingest_targets and job.get("metrics_path", "/metrics") != INGEST_METRICS_PATH:
                problems.append(
                    f"{name}: job {job.get('job_name')!r} scrapes the ingest at {job.get('metrics_path', '/metrics')}, "
                    f"not {INGEST_METRICS_PATH}"
                )
            for static in job.get("static_configs") or []:
                for target in sorted(set(static.get("targets") or []) & expected):
                    cell = environment(services[target.rsplit(":", 1)[0]]).get("INGEST_CELL")
                    label = (static.get("labels") or {}).get("cell")
                    if cell and label != cell:
                        problems.append(f"{name}: target {target} is labelled cell={label!r}, but it serves {cell!r}")
            for target in sorted(targets - expected):
                host = target.rsplit(":", 1)[0]
                if host in ingests:
                    problems.append(f"{name}: target {target} is not the API port of {host}")
                elif host not in services and host not in ("localhost", "127.0.0.1"):
                    problems.append(f"{name}: target {target} is not a service of the compose file")
            scraped |= ingest_targets
        if missing := sorted(expected - scraped):
            problems.append(f"{name}: does not scrape the ingest replicas {missing}")
        storage = (_flag(argv, "--storage.tsdb.path") or "/prometheus").rstrip("/")
        if not any(m.kind == "volume" and m.target.rstrip("/") == storage for m in mounts(svc)):
            problems.append(f"{name}: the TSDB {storage} is not on a named volume")
    return problems


# --- everything ------------------------------------------------------------------------------------


def check_all(raw: Compose, compose: Compose, root: Path = REPO_ROOT) -> list[str]:
    registry, problems = ingest_registry(compose, root)
    problems += check_keys(raw)
    problems += check_environment_types(raw)
    problems += check_builds(compose, root)
    problems += check_mounts(compose, root)
    problems += check_depends_on(compose)
    problems += check_images(compose)
    problems += check_ports(compose)
    problems += check_healthchecks(compose)
    problems += check_ingest(compose, root)
    problems += check_ingest_replicas(compose)
    problems += check_opa(compose, root)
    problems += check_broker(compose, root)
    problems += check_broker_security(compose, root)
    problems += check_databases(compose)
    if registry is not None:
        problems += check_agents(compose, root, registry)
    problems += check_dockerfiles(compose, root)
    problems += check_grafana(compose, root)
    problems += check_prometheus(compose, root)
    problems += check_cells(compose, root)
    problems += check_networks(compose, root)
    return problems
