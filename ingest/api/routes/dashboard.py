"""The live dashboard: one static HTML page with its own CSS and JS (no CDN: works offline)."""

from __future__ import annotations

from pathlib import Path

from fastapi import APIRouter, Request
from fastapi.responses import FileResponse, RedirectResponse

STATIC_DIR = Path(__file__).resolve().parent.parent / "static"
# Everything the page loads comes from this server; nothing inline, nothing external.
_CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "connect-src 'self'; object-src 'none'; base-uri 'none'; frame-ancestors 'none'"
)

router = APIRouter(tags=["dashboard"], include_in_schema=False)


@router.get("/")
def root(request: Request) -> RedirectResponse:
    return RedirectResponse(f"{request.scope.get('root_path', '')}/dashboard", status_code=307)


@router.get("/dashboard", name="dashboard")
def dashboard() -> FileResponse:
    return FileResponse(
        STATIC_DIR / "dashboard.html",
        media_type="text/html; charset=utf-8",
        headers={"Content-Security-Policy": _CSP, "Cache-Control": "no-cache",
                 "X-Content-Type-Options": "nosniff"},
    )
