"""Forwarded headers are trusted only from the proxies of INGEST_API_TRUSTED_PROXIES (default none).

The app is served by real uvicorn with the configuration ``ingest serve`` uses
(:func:`ingest.api.server.uvicorn_config`), on a free loopback port, and asked over real HTTP: uvicorn
itself once trusted ``X-Forwarded-For`` from 127.0.0.1, so rotating the header evaded the unauthenticated
rate limit locally."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TypedDict

import httpx
import pytest
import uvicorn

from devstack.ports import free_port
from ingest.api import ApiSettings, create_app
from ingest.api.server import uvicorn_config
from ingest.runtime import Runtime


class _Limits(TypedDict):
    pool_timeout_s: float
    rate_limit: str
    rate_limit_unauthenticated: str


LIMITED: _Limits = {"pool_timeout_s": 1.0, "rate_limit": "100000/minute", "rate_limit_unauthenticated": "5/minute"}


@contextmanager
def served(runtime: Runtime, settings: ApiSettings) -> Iterator[str]:
    port = free_port()
    server = uvicorn.Server(uvicorn_config(create_app(runtime, settings=settings), host="127.0.0.1", port=port))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        if time.monotonic() > deadline or not thread.is_alive():
            pytest.fail("uvicorn did not start")
        time.sleep(0.05)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(10)


def statuses(url: str, forwarded: list[str]) -> list[tuple[int, str]]:
    answers = []
    with httpx.Client(base_url=url, timeout=10) as client:
        for address in forwarded:
            response = client.get("/api/v1/me", headers={"X-Forwarded-For": address})
            answers.append((response.status_code, response.json()["detail"]))
    return answers


def test_a_rotated_forwarded_for_from_an_untrusted_address_does_not_evade_the_limit(runtime: Runtime) -> None:
    settings = ApiSettings(**LIMITED)  # INGEST_API_TRUSTED_PROXIES unset: no proxy is trusted
    assert settings.trusted_proxies == []
    with served(runtime, settings) as url:
        answers = statuses(url, [f"203.0.113.{i}" for i in range(8)])
    assert [status for status, _ in answers] == [401] * 5 + [429] * 3
    assert "unauthenticated requests from 127.0.0.1" in answers[-1][1]  # the connecting address, not the header


def test_a_configured_proxys_forwarded_for_is_honoured(runtime: Runtime) -> None:
    settings = ApiSettings(**LIMITED, trusted_proxies="127.0.0.1, 10.0.0.0/8")
    assert settings.trusted_proxies == ["127.0.0.1", "10.0.0.0/8"]
    with served(runtime, settings) as url:
        rotated = statuses(url, [f"203.0.113.{i}" for i in range(8)])
        same = statuses(url, ["198.51.100.7"] * 6)
    assert [status for status, _ in rotated] == [401] * 8  # each client behind the proxy has its own budget
    assert [status for status, _ in same] == [401] * 5 + [429]
    assert "unauthenticated requests from 198.51.100.7" in same[-1][1]


@pytest.mark.parametrize("value", ["localhost", "10.0.0.0/33", "127.0.0.1,,", "*"])
def test_the_setting_is_validated(value: str) -> None:
    with pytest.raises(ValueError, match=r"trusted_proxies[\s\S]*not an IP address or network"):
        ApiSettings(**LIMITED, trusted_proxies=value)
