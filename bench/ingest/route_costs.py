"""``python -m bench.ingest.route_costs``: what routing one message costs in-process (docs/small-messages.md).

``Router.route`` on the benchmark's workload (1-reading and 100-reading messages), one thread, CPU time, best of
three rounds, in four configurations:

- without and with the measured-volumes hook (``VolumeTracker`` without a store, as the service builds it);
- with the hook, under Python's default garbage-collector thresholds and under those ``ingest serve`` sets
  (``ingest.cli.GC_THRESHOLD`` after ``gc.freeze()``), with a long-lived heap of 300,000 objects standing in for
  a running service's.

And one distinct decision's id (``ingest.decision_ids.decision_id``, computed once per new (device, category,
region, outcome, document), then memoised) against ``uuid.uuid5`` of the same name.
"""

from __future__ import annotations

import gc
import math
import time
import uuid
from collections.abc import Callable, Sequence

from bench.ingest.workload import Message, Workload, make_router
from ingest.cli import GC_THRESHOLD
from ingest.decision_ids import decision_id
from ingest.pipeline.router import Router
from ingest.records import ID_NAMESPACE
from ingest.volumes.tracker import VolumeTracker


def _best_us(router: Router, messages: Sequence[Message], rounds: int = 3) -> float:
    best = math.inf
    for _ in range(rounds):
        started = time.process_time()
        for m in messages:
            router.route(m.topic, m.payload)
        best = min(best, (time.process_time() - started) / len(messages) * 1e6)
    return best


def _per_call_us(fn: Callable[[], object], n: int = 200_000) -> float:
    started = time.process_time()
    for _ in range(n):
        fn()
    return (time.process_time() - started) / n * 1e6


def main() -> None:
    workload = Workload(readings_per_device=3000)
    sets = {"1": workload.messages(12_000, 1), "100": workload.messages(120, 100)}
    plain = make_router(workload.registry)
    hooked = make_router(workload.registry)
    hooked.volumes = VolumeTracker(None)
    for label, messages in sets.items():
        for router in (plain, hooked):  # warm the decision cache and the memos
            for m in messages[:50]:
                router.route(m.topic, m.payload)
        print(f"{label:>3} reading(s)/msg  Router.route                 {_best_us(plain, messages):8.1f} us/msg")
        print(f"{label:>3} reading(s)/msg  Router.route + volumes hook  {_best_us(hooked, messages):8.1f} us/msg")
    heap = [{"k": i, "v": [i, str(i)]} for i in range(300_000)]  # a running service's long-lived objects
    default = gc.get_threshold()
    results = {}
    for name in ("default", "ingest serve"):
        if name == "ingest serve":
            gc.freeze()
            gc.set_threshold(*GC_THRESHOLD)
        results[name] = {label: _best_us(hooked, messages) for label, messages in sets.items()}
    gc.set_threshold(*default)
    gc.unfreeze()
    del heap
    for label in sets:
        print(
            f"{label:>3} reading(s)/msg  with the hook, GC default {results['default'][label]:.1f} us/msg, "
            f"GC as ingest serve sets it {results['ingest serve'][label]:.1f} us/msg"
        )
    doc = uuid.UUID(int=12345)
    name = f"cn-shenzhen-cnc-01/machine/us-east/stored/{doc}"
    ours = _per_call_us(lambda: decision_id("cn-shenzhen-cnc-01", "machine", "us-east", "stored", doc))
    std = _per_call_us(lambda: uuid.uuid5(ID_NAMESPACE, name))
    print(f"decision id: {ours:.2f} us (uuid.uuid5 of the same name: {std:.2f} us)")


if __name__ == "__main__":
    main()
