"""The dashboard: served without external resources, text-only DOM updates, and the API calls it makes
all answer."""

from __future__ import annotations

import re

from fastapi.testclient import TestClient

from ingest.api.routes.dashboard import STATIC_DIR


def test_root_redirects_to_the_dashboard(client: TestClient) -> None:
    response = client.get("/", follow_redirects=False)
    assert response.status_code == 307
    assert response.headers["location"] == "/dashboard"


def test_dashboard_page_and_assets(client: TestClient) -> None:
    page = client.get("/dashboard")
    assert page.status_code == 200
    assert page.headers["content-type"].startswith("text/html")
    assert "default-src 'self'" in page.headers["content-security-policy"]
    assert "script-src 'self'" in page.headers["content-security-policy"]
    assets = re.findall(r'(?:src|href)="(dashboard/static/[^"]+)"', page.text)
    assert sorted(assets) == ["dashboard/static/dashboard.css", "dashboard/static/dashboard.js"]
    for asset in assets:
        response = client.get(f"/{asset}")
        assert response.status_code == 200, asset
    assert "javascript" in client.get("/dashboard/static/dashboard.js").headers["content-type"]


def test_dashboard_loads_nothing_from_elsewhere() -> None:
    for path in STATIC_DIR.iterdir():
        text = path.read_text(encoding="utf-8")
        assert not re.search(r"https?://|//cdn|@import", text), path.name
        if path.suffix == ".html":
            assert "<script>" not in text and " style=" not in text and "onclick" not in text.lower()


def test_dashboard_inserts_data_as_text_only() -> None:
    js = (STATIC_DIR / "dashboard.js").read_text(encoding="utf-8")
    for sink in ("innerHTML", "outerHTML", "insertAdjacentHTML", "document.write", "eval(", "new Function"):
        assert sink not in js, sink
    assert "const POLL_MS = 2000;" in js


def test_every_api_call_of_the_dashboard_answers(client: TestClient) -> None:
    js = (STATIC_DIR / "dashboard.js").read_text(encoding="utf-8")
    calls = re.findall(r'getJSON\(\s*[`"](/[^`"]+)[`"]', js)
    assert len(calls) == 10  # health, stats, regions, flows, decisions, rejections, devices, rates, store jobs, links
    for call in calls:
        response = client.get("/api/v1" + call.replace("${w}", "300"))
        assert response.status_code == 200, call
    jobs = client.get("/api/v1/stores/jobs").json()["stores"]
    assert sorted(store["region"] for store in jobs) == ["ap-southeast", "cn-north", "eu-central", "us-east"]
