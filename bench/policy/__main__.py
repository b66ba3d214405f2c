"""``python -m bench.policy``: what the residency policy costs, as ratios measured in one run.

1. Decisions per second of the embedded engine on the demo registry's distinct flows: uncached
   (``EmbeddedPolicyEngine``) vs cached (``CachedPolicyEngine``, all hits).
2. Ingest throughput with the real policy vs an allow-all policy (a one-rule Rego policy written by the
   benchmark), same workload: the real ingest service in-process (``IngestService``) on a real PostgreSQL
   and Mosquitto (devstack), fresh databases per run; the demo registry's devices publish ``--batches``
   pre-encoded batches each at QoS 1 from one paho client; readings/s from the first publish to the
   moment the service has committed and acknowledged every message. Before that, ``--warmup`` batches per
   device are published and drained (not timed): they fill the decision cache (the demo registry has 26
   distinct flows since its Thai site; their cold cost is what part 1 measures). ``--rounds`` pairs of runs,
   allow-all and real, in alternating order (AR, RA, AR, ...) so that both see the same machine load; the
   headline is the median of the pairs' ratios. Target: real >= 0.95x allow-all. The process CPU time per reading
   (service and publisher threads; PostgreSQL and Mosquitto are other processes) is shown too: it is
   less sensitive to other load on the machine than the wall clock.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

REPO_ROOT = Path(__file__).resolve().parents[2]
REGISTRY_FILE = REPO_ROOT / "deploy" / "local" / "registry.yaml"
TARGET = 0.95


@dataclass
class IngestRun:
    policy: str
    revision: str
    messages: int
    readings: int
    seconds: float
    cpu_seconds: float
    rows: int
    decisions: dict[str, int]
    cache: dict[str, int] | None

    @property
    def readings_per_s(self) -> float:
        return self.readings / self.seconds


# --- progress --------------------------------------------------------------------------------------------


class Progress:
    """A rich progress display on stderr (plain lines when stderr is not a terminal)."""

    def __init__(self) -> None:
        from rich.console import Console
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

        self.console = Console(stderr=True)
        self.bar = Progress(
            TextColumn("{task.description:<34}"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
            console=self.console,
            transient=False,
            disable=not self.console.is_terminal,
        )

    def note(self, text: str) -> None:
        self.console.print(text)

    @contextmanager
    def task(self, description: str, total: int) -> Iterator[Any]:
        if not self.console.is_terminal:
            self.note(f"{description} ({total})...")
        with self.bar:
            task = self.bar.add_task(description, total=total)
            yield lambda done: self.bar.update(task, completed=done)


# --- 1. decisions per second ------------------------------------------------------------------------------


def bench_decisions(progress: Progress, *, seconds: float) -> dict[str, float]:
    from bench.policy.workload import demo_flows
    from ingest.registry import load_registry
    from policy import DEFAULT_POLICY_DIR, CachedPolicyEngine, EmbeddedPolicyEngine

    flows = demo_flows(load_registry(REGISTRY_FILE))
    engine = EmbeddedPolicyEngine.from_dir(DEFAULT_POLICY_DIR)
    cached = CachedPolicyEngine(engine, maxsize=4096)

    def rate(decide: Any, label: str, budget: float) -> tuple[float, int]:
        done, started = 0, time.perf_counter()
        with progress.task(label, int(budget * 10)) as update:
            while (elapsed := time.perf_counter() - started) < budget:
                for flow in flows:
                    decide(flow)
                done += len(flows)
                update(min(int(elapsed * 10), int(budget * 10)))
            update(int(budget * 10))
        return done / (time.perf_counter() - started), done

    uncached, n_uncached = rate(engine.decide, "decisions, uncached (0.1 s ticks)", seconds)
    cached.decide_many(flows)  # warm: every flow in the cache
    hits, n_cached = rate(cached.decide, "decisions, cached (0.1 s ticks)", seconds)
    return {
        "flows": len(flows),
        "uncached_per_s": uncached,
        "cached_per_s": hits,
        "uncached_n": n_uncached,
        "cached_n": n_cached,
        "ratio": hits / uncached,
    }


# --- 2. ingest throughput -----------------------------------------------------------------------------------


def _drain(service: Any, total: int, update: Any, started: float) -> None:
    while True:
        snap = service.stats.snapshot()
        done = snap["messages"]["stored"] + snap["messages"]["rejected"]
        update(done)
        if done >= total and snap["inflight"] == 0:
            return
        if time.perf_counter() - started > 600:
            raise RuntimeError(f"only {done} of {total} messages handled after 600 s: {snap}")
        time.sleep(0.01)


def run_ingest(
    progress: Progress,
    pg: Any,
    broker: Any,
    *,
    policy: str,
    policy_dir: Path,
    warmup: list[Any],
    batch: list[Any],
    run_id: int,
) -> IngestRun:
    import paho.mqtt.client as mqtt
    from paho.mqtt.enums import CallbackAPIVersion

    from bench.policy.workload import write_no_invariants
    from ingest.config import load_settings
    from ingest.registry import load_registry
    from ingest.service import IngestService
    from ingest.store.migrate import migrate

    registry = load_registry(REGISTRY_FILE)
    control = pg.create_database(f"bench{run_id}_control")
    migrate(control, "control", store="control")
    regions = {}
    for region in registry.regions:
        regions[region] = pg.create_database(f"bench{run_id}_{region.replace('-', '_')}")
        migrate(regions[region], "region", store=region)
    invariants = {}
    if policy == "allow-all":  # the baseline breaks the platform's residency invariants by design
        invariants["policy_invariants_file"] = write_no_invariants(policy_dir.parent / "no-invariants.yaml")
    settings = load_settings(
        mqtt_port=broker.port,
        control_dsn=control,
        region_dsns=regions,
        registry_file=REGISTRY_FILE,
        mqtt_client_id=f"bench-ingest-{run_id}",
        share_group=f"bench{run_id}",
        session_expiry_s=0,
        policy_dir=policy_dir,
        policy_watch_s=0,
        timescaledb="off",
        **invariants,
    )
    service = IngestService(settings)
    service.start()
    client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=f"bench-pub-{run_id}", protocol=mqtt.MQTTv5)
    client.max_inflight_messages_set(1000)
    client.max_queued_messages_set(0)
    try:
        deadline = time.monotonic() + 30
        while not service.stats.snapshot()["broker_connected"]:
            if time.monotonic() > deadline:
                raise RuntimeError("the ingest did not connect to the broker within 30 s")
            time.sleep(0.05)
        time.sleep(0.5)  # the shared subscription is granted just after the connection
        client.connect("127.0.0.1", broker.port)
        client.loop_start()
        for message in warmup:
            client.publish(message.topic, message.payload, qos=1)
        _drain(service, len(warmup), lambda _: None, time.perf_counter())
        before = service.stats.snapshot()
        base = before["messages"]["stored"] + before["messages"]["rejected"]
        total = len(batch)
        with progress.task(f"ingest, {policy} policy (messages)", total) as update:
            started, cpu = time.perf_counter(), time.process_time()
            for message in batch:
                client.publish(message.topic, message.payload, qos=1)
            _drain(service, base + total, lambda done: update(done - base), started)
            seconds, cpu_seconds = time.perf_counter() - started, time.process_time() - cpu
        snap = service.stats.snapshot()
        if snap["messages"]["rejected"]:
            raise RuntimeError(f"{policy}: {snap['messages']['rejected']} messages rejected: {snap['rejections']}")
        return IngestRun(
            policy=policy,
            revision=service.policy.revision,
            messages=total,
            readings=sum(m.readings for m in batch),
            seconds=seconds,
            cpu_seconds=cpu_seconds,
            rows=sum(snap["rows_by_region"].values()) - sum(before["rows_by_region"].values()),
            decisions={k: v - before["decisions"].get(k, 0) for k, v in snap["decisions"].items()},
            cache=service.policy_runtime.active.cache_stats(),
        )
    finally:
        client.loop_stop()
        client.disconnect()
        service.stop()


def bench_ingest(progress: Progress, *, batches: int, readings: int, rounds: int, warmup: int) -> dict[str, Any]:
    from bench.policy.workload import messages, write_allow_all
    from devstack import MosquittoServer, PostgresServer
    from ingest.registry import load_registry
    from policy import DEFAULT_POLICY_DIR

    registry = load_registry(REGISTRY_FILE)
    every = messages(registry, batches=warmup + batches, readings=readings)
    first, batch = every[: warmup * len(registry.devices)], every[warmup * len(registry.devices) :]
    progress.note(
        f"workload: {len(registry.devices)} devices x {batches} batches x {readings} readings "
        f"= {len(batch)} messages, {len(batch) * readings} readings (after {len(first)} warm-up messages)"
    )
    runs: list[IngestRun] = []
    with tempfile.TemporaryDirectory(prefix="bench-policy-") as tmp:
        allow_all = write_allow_all(Path(tmp) / "allow-all")
        pg = PostgresServer(settings={"fsync": "off", "synchronous_commit": "off"})
        broker = MosquittoServer()
        pg.start()
        try:
            broker.start()
            run_id = 0
            pairs: list[tuple[IngestRun, IngestRun]] = []
            for i in range(rounds):
                order = [("allow-all", allow_all), ("real", DEFAULT_POLICY_DIR)]
                pair: dict[str, IngestRun] = {}
                for name, directory in order if i % 2 == 0 else order[::-1]:
                    run_id += 1
                    run = run_ingest(
                        progress,
                        pg,
                        broker,
                        policy=name,
                        policy_dir=directory,
                        warmup=first,
                        batch=batch,
                        run_id=run_id,
                    )
                    progress.note(
                        f"  {name:<9} {run.readings_per_s:>10,.0f} readings/s ({run.seconds:.2f} s, "
                        f"{run.cpu_seconds:.2f} s CPU, {run.rows:,} rows, decisions {run.decisions})"
                    )
                    runs.append(run)
                    pair[name] = run
                pairs.append((pair["allow-all"], pair["real"]))
        finally:
            broker.cleanup()
            pg.cleanup()
    best = {
        name: max((r for r in runs if r.policy == name), key=lambda r: r.readings_per_s)
        for name in ("allow-all", "real")
    }
    per_policy = {name: [r.readings_per_s for r in runs if r.policy == name] for name in ("allow-all", "real")}
    pair_ratios = [real.readings_per_s / allow.readings_per_s for allow, real in pairs]
    cpu = {
        name: statistics.median(r.cpu_seconds / r.readings * 1e6 for r in runs if r.policy == name)
        for name in ("allow-all", "real")
    }
    return {
        "runs": [{**asdict(r), "readings_per_s": r.readings_per_s} for r in runs],
        "best": {name: r.readings_per_s for name, r in best.items()},
        "median": {name: statistics.median(v) for name, v in per_policy.items()},
        "pair_ratios": pair_ratios,
        "ratio": statistics.median(pair_ratios),
        "ratio_best": best["real"].readings_per_s / best["allow-all"].readings_per_s,
        "cpu_us_per_reading": cpu,
        "cpu_ratio": cpu["allow-all"] / cpu["real"],
        "target": TARGET,
        "devices": len(registry.devices),
    }


# --- report ---------------------------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m bench.policy", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--batches", type=int, default=300, help="batches per device (default 300)")
    parser.add_argument("--readings", type=int, default=20, help="readings per batch (default 20)")
    parser.add_argument("--rounds", type=int, default=3, help="allow-all/real pairs (default 3)")
    parser.add_argument("--warmup", type=int, default=1, help="untimed batches per device first (default 1)")
    parser.add_argument("--decision-seconds", type=float, default=3.0, help="time per decision-rate measurement")
    parser.add_argument("--skip-ingest", action="store_true", help="only measure decisions per second")
    parser.add_argument("--json", type=Path, help="also write the results as JSON to this file")
    args = parser.parse_args(argv)
    progress = Progress()
    results: dict[str, Any] = {"command": "python -m bench.policy " + " ".join(argv or sys.argv[1:])}
    decisions = bench_decisions(progress, seconds=args.decision_seconds)
    results["decisions"] = decisions
    if not args.skip_ingest:
        results["ingest"] = bench_ingest(
            progress, batches=args.batches, readings=args.readings, rounds=args.rounds, warmup=args.warmup
        )
    print(f"Policy decisions, embedded engine, {decisions['flows']} distinct flows of the demo registry:")
    print(
        f"  uncached (EmbeddedPolicyEngine):  {decisions['uncached_per_s']:>12,.0f} decisions/s "
        f"({1e3 / decisions['uncached_per_s']:.2f} ms each)"
    )
    print(
        f"  cached (CachedPolicyEngine hits): {decisions['cached_per_s']:>12,.0f} decisions/s "
        f"({1e6 / decisions['cached_per_s']:.1f} us each)"
    )
    print(f"  cached / uncached:                {decisions['ratio']:>12,.0f}x")
    ok = True
    if "ingest" in results:
        ingest = results["ingest"]
        ok = ingest["ratio"] >= TARGET
        print(
            f"Ingest throughput, {ingest['devices']} devices x {args.batches} batches x {args.readings} readings, "
            f"{args.rounds} pair(s) of runs:"
        )
        for name in ("allow-all", "real"):
            print(
                f"  {name + ' policy:':<18}{ingest['median'][name]:>10,.0f} readings/s median, "
                f"{ingest['best'][name]:>10,.0f} best; {ingest['cpu_us_per_reading'][name]:.0f} us CPU/reading"
            )
        ratios = ", ".join(f"{r:.3f}" for r in ingest["pair_ratios"])
        print(
            f"  real / allow-all: {ingest['ratio']:.3f}x (median of pairs: {ratios}; best vs best "
            f"{ingest['ratio_best']:.3f}x; CPU per reading {ingest['cpu_ratio']:.3f}x)"
        )
        print(f"  target >= {TARGET}x: {'met' if ok else 'MISSED'}")
    if args.json:
        args.json.write_text(json.dumps(results, indent=2, default=str))
    return 0 if ok else 1


if __name__ == "__main__":
    threading.current_thread().name = "bench"
    sys.exit(main())
