"""The Prometheus endpoint (``metrics.enabled``) against a real Mosquitto: scraped with urllib and parsed
with prometheus_client's own parser, its counters equal the agent's stats and what a subscriber got;
the queue gauges follow a broker outage; a taken port, the CLI and config errors."""

from __future__ import annotations

import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from prometheus_client import REGISTRY
from prometheus_client.parser import text_string_to_metric_families

from edge_agent.agent import Agent
from edge_agent.config import AgentConfig, load_config
from edge_agent.diskqueue import DiskQueue
from edge_agent.errors import AgentError, ConfigError
from edge_agent.metrics import DEVICE_COUNTERS
from edge_agent.sources import Source, create_source
from wire import Reading, decode_batch

from .edge_support import REPO, Mosquitto, Subscriber, agent_config_dict, free_port

pytestmark = pytest.mark.integration

CNC, PRESS = "de-munich-cnc-01", "de-munich-press-01"


class Scrape:
    """One scrape of /metrics, parsed: sample values by name and labels, metric types by family."""

    def __init__(self, url: str) -> None:
        with urllib.request.urlopen(url, timeout=5) as response:
            self.content_type = response.headers["Content-Type"]
            self.text = response.read().decode()
        self.types: dict[str, str] = {}
        self.samples: dict[tuple[str, frozenset[tuple[str, str]]], float] = {}
        for family in text_string_to_metric_families(self.text):
            self.types[family.name] = family.type
            for sample in family.samples:
                self.samples[(sample.name, frozenset(sample.labels.items()))] = sample.value

    def get(self, name: str, **labels: str) -> float:
        key = (name, frozenset(labels.items()))
        assert key in self.samples, f"no sample {name}{labels} in:\n{self.text}"
        return self.samples[key]

    def total(self, name: str) -> float:
        return sum(v for (n, _labels), v in self.samples.items() if n == name)


def scrape_when(url: str, predicate: Callable[[Scrape], bool], timeout_s: float, what: str) -> Scrape:
    """Scrape until ``predicate`` holds (the endpoint may not listen yet); fail after ``timeout_s``."""
    deadline = time.monotonic() + timeout_s
    last: Scrape | None = None
    while True:
        try:
            last = Scrape(url)
            if predicate(last):
                return last
        except (urllib.error.URLError, ConnectionError):
            pass
        if time.monotonic() > deadline:
            pytest.fail(f"timed out waiting for {what}; last scrape:\n{last.text if last else '(none)'}")
        time.sleep(0.05)


def wait_until(predicate: Callable[[], bool], timeout_s: float, what: str) -> None:
    deadline = time.monotonic() + timeout_s
    while not predicate():
        if time.monotonic() > deadline:
            pytest.fail(f"timed out waiting for {what}")
        time.sleep(0.02)


def refused(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=1):
            return False
    except OSError:
        return True


class Finite:
    """A source that stops producing after ``limit`` readings, so that every counter settles."""

    def __init__(self, inner: Source, limit: int) -> None:
        self.inner = inner
        self.kind = str(getattr(inner, "kind", "simulated"))
        self.left = limit

    @property
    def device_id(self) -> str:
        return self.inner.device_id

    @property
    def poll_interval_s(self) -> float:
        return self.inner.poll_interval_s

    def init(self) -> None:
        self.inner.init()

    def start(self) -> None:
        self.inner.start()

    def read(self) -> list[Reading]:
        if self.left <= 0:
            return []
        readings = self.inner.read()[: self.left]
        self.left -= len(readings)
        return readings

    def stop(self) -> None:
        self.inner.stop()


@pytest.fixture
def running() -> Iterator[Callable[..., Agent]]:
    """Starts ``Agent.run(stop)`` on a thread; stops and joins it at the end of the test."""
    started: list[tuple[Agent, threading.Event, threading.Thread]] = []

    def start(agent: Agent) -> Agent:
        stop = threading.Event()
        thread = threading.Thread(target=agent.run, args=(stop,), name="agent-under-test", daemon=True)
        thread.start()
        started.append((agent, stop, thread))
        return agent

    yield start
    for _agent, stop, thread in started:
        stop.set()
        thread.join(20)
        assert not thread.is_alive(), "the agent did not stop"


def metrics_config(make_config: Callable[..., AgentConfig], broker_port: int, **overrides: Any) -> AgentConfig:
    return make_config(broker_port, metrics={"enabled": True, "host": "127.0.0.1", "port": free_port()}, **overrides)


def test_counters_equal_the_agent_stats_and_what_the_subscriber_received(
    broker: Mosquitto,
    subscriber_factory: Callable[..., Subscriber],
    make_config: Callable[..., AgentConfig],
    running: Callable[..., Agent],
) -> None:
    sub = subscriber_factory(broker.port)
    cfg = metrics_config(make_config, broker.port)
    url = f"http://127.0.0.1:{cfg.metrics.port}/metrics"
    began = time.time()
    agent = running(Agent(cfg, sources=[Finite(create_source(s), 30) for s in cfg.sources]))  # 3 batches each
    wait_until(lambda: all(s.batches_acked == 3 for s in agent.stats().values()), 20, "3 acked batches per device")
    assert sub.wait_for(lambda ms: sum(m.topic.startswith("tele/") for m in ms) >= 6, 10)
    m = Scrape(url)
    stats = agent.stats()
    assert agent.metrics_url == url

    assert m.content_type.startswith("text/plain")
    assert m.types["edge_agent_batches_acked"] == "counter"
    assert m.types["edge_agent_queue_batches"] == "gauge"
    assert m.types["edge_agent_publish_latency_seconds"] == "histogram"
    received: dict[str, set[int]] = {}
    for message in sub.on("tele/"):
        batch = decode_batch(message.payload)
        received.setdefault(batch.device_id, set()).add(batch.seq)
    for device in (CNC, PRESS):
        for field, name, _doc in DEVICE_COUNTERS:  # every per-device counter is the agent's own number
            assert m.get(f"edge_agent_{name}_total", device_id=device) == getattr(stats[device], field), name
        assert m.get("edge_agent_batches_acked_total", device_id=device) == len(received[device]) == 3
        assert m.get("edge_agent_batches_built_total", device_id=device) == 3
        assert m.get("edge_agent_readings_acked_total", device_id=device) == 30
        assert m.get("edge_agent_readings_sampled_total", device_id=device, source="simulated") == 30
        assert m.get("edge_agent_batches_dropped_total", device_id=device, reason="evicted") == 0
        assert m.get("edge_agent_batches_dropped_total", device_id=device, reason="refused") == 0
        assert m.get("edge_agent_source_errors_total", device_id=device, source="simulated") == 0
        assert m.get("edge_agent_source_healthy", device_id=device, source="simulated") == 1
        assert m.get("edge_agent_source_state", device_id=device, source="simulated", state="ok") == 1
        assert m.get("edge_agent_source_state", device_id=device, source="simulated", state="failing") == 0
        assert m.get("edge_agent_last_seq", device_id=device) == 3
    assert m.get("edge_agent_broker_connected") == 1
    assert m.get("edge_agent_broker_reconnects_total") == 0
    assert (m.get("edge_agent_queue_batches"), m.get("edge_agent_queue_bytes")) == (0, 0)
    assert m.get("edge_agent_queue_oldest_reading_age_seconds") == 0
    assert began <= m.get("edge_agent_last_publish_timestamp_seconds") <= time.time()
    [info] = [dict(labels) for (name, labels), v in m.samples.items() if name == "edge_agent_info" and v == 1]
    assert (info["gateway_id"], info["site_id"], info["queue"]) == ("test-gw-01", "de-munich", "disk")
    # publish latency: one observation per acknowledged batch, cumulative buckets
    assert m.get("edge_agent_publish_latency_seconds_count") == 6
    assert m.get("edge_agent_publish_latency_seconds_bucket", le="+Inf") == 6
    assert 0 < m.get("edge_agent_publish_latency_seconds_sum") < 6 * 10
    buckets = sorted(
        (float(dict(labels)["le"]), v)
        for (name, labels), v in m.samples.items()
        if name == "edge_agent_publish_latency_seconds_bucket"
    )
    assert [v for _le, v in buckets] == sorted(v for _le, v in buckets)
    assert m.get("process_resident_memory_bytes") > 0  # the standard process collector is on the agent's registry
    # the agent's own registry: nothing leaks into prometheus_client's global one
    assert REGISTRY.get_sample_value("edge_agent_batches_acked_total", {"device_id": CNC}) is None


def test_queue_depth_rises_while_the_broker_is_down_and_falls_after_it_returns(
    broker: Mosquitto, make_config: Callable[..., AgentConfig], running: Callable[..., Agent]
) -> None:
    cfg = metrics_config(make_config, broker.port)
    url = f"http://127.0.0.1:{cfg.metrics.port}/metrics"
    running(Agent(cfg))
    scrape_when(
        url,
        lambda m: m.get("edge_agent_broker_connected") == 1 and m.total("edge_agent_batches_acked_total") >= 4,
        20,
        "the first acknowledgements",
    )

    broker.stop()
    outage = time.monotonic()
    first = scrape_when(
        url,
        lambda m: m.get("edge_agent_broker_connected") == 0 and m.get("edge_agent_queue_batches") >= 4,
        15,
        "a backlog while the broker is down",
    )
    time.sleep(max(0.5, 1.5 - (time.monotonic() - outage)))  # ~20 batches/s keep arriving
    second = scrape_when(
        url,
        lambda m: m.get("edge_agent_queue_batches") > first.get("edge_agent_queue_batches"),
        15,
        "the backlog to grow",
    )
    assert second.get("edge_agent_broker_connected") == 0
    assert second.get("edge_agent_queue_bytes") > first.get("edge_agent_queue_bytes") > 0
    assert second.get("edge_agent_queue_readings") > first.get("edge_agent_queue_readings")
    age = second.get("edge_agent_queue_oldest_reading_age_seconds")
    assert age > first.get("edge_agent_queue_oldest_reading_age_seconds") and age >= 1.0
    # no acknowledgement while the broker is down
    assert second.get("edge_agent_last_publish_timestamp_seconds") == first.get(
        "edge_agent_last_publish_timestamp_seconds"
    )
    assert second.total("edge_agent_batches_acked_total") == first.total("edge_agent_batches_acked_total")
    peak = second.get("edge_agent_queue_batches")
    assert peak >= 10

    broker.start()
    after = scrape_when(
        url,
        lambda m: m.get("edge_agent_broker_connected") == 1 and m.get("edge_agent_queue_batches") < min(10, peak / 2),
        20,
        "the backlog to drain after the broker returned",
    )
    assert after.get("edge_agent_broker_reconnects_total") >= 1
    assert after.get("edge_agent_queue_oldest_reading_age_seconds") < age
    assert after.total("edge_agent_batches_acked_total") >= second.total("edge_agent_batches_acked_total") + peak / 2
    # the batches that waited out the outage (>= 1.5 s) are in the latency histogram's upper buckets
    assert after.get("edge_agent_publish_latency_seconds_bucket", le="1.0") < after.get(
        "edge_agent_publish_latency_seconds_count"
    )


def test_a_taken_port_stops_the_run_before_anything_is_published(
    make_config: Callable[..., AgentConfig], tmp_path: Path
) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        cfg = make_config(free_port(), metrics={"enabled": True, "port": port})
        agent = Agent(cfg)
        with pytest.raises(AgentError, match=rf"metrics: cannot listen on http://127\.0\.0\.1:{port}/metrics: "):
            agent.run(max_batches_per_device=1)
    assert agent.metrics_url is None
    DiskQueue(tmp_path / "state").close()  # the queue and its lock were released


def write_config(tmp_path: Path, broker_port: int, metrics_port: int) -> Path:
    path = tmp_path / "agent.yaml"
    data = agent_config_dict(tmp_path, broker_port, metrics={"enabled": True, "port": metrics_port})
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path


def test_edge_agent_run_serves_metrics_until_it_stops(
    broker: Mosquitto, tmp_path: Path, cli_env: dict[str, str]
) -> None:
    from typer.testing import CliRunner

    from edge_agent.cli import app

    port = free_port()
    config = write_config(tmp_path, broker.port, port)
    url = f"http://127.0.0.1:{port}/metrics"
    checked = CliRunner().invoke(app, ["check", "--config", str(config)])
    assert f"ok    metrics: {url} is free" in checked.output, checked.output
    proc = subprocess.Popen(
        [sys.executable, "-m", "edge_agent", "run", "--config", str(config)],
        cwd=REPO,
        env=cli_env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        m = scrape_when(
            url,
            lambda m: all(m.get("edge_agent_batches_acked_total", device_id=d) >= 1 for d in (CNC, PRESS)),
            20,
            "acknowledged batches of both devices",
        )
        assert m.get("edge_agent_broker_connected") == 1
        busy = CliRunner().invoke(app, ["check", "--config", str(config)])
        assert busy.exit_code == 1
        assert f"FAIL  metrics: cannot listen on {url}: Address already in use" in busy.output, busy.output
    finally:
        proc.send_signal(signal.SIGTERM)
        stderr = proc.communicate(timeout=20)[1]
    assert proc.returncode == 0, stderr
    assert f"metrics on {url}" in stderr
    assert refused(port)  # the port is free again


CONFIG = """\
gateway_id: gw-01
site_id: de-munich
state_dir: ./state
sources:
  - type: simulated
    device_id: cnc-01
    machine: cnc_mill
metrics:
"""


@pytest.mark.parametrize(
    ("block", "field", "line", "reason"),
    [
        ("  enabled: true\n  port: 70000\n", "metrics.port", 10, "less than or equal to 65535 (got 70000)"),
        ("  enabled: sometimes\n", "metrics.enabled", 9, "Input should be a valid boolean"),
        ("  enabled: true\n  host: not a host\n", "metrics.host", 10, "must be an IP address"),
        ("  enabled: true\n  path: /prometheus\n", "metrics.path", 10, "Extra inputs are not permitted"),
        ("  port: 0\n", "metrics.port", 9, "Input should be greater than or equal to 1"),
    ],
)
def test_metrics_config_errors_name_file_line_and_field(
    tmp_path: Path, block: str, field: str, line: int, reason: str
) -> None:
    path = tmp_path / "agent.yaml"
    path.write_text(CONFIG + block)
    with pytest.raises(ConfigError) as info:
        load_config(path)
    error = info.value
    assert (error.file, error.line, error.field) == (str(path), line, field)
    assert reason in error.reason
    assert str(error).startswith(f"{path}:{line}: {field}: ")


def test_metrics_are_off_by_default_and_in_the_sample(tmp_path: Path) -> None:
    path = tmp_path / "agent.yaml"
    path.write_text(CONFIG.removesuffix("metrics:\n"))
    metrics = load_config(path).metrics
    assert (metrics.enabled, metrics.host, metrics.port) == (False, "127.0.0.1", 9108)
    sample = yaml.safe_load((REPO / "edge_agent" / "sample.yaml").read_text())
    assert sample["metrics"] == {"enabled": False, "host": "127.0.0.1", "port": 9108}


def test_the_latency_histogram_counts_a_value_on_a_bound_in_that_bucket() -> None:
    from edge_agent.publisher import _LatencyHistogram

    histogram = _LatencyHistogram((0.1, 1.0, 10.0))
    for seconds in (0.05, 0.1, 0.5, 1.0, 3600.0):
        histogram.observe(seconds)
    snapshot = histogram.snapshot()
    assert snapshot.bounds == (0.1, 1.0, 10.0)
    assert snapshot.cumulative == (2, 4, 4, 5) and snapshot.count == 5
    assert snapshot.sum_s == pytest.approx(3601.65)
