"""Every dashboard page (Live, Device, Compliance, Audit) is served with a strict CSP, references only assets of
this server, writes API data as text only, and calls only API routes (and parameters) that exist.

The browser tests (tests/browser/) drive the same pages in Chromium against a running stack.
"""

from __future__ import annotations

import re
from pathlib import Path
from urllib.parse import urljoin

import pytest
from fastapi.testclient import TestClient

from ingest.api.routes.dashboard import PAGES, STATIC_DIR

PAGE_PATHS = {
    "/dashboard": "dashboard",
    "/dashboard/device": "device",
    "/dashboard/compliance": "compliance",
    "/dashboard/audit": "audit",
}
MODULES = sorted(p.name for p in STATIC_DIR.glob("*.js"))
# Everything the brief asks the pages to show comes from these routes (method, OpenAPI path).
REQUIRED_ROUTES = {
    ("get", "/api/v1/health"),
    ("get", "/api/v1/stats"),
    ("get", "/api/v1/flows"),
    ("get", "/api/v1/decisions"),
    ("get", "/api/v1/devices"),
    ("get", "/api/v1/devices/{device_id}"),
    ("get", "/api/v1/devices/{device_id}/latest"),
    ("get", "/api/v1/devices/{device_id}/series"),
    ("get", "/api/v1/sites"),
    ("get", "/api/v1/regions"),
    ("get", "/api/v1/rejections"),
    ("get", "/api/v1/quarantine"),
    ("get", "/api/v1/quarantine/{quarantine_id}"),
    ("post", "/api/v1/quarantine/{quarantine_id}/release"),
    ("get", "/api/v1/gaps"),
    ("get", "/api/v1/policy"),
    ("get", "/api/v1/policy/activations"),
    ("get", "/api/v1/policy/drafts"),
    ("post", "/api/v1/policy/whatif"),
    ("get", "/api/v1/me"),
    ("get", "/api/v1/rates"),
    ("post", "/api/v1/quarantine/{quarantine_id}/dismiss"),
    ("get", "/api/v1/audit"),
}
HTML_SINKS = (
    "innerHTML",
    "outerHTML",
    "insertAdjacentHTML",
    "document.write",
    "eval(",
    "new Function",
    "srcdoc",
    "createContextualFragment",
    "DOMParser",
    'setAttribute("on',
    "setAttribute('on",
    "javascript:",
)


def _text(name: str) -> str:
    return (STATIC_DIR / name).read_text(encoding="utf-8")


def test_the_page_table_matches_the_static_files() -> None:
    assert set(PAGES.values()) == {p.name for p in STATIC_DIR.glob("*.html")}
    assert {f"{page}.js" for page in PAGES} | {"common.js"} == set(MODULES)
    assert [p.name for p in STATIC_DIR.iterdir() if p.is_dir()] == []  # flat: one folder of small files


@pytest.mark.parametrize(
    "path",
    [*PAGE_PATHS, "/dashboard/device?id=de-munich-cnc-01&window=6h", "/dashboard/compliance?origin=CN&outcome=denied"],
)
def test_every_page_is_served_with_a_strict_csp(client: TestClient, path: str) -> None:
    response = client.get(path)
    assert response.status_code == 200, path
    assert response.headers["content-type"].startswith("text/html")
    csp = response.headers["content-security-policy"]
    for directive in (
        "default-src 'self'",
        "script-src 'self'",
        "style-src 'self'",
        "connect-src 'self'",
        "object-src 'none'",
        "base-uri 'none'",
        "frame-ancestors 'none'",
    ):
        assert directive in csp, directive
    assert "unsafe" not in csp
    assert response.headers["x-content-type-options"] == "nosniff"
    # Every page links to every page.
    nav = re.search(r"<nav[^>]*>(.*?)</nav>", response.text, re.S)
    assert nav is not None and len(re.findall(r"<a ", nav.group(1))) == len(PAGE_PATHS)
    assert nav.group(1).count('aria-current="page"') == 1


@pytest.mark.parametrize("path", list(PAGE_PATHS))
def test_pages_reference_only_local_assets(client: TestClient, path: str) -> None:
    html = client.get(path).text
    refs = re.findall(r'\b(?:src|href|action|poster|data)="([^"]*)"', html)
    assert refs
    for ref in refs:
        if ref.startswith("#"):
            continue
        if ref == "data:,":  # the empty favicon, so the browser asks for nothing else
            assert '<link rel="icon" href="data:,">' in html
            continue
        assert not re.match(r"^[a-zA-Z][a-zA-Z0-9+.-]*:", ref) and not ref.startswith("//"), ref
        url = urljoin(f"http://testserver{path}", ref)
        assert url.startswith("http://testserver/"), (ref, url)
        assert client.get(url).status_code == 200, (path, ref, url)
    # One module of its own per page, nothing inline.
    scripts = re.findall(r"<script([^>]*)>(.*?)</script>", html, re.S)
    assert [
        (re.search(r'src="([^"]+)"', attrs).group(1).rsplit("/", 1)[-1], body.strip())  # type: ignore[union-attr]  # every script tag has a src
        for attrs, body in scripts
    ] == [(f"{PAGE_PATHS[path]}.js", "")]
    assert all('type="module"' in attrs for attrs, _ in scripts)
    assert "<style" not in html and " style=" not in html
    assert not re.search(r"\son[a-z]+=", html), "inline event handler"


@pytest.mark.parametrize("module", MODULES)
def test_modules_import_only_sibling_modules(client: TestClient, module: str) -> None:
    js = _text(module)
    imports = re.findall(r'\bfrom\s+["\']([^"\']+)["\']', js) + re.findall(r'\bimport\s*\(\s*["\']([^"\']+)', js)
    for target in imports:
        assert target.startswith("./") and (STATIC_DIR / target[2:]).is_file(), target
    response = client.get(f"/dashboard/static/{module}")
    assert response.status_code == 200
    assert "javascript" in response.headers["content-type"]  # module scripts need a JavaScript MIME type
    if module != "common.js":
        assert './common.js"' in js


def test_static_files_load_nothing_from_elsewhere() -> None:
    for path in STATIC_DIR.iterdir():
        text = path.read_text(encoding="utf-8")
        assert not re.search(r"https?://|//cdn|@import|url\(", text), path.name
        assert "fetch(" not in text or path.name == "common.js", f"{path.name}: API calls go through common.js"


@pytest.mark.parametrize("module", MODULES)
def test_no_html_sinks_data_is_written_as_text(module: str) -> None:
    js = _text(module)
    for sink in HTML_SINKS:
        assert sink not in js, f"{module}: {sink}"
    assert not re.search(r"\.on[a-z]+\s*=", js), f"{module}: assigns an event handler property"


def _calls(js: str) -> list[tuple[str, str]]:
    """(method, path template) of every getJSON/postJSON call with a literal path."""
    found = re.findall(r'\b(getJSON|postJSON)\(\s*([`"])(/[^`"]*)\2', js)
    return [("get" if fn == "getJSON" else "post", path) for fn, _, path in found]


def _route(openapi: dict[str, dict[str, dict[str, object]]], method: str, template: str) -> tuple[str, set[str]]:
    path = re.sub(r"\$\{[^}]*\}", "X", template.split("?", 1)[0])
    for route, operations in openapi.items():
        pattern = "^" + re.sub(r"\\\{[^}]+\\\}", "[^/]+", re.escape(route)) + "$"
        if re.match(pattern, "/api/v1" + path) and method in operations:
            params = operations[method].get("parameters", [])
            return route, {p["name"] for p in params if p["in"] == "query"}  # type: ignore[attr-defined]  # parameters: a list of OpenAPI objects
    raise AssertionError(f"{method.upper()} {template}: no such API route")


def test_every_api_call_of_every_page_exists_with_its_parameters(client: TestClient) -> None:
    openapi = client.get("/api/v1/openapi.json").json()["paths"]
    used: set[tuple[str, str]] = set()
    for module in MODULES:
        js = _text(module)
        calls = _calls(js)
        assert calls, module
        for method, template in calls:
            route, params = _route(openapi, method, template)
            used.add((method, route))
            query = template.split("?", 1)[1] if "?" in template else ""
            for name in re.findall(r"(?:^|[?&])([a-z_]+)=", query):
                assert name in params, f"{module}: {template}: {route} has no query parameter {name!r}"
    # Filters of the decision list are sent as query parameters of GET /decisions (and of its export); the
    # page turns its "period" into since.
    filters = re.search(r"const FILTERS = \[([^\]]*)\]", _text("compliance.js"))
    assert filters is not None
    decision_params = _route(openapi, "get", "/decisions")[1]
    sent = set(re.findall(r'"([a-z_]+)"', filters.group(1))) - {"period"}
    assert sent <= decision_params and sent <= _route(openapi, "get", "/decisions/export")[1]
    assert "since" in sent and "since" in _text("compliance.js")
    audit_filters = re.search(r"const FILTERS = \[([^\]]*)\]", _text("audit.js"))
    assert audit_filters is not None
    assert set(re.findall(r'"([a-z_]+)"', audit_filters.group(1))) - {"period"} <= _route(openapi, "get", "/audit")[1]
    assert used >= REQUIRED_ROUTES, sorted(REQUIRED_ROUTES - used)


@pytest.mark.parametrize(
    "call",
    [
        "/quarantine?limit=1",
        "/gaps?limit=1",
        "/gaps?device_id=de-munich-cnc-01&state=all",
        "/sites",
        "/regions",
        "/devices?limit=1000",
        "/devices/de-munich-cnc-01",
        "/devices/de-munich-cnc-01/latest?region=eu-central",
        "/devices/de-munich-cnc-01/series?name=spindle_temp_c&start=2026-01-05T10:00:00Z&end=2026-01-05T11:00:00Z"
        "&bucket=1m&region=eu-central",
        "/decisions?origin=DE&region=eu-central&category=machine&outcome=stored&device_id=de-munich-cnc-01&limit=50"
        "&offset=0",
        "/quarantine?limit=100&state=held",
    ],
)
def test_the_pages_calls_answer_on_seeded_stores(client: TestClient, call: str) -> None:
    response = client.get("/api/v1" + call)
    assert response.status_code == 200, (call, response.text)


def test_path_of_the_static_dir_is_packaged() -> None:
    # pyproject's package-data ships *.html, *.js and *.css of ingest/api/static.
    pyproject = (Path(__file__).resolve().parents[3] / "pyproject.toml").read_text()
    assert all(f'"*.{ext}"' in pyproject for ext in ("html", "js", "css"))
