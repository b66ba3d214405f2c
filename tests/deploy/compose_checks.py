"""Checks of docker-compose.yml that need no Docker engine.

Every ``check_*`` function takes an *interpolated* compose mapping (see :func:`load_compose`) and the
directory that relative paths are resolved against, and returns a list of problems, each a sentence
naming the service and the key at fault. An empty list means the check passed. The tests feed them
both the real file and deliberately broken copies.
"""

from __future__ import annotations

import fnmatch
import json
import re
import shlex
import tomllib
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit

import yaml

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
    return data


def load_compose(env: Mapping[str, str], path: Path = COMPOSE_FILE) -> Compose:
    return interpolate_tree(load_raw(path), env)


# --- accessors --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Mount:
    kind: str  # "bind", "volume" (named) or "anonymous"
    source: str
    target: str
    read_only: bool


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
    """Published ports bind the host's loopback only; nothing uses the host network."""
    problems = []
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
)
DEFAULT_PGDATA = "/var/lib/postgresql/data"


def ingest_services(compose: Compose) -> list[str]:
    return services_running(compose, "ingest", "serve")


def ingest_registry(compose: Compose, root: Path) -> tuple[dict[str, Any] | None, list[str]]:
    """The registry file the (first) ingest service mounts, loaded from the host."""
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
    try:
        return load_registry(path), []
    except (ValueError, yaml.YAMLError) as exc:
        return None, [f"{names[0]}: registry {path}: {exc}"]


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
        if missing := sorted(regions - dsns.keys()):
            problems.append(f"{name}: INGEST_REGION_DSNS lacks regions of the registry: {missing}")
        if extra := sorted(dsns.keys() - regions):
            problems.append(f"{name}: INGEST_REGION_DSNS has regions not in the registry: {extra}")
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
    if opa.scheme != "http" or opa.hostname not in services:
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
    """Replicas share one subscription group but each has its own client id (its session)."""
    names = ingest_services(compose)
    envs = {name: environment(compose["services"][name]) for name in names}
    problems = []
    seen: dict[str, str] = {}
    for name, env in envs.items():
        client = env.get("INGEST_MQTT_CLIENT_ID", "")
        if client in seen:
            problems.append(f"{name}: INGEST_MQTT_CLIENT_ID {client!r} is also used by {seen[client]}")
        seen[client] = name
    groups = {env.get("INGEST_SHARE_GROUP", "") for env in envs.values()}
    if len(groups) > 1 or "" in groups:
        problems.append(f"ingest replicas must share one non-empty INGEST_SHARE_GROUP, found {sorted(groups)}")
    return problems


# --- OPA -------------------------------------------------------------------------------------------

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


def opa_services(compose: Compose) -> list[str]:
    return [n for n, s in _services(compose) if str(s.get("image", "")).startswith("openpolicyagent/opa")]


DATA_SUFFIXES = (".json", ".yaml", ".yml")


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


def _rego_data_refs(files: list[Path]) -> set[tuple[str, str]]:
    """(namespace, name) of every ``data.<namespace>.<name>`` reference in the Rego files."""
    refs: set[tuple[str, str]] = set()
    for path in files:
        refs |= set(re.findall(r"\bdata\.([A-Za-z_]\w*)\.([A-Za-z_]\w*)", path.read_text(encoding="utf-8")))
    return refs


def check_opa(compose: Compose, root: Path) -> list[str]:
    """OPA serves the repository's policy: every path it loads is bind-mounted from policy/, every
    data file there is loaded once, under a prefix (OPA puts all files of a directory at the same
    path), and the prefix is the one the Rego reads it at (``data.<namespace>.<file stem>``)."""
    names = opa_services(compose)
    if not names:
        return ["no openpolicyagent/opa service"]
    problems = []
    policy_root = (root / "policy").resolve()
    for name in names:
        svc = compose["services"][name]
        argv = command(svc)
        if argv[:1] != ["run"] or "--server" not in argv:
            problems.append(f"{name}: command must be `run --server ...`, got {argv}")
            continue
        loaded = opa_paths(argv)
        if not loaded:
            problems.append(f"{name}: loads no policy path")
        rego_files: list[Path] = []
        data_loaded: dict[Path, str] = {}
        mounted_dirs: set[Path] = set()
        for prefix, path in loaded:
            host = host_path(svc, path, root)
            if host is None:
                problems.append(f"{name}: policy path {path} is not bind-mounted from the repository")
                continue
            if not host.resolve().is_relative_to(policy_root):
                problems.append(f"{name}: policy path {path} comes from {host}, outside policy/")
                continue
            if not host.exists():
                problems.append(f"{name}: policy path {path} is mounted from {host}, which does not exist")
                continue
            for mount in mounts(svc):
                if mount.kind == "bind" and path.startswith(mount.target.rstrip("/") + "/"):
                    mounted_dirs.add((root / mount.source).resolve())
            files = sorted(host.rglob("*")) if host.is_dir() else [host]
            rego_files += [f for f in files if f.suffix == ".rego" and not f.name.endswith("_test.rego")]
            data = [f for f in files if f.suffix in DATA_SUFFIXES]
            if data and not prefix:
                problems.append(
                    f"{name}: {path} holds data files loaded without a prefix; OPA merges them all at "
                    f"the directory's path: {[f.name for f in data]}"
                )
            for f in data:
                if f.resolve() in data_loaded:
                    problems.append(f"{name}: data file {f.name} is loaded twice")
                data_loaded[f.resolve()] = prefix
        for directory in mounted_dirs:
            for f in sorted(directory.rglob("*")):
                if f.suffix in DATA_SUFFIXES and f.resolve() not in data_loaded:
                    problems.append(f"{name}: data file {f.relative_to(root)} is mounted but OPA does not load it")
        refs = _rego_data_refs(rego_files)
        for f, prefix in sorted(data_loaded.items()):
            if not prefix:
                continue
            expected = {f"{ns}.{stem}" for ns, stem in refs if stem == f.stem}
            if expected and prefix not in expected:
                problems.append(
                    f"{name}: {f.name} is loaded at data.{prefix}; the Rego reads data.{sorted(expected)[0]}"
                )
            elif not expected and prefix.rsplit(".", 1)[-1] != f.stem:
                problems.append(f"{name}: {f.name} is loaded at data.{prefix}, not under its file stem")
        test = " ".join(str(p) for p in (svc.get("healthcheck") or {}).get("test", []))
        if f":{opa_listen_port(svc)}/health" not in test:
            problems.append(f"{name}: healthcheck does not query /health on port {opa_listen_port(svc)}")
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


def mosquitto_conf_of(compose: Compose, name: str, root: Path) -> list[tuple[str, list[str]]] | None:
    path = host_path(compose["services"][name], MOSQUITTO_CONF_TARGET, root)
    if path is None or not path.is_file():
        return None
    return parse_mosquitto_conf(path.read_text(encoding="utf-8"))


def check_broker(compose: Compose, root: Path) -> list[str]:
    names = [n for n, s in _services(compose) if str(s.get("image", "")).startswith("eclipse-mosquitto")]
    if not names:
        return ["no eclipse-mosquitto service"]
    problems = []
    for name in names:
        svc = compose["services"][name]
        conf = mosquitto_conf_of(compose, name, root)
        if conf is None:
            problems.append(f"{name}: no existing config file is mounted at {MOSQUITTO_CONF_TARGET}")
            continue
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
        pgdata = env.get("PGDATA", DEFAULT_PGDATA).rstrip("/")
        if not any(m.kind == "volume" and m.target.rstrip("/") == pgdata for m in mounts(svc)):
            problems.append(f"{name}: {pgdata} is not on a named volume")
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
    have: dict[str, str] = {}
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
        argv = command(svc) or cmd
        program = argv[0] if argv else ""
        if program not in scripts:
            problems.append(f"{where}: command {program!r} is not a [project.scripts] entry of pyproject.toml")
            continue
        package = scripts[program].split(":")[0].split(".")[0]
        if package not in copied:
            problems.append(f"{where}: runs {program} ({scripts[program]}) but does not COPY {package}/")
        if "wire" not in copied:
            problems.append(f"{where}: does not COPY wire/ (the shared wire format)")
        wanted = EXTRA_OF_PROGRAM.get(program)
        if installed is None:
            problems.append(f"{where}: no `pip install .[extra]` found")
        elif wanted is not None and installed != {wanted}:
            problems.append(f"{where}: installs extras {sorted(installed)}; {program} needs exactly [{wanted}]")
        elif unknown := sorted(installed - extras):
            problems.append(f"{where}: installs unknown extras {unknown}")
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
    problems += check_databases(compose)
    if registry is not None:
        problems += check_agents(compose, root, registry)
    problems += check_dockerfiles(compose, root)
    return problems
