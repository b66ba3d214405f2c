"""The simulated Sparkplug B edge node (Eclipse Tahu's JavaScript client, devstack/sparkplug_edge/edge.js) and the
registry entries that map it (deploy/local/registry-sparkplug.yaml)."""

from __future__ import annotations

import contextlib
import json
import queue
import shutil
import subprocess
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import yaml

REPO_ROOT = Path(__file__).resolve().parent.parent
EDGE_JS = REPO_ROOT / "devstack" / "sparkplug_edge" / "edge.js"
NODE_MODULES = REPO_ROOT / ".venv" / "sparkplug-edge" / "node_modules"
FRAGMENT = REPO_ROOT / "deploy" / "local" / "registry-sparkplug.yaml"


def merged_registry(base: Path, out: Path, fragment: Path = FRAGMENT) -> Path:
    """``base`` with the profiles and devices of ``fragment`` added, written to ``out``."""
    registry = yaml.safe_load(base.read_text(encoding="utf-8"))
    extra = yaml.safe_load(fragment.read_text(encoding="utf-8"))
    for section in ("profiles", "devices"):
        registry.setdefault(section, {}).update(extra.get(section, {}))
    out.write_text(yaml.safe_dump(registry, sort_keys=False), encoding="utf-8")
    return out


class TahuEdgeNode:
    """``node edge.js`` as a subprocess: JSON commands on its stdin, JSON events from its stdout."""

    def __init__(
        self,
        url: str,
        group: str,
        edge_node: str,
        devices: list[str],
        *,
        bd_seq: int = 0,
        simulate_s: float | None = None,
        log: Path | None = None,
        username: str | None = None,
        password: str | None = None,
    ) -> None:
        node = shutil.which("node")
        if node is None:
            raise RuntimeError("Node.js (node) is not installed: scripts/bootstrap.sh installs the Sparkplug edge node")
        if not (NODE_MODULES / "sparkplug-client").is_dir():
            raise RuntimeError(
                f"{NODE_MODULES}/sparkplug-client is missing: run BOOTSTRAP_SPARKPLUG=1 "
                "scripts/bootstrap.sh (or BOOTSTRAP_FOR_TESTS=1)"
            )
        cmd = [node, str(EDGE_JS), "--url", url, "--group", group, "--node", edge_node, "--bdseq", str(bd_seq)]
        for device in devices:
            cmd += ["--device", device]
        if simulate_s is not None:
            cmd += ["--simulate", str(simulate_s)]
        if username is not None:
            cmd += ["--username", username, "--password", password or "", "--clientid", username]
        self.events: queue.Queue[dict[str, Any]] = queue.Queue()
        self.seen: list[dict[str, Any]] = []
        self._log = open(log, "ab") if log is not None else None  # noqa: SIM115 (closed by _release)
        self.proc = subprocess.Popen(
            cmd,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=self._log if self._log is not None else subprocess.DEVNULL,
            env={"NODE_PATH": str(NODE_MODULES), "PATH": "/usr/bin:/bin"},
            start_new_session=True,
        )
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            try:
                self.events.put(json.loads(line))
            except ValueError:
                continue

    def send(self, **command: Any) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.write((json.dumps(command) + "\n").encode())
        self.proc.stdin.flush()

    def wait_for(self, predicate: Callable[[dict[str, Any]], bool], timeout: float = 15.0) -> dict[str, Any]:
        """The first event (since the last one consumed) that satisfies ``predicate``."""
        deadline = time.monotonic() + timeout
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise AssertionError(f"edge node: no matching event in {timeout}s (seen {self.seen[-10:]})")
            try:
                event = self.events.get(timeout=remaining)
            except queue.Empty:
                continue
            self.seen.append(event)
            if event.get("event") == "error":
                raise AssertionError(f"edge node error: {event}")
            if predicate(event):
                return event

    def kill(self) -> None:
        """SIGKILL: the connection drops without a DISCONNECT, the broker publishes the Will (NDEATH)."""
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(10)
        self._release()

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.send(cmd="stop")
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                self.kill()
        self._release()

    def _release(self) -> None:
        """Once the process has ended: close our ends of its pipes and its log file."""
        if self.proc.poll() is None:
            return
        self._reader.join(5)  # it reads stdout to its end
        streams = [self.proc.stdin, self._log, None if self._reader.is_alive() else self.proc.stdout]
        for stream in streams:
            if stream is not None:
                with contextlib.suppress(OSError):  # a pipe to an ended process may refuse the final flush
                    stream.close()
