"""bench.ingest.threads: CPU per thread role of a process, from /proc; the threads named by ingest.thread_names."""

from __future__ import annotations

import os
import threading
from pathlib import Path

from bench.ingest.threads import ThreadCpu, role_of
from ingest.thread_names import name_os_thread


def test_roles_drop_the_pool_number_and_name_paho() -> None:
    assert role_of("ingest-region_3") == "ingest-region"
    assert role_of("ingest-control_0") == role_of("ingest-control_") == "ingest-control"  # 15 bytes: no number
    assert role_of("paho-mqtt-clien") == "paho"
    assert role_of("ingest-flush") == "ingest-flush"


def test_a_busy_named_thread_is_counted_under_its_role() -> None:
    named = threading.Event()
    finish = threading.Event()

    def work() -> None:
        name_os_thread()  # as the ingest's threads do when they start
        named.set()
        while not finish.is_set():  # busy until the meter has seen it work
            sum(range(10_000))

    worker = threading.Thread(target=work, name="bench-busy_12345", daemon=True)
    meter = ThreadCpu(os.getpid())
    worker.start()
    try:
        assert named.wait(30)
        assert worker.native_id is not None
        comm = Path(f"/proc/{os.getpid()}/task/{worker.native_id}/comm").read_text().strip()
        assert comm == "bench-busy_1234"  # the Python name, cut to 15 bytes
        spent = 0.0
        for _ in range(3000):  # until the kernel has counted a tick of its CPU time (a few ms, longer when loaded)
            spent = meter.stop().get("bench-busy", 0.0)
            if spent > 0:
                break
            finish.wait(0.01)
        assert spent > 0
    finally:
        finish.set()
        worker.join(30)
