"""The bare subscriber baseline: paho, MQTT v5, QoS 1, the ingest's shared subscription and Receive
Maximum, ``manual_ack=True`` with an immediate ``ack()`` in ``on_message`` (or auto-ack); it only counts.

Run as a child process: prints ``ready`` after the SUBACK, then one JSON line when ``--count`` messages
have arrived: the wall-clock time of the last one.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import threading
import time
from collections.abc import Callable

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties
from paho.mqtt.subscribeoptions import SubscribeOptions


def subscribe(
    port: int,
    client_id: str,
    topic: str,
    receive_maximum: int,
    on_message: Callable[..., None],
    *,
    manual_ack: bool = False,
) -> mqtt.Client:
    """A baseline's paho client (MQTT v5, clean start, the given Receive Maximum) subscribed to ``topic`` at QoS 1,
    its loop running; prints ``ready`` once the broker granted the subscription (exits 1 after 10 s)."""
    subscribed = threading.Event()
    client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=client_id, protocol=mqtt.MQTTv5, manual_ack=manual_ack)
    client.on_message = on_message
    client.on_subscribe = lambda *_a: subscribed.set()
    client.on_connect = lambda c, *_a: c.subscribe([(topic, SubscribeOptions(qos=1))])
    props = Properties(PacketTypes.CONNECT)
    props.ReceiveMaximum = receive_maximum
    client.connect("127.0.0.1", port, clean_start=True, properties=props)
    client.loop_start()
    if not subscribed.wait(10):
        print("not subscribed", flush=True)
        sys.exit(1)
    print("ready", flush=True)
    return client


def main() -> None:

    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--count", type=int, required=True)
    parser.add_argument("--topic", default="$share/bench/tele/v1/+/+")
    parser.add_argument("--receive-maximum", type=int, default=2000)
    parser.add_argument("--auto-ack", action="store_true")
    parser.add_argument("--timeout", type=float, default=300)
    args = parser.parse_args()

    manual = not args.auto_ack
    count = 0
    t_first = 0.0
    t_last = 0.0
    done = threading.Event()

    def on_message(client: mqtt.Client, _u: object, msg: mqtt.MQTTMessage) -> None:
        nonlocal count, t_first, t_last
        if manual:
            client.ack(msg.mid, msg.qos)
        count += 1
        if count == 1:
            t_first = time.time()
        if count >= args.count:
            t_last = time.time()
            done.set()

    client = subscribe(
        args.port, f"bench-bare-{os.getpid()}", args.topic, args.receive_maximum, on_message, manual_ack=manual
    )
    done.wait(args.timeout)
    client.disconnect()
    client.loop_stop()
    print(json.dumps({"count": count, "t_first": t_first, "t_last": t_last or time.time()}), flush=True)


if __name__ == "__main__":
    main()
