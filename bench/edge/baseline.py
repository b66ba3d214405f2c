"""The baseline of the edge benchmark: a bare paho-mqtt QoS 1 publisher, nothing else.

Two modes, run as a subprocess so that its CPU and memory are measured like the agent's:

``paced``: publish the given payloads round-robin at ``--rate`` messages/s until killed (the same
messages the agent sends at 1,000 readings/s, without sampling, batching, persisting).

``burst``: load every payload of the agent's disk queue into memory, then publish them all
(in-flight window ``--window``) and print the seconds from the first publish to the last PUBACK.
"""

from __future__ import annotations

import argparse
import json
import sqlite3
import threading
import time
from pathlib import Path

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion, MQTTProtocolVersion


def _client(port: int, window: int) -> mqtt.Client:
    client = mqtt.Client(
        CallbackAPIVersion.VERSION2, client_id=f"baseline-{time.monotonic_ns()}", protocol=MQTTProtocolVersion.MQTTv5
    )
    client.max_inflight_messages_set(window)
    client.max_queued_messages_set(0)
    client.connect("127.0.0.1", port, 30)
    return client


def paced(port: int, payload_file: Path, rate: float) -> None:
    payloads = json.loads(payload_file.read_text())
    messages = [(m["topic"], bytes.fromhex(m["payload"])) for m in payloads]
    client = _client(port, 20)
    client.loop_start()
    print("ready", flush=True)
    interval = 1.0 / rate
    due = time.monotonic()
    i = 0
    while True:
        topic, payload = messages[i % len(messages)]
        client.publish(topic, payload, qos=1)
        i += 1
        due += interval
        delay = due - time.monotonic()
        if delay > 0:
            time.sleep(delay)


def burst(port: int, db_path: Path, window: int) -> None:
    db = sqlite3.connect(f"file:{db_path}?mode=ro", uri=True)
    messages = [
        (topic, bytes(payload)) for topic, payload in db.execute("SELECT topic, payload FROM batches ORDER BY id")
    ]
    db.close()
    total = len(messages)
    acked = 0
    done = threading.Event()

    def on_publish(*_args: object) -> None:
        nonlocal acked
        acked += 1
        if acked == total:
            done.set()

    client = _client(port, window)
    client.on_publish = on_publish
    client.loop_start()
    start = time.monotonic()
    for topic, payload in messages:
        client.publish(topic, payload, qos=1)
    done.wait(600)
    elapsed = time.monotonic() - start
    client.disconnect()
    client.loop_stop()
    print(json.dumps({"messages": total, "acked": acked, "seconds": elapsed}), flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("mode", choices=["paced", "burst"])
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--payloads", type=Path, help="paced: JSON list of {topic, payload (hex)}")
    parser.add_argument("--rate", type=float, default=20.0, help="paced: messages per second")
    parser.add_argument("--db", type=Path, help="burst: the agent's state.sqlite3")
    parser.add_argument("--window", type=int, default=20, help="burst: in-flight window")
    args = parser.parse_args()
    if args.mode == "paced":
        paced(args.port, args.payloads, args.rate)
    else:
        burst(args.port, args.db, args.window)


if __name__ == "__main__":
    main()
