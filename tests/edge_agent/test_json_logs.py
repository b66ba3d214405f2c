"""``edge-agent run --log-format json``: one JSON object per line with ts, level, logger, msg and the
structured fields (device_id, source, broker, ...); the formatter itself; the text format is unchanged."""

from __future__ import annotations

import io
import json
import logging
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import yaml

from edge_agent.logs import JsonFormatter

from .edge_support import REPO, Mosquitto, agent_config_dict, free_port

CNC = "de-munich-cnc-01"
PLC = "plc-02"  # a Modbus device nobody answers for


def formatted(emit: Callable[[logging.Logger], None]) -> str:
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(JsonFormatter())
    logger = logging.getLogger("edge_agent.test_json_logs")
    logger.propagate = False
    logger.setLevel(logging.DEBUG)
    logger.addHandler(handler)
    try:
        emit(logger)
    finally:
        logger.removeHandler(handler)
    return stream.getvalue()


def test_a_record_is_one_json_line_with_its_fields() -> None:
    when = datetime(2026, 11, 22, 7, 49, 43, tzinfo=UTC)
    text = formatted(
        lambda log: log.warning(
            "source %s failed:\nline two",
            "plc-02",
            extra={"device_id": "plc-02", "source": "modbus", "failures": 3, "at": when, "path": Path("/x")},
        )
    )
    assert text.count("\n") == 1  # the message's newline is escaped
    doc = json.loads(text)
    assert list(doc)[:4] == ["ts", "level", "logger", "msg"]
    assert doc["level"] == "WARNING" and doc["logger"] == "edge_agent.test_json_logs"
    assert doc["msg"] == "source plc-02 failed:\nline two"
    assert (doc["device_id"], doc["source"], doc["failures"]) == ("plc-02", "modbus", 3)
    assert doc["at"] == "2026-11-22T07:49:43+00:00" and doc["path"] == "/x"
    ts = datetime.fromisoformat(doc["ts"])
    assert ts.tzinfo is not None and abs(ts.timestamp() - time.time()) < 60
    for internal in ("args", "levelno", "pathname", "lineno", "thread", "created", "exc_info"):
        assert internal not in doc


def test_an_exception_goes_in_exc() -> None:
    def emit(log: logging.Logger) -> None:
        try:
            raise ValueError("boom")
        except ValueError:
            log.exception("publisher: unexpected error", extra={"broker": "127.0.0.1:1883"})

    doc = json.loads(formatted(emit))
    assert doc["level"] == "ERROR" and doc["broker"] == "127.0.0.1:1883"
    assert doc["exc"].startswith("Traceback") and "ValueError: boom" in doc["exc"]


def write_config(tmp_path: Path, broker_port: int, **overrides: Any) -> Path:
    data = agent_config_dict(tmp_path, broker_port, **overrides)
    path = tmp_path / "agent.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path


class Lines:
    """The stderr lines of a subprocess, collected by a thread."""

    def __init__(self, proc: subprocess.Popen[str]) -> None:
        self.proc = proc
        self.lines: list[str] = []
        self._cond = threading.Condition()
        self._thread = threading.Thread(target=self._read, daemon=True)
        self._thread.start()

    def _read(self) -> None:
        assert self.proc.stderr is not None
        for line in self.proc.stderr:
            with self._cond:
                self.lines.append(line.rstrip("\n"))
                self._cond.notify_all()

    def wait_for(self, predicate: Callable[[dict[str, Any]], bool], timeout_s: float, what: str) -> dict[str, Any]:
        def found() -> dict[str, Any] | None:
            for line in self.lines:
                try:
                    doc = json.loads(line)
                except ValueError:
                    continue
                if isinstance(doc, dict) and predicate(doc):
                    return doc
            return None

        with self._cond:
            if not self._cond.wait_for(lambda: found() is not None or self.proc.poll() is not None, timeout_s):
                pytest.fail(f"timed out waiting for {what}:\n" + "\n".join(self.lines))
            doc = found()
        if doc is None:
            pytest.fail(f"the agent exited before {what}:\n" + "\n".join(self.lines))
        return doc

    def finish(self, timeout_s: float) -> list[str]:
        self.proc.wait(timeout_s)
        self._thread.join(5)
        if self.proc.stderr is not None and not self._thread.is_alive():
            self.proc.stderr.close()  # read to its end: close our side of the pipe (no ResourceWarning)
        return self.lines


@pytest.mark.integration
def test_run_with_json_logs(broker: Mosquitto, tmp_path: Path, cli_env: dict[str, str]) -> None:
    cfg = agent_config_dict(tmp_path, broker.port)
    dead = {
        "type": "modbus",
        "device_id": PLC,
        "host": "127.0.0.1",
        "port": free_port(),
        "timeout_s": 1,
        "registers": [{"field": "speed_rpm", "address": 0}],
    }
    config = write_config(tmp_path, broker.port, sources=[cfg["sources"][0], dead])
    args = ["run", "--config", str(config), "--log-format", "json", "--report-every", "0.3"]
    proc = subprocess.Popen(
        [sys.executable, "-m", "edge_agent", *args],
        cwd=REPO,
        env=cli_env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    out = Lines(proc)
    try:
        failed = out.wait_for(lambda d: d.get("device_id") == PLC and "failed" in d["msg"], 20, "the source failure")
        connected = out.wait_for(lambda d: d["msg"].startswith("connected to "), 20, "the connection")
        report = out.wait_for(lambda d: d.get("batches_acked", 0) > 0, 20, "a report with acknowledged batches")
    finally:
        proc.send_signal(signal.SIGTERM)
        lines = out.finish(20)
    assert proc.returncode == 0, "\n".join(lines)

    assert (failed["level"], failed["logger"], failed["source"]) == ("WARNING", "edge_agent.runner", "modbus")
    assert failed["failures"] == 1 and failed["retry_in_s"] > 0 and "cannot connect" in failed["error"]
    assert failed["msg"].startswith(f"source {PLC} failed (cannot connect")
    assert (connected["logger"], connected["broker"]) == ("edge_agent.publisher", f"127.0.0.1:{broker.port}")
    assert report["connected"] is True and isinstance(report["queue_batches"], int)
    assert report["source_errors"] >= 1
    docs = [json.loads(line) for line in lines]  # every line is a JSON object: no stray text, no traceback
    assert all(isinstance(d, dict) and {"ts", "level", "logger", "msg"} <= d.keys() for d in docs)
    for doc in docs:
        datetime.fromisoformat(doc["ts"])
    assert any(d["msg"] == "SIGTERM received: stopping" and d["signal"] == "SIGTERM" for d in docs)
    assert docs[-1]["msg"].startswith(f"stopped | {CNC}: ")


def test_a_config_error_is_a_json_line_too(tmp_path: Path, cli_env: dict[str, str]) -> None:
    config = write_config(tmp_path, free_port(), metrics={"enabled": True, "port": 70000})
    line = next(i for i, text in enumerate(config.read_text().splitlines(), 1) if "70000" in text)
    done = subprocess.run(
        [sys.executable, "-m", "edge_agent", "run", "--config", str(config), "--log-format", "json"],
        cwd=REPO,
        env=cli_env,
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert done.returncode == 2
    [doc] = [json.loads(text) for text in done.stderr.splitlines()]
    assert (doc["level"], doc["error"], doc["file"], doc["line"], doc["field"]) == (
        "ERROR",
        "ConfigError",
        str(config),
        line,
        "metrics.port",
    )
    assert doc["msg"].startswith(f"{config}:{line}: metrics.port: Input should be less than or equal to 65535")


def test_an_unknown_log_format_is_a_usage_error(tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from edge_agent.cli import app

    done = CliRunner().invoke(app, ["run", "--config", str(tmp_path / "agent.yaml"), "--log-format", "xml"])
    assert done.exit_code == 2
    words = " ".join(done.output.replace("│", " ").split())  # the error box wraps lines
    assert "Invalid value for '--log-format'" in words and "'xml' is not one of 'text', 'json'" in words
