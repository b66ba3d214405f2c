"""How the API is served: uvicorn with the proxy settings of ``INGEST_API_TRUSTED_PROXIES``.

uvicorn believes ``X-Forwarded-For`` from 127.0.0.1 unless told otherwise (its ``forwarded_allow_ips``
defaults to ``$FORWARDED_ALLOW_IPS`` or ``127.0.0.1``), so a local client rotating that header would get a
fresh unauthenticated rate-limit budget per request. Here forwarded headers are read only when proxies are
configured, and only from them; the environment variable is never consulted.
"""

from __future__ import annotations

import uvicorn
from fastapi import FastAPI

from ingest.api.config import ApiSettings


def uvicorn_config(app: FastAPI, *, host: str, port: int, log_level: str = "warning") -> uvicorn.Config:
    """The uvicorn configuration of ``app`` (built by :func:`ingest.api.create_app`, which holds its settings)."""
    settings: ApiSettings = app.state.api_settings
    proxies = settings.trusted_proxies
    return uvicorn.Config(
        app,
        host=host,
        port=port,
        log_level=log_level,
        proxy_headers=bool(proxies),
        forwarded_allow_ips=",".join(proxies) if proxies else "",
    )


def serve(app: FastAPI, *, host: str, port: int) -> None:
    """Run ``app`` until interrupted (``ingest serve``)."""
    uvicorn.Server(uvicorn_config(app, host=host, port=port)).run()
