"""The minimal pipeline baseline (issue 17): the least a Python MQTT -> PostgreSQL pipeline does.

A paho subscriber (MQTT v5, QoS 1, a shared subscription and the ingest's Receive Maximum; paho acknowledges
each message on receipt, as such pipelines do) hands payloads to one writer thread, which every
``--batch`` messages or ``--interval-ms`` (what comes first) parses them with the standard library's
``json``, makes one row per reading and field (the ingest's columns; no registry, no policy, no audit, no
sequences, no rollups, one table) and stores them with one binary ``COPY`` (no ``ON CONFLICT``) and a commit.
The table has the ingest's primary key and indexes (``readings``' definition in
``ingest/store/migrations/region/0001_readings.sql``, not partitioned).

Run as a child process: creates its table, prints ``ready`` after the SUBACK, then one JSON line when
``--count`` messages are committed: the wall-clock time of the last commit, messages and rows. With ``--linger``
it keeps its PostgreSQL connection open until its standard input closes: the caller reads the server's CPU after
the result, and a backend that has exited is gone from ``/proc`` with its CPU time.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import threading
import time
import uuid
from datetime import datetime

from ingest.store.region import COLUMNS, COPY_TYPES  # the ingest's columns and their types

TABLE = "minimal_readings"
CREATE = f"""
DROP TABLE IF EXISTS {TABLE};
CREATE TABLE {TABLE} (
    device_id text NOT NULL, seq bigint NOT NULL, idx integer NOT NULL, name text NOT NULL,
    ts timestamptz NOT NULL, site_id text NOT NULL, origin_country char(2) NOT NULL, category text NOT NULL,
    num double precision, txt text, transform text, decision_id uuid NOT NULL, policy_revision text NOT NULL,
    ingested_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (device_id, seq, idx, name, ts)
);
CREATE INDEX {TABLE}_device_name_ts ON {TABLE} (device_id, name, ts DESC);
CREATE INDEX {TABLE}_ts ON {TABLE} (ts DESC);
"""
DECISION = uuid.UUID(int=0)


def rows_of(payload: bytes | bytearray) -> list[tuple[object, ...]]:
    """One row per reading and field of a payload in the wire format (no checks beyond ``json``)."""
    doc = json.loads(payload)
    device, seq, origin = doc["device_id"], doc["seq"], doc["origin"]
    site, country = origin["site_id"], origin["country"]
    rows: list[tuple[object, ...]] = []
    for idx, reading in enumerate(doc["readings"]):
        ts = datetime.fromisoformat(reading["ts"])
        for name, value in reading["values"].items():
            num = float(value) if isinstance(value, int | float) else None
            txt = value if isinstance(value, str) else None
            rows.append((device, seq, idx, name, ts, site, country, "machine", num, txt, None, DECISION, "none"))
    return rows


def main() -> None:
    import paho.mqtt.client as mqtt
    import psycopg

    from bench.ingest.subscriber import subscribe

    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--dsn", required=True)
    parser.add_argument("--count", type=int, required=True)
    parser.add_argument("--topic", default="$share/minimal/tele/v1/+/+")
    parser.add_argument("--receive-maximum", type=int, default=2000)
    parser.add_argument("--batch", type=int, default=500)
    parser.add_argument("--interval-ms", type=float, default=200)
    parser.add_argument("--timeout", type=float, default=300)
    parser.add_argument(
        "--linger", action="store_true", help="after the result line, keep the connection until stdin closes"
    )
    args = parser.parse_args()

    with psycopg.connect(args.dsn, autocommit=True) as conn:
        conn.execute(CREATE)
    conn = psycopg.connect(args.dsn)
    pending: list[bytes | bytearray] = []  # paho's MQTTMessage.payload type
    lock = threading.Condition()
    stored = rows_total = 0
    t_last = 0.0

    def on_message(_c: mqtt.Client, _u: object, msg: mqtt.MQTTMessage) -> None:
        with lock:
            pending.append(msg.payload)
            if len(pending) >= args.batch:
                lock.notify()

    def writer() -> None:
        nonlocal stored, rows_total, t_last
        interval = args.interval_ms / 1000
        deadline = time.monotonic() + args.timeout
        while stored < args.count and time.monotonic() < deadline:
            with lock:
                lock.wait_for(lambda: len(pending) >= args.batch, timeout=interval)
                batch = pending[: args.batch]
                del pending[: args.batch]
            if not batch:
                continue
            rows = [row for payload in batch for row in rows_of(payload)]
            with (
                conn.cursor() as cur,
                cur.copy(f"COPY {TABLE} ({', '.join(COLUMNS)}) FROM STDIN (FORMAT BINARY)") as copy,
            ):
                copy.set_types(list(COPY_TYPES))
                for row in rows:
                    copy.write_row(row)
            conn.commit()
            stored += len(batch)
            rows_total += len(rows)
            t_last = time.time()

    client = subscribe(args.port, f"bench-minimal-{os.getpid()}", args.topic, args.receive_maximum, on_message)
    thread = threading.Thread(target=writer, name="minimal-writer")
    thread.start()
    thread.join()
    client.disconnect()
    client.loop_stop()
    print(json.dumps({"count": stored, "rows": rows_total, "t_last": t_last or time.time()}), flush=True)
    if args.linger:
        sys.stdin.read()  # until the caller has measured (it closes our stdin)
    conn.close()


if __name__ == "__main__":
    main()
