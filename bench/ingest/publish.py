"""Load generators: pre-encoded payloads published at QoS 1 as fast as possible, from child processes.

Two kinds, measured alone first so the faster one feeds the system under test:

- ``paho``: ``python -m bench.ingest.publish`` workers (paho-mqtt, MQTT v5, QoS 1, a window of
  un-PUBACKed messages), each with its share of the devices (per-device order is kept);
- ``c``: one ``mosquitto_pub -l`` per device topic, fed one payload per line (the JSON payloads are
  single-line); C, so it leaves more CPU to the system under test on a small machine.

Both connect first, then start on a signal, so ``t0`` (wall clock, just before the signal) is the first
publish. A run returns when every worker has received every PUBACK.

A broker with credentials (a residency cell's: each gateway logs in with its own identity, and the broker
uses the user name as the client id, so one identity is one connection) is fed by one ``paho`` worker
logged in as that gateway (``login``).
"""

from __future__ import annotations

import argparse
import json
import os
import pickle
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any

REPO_ROOT = Path(__file__).resolve().parents[2]


@dataclass(frozen=True)
class Login:
    """An MQTT identity: its user name and the file holding its secret (read by the worker, never on a
    command line)."""

    username: str
    password_file: Path

    def password(self) -> str:
        return self.password_file.read_text().strip()


@dataclass
class PublishResult:
    kind: str
    processes: int
    messages: int
    t0: float  # wall clock of the go signal (first publish)
    t_done: float  # wall clock when the last PUBACK was received
    bytes: int

    @property
    def seconds(self) -> float:
        return self.t_done - self.t0

    @property
    def rate(self) -> float:
        return self.messages / self.seconds if self.seconds > 0 else 0.0


def _split_by_topic(messages: Sequence[tuple[str, bytes]], parts: int) -> list[list[tuple[str, bytes]]]:
    topics = sorted({t for t, _ in messages})
    owner = {t: i % parts for i, t in enumerate(topics)}
    out: list[list[tuple[str, bytes]]] = [[] for _ in range(min(parts, len(topics)))]
    for t, p in messages:
        out[owner[t]].append((t, p))
    return [o for o in out if o]


class Publisher:
    """Prepared publisher processes (connected, waiting); ``run()`` sends the go signal and waits."""

    def __init__(
        self,
        kind: str,
        port: int,
        messages: Sequence[tuple[str, bytes]],
        processes: int = 2,
        workdir: Path | None = None,
        inflight: int = 1000,
        login: Login | None = None,
    ) -> None:
        if kind not in ("paho", "c"):
            raise ValueError(f"unknown publisher kind {kind!r}")
        if login is not None and (kind != "paho" or processes != 1):
            raise ValueError(f"a login is one connection: use one paho process (got {kind} x{processes})")
        if kind == "c" and shutil.which("mosquitto_pub") is None:
            raise RuntimeError("mosquitto_pub not found (apt-get install mosquitto-clients)")
        self.kind = kind
        self.port = port
        self.count = len(messages)
        self.bytes = sum(len(p) for _, p in messages)
        self.dir = Path(tempfile.mkdtemp(prefix="pub-", dir=workdir))
        self.procs: list[subprocess.Popen[bytes]] = []
        self._inputs: list[Path] = []
        if kind == "paho":
            parts = _split_by_topic(messages, processes)
            for i, part in enumerate(parts):
                path = self.dir / f"part-{i}.pickle"
                path.write_bytes(pickle.dumps(part, protocol=pickle.HIGHEST_PROTOCOL))
                self.procs.append(
                    subprocess.Popen(
                        [
                            sys.executable,
                            "-m",
                            "bench.ingest.publish",
                            "--port",
                            str(port),
                            "--file",
                            str(path),
                            "--inflight",
                            str(inflight),
                            "--client-id",
                            f"bench-pub-{os.getpid()}-{i}",
                            *(
                                ["--username", login.username, "--password-file", str(login.password_file)]
                                if login
                                else []
                            ),
                        ],
                        stdin=subprocess.PIPE,
                        stdout=subprocess.PIPE,
                        cwd=REPO_ROOT,
                    )
                )
            for p in self.procs:
                line = p.stdout.readline() if p.stdout else b""
                if line.strip() != b"ready":
                    self.close()
                    raise RuntimeError(f"publisher worker failed to connect: {line!r}")
        else:
            by_topic: dict[str, list[bytes]] = {}
            for t, payload in messages:
                if b"\n" in payload:
                    raise ValueError("mosquitto_pub -l needs single-line payloads")
                by_topic.setdefault(t, []).append(payload)
            for i, (topic, payloads) in enumerate(sorted(by_topic.items())):
                path = self.dir / f"lines-{i}.txt"
                path.write_bytes(b"\n".join(payloads) + b"\n")
                self._inputs.append(path)
                self.procs.append(
                    subprocess.Popen(
                        [
                            "mosquitto_pub",
                            "-h",
                            "127.0.0.1",
                            "-p",
                            str(port),
                            "-V",
                            "5",
                            "-q",
                            "1",
                            "-M",
                            str(inflight),
                            "-i",
                            f"bench-cpub-{os.getpid()}-{i}",
                            "-t",
                            topic,
                            "-l",
                        ],
                        stdin=subprocess.PIPE,
                        stdout=subprocess.DEVNULL,
                        stderr=subprocess.PIPE,
                    )
                )
            time.sleep(0.5)  # let them connect

    def run(self, timeout: float = 600.0) -> PublishResult:
        t0 = time.time()
        if self.kind == "paho":
            for p in self.procs:
                assert p.stdin is not None
                p.stdin.write(b"go\n")
                p.stdin.flush()
            t_done = t0
            for p in self.procs:
                assert p.stdout is not None
                line = p.stdout.readline()
                try:
                    result = json.loads(line)
                except ValueError:
                    raise RuntimeError(f"publisher worker failed: {line!r}") from None
                if result.get("failed"):
                    raise RuntimeError(
                        f"the broker refused {result['failed']} of the publisher's messages: "
                        f"{result['first_failure'][0]}"
                    )
                t_done = max(t_done, float(result["t_done"]))
                p.wait(timeout)
        else:

            def feed(proc: subprocess.Popen[bytes], path: Path) -> None:
                assert proc.stdin is not None
                with open(path, "rb") as f:
                    shutil.copyfileobj(f, proc.stdin, 1 << 20)
                proc.stdin.close()

            threads = [
                threading.Thread(target=feed, args=(p, path), daemon=True)
                for p, path in zip(self.procs, self._inputs, strict=True)
            ]
            for t in threads:
                t.start()
            for p in self.procs:
                p.wait(timeout)
                if p.returncode != 0:
                    err = p.stderr.read().decode(errors="replace") if p.stderr else ""
                    raise RuntimeError(f"mosquitto_pub exited with {p.returncode}: {err.strip()}")
            t_done = time.time()
        result = PublishResult(self.kind, len(self.procs), self.count, t0, t_done, self.bytes)
        self.close()
        return result

    def close(self) -> None:
        for p in self.procs:
            if p.poll() is None:
                p.kill()
                p.wait()
        shutil.rmtree(self.dir, ignore_errors=True)


def publish_inline(
    port: int, messages: Sequence[tuple[str, bytes]], timeout: float = 30.0, login: Login | None = None
) -> None:
    """Publish a few messages from this process (warm-ups): QoS 1, returns once all are PUBACKed (a PUBACK
    with a failure reason, e.g. "not authorized", raises RuntimeError)."""
    import paho.mqtt.client as mqtt
    from paho.mqtt.enums import CallbackAPIVersion

    client = mqtt.Client(
        CallbackAPIVersion.VERSION2, client_id=f"bench-warm-{os.getpid()}-{time.monotonic_ns()}", protocol=mqtt.MQTTv5
    )
    refused: list[str] = []
    client.on_publish = lambda _c, _u, mid, reason, _p: (
        refused.append(f"message {mid}: {reason}") if getattr(reason, "is_failure", False) else None
    )
    if login is not None:
        client.username_pw_set(login.username, login.password())
    client.max_inflight_messages_set(max(20, len(messages)))
    client.connect("127.0.0.1", port)
    client.loop_start()
    try:
        infos = [client.publish(t, p, qos=1) for t, p in messages]
        for info in infos:
            info.wait_for_publish(timeout)
        if refused:
            who = login.username if login else "anonymous"
            raise RuntimeError(
                f"broker 127.0.0.1:{port} refused {len(refused)} warm-up publishes of {who}: {refused[0]}"
            )
    finally:
        client.disconnect()
        client.loop_stop()


# --- worker (child process) --------------------------------------------------------------------------


def connect_client(
    port: int,
    client_id: str,
    *,
    inflight: int,
    queued: int | None = None,
    login: Login | None = None,
    on_publish: Any = None,
    timeout: float = 10.0,
) -> Any:
    """A paho client (MQTT 5) connected to 127.0.0.1:``port`` as ``login``, its network loop started, once the
    broker accepted it; RuntimeError naming the refusal (or the missing CONNACK) otherwise."""
    import paho.mqtt.client as mqtt
    from paho.mqtt.enums import CallbackAPIVersion

    client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=client_id, protocol=mqtt.MQTTv5)
    client.max_inflight_messages_set(inflight)
    if queued is not None:
        client.max_queued_messages_set(queued)
    connected = threading.Event()
    refused: list[object] = []

    def on_connect(_c: object, _u: object, _f: object, reason: object, _p: object) -> None:
        if getattr(reason, "is_failure", False):
            refused.append(reason)
        connected.set()

    client.on_connect = on_connect
    if on_publish is not None:
        client.on_publish = on_publish
    if login is not None:
        client.username_pw_set(login.username, login.password())
    client.connect("127.0.0.1", port)
    client.loop_start()
    if not connected.wait(timeout) or refused:
        client.loop_stop()
        raise RuntimeError(
            f"not connected to the broker on :{port}: {refused[0] if refused else f'no CONNACK in {timeout:.0f} s'}"
        )
    return client


def _worker(port: int, path: Path, inflight: int, client_id: str, login: Login | None = None) -> None:
    messages: list[tuple[str, bytes]] = pickle.loads(path.read_bytes())
    acked = 0
    failed: list[str] = []  # PUBACKs with a failure reason (e.g. not authorized): counted, reported
    cond = threading.Condition()

    def on_publish(_c: object, _u: object, _mid: int, rc: object, _p: object) -> None:
        nonlocal acked
        with cond:
            acked += 1
            if getattr(rc, "is_failure", False):
                failed.append(str(rc))
            if acked == len(messages) or acked % 256 == 0:
                cond.notify_all()

    try:
        client = connect_client(port, client_id, inflight=inflight, queued=0, login=login, on_publish=on_publish)
    except RuntimeError as exc:
        print(exc, flush=True)
        sys.exit(1)
    print("ready", flush=True)
    sys.stdin.readline()
    window = max(inflight * 4, 4096)  # paho mids wrap at 65535: never have that many outstanding

    def drained(sent: int) -> bool:
        return sent - acked <= window // 2

    for sent, (topic, payload) in enumerate(messages, 1):
        client.publish(topic, payload, qos=1)
        if sent - acked > window:
            with cond:
                cond.wait_for(partial(drained, sent), timeout=30)
    with cond:
        cond.wait_for(lambda: acked >= len(messages), timeout=300)
    t_done = time.time()
    client.disconnect()
    client.loop_stop()
    print(
        json.dumps({"t_done": t_done, "acked": acked, "failed": len(failed), "first_failure": failed[:1]}), flush=True
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--file", type=Path, required=True)
    parser.add_argument("--inflight", type=int, default=1000)
    parser.add_argument("--client-id", default=f"bench-pub-{os.getpid()}")
    parser.add_argument("--username", help="log in as this identity (with --password-file)")
    parser.add_argument("--password-file", type=Path)
    args = parser.parse_args()
    login = Login(args.username, args.password_file) if args.username and args.password_file else None
    _worker(args.port, args.file, args.inflight, args.client_id, login)


if __name__ == "__main__":
    main()
