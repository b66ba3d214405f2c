"""Prometheus metrics of the API itself (the pipeline registers its own in the same registry)."""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable

from fastapi import Request, Response
from prometheus_client import Histogram

REQUEST_SECONDS = Histogram(
    "ingest_api_request_seconds",
    "HTTP requests served by the ingest API, by endpoint (route name) and status",
    ["method", "endpoint", "status"],
)


async def observe_requests(request: Request, call_next: Callable[[Request], Awaitable[Response]]) -> Response:
    """HTTP middleware: time every request, labelled by its route's name (bounded cardinality)."""
    started = time.perf_counter()
    response = await call_next(request)
    route = request.scope.get("route")
    endpoint = getattr(route, "name", None) or "unmatched"
    REQUEST_SECONDS.labels(request.method, endpoint, str(response.status_code)).observe(time.perf_counter() - started)
    return response
