"""Fixtures of the browser tests: the system Chromium driven over the DevTools protocol, and a real
running stack (Mosquitto, PostgreSQL, an ingest replica serving the API over HTTP) holding known traffic.

Nothing is skipped: without Chromium the tests fail and say how to install it.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from devstack import MosquittoServer, PostgresServer
from ingest.registry import Registry
from tests.browser.cdp import Browser, find_chromium
from tests.browser.stack import LiveStack, start_stack
from tests.conftest import REPO_ROOT, fresh_databases

SCREENSHOTS = REPO_ROOT / "artifacts" / "screenshots"


@pytest.fixture(scope="session")
def chromium() -> str:
    binary = find_chromium()
    if binary is None:
        where = f"at CHROMIUM={os.environ['CHROMIUM']}" if os.environ.get("CHROMIUM") else "at /usr/bin/chromium"
        pytest.fail(
            f"the browser tests need Chromium, and there is none {where}"
            ". Install it with `sudo apt-get install chromium` (Debian; `chromium-browser` on Ubuntu) "
            "or point $CHROMIUM at a Chromium/Chrome binary, then run the tests again.",
            pytrace=False,
        )
    return binary


@pytest.fixture(scope="module")
def browser(chromium: str) -> Iterator[Browser]:
    try:
        driver = Browser(chromium)
    except Exception as exc:
        pytest.fail(f"cannot start headless Chromium ({chromium}): {exc}", pytrace=False)
    yield driver
    driver.close()


@pytest.fixture(scope="module")
def stack(
    pg_server: PostgresServer, registry: Registry, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[LiveStack]:
    """A stack per test file: the files change what it holds (a quarantined item dismissed, a device moved) and
    run in any order, in any worker (./scripts/test runs files in parallel)."""
    broker = MosquittoServer()
    try:
        broker.start()
    except Exception as exc:
        pytest.fail(f"cannot start Mosquitto for the browser tests: {exc}", pytrace=False)
    try:
        control, regions = fresh_databases(pg_server, registry)
        live = start_stack(broker, control, regions, registry, tmp_path_factory.mktemp("browser-stack"))
        try:
            yield live
        finally:
            live.replica.stop()
    finally:
        broker.cleanup()


@pytest.fixture(scope="session")
def screenshots() -> Path:
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    return SCREENSHOTS
