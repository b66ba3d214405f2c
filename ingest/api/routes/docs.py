"""The interactive API documentation, served with its assets from this application (no CDN).

Plant networks are often cut off from the internet, so ``/api/v1/docs`` (Swagger UI) loads its script and
styles from ``/api/v1/docs/assets``: the files shipped by the ``fastapi-offline`` package (a PyPI package kept
up to date with Swagger UI 5; we use its files, not its app factory). The page's Content-Security-Policy
allows this server only, and the browser test checks that nothing is requested from another host. ReDoc is
not served: its standalone bundle always loads a logo from the vendor's CDN.
"""

from __future__ import annotations

from importlib.resources import files
from pathlib import Path

from fastapi import APIRouter, FastAPI, Request
from fastapi.openapi.docs import get_swagger_ui_html, get_swagger_ui_oauth2_redirect_html
from fastapi.responses import HTMLResponse
from fastapi.staticfiles import StaticFiles

ASSETS_DIR = Path(str(files("fastapi_offline") / "static"))
# Swagger UI writes its configuration in an inline script; every other source is this server.
_CSP = (
    "default-src 'self'; script-src 'self' 'unsafe-inline'; style-src 'self' 'unsafe-inline'; "
    "img-src 'self' data:; worker-src 'self' blob:; connect-src 'self'; object-src 'none'; base-uri 'none'; "
    "frame-ancestors 'none'"
)
_HEADERS = {"Content-Security-Policy": _CSP, "Cache-Control": "no-cache", "X-Content-Type-Options": "nosniff"}


def mount_docs(app: FastAPI, prefix: str) -> None:
    """Swagger UI at ``{prefix}/docs``, its assets at ``{prefix}/docs/assets``."""
    assets = f"{prefix}/docs/assets"
    oauth2_redirect = f"{prefix}/docs/oauth2-redirect"
    router = APIRouter(include_in_schema=False)

    def openapi_url(request: Request) -> str:
        return f"{request.scope.get('root_path', '')}{app.openapi_url}"

    @router.get(f"{prefix}/docs")
    def swagger_ui(request: Request) -> HTMLResponse:
        root = request.scope.get("root_path", "")
        page = get_swagger_ui_html(
            openapi_url=openapi_url(request),
            title=f"{app.title}: Swagger UI",
            oauth2_redirect_url=f"{root}{oauth2_redirect}",
            swagger_js_url=f"{root}{assets}/swagger-ui-bundle.js",
            swagger_css_url=f"{root}{assets}/swagger-ui.css",
            swagger_favicon_url=f"{root}{assets}/favicon.png",
            swagger_ui_parameters={"persistAuthorization": True, "displayRequestDuration": True},
        )
        return HTMLResponse(page.body, headers=_HEADERS)

    @router.get(oauth2_redirect)
    def swagger_ui_redirect() -> HTMLResponse:
        return get_swagger_ui_oauth2_redirect_html()

    app.include_router(router)
    app.mount(assets, StaticFiles(directory=ASSETS_DIR), name="docs-assets")
