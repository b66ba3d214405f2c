"""The dashboard: static pages with their own CSS and JS modules (no CDN: works offline).

- ``/dashboard``: live counters, flow matrix, rates, devices (``dashboard.html``)
- ``/dashboard/device?id=...``: one device's charts, latest values and gaps (``device.html``)
- ``/dashboard/compliance``: decisions, quarantine review, policy history, what-if (``compliance.html``)
- ``/dashboard/audit``: the audit trail with filters and exports (``audit.html``)

Each page gets its data from the JSON API under ``/api/v1``; the assets are served from ``/dashboard/static``.
"""

from __future__ import annotations

from pathlib import Path

from fastapi import APIRouter, Request
from fastapi.responses import FileResponse, RedirectResponse

STATIC_DIR = Path(__file__).resolve().parent.parent / "static"
# Everything a page loads comes from this server; nothing inline, nothing external.
_CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "connect-src 'self'; object-src 'none'; base-uri 'none'; frame-ancestors 'none'; form-action 'none'"
)
_HEADERS = {
    "Content-Security-Policy": _CSP,
    "Cache-Control": "no-cache",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
}
PAGES = {"dashboard": "dashboard.html", "device": "device.html", "compliance": "compliance.html", "audit": "audit.html"}

router = APIRouter(tags=["dashboard"], include_in_schema=False)


def _page(name: str) -> FileResponse:
    return FileResponse(STATIC_DIR / PAGES[name], media_type="text/html; charset=utf-8", headers=_HEADERS)


@router.get("/")
def root(request: Request) -> RedirectResponse:
    return RedirectResponse(f"{request.scope.get('root_path', '')}/dashboard", status_code=307)


@router.get("/dashboard", name="dashboard")
def dashboard() -> FileResponse:
    return _page("dashboard")


@router.get("/dashboard/device", name="dashboard-device")
def device_page() -> FileResponse:
    """One device: ``?id=<device_id>&window=1h|6h|24h|7d&region=<region>`` (all optional)."""
    return _page("device")


@router.get("/dashboard/compliance", name="dashboard-compliance")
def compliance_page() -> FileResponse:
    """Decisions (filters in the query string), quarantine review, policy history and what-if."""
    return _page("compliance")


@router.get("/dashboard/audit", name="dashboard-audit")
def audit_page() -> FileResponse:
    """The audit trail: ``?actor=&action=&target=&region=&period=`` (all optional)."""
    return _page("audit")
