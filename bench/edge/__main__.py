"""Edge-agent benchmark: footprint at 1,000 readings/s and replay of a one-million-reading backlog.

    .venv/bin/python -m bench.edge                  # ~1.5 min on a 2-core machine
    .venv/bin/python -m bench.edge --duration 30 --backlog 1000000 --batch 200 --json out.json

1. **Footprint.** The agent runs as a subprocess (``edge-agent run``) with simulated machines
   producing ``--rate`` readings/s (batches of 50, disk queue) against a real Mosquitto. After a
   warm-up, its CPU (% of one core, from /proc/PID/stat) and resident memory (VmRSS) are sampled
   for ``--duration`` seconds. Baseline, same run: a bare paho QoS 1 publisher sending the same
   messages at the same rate.
2. **Replay.** The disk queue is pre-filled with ``--backlog`` readings (batches of ``--batch``)
   while no broker runs; the agent starts, then the broker; the replay time is from the broker
   accepting connections to the last backlog batch leaving the queue (acknowledged). Baseline, same
   run: a bare paho QoS 1 publisher sending the same payloads from memory.

Targets (2-core machine): RSS < 60 MB, CPU < 10 % of one core at 1,000 readings/s, replay of one
million readings < 60 s.
"""

from __future__ import annotations

import argparse
import gzip
import json
import os
import signal
import sqlite3
import subprocess
import sys
import tempfile
import threading
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
import yaml
from paho.mqtt.enums import CallbackAPIVersion, MQTTProtocolVersion

from bench.edge.harness import Broker, ProcSampler, say
from edge_agent.diskqueue import DiskQueue
from edge_agent.sequence import DB_NAME
from edge_agent.sources.simulated import SimulatedSettings, SimulatedSource
from wire import Batch, OriginClaim, encode_batch

REPO = Path(__file__).resolve().parents[2]
MACHINES = ("cnc_mill", "injection_press", "compressor")
TARGET_RSS_MB = 60.0
TARGET_CPU_PCT = 10.0
TARGET_REPLAY_S = 60.0
MB = 1024 * 1024


def agent_env() -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(REPO), env.get("PYTHONPATH")) if p)
    env["PYTHONUNBUFFERED"] = "1"
    return env


def write_agent_config(
    path: Path, state_dir: Path, port: int, sources: list[dict[str, Any]], compression: str, *, subscriber: bool = True
) -> Path:
    config = {
        "gateway_id": "bench-gw-01",
        "site_id": "bench",
        "country": "DE",
        "state_dir": str(state_dir),
        "broker": {
            "host": "127.0.0.1",
            "port": port,
            "reconnect": {"min_delay_s": 0.05, "max_delay_s": 0.2},
            # Without a subscriber the broker answers "no matching subscribers"; like the baseline,
            # the replay then counts the PUBACK as delivered (there is no ingest in this benchmark).
            "retry_unrouted": subscriber,
        },
        "batch": {"max_readings": 50, "max_latency_ms": 1000},
        "queue": {"kind": "disk", "max_bytes": "2GiB"},
        "publish": {"compression": compression},
        "sources": sources,
    }
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    return path


def start_agent(config: Path, log: Path) -> subprocess.Popen[bytes]:
    with log.open("ab") as out:
        return subprocess.Popen(
            [sys.executable, "-m", "edge_agent", "run", "--config", str(config), "--log-level", "WARNING"],
            cwd=REPO,
            env=agent_env(),
            stdout=out,
            stderr=subprocess.STDOUT,
        )


def stop(proc: subprocess.Popen[Any]) -> None:
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)


class Counter:
    """A QoS 1 subscriber counting data messages and readings; keeps one payload per topic."""

    def __init__(self, port: int) -> None:
        self.messages = 0
        self.readings = 0
        self.samples: dict[str, bytes] = {}
        self._lock = threading.Lock()
        self._ready = threading.Event()
        self.client = mqtt.Client(
            CallbackAPIVersion.VERSION2, client_id="bench-counter", protocol=MQTTProtocolVersion.MQTTv5
        )
        self.client.on_connect = lambda c, *_: c.subscribe("tele/v1/#", qos=1)
        self.client.on_subscribe = lambda *_: self._ready.set()
        self.client.on_message = self._on_message
        self.client.connect("127.0.0.1", port, 30)
        self.client.loop_start()
        if not self._ready.wait(10):
            raise RuntimeError("the counting subscriber could not subscribe")

    def _on_message(self, _c: Any, _u: Any, msg: mqtt.MQTTMessage) -> None:
        payload = msg.payload
        raw = gzip.decompress(payload) if payload[:2] == b"\x1f\x8b" else payload
        n = len(json.loads(raw)["readings"])
        with self._lock:
            self.messages += 1
            self.readings += n
            self.samples.setdefault(msg.topic, bytes(payload))

    def totals(self) -> tuple[int, int]:
        with self._lock:
            return self.messages, self.readings

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


def measure(pid: int, warmup_s: float, duration_s: float, label: str, counter: Counter | None) -> dict[str, float]:
    time.sleep(warmup_s)
    sampler = ProcSampler(pid)
    sampler.begin()
    m0, r0 = counter.totals() if counter else (0, 0)
    start = time.monotonic()
    cpu = 0.0
    last_report = start
    while (elapsed := time.monotonic() - start) < duration_s:
        time.sleep(min(1.0, duration_s - elapsed))
        cpu, rss = sampler.sample()
        now = time.monotonic()
        if now - last_report >= 5 or now - start >= duration_s:
            last_report = now
            extra = ""
            if counter:
                m, r = counter.totals()
                extra = (
                    f", {(r - r0) / (now - start):.0f} readings/s and {(m - m0) / (now - start):.1f} msg/s delivered"
                )
            say(
                f"  [{label}] {now - start:4.0f}/{duration_s:.0f} s: "
                f"CPU {cpu:5.2f} % of one core, RSS {rss / MB:5.1f} MB{extra}"
            )
    result = {"cpu_pct": cpu, "rss_max_mb": sampler.rss_max / MB, "rss_mean_mb": sampler.rss_mean / MB}
    if counter:
        m, r = counter.totals()
        elapsed = time.monotonic() - start
        result |= {"readings_per_s": (r - r0) / elapsed, "messages_per_s": (m - m0) / elapsed}
    return result


def footprint(
    work: Path, rate: int, devices: int, warmup_s: float, duration_s: float, compression: str
) -> dict[str, Any]:
    say(f"[1/2] footprint: {devices} simulated machines, {rate} readings/s in all, batches of 50, disk queue")
    broker = Broker(work)
    broker.start()
    counter = Counter(broker.port)
    interval_ms = max(1, round(devices * 1000 / rate))
    sources = [
        {
            "type": "simulated",
            "device_id": f"bench-dev-{i:02d}",
            "machine": MACHINES[i % 3],
            "interval_ms": interval_ms,
            "seed": i,
            "operators": ["B-1001", "B-1002"],
        }
        for i in range(devices)
    ]
    config = write_agent_config(work / "footprint.yaml", work / "footprint-state", broker.port, sources, compression)
    agent = start_agent(config, work / "agent-footprint.log")
    try:
        agent_result = measure(agent.pid, warmup_s, duration_s, "agent", counter)
    finally:
        stop(agent)
    say(f"  agent log: {work / 'agent-footprint.log'}")
    samples = [{"topic": t, "payload": p.hex()} for t, p in counter.samples.items()]
    payload_file = work / "payloads.json"
    payload_file.write_text(json.dumps(samples))
    msg_rate = agent_result["messages_per_s"]
    say(f"  baseline: bare paho QoS 1 publisher, the same {len(samples)} payloads at {msg_rate:.1f} msg/s")
    base = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "bench.edge.baseline",
            "paced",
            "--port",
            str(broker.port),
            "--payloads",
            str(payload_file),
            "--rate",
            f"{msg_rate:.3f}",
        ],
        cwd=REPO,
        env=agent_env(),
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert base.stdout is not None and base.stdout.readline().strip() == "ready"
        base_result = measure(base.pid, min(warmup_s, 2.0), duration_s, "baseline", None)
    finally:
        base.kill()
        base.wait(5)
        counter.close()
        broker.stop()
    return {"agent": agent_result, "baseline": base_result, "interval_ms": interval_ms}


def sample_readings(n: int) -> list[Any]:
    source = SimulatedSource(
        SimulatedSettings(
            type="simulated", device_id="bench", machine="cnc_mill", interval_ms=10, seed=7, operators=["B-1001"]
        )
    )
    source.init()
    source.start()
    return [source._sample(k) for k in range(n)]


def prefill(state_dir: Path, backlog: int, batch: int, devices: int, compression: str) -> int:
    """Fill the disk queue with ``backlog`` readings; return the id of the last backlog batch."""
    batches = -(-backlog // batch)
    say(
        f"[2/2] replay: pre-filling the disk queue with {backlog:,} readings "
        f"({batches:,} batches of {batch}), no broker"
    )
    readings = sample_readings(batch)
    origin = OriginClaim(site_id="bench", country="DE")
    templates = {}
    for d in range(devices):
        device = f"bench-dev-{d:02d}"
        batch_obj = Batch(
            device_id=device, seq=999_999_999, sent_at=datetime.now(UTC), origin=origin, readings=readings
        )
        templates[device] = encode_batch(batch_obj)
    start = time.monotonic()
    with DiskQueue(state_dir, max_bytes=4 * 1024 * MB, durable=False) as queue:
        for i in range(batches):
            device = f"bench-dev-{i % devices:02d}"
            template = templates[device]

            def build(seq: int, template: bytes = template) -> bytes:
                payload = template.replace(b'"seq":999999999', b'"seq":%d' % seq)
                return gzip.compress(payload, mtime=0) if compression == "gzip" else payload

            queue.enqueue(
                device,
                f"tele/v1/bench/{device}",
                build,
                readings=batch,
                first_ts=time.time(),
                encoding="gzip" if compression == "gzip" else None,
            )
            if (i + 1) % max(1, batches // 5) == 0:
                say(f"  pre-filled {i + 1:,}/{batches:,} batches")
        snap = queue.snapshot()
    say(
        f"  queue: {snap.batches:,} batches, {snap.readings:,} readings, {snap.bytes / MB:.0f} MB "
        f"({time.monotonic() - start:.1f} s)"
    )
    db = sqlite3.connect(state_dir / DB_NAME)
    last_id = int(db.execute("SELECT max(id) FROM batches").fetchone()[0])
    db.close()
    return last_id


def remaining(db_path: Path, last_id: int) -> int:
    db = sqlite3.connect(f"file:{db_path}?mode=ro", uri=True, timeout=5)
    try:
        return int(db.execute("SELECT count(*) FROM batches WHERE id <= ?", (last_id,)).fetchone()[0])
    finally:
        db.close()


def replay(work: Path, backlog: int, batch: int, devices: int, compression: str) -> dict[str, Any]:
    state_dir = work / "replay-state"
    last_id = prefill(state_dir, backlog, batch, devices, compression)
    db_path = state_dir / DB_NAME
    total = remaining(db_path, last_id)
    broker = Broker(work)

    say("  baseline: bare paho QoS 1 publisher, the same payloads from memory (window 20)")
    broker.start()
    done = subprocess.run(
        [sys.executable, "-m", "bench.edge.baseline", "burst", "--port", str(broker.port), "--db", str(db_path)],
        cwd=REPO,
        env=agent_env(),
        capture_output=True,
        text=True,
        timeout=900,
        check=True,
    )
    broker.stop()
    base = json.loads(done.stdout.strip().splitlines()[-1])
    base_rate = backlog * base["acked"] / max(1, base["messages"]) / base["seconds"]
    say(
        f"  baseline: {base['acked']:,}/{base['messages']:,} batches acked in {base['seconds']:.2f} s "
        f"({base_rate:,.0f} readings/s)"
    )

    say("  agent: started with the broker down, then the broker starts")
    source = [{"type": "simulated", "device_id": "bench-live", "machine": "compressor", "interval_ms": 1000}]
    config = write_agent_config(work / "replay.yaml", state_dir, broker.port, source, compression, subscriber=False)
    agent = start_agent(config, work / "agent-replay.log")
    try:
        time.sleep(2.0)  # the agent is up, opened its queue and retries the broker
        sampler = ProcSampler(agent.pid)
        sampler.begin()
        t0 = broker.start()
        left = total
        last_report = t0
        while left:
            time.sleep(0.1)
            left = remaining(db_path, last_id)
            sampler.sample()
            now = time.monotonic()
            if now - last_report >= 2 or not left:
                last_report = now
                sent = total - left
                say(
                    f"  replayed {sent:,}/{total:,} batches in {now - t0:5.1f} s "
                    f"({sent * batch / (now - t0):,.0f} readings/s)"
                )
            if now - t0 > 900:
                raise RuntimeError("replay did not finish within 15 minutes")
        seconds = time.monotonic() - t0
        cpu, _rss = sampler.sample()
    finally:
        stop(agent)
        broker.stop()
    say(f"  agent log: {work / 'agent-replay.log'}")
    return {
        "batches": total,
        "readings": backlog,
        "seconds": seconds,
        "readings_per_s": backlog / seconds,
        "agent_cpu_pct": cpu,
        "agent_rss_max_mb": sampler.rss_max / MB,
        "baseline_seconds": base["seconds"],
        "baseline_readings_per_s": base_rate,
    }


def verdict(ok: bool) -> str:
    return "met" if ok else "MISSED"


def report(fp: dict[str, Any] | None, rp: dict[str, Any] | None, args: argparse.Namespace) -> dict[str, Any]:
    say("")
    say(f"== edge agent benchmark ({os.cpu_count()} cores, compression {args.compression}) ==")
    out: dict[str, Any] = {"args": vars(args) | {"work": str(args.work) if args.work else None}}
    if fp:
        a, b = fp["agent"], fp["baseline"]
        cpu_ratio = a["cpu_pct"] / b["cpu_pct"] if b["cpu_pct"] > 0 else float("inf")
        say(
            f"footprint at {a['readings_per_s']:.0f} readings/s ({a['messages_per_s']:.1f} msg/s), "
            f"{args.duration:.0f} s window:"
        )
        say(
            f"  agent     CPU {a['cpu_pct']:6.2f} % of one core   "
            f"RSS max {a['rss_max_mb']:5.1f} MB (mean {a['rss_mean_mb']:.1f})"
        )
        say(
            f"  baseline  CPU {b['cpu_pct']:6.2f} % of one core   "
            f"RSS max {b['rss_max_mb']:5.1f} MB  (bare paho, same messages)"
        )
        say(
            f"  ratios    CPU agent/baseline {cpu_ratio:.1f}x   "
            f"RSS agent/baseline {a['rss_max_mb'] / b['rss_max_mb']:.2f}x"
        )
        say(
            f"  target    RSS < {TARGET_RSS_MB:.0f} MB: {verdict(a['rss_max_mb'] < TARGET_RSS_MB)}; "
            f"CPU < {TARGET_CPU_PCT:.0f} % of one core at 1,000 readings/s: {verdict(a['cpu_pct'] < TARGET_CPU_PCT)}"
        )
        out["footprint"] = fp | {"cpu_ratio": cpu_ratio}
    if rp:
        ratio = rp["readings_per_s"] / rp["baseline_readings_per_s"]
        say(f"replay of {rp['readings']:,} readings ({rp['batches']:,} batches of {args.batch}):")
        say(
            f"  agent     {rp['seconds']:6.2f} s  {rp['readings_per_s']:>10,.0f} readings/s  "
            f"(CPU {rp['agent_cpu_pct']:.0f} %, RSS max {rp['agent_rss_max_mb']:.1f} MB)"
        )
        say(
            f"  baseline  {rp['baseline_seconds']:6.2f} s  {rp['baseline_readings_per_s']:>10,.0f} readings/s  "
            "(bare paho QoS 1 from memory)"
        )
        say(f"  ratio     agent/baseline rate {ratio:.2f}")
        target_ok = rp["seconds"] * 1_000_000 / rp["readings"] < TARGET_REPLAY_S
        say(f"  target    1M readings replayed < {TARGET_REPLAY_S:.0f} s: {verdict(target_ok)}")
        out["replay"] = rp | {"ratio": ratio}
    return out


def main() -> None:
    parser = argparse.ArgumentParser(
        prog="python -m bench.edge", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--rate", type=int, default=1000, help="readings/s of the footprint phase (default 1000)")
    parser.add_argument("--devices", type=int, default=10, help="simulated machines (default 10)")
    parser.add_argument("--duration", type=float, default=20.0, help="measured seconds per footprint run (default 20)")
    parser.add_argument("--warmup", type=float, default=5.0, help="seconds before measuring (default 5)")
    parser.add_argument("--backlog", type=int, default=1_000_000, help="readings to replay (default 1,000,000)")
    parser.add_argument("--batch", type=int, default=200, help="readings per batch in the backlog (default 200)")
    parser.add_argument("--compression", choices=["none", "gzip"], default="none")
    parser.add_argument("--skip-footprint", action="store_true")
    parser.add_argument("--skip-replay", action="store_true")
    parser.add_argument("--work", type=Path, help="keep files here (default: a temporary directory)")
    parser.add_argument("--json", type=Path, help="also write the results as JSON")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench-edge-") as tmp:
        work = args.work or Path(tmp)
        work.mkdir(parents=True, exist_ok=True)
        fp = (
            None
            if args.skip_footprint
            else footprint(work, args.rate, args.devices, args.warmup, args.duration, args.compression)
        )
        rp = None if args.skip_replay else replay(work, args.backlog, args.batch, args.devices, args.compression)
        out = report(fp, rp, args)
    if args.json:
        args.json.write_text(json.dumps(out, indent=1, default=str))
        say(f"results written to {args.json}")


if __name__ == "__main__":
    main()
