"""Grafana and Prometheus of docker-compose.yml, without a Docker engine.

- The provisioning files parse and agree with the compose file (check_grafana / check_prometheus), and
  the checkers catch broken copies of them.
- The dashboard's SQL reads only relations that the region migrations create on both backends.
- Every SQL query of the dashboard runs, with Grafana's macros and variables expanded the way Grafana
  expands them, against a real PostgreSQL (devstack) region store migrated by the ingest, as the
  read-only role that deploy/compose/db/initdb/grafana-reader.sh creates *before* the migrations, on
  the plain path and on a TimescaleDB-shaped one (rollups as views with the continuous aggregates'
  query); the results are what the seeded rows say, and personal values never show.
- The Prometheus panels query metrics the ingest exports; Prometheus scrapes the API's metrics path.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import uuid
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import psycopg
import pytest
import yaml

from devstack import PostgresServer
from ingest.store import rollups, timescale
from ingest.store.migrate import migrate, migration_files
from tests.deploy import compose_checks as cc
from tests.deploy.test_compose import REGION_DBS, TEST_ENV

GRAFANA_DIR = cc.REPO_ROOT / "deploy" / "compose" / "grafana"
DASHBOARD = GRAFANA_DIR / "dashboards" / "region-stores.json"
INIT_SCRIPT = cc.REPO_ROOT / "deploy" / "compose" / "db" / "initdb" / "grafana-reader.sh"
READER = "grafana_reader"
READER_PASSWORD = "r3ad'only\"pw"  # quotes: the script must pass it as a psql variable, not paste it

# Seeded region store: readings every 10 s from 10:00 to 10:09:50 UTC on 2026-03-01.
T0 = datetime(2026, 3, 1, 10, 0, tzinfo=UTC)
WINDOW = (T0 - timedelta(minutes=5), T0 + timedelta(hours=1))
REVISION = "sha256:" + "ab" * 32
CNC, PRESS = "de-munich-cnc-01", "de-munich-press-01"
# device -> (field, category, numeric?)
FIELDS = {
    CNC: [
        ("spindle_speed", "machine", True),
        ("operator_badge", "personal", False),
        ("heart_rate", "sensitive_personal", True),
    ],
    PRESS: [("pressure", "machine", True)],
}
STEPS = 60


# --- the files and the compose file ----------------------------------------------------------------


@pytest.fixture(scope="module")
def compose() -> cc.Compose:
    return cc.load_compose(TEST_ENV)


@pytest.fixture(scope="module")
def dashboard() -> dict[str, Any]:
    loaded = json.loads(DASHBOARD.read_text(encoding="utf-8"))
    assert isinstance(loaded, dict)
    return loaded


@pytest.fixture(scope="module")
def datasources(compose: cc.Compose) -> list[dict[str, Any]]:
    found, problems = cc.grafana_datasources(compose["services"]["grafana"], cc.REPO_ROOT)
    assert problems == []
    return found


def test_provisioned_datasources_are_the_region_stores(compose: cc.Compose, datasources: list[dict[str, Any]]) -> None:
    pg = {ds["uid"]: ds for ds in datasources if ds["type"] == cc.POSTGRES_DATASOURCE}
    assert set(pg) == {f"region-{db.removeprefix('db-')}" for db in REGION_DBS}
    for uid, ds in pg.items():
        host = uid.replace("region-", "db-")
        assert ds["url"] == f"{host}:5432"
        assert ds["user"] == READER
        assert ds["jsonData"]["database"] == cc.environment(compose["services"][host])["POSTGRES_DB"] == "telemetry"
        assert ds["jsonData"]["timescaledb"] is True
        assert ds["jsonData"]["sslmode"] == "disable"
        assert ds["secureJsonData"]["password"] == "${GRAFANA_READER_PASSWORD}"
    (prom,) = [ds for ds in datasources if ds["type"] == "prometheus"]
    assert prom["url"] == "http://prometheus:9090"
    assert cc.check_grafana(compose, cc.REPO_ROOT) == []


def test_dashboard_files_are_provisioned(compose: cc.Compose, dashboard: dict[str, Any]) -> None:
    dashboards, problems = cc.grafana_dashboards(compose["services"]["grafana"], cc.REPO_ROOT)
    assert problems == []
    assert list(dashboards) == [DASHBOARD]
    assert dashboard["title"] == "Region stores"
    home = cc.environment(compose["services"]["grafana"])["GF_DASHBOARDS_DEFAULT_HOME_DASHBOARD_PATH"]
    assert cc.host_path(compose["services"]["grafana"], home, cc.REPO_ROOT) == DASHBOARD


def test_dashboard_references_only_provisioned_datasources(
    dashboard: dict[str, Any], datasources: list[dict[str, Any]]
) -> None:
    uids = {ds["uid"]: ds["type"] for ds in datasources}
    assert cc.check_dashboard_datasources(dashboard, uids, "dashboard") == []
    variables = {v["name"]: v for v in dashboard["templating"]["list"]}
    assert variables["region"]["type"] == "datasource"
    assert variables["region"]["query"] == cc.POSTGRES_DATASOURCE
    assert variables["region"]["current"]["value"] in uids
    assert variables["device"]["multi"] and variables["device"]["includeAll"]
    # the overview compares every region store; the region row follows $region
    panels = list(cc.dashboard_panels(dashboard))
    mixed = [p for p in panels if (p.get("datasource") or {}).get("uid") == "-- Mixed --"]
    assert len(mixed) == 1
    assert {t["datasource"]["uid"] for t in mixed[0]["targets"]} == {
        u for u, t in uids.items() if t == cc.POSTGRES_DATASOURCE
    }
    region_panels = [p for p in panels if (p.get("datasource") or {}).get("uid") == "${region}"]
    assert len(region_panels) >= 5
    broken = json.loads(json.dumps(dashboard))
    broken["panels"][1]["targets"][0]["datasource"]["uid"] = "region-mars"
    broken["panels"][-1]["datasource"]["uid"] = "${store}"
    broken["panels"][2]["targets"][0]["datasource"]["type"] = cc.POSTGRES_DATASOURCE
    problems = "\n".join(cc.check_dashboard_datasources(broken, uids, "dashboard"))
    assert "references datasource uid 'region-mars', which is not provisioned" in problems
    assert "uses $store, which is no datasource variable" in problems
    assert "says type 'grafana-postgresql-datasource' for 'prometheus-ingest', which is a 'prometheus'" in problems


@dataclass
class GrafanaCopy:
    """A writable copy of deploy/compose/grafana mounted (absolute paths) into a compose copy."""

    compose: cc.Compose
    root: Path

    @property
    def datasources_file(self) -> Path:
        return self.root / "provisioning" / "datasources" / "datasources.yaml"

    def edit_datasources(self, change: Any) -> None:
        doc = yaml.safe_load(self.datasources_file.read_text())
        change(doc["datasources"])
        self.datasources_file.write_text(yaml.safe_dump(doc))

    def problems(self) -> str:
        return "\n".join(cc.check_grafana(self.compose, cc.REPO_ROOT))


@pytest.fixture
def grafana_copy(tmp_path: Path) -> GrafanaCopy:
    shutil.copytree(GRAFANA_DIR, tmp_path / "grafana")
    compose = cc.load_compose(TEST_ENV)
    svc = compose["services"]["grafana"]
    svc["volumes"] = [
        v.replace("./deploy/compose/grafana", str(tmp_path / "grafana")) if v.startswith("./") else v
        for v in svc["volumes"]
    ]
    copy = GrafanaCopy(compose, tmp_path / "grafana")
    assert copy.problems() == ""
    return copy


def _by_uid(uid: str, change: Any) -> Any:
    def apply(entries: list[dict[str, Any]]) -> None:
        change(next(ds for ds in entries if ds.get("uid") == uid))

    return apply


DATASOURCE_BREAKS: dict[str, tuple[Any, str]] = {
    "wrong database": (
        _by_uid("region-us-east", lambda ds: ds["jsonData"].update(database="control")),
        "jsonData.database 'control' but db-us-east creates 'telemetry'",
    ),
    "store that is not a service": (
        _by_uid("region-cn-north", lambda ds: ds.update(url="db-cn-south:5432")),
        "url 'db-cn-south:5432' is not a database service",
    ),
    "region without a datasource": (
        lambda entries: entries.remove(next(ds for ds in entries if ds.get("uid") == "region-ap-southeast")),
        "no PostgreSQL datasource for region ap-southeast (store db-ap-southeast)",
    ),
    "two datasources on one store": (
        _by_uid("region-cn-north", lambda ds: ds.update(url="db-us-east:5432")),
        "db-us-east already has datasource",
    ),
    "reads as the owner": (
        _by_uid("region-eu-central", lambda ds: ds.update(user="telemetry")),
        "reads as 'telemetry', the owner of the store's tables",
    ),
    "unknown role": (
        _by_uid("region-eu-central", lambda ds: ds.update(user="grafana")),
        "user 'grafana' is not a role that an init script of db-eu-central creates (['grafana_reader'])",
    ),
    "password in the file": (
        _by_uid("region-eu-central", lambda ds: ds["secureJsonData"].update(password="hunter2")),
        "secureJsonData.password is not an environment reference",
    ),
    "password variable Grafana lacks": (
        _by_uid("region-eu-central", lambda ds: ds["secureJsonData"].update(password="${POSTGRES_PASSWORD}")),
        "password variable POSTGRES_PASSWORD is not in grafana's environment",
    ),
    "timescaledb off on a TimescaleDB store": (
        _by_uid("region-us-east", lambda ds: ds["jsonData"].update(timescaledb=False)),
        "jsonData.timescaledb is False but db-us-east runs",
    ),
    "old plugin id": (
        _by_uid("region-us-east", lambda ds: ds.update(type="postgres")),
        "Grafana 11 names the plugin 'grafana-postgresql-datasource'",
    ),
    "duplicate uid": (
        _by_uid("region-us-east", lambda ds: ds.update(uid="region-eu-central")),
        "uid 'region-eu-central' is also used by",
    ),
    "prometheus on the wrong port": (
        _by_uid("prometheus-ingest", lambda ds: ds.update(url="http://prometheus:9091")),
        "port 9091 but prometheus listens on 9090",
    ),
}


@pytest.mark.parametrize(("change", "expected"), DATASOURCE_BREAKS.values(), ids=DATASOURCE_BREAKS.keys())
def test_datasource_problems_are_reported(grafana_copy: GrafanaCopy, change: Any, expected: str) -> None:
    grafana_copy.edit_datasources(change)
    assert expected in grafana_copy.problems()


def test_provisioning_file_problems_are_reported(grafana_copy: GrafanaCopy) -> None:
    text = grafana_copy.datasources_file.read_text()
    grafana_copy.datasources_file.write_text(text.replace("apiVersion: 1", "apiVersion: 2"))
    assert "datasources.yaml lacks apiVersion: 1" in grafana_copy.problems()
    grafana_copy.datasources_file.write_text(text)
    dashboard = grafana_copy.root / "dashboards" / "region-stores.json"
    dashboard.write_text(dashboard.read_text()[:-10])
    assert "region-stores.json is not valid JSON" in grafana_copy.problems()
    provider = grafana_copy.root / "provisioning" / "dashboards" / "dashboards.yaml"
    provider.write_text(provider.read_text().replace("path: /etc/grafana/dashboards", "path: /var/lib/grafana/dash"))
    assert "reads '/var/lib/grafana/dash', which no bind mount of the repository provides" in grafana_copy.problems()


# --- the dashboard's SQL against the region migrations ----------------------------------------------


def _relations(backend: str) -> set[str]:
    return cc.relations_created([sql for _, sql in migration_files("region", backend)])  # type: ignore[arg-type]  # migration SQL is read from files, not a LiteralString


def test_migrations_create_the_relations_on_both_backends() -> None:
    plain, timescaledb = _relations("plain"), _relations("timescaledb")
    assert {"readings", "readings_1m", "readings_1h", "quarantine_payloads"} <= plain & timescaledb
    assert "readings_v1" not in plain  # renamed, then dropped by 0002
    assert "readings_default" in plain - timescaledb


def test_dashboard_sql_reads_only_relations_of_both_backends(dashboard: dict[str, Any]) -> None:
    common = _relations("plain") & _relations("timescaledb")
    sqls = list(cc.dashboard_sql(dashboard))
    assert len(sqls) >= 8  # 4 overview targets, 5 region panels, 2 variables
    assert cc.check_dashboard_sql(dashboard, common, "dashboard") == []
    read = set().union(*(cc.sql_relations(sql) for _, sql in sqls))
    assert read == {"readings", "readings_1m"}
    broken = json.loads(json.dumps(dashboard))
    broken["panels"][-1]["targets"][0]["rawSql"] = "WITH x AS (SELECT 1) SELECT * FROM readings_5m JOIN x ON true"
    assert cc.check_dashboard_sql(broken, common, "d") == [
        f"d: panel {broken['panels'][-1]['title']!r} target A reads 'readings_5m', which the region migrations "
        f"do not create ({sorted(common)})"
    ]


# --- running the dashboard's SQL -------------------------------------------------------------------

_MACRO = re.compile(r"\$__(\w+)\(([^()]*)\)")
_VARIABLE = re.compile(r"\$\{(\w+)(?::(\w+))?\}|\$(\w+)")


def grafana_interpolate(sql: str, variables: Mapping[str, Any], templating: list[dict[str, Any]]) -> str:
    """Grafana's expansion for SQL datasources: ``$__timeFilter(col)`` -> ``col BETWEEN '<from>' AND
    '<to>'`` (RFC 3339, UTC); a multi-value or include-All variable -> each value single-quoted, joined by
    commas; a single-value variable -> the raw value with quotes doubled. Unknown macros fail."""
    start, end = (t.strftime("%Y-%m-%dT%H:%M:%SZ") for t in WINDOW)

    def macro(match: re.Match[str]) -> str:
        name, arg = match.group(1), match.group(2).strip()
        if name == "timeFilter":
            return f"{arg} BETWEEN '{start}' AND '{end}'"
        if name == "timeFrom":
            return f"'{start}'"
        if name == "timeTo":
            return f"'{end}'"
        raise AssertionError(f"macro $__{name} is not expanded by this test")

    specs = {v["name"]: v for v in templating}

    def variable(match: re.Match[str]) -> str:
        name = match.group(1) or match.group(3)
        spec = specs[name]
        value = variables[name]
        if spec.get("multi") or spec.get("includeAll"):
            values = value if isinstance(value, list) else [value]
            return ",".join("'" + str(v).replace("'", "''") + "'" for v in values)
        return str(value).replace("'", "''")

    expanded = _VARIABLE.sub(variable, _MACRO.sub(macro, sql))
    assert "$" not in expanded, expanded
    return expanded


def _seed(conn: psycopg.Connection) -> dict[str, int]:
    """Readings of two devices (machine, personal text, sensitive numeric); returns rows per category."""
    counts: dict[str, int] = {}
    rows = []
    for device, fields in FIELDS.items():
        for step in range(STEPS):
            ts = T0 + timedelta(seconds=10 * step)
            for idx, (name, category, numeric) in enumerate(fields):
                num = float(step * (idx + 1)) if numeric else None
                txt = None if numeric else f"badge-{step % 3}"
                rows.append(
                    (device, step, idx, name, ts, "de-munich", "DE", category, num, txt, uuid.uuid4(), REVISION)
                )
                counts[category] = counts.get(category, 0) + 1
    with conn.cursor() as cur:
        cur.executemany(
            "INSERT INTO readings (device_id, seq, idx, name, ts, site_id, origin_country, category, num, txt,"
            " decision_id, policy_revision) VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s)",
            rows,
        )
    return counts


def _timescale_shaped(conn: psycopg.Connection) -> None:
    """Make the rollups what the TimescaleDB path has: views named readings_1m/readings_1h over readings,
    defined by the continuous aggregates' own query (time_bucket stubbed with TimescaleDB's alignment)."""
    conn.execute(
        "CREATE FUNCTION time_bucket(bucket_width interval, ts timestamptz) RETURNS timestamptz"
        " LANGUAGE sql IMMUTABLE AS $$ SELECT date_bin(bucket_width, ts, TIMESTAMPTZ '2000-01-03 00:00:00+00') $$"
    )
    for rollup in rollups.ROLLUPS:
        conn.execute(f"DROP TABLE {rollup.table}")
        conn.execute(f"CREATE VIEW {rollup.table} AS {timescale.continuous_aggregate_query(rollup)}")


@dataclass
class RegionStore:
    owner_dsn: str
    reader_dsn: str
    categories: dict[str, int]
    backend: str


def _run_init_script(pg: PostgresServer, dbname: str) -> subprocess.CompletedProcess[str]:
    env = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "POSTGRES_USER": "telemetry",
        "POSTGRES_DB": dbname,
        "GRAFANA_READER_PASSWORD": READER_PASSWORD,
        "PGHOST": "127.0.0.1",
        "PGPORT": str(pg.port),
    }
    return subprocess.run(["sh", str(INIT_SCRIPT)], env=env, capture_output=True, text=True, timeout=60)


@pytest.fixture(scope="module", params=["plain", "timescaledb-shaped"])
def store(request: pytest.FixtureRequest, pg_server: PostgresServer) -> Iterator[RegionStore]:
    """A region store as the compose deployment makes it: the init script first (empty database, as the
    image's entrypoint runs it), then the ingest's migrations as the owner, then data."""
    assert shutil.which("psql"), "psql is needed to run the init script"
    backend = str(request.param)
    dbname = f"grafana_{backend.replace('-', '_')}_{uuid.uuid4().hex[:6]}"
    owner_dsn = pg_server.create_database(dbname)
    for _ in range(2):  # safe to run again (by hand on an existing volume)
        proc = _run_init_script(pg_server, dbname)
        assert proc.returncode == 0, proc.stderr
    migrate(owner_dsn, "region", store="grafana-test", timescaledb="off")
    with psycopg.connect(owner_dsn, autocommit=True) as conn:
        if backend == "timescaledb-shaped":
            _timescale_shaped(conn)
        categories = _seed(conn)
        if backend == "plain":
            rollups.rebuild(conn)
    reader_dsn = f"postgresql://{READER}@127.0.0.1:{pg_server.port}/{dbname}"
    yield RegionStore(owner_dsn, reader_dsn, categories, backend)


def test_init_script_makes_a_read_only_role(store: RegionStore) -> None:
    with psycopg.connect(store.owner_dsn) as conn:
        row = conn.execute(
            "SELECT rolcanlogin, rolsuper, rolcreatedb, rolcreaterole, starts_with(rolpassword, 'SCRAM-SHA-256$')"
            " FROM pg_authid WHERE rolname = %s",
            (READER,),
        ).fetchone()
    assert row == (True, False, False, False, True)
    with psycopg.connect(store.reader_dsn, autocommit=True) as conn:
        assert conn.execute("SHOW default_transaction_read_only").fetchone() == ("on",)
        assert conn.execute("SHOW statement_timeout").fetchone() == ("30s",)
        # tables created after the script, by the migrations, are readable: default privileges
        assert conn.execute("SELECT count(*) FROM readings").fetchone()[0] > 0  # type: ignore[index]  # count(*) always answers a row
        with pytest.raises(psycopg.errors.ReadOnlySqlTransaction):
            conn.execute("DELETE FROM readings")
        conn.execute("SET default_transaction_read_only = off")  # a session may lift that; privileges stay
        with pytest.raises(psycopg.errors.InsufficientPrivilege):
            conn.execute("DELETE FROM readings")
        with pytest.raises(psycopg.errors.InsufficientPrivilege):
            conn.execute(
                "INSERT INTO quarantine_payloads (quarantine_id, topic, payload)"
                " VALUES (gen_random_uuid(), 't', '\\x00')"
            )
        with pytest.raises(psycopg.errors.InsufficientPrivilege):
            conn.execute("CREATE TABLE grafana_scratch (x int)")


def _query(store: RegionStore, sql: str) -> list[tuple[Any, ...]]:
    with psycopg.connect(store.reader_dsn) as conn:
        return conn.execute(sql).fetchall()


def _panel(dashboard: dict[str, Any], title_start: str) -> dict[str, Any]:
    (panel,) = [p for p in cc.dashboard_panels(dashboard) if str(p.get("title", "")).startswith(title_start)]
    return panel


def test_every_dashboard_query_runs_as_the_reader(store: RegionStore, dashboard: dict[str, Any]) -> None:
    templating = dashboard["templating"]["list"]
    variables = {"device": [CNC, PRESS], "metric": "spindle_speed"}
    ran = 0
    for where, sql in cc.dashboard_sql(dashboard):
        rows = _query(store, grafana_interpolate(sql, variables, templating))
        assert rows, f"{where} returned no rows on the seeded store ({store.backend})"
        ran += 1
    assert ran == len(list(cc.dashboard_sql(dashboard)))


def test_variables_list_devices_and_machine_fields(store: RegionStore, dashboard: dict[str, Any]) -> None:
    templating = {v["name"]: v for v in dashboard["templating"]["list"]}
    devices = _query(store, grafana_interpolate(templating["device"]["query"], {}, []))
    assert [d for (d,) in devices] == [CNC, PRESS]
    fields = _query(store, grafana_interpolate(templating["metric"]["query"], {}, []))
    assert [f for (f,) in fields] == ["pressure", "spindle_speed"]  # heart_rate is sensitive_personal


def test_panel_results_match_the_seeded_rows(store: RegionStore, dashboard: dict[str, Any]) -> None:
    templating = dashboard["templating"]["list"]
    variables = {"device": [CNC, PRESS], "metric": "spindle_speed"}

    def run(title: str) -> list[tuple[Any, ...]]:
        return _query(
            store, grafana_interpolate(_panel(dashboard, title)["targets"][0]["rawSql"], variables, templating)
        )

    numeric = sum(1 for fields in FIELDS.values() for _, _, is_num in fields if is_num) * STEPS
    per_minute = run("Numeric readings/s in")
    assert len(per_minute) == 10  # 10 one-minute buckets
    assert round(sum(float(rate) * 60 for _, rate in per_minute)) == numeric
    assert all(float(rate) == pytest.approx(3 * 6 / 60) for _, rate in per_minute)  # 3 numeric fields, 6 per minute
    assert dict(run("Rows per category")) == store.categories
    latest = run("Latest ")
    assert [(r[0], r[1], r[2]) for r in latest] == [(CNC, T0 + timedelta(seconds=10 * (STEPS - 1)), float(STEPS - 1))]
    averages = run("$metric per device")
    assert len(averages) == 10 and {r[1] for r in averages} == {CNC}
    assert averages[0][2] == pytest.approx(sum(range(6)) / 6)  # the first minute: steps 0..5 of spindle_speed
    assert run("Policy revisions") == [
        (REVISION, sum(store.categories.values()), T0, T0 + timedelta(seconds=10 * (STEPS - 1)))
    ]


def test_personal_values_never_show(store: RegionStore, dashboard: dict[str, Any]) -> None:
    """Even with $metric set by hand to a sensitive field (heart_rate: numeric, sensitive_personal), the
    value panels return nothing: values of non-machine fields stay behind the ingest API's region scope."""
    templating = dashboard["templating"]["list"]
    variables = {"device": [CNC, PRESS], "metric": "heart_rate"}
    for title in ("Latest ", "$metric per device"):
        sql = grafana_interpolate(_panel(dashboard, title)["targets"][0]["rawSql"], variables, templating)
        assert _query(store, sql) == [], title
    with psycopg.connect(store.owner_dsn) as conn:  # the rollup itself does hold them
        assert conn.execute("SELECT count(*) FROM readings_1m WHERE name = 'heart_rate'").fetchone()[0] > 0  # type: ignore[index]  # count(*) always answers a row


def test_interpolation_follows_grafana() -> None:
    templating: list[dict[str, Any]] = [{"name": "device", "multi": True}, {"name": "metric"}]
    sql = "SELECT 1 WHERE $__timeFilter(m.bucket) AND d IN ($device) AND n = '${metric}'"
    assert grafana_interpolate(sql, {"device": ["a", "o'b"], "metric": "it's"}, templating) == (
        "SELECT 1 WHERE m.bucket BETWEEN '2026-03-01T09:55:00Z' AND '2026-03-01T11:00:00Z'"
        " AND d IN ('a','o''b') AND n = 'it''s'"
    )
    with pytest.raises(AssertionError, match="timeGroup"):
        grafana_interpolate("SELECT $__timeGroup(ts)", {}, [])


# --- Prometheus ------------------------------------------------------------------------------------


def _exported_metrics() -> set[str]:
    import prometheus_client

    import ingest.cells.link  # registers the links' metrics
    import ingest.pipeline.stats  # noqa: F401  (registers the pipeline's metrics)
    from ingest.volumes import metrics as _volume_metrics  # noqa: F401  (registers the volume gauges)

    # A labelled counter has no sample before its first label value: name the series from the family.
    families = list(prometheus_client.REGISTRY.collect())
    names = {f.name + "_total" if f.type == "counter" else f.name for f in families}
    return names | {sample.name for f in families for sample in f.samples}


def test_prometheus_panels_query_metrics_the_ingest_exports(dashboard: dict[str, Any]) -> None:
    exported = _exported_metrics()
    exprs = [t["expr"] for p in cc.dashboard_panels(dashboard) for t in p.get("targets") or [] if "expr" in t]
    assert exprs
    used = {name for expr in exprs for name in re.findall(r"\bingest_\w+", expr)}
    assert {"ingest_messages_total", "ingest_link_up", "ingest_link_outbox_parts", "ingest_link_lag_seconds"} <= used
    assert used <= exported, sorted(used - exported)


def test_prometheus_scrapes_the_ingest_metrics_endpoint() -> None:
    from ingest.api.app import API_PREFIX
    from ingest.api.routes import stats

    assert cc.INGEST_METRICS_PATH in {API_PREFIX + route.path for route in stats.router.routes}  # type: ignore[attr-defined]  # the API's routes are APIRoutes


def test_prometheus_config_problems_are_reported(compose: cc.Compose, tmp_path: Path) -> None:
    svc = compose["services"]["prometheus"]
    config = cc.REPO_ROOT / "deploy" / "compose" / "prometheus" / "prometheus.yml"
    copy = tmp_path / "prometheus.yml"
    svc["volumes"] = [str(copy) + ":/etc/prometheus/prometheus.yml:ro", "prometheus-data:/prometheus"]
    doc = yaml.safe_load(config.read_text())
    job = doc["scrape_configs"][0]
    job["metrics_path"] = "/metrics"
    (global_targets,) = [sc for sc in job["static_configs"] if sc["labels"]["cell"] == "global"]
    global_targets["targets"] = ["ingest-global:8000", "ingest-global-2:9000", "pushgateway:9091"]
    copy.write_text(yaml.safe_dump(doc))
    problems = "\n".join(cc.check_prometheus(compose, cc.REPO_ROOT))
    assert "job 'ingest' scrapes the ingest at /metrics, not /api/v1/metrics" in problems
    assert "target ingest-global-2:9000 is not the API port of ingest-global-2" in problems
    assert "target pushgateway:9091 is not a service of the compose file" in problems
    assert "does not scrape the ingest replicas ['ingest-global-2:8000']" in problems
