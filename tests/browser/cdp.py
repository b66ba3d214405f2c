"""A small Chrome DevTools Protocol driver for the system Chromium (no browser download, no webdriver).

Chromium runs headless with ``--remote-debugging-port=0``; its browser websocket address is read from
the ``DevTools listening on ws://...`` line it prints on stderr. One page target is attached in flat
mode, so every command travels over that one websocket with its ``sessionId``.
"""

from __future__ import annotations

import base64
import itertools
import json
import os
import re
import shutil
import subprocess
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import websocket

CHROMIUM_CANDIDATES = ("/usr/bin/chromium", "/usr/bin/chromium-browser", "/usr/bin/google-chrome")
_LISTENING = re.compile(r"DevTools listening on (ws://\S+)")


class BrowserError(RuntimeError):
    pass


def _executable(path: str) -> bool:
    return Path(path).is_file() and os.access(path, os.X_OK)


def find_chromium() -> str | None:
    """$CHROMIUM if set (and only it), else the system Chromium; None if there is none."""
    configured = os.environ.get("CHROMIUM")
    if configured:
        return configured if _executable(configured) else None
    for candidate in CHROMIUM_CANDIDATES:
        if _executable(candidate):
            return candidate
    return shutil.which("chromium")


class Browser:
    """Headless Chromium with one page; ``close()`` ends the process it started and removes its profile."""

    def __init__(self, binary: str, *, width: int = 1440, height: int = 1000, timeout: float = 30) -> None:
        self.profile = tempfile.mkdtemp(prefix="cdp-profile-")
        args = [
            binary,
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--disable-dev-shm-usage",
            "--hide-scrollbars",
            "--mute-audio",
            "--remote-debugging-port=0",
            f"--user-data-dir={self.profile}",
            f"--window-size={width},{height}",
            "about:blank",
        ]
        self.proc = subprocess.Popen(
            args,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
            start_new_session=True,
        )
        self.stderr_tail: list[str] = []
        url = self._read_ws_url(timeout)
        self.ws = websocket.create_connection(url, timeout=timeout, suppress_origin=True)
        self._ids = itertools.count(1)
        self.events: list[dict[str, Any]] = []
        self.console: list[str] = []
        target = self.call("Target.createTarget", url="about:blank")["targetId"]
        self.session = self.call("Target.attachToTarget", targetId=target, flatten=True)["sessionId"]
        for domain in ("Page", "Runtime", "Log"):
            self.send(f"{domain}.enable")
        self.send("Emulation.setDeviceMetricsOverride", width=width, height=height, deviceScaleFactor=1, mobile=False)

    def _read_ws_url(self, timeout: float) -> str:
        assert self.proc.stderr is not None
        found: list[str] = []

        def reader() -> None:
            assert self.proc.stderr is not None
            for line in self.proc.stderr:
                self.stderr_tail = [*self.stderr_tail[-30:], line.rstrip()]
                match = _LISTENING.search(line)
                if match and not found:
                    found.append(match.group(1))

        threading.Thread(target=reader, daemon=True).start()
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and not found:
            if self.proc.poll() is not None:
                break
            time.sleep(0.05)
        if not found:
            self.close()
            raise BrowserError("Chromium did not print its DevTools address:\n" + "\n".join(self.stderr_tail))
        return found[0]

    # --- protocol ------------------------------------------------------------------------------
    def call(self, method: str, *, session: str | None = None, timeout: float = 30, **params: Any) -> Any:
        message_id = next(self._ids)
        message: dict[str, Any] = {"id": message_id, "method": method, "params": params}
        if session:
            message["sessionId"] = session
        self.ws.send(json.dumps(message))
        deadline = time.monotonic() + timeout
        while True:
            self.ws.settimeout(max(0.1, deadline - time.monotonic()))
            try:
                incoming = json.loads(self.ws.recv())
            except websocket.WebSocketTimeoutException:
                raise BrowserError(f"no answer to {method} within {timeout}s") from None
            if incoming.get("id") == message_id:
                if "error" in incoming:
                    raise BrowserError(f"{method}: {incoming['error']}")
                return incoming.get("result", {})
            if "method" in incoming:
                self._event(incoming)

    def send(self, method: str, **params: Any) -> Any:
        """A command to the page."""
        return self.call(method, session=self.session, **params)

    def _event(self, event: dict[str, Any]) -> None:
        self.events = [*self.events[-200:], event]
        method, params = event["method"], event.get("params", {})
        if method == "Runtime.exceptionThrown":
            details = params.get("exceptionDetails", {})
            text = details.get("exception", {}).get("description") or details.get("text")
            self.console.append(f"exception: {text}")
        elif method == "Runtime.consoleAPICalled" and params.get("type") in ("error", "assert"):
            self.console.append(
                "console.error: " + " ".join(str(a.get("value", a.get("description"))) for a in params.get("args", []))
            )
        elif method == "Log.entryAdded" and params.get("entry", {}).get("level") == "error":
            entry = params["entry"]
            self.console.append(f"{entry.get('source')}: {entry.get('text')} {entry.get('url', '')}".strip())

    # --- page helpers --------------------------------------------------------------------------
    def navigate(self, url: str) -> None:
        self.console.clear()
        result = self.send("Page.navigate", url=url)
        if result.get("errorText"):
            raise BrowserError(f"cannot open {url}: {result['errorText']}")
        self.wait_for("document.readyState === 'complete'", what=f"{url} loaded")

    def evaluate(self, expression: str) -> Any:
        result = self.send("Runtime.evaluate", expression=expression, returnByValue=True, awaitPromise=True)
        if "exceptionDetails" in result:
            details = result["exceptionDetails"]
            raise BrowserError(f"{expression[:80]}...: {details.get('exception', {}).get('description', details)}")
        return result["result"].get("value")

    def wait_for(self, expression: str, *, timeout: float = 15, what: str | None = None) -> Any:
        """Poll ``expression`` until it is truthy; return its value."""
        deadline = time.monotonic() + timeout
        value: Any = None
        while time.monotonic() < deadline:
            try:
                value = self.evaluate(expression)
            except BrowserError as exc:  # e.g. a page between two documents: no body yet
                value = f"error: {exc}"
                time.sleep(0.1)
                continue
            if value:
                return value
            time.sleep(0.1)
        raise BrowserError(
            f"timed out after {timeout}s waiting for {what or expression} (last: {value!r}); console: {self.console}"
        )

    def wait_until(self, check: Callable[[], Any], *, timeout: float = 15, what: str) -> Any:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            value = check()
            if value:
                return value
            time.sleep(0.1)
        raise BrowserError(f"timed out after {timeout}s waiting for {what}; console: {self.console}")

    def screenshot(self, path: Path) -> Path:
        """The whole page (not only the viewport) as PNG."""
        metrics = self.send("Page.getLayoutMetrics")
        size = metrics.get("cssContentSize") or metrics["contentSize"]
        clip = {"x": 0, "y": 0, "width": size["width"], "height": min(size["height"], 8000), "scale": 1}
        data = self.send("Page.captureScreenshot", format="png", captureBeyondViewport=True, clip=clip)["data"]
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(base64.b64decode(data))
        return path

    def close(self) -> None:
        try:
            if getattr(self, "ws", None) is not None:
                self.ws.close()
        finally:
            if self.proc.poll() is None:
                self.proc.terminate()
                try:
                    self.proc.wait(10)
                except subprocess.TimeoutExpired:
                    self.proc.kill()
                    self.proc.wait(10)
            if self.proc.stderr is not None:
                self.proc.stderr.close()
            shutil.rmtree(self.profile, ignore_errors=True)
