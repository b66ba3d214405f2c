"""Streamed exports (decisions, audit): one control-store connection, taken before the response starts."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from datetime import datetime
from typing import Any

import psycopg
from fastapi.responses import StreamingResponse

from ingest.api.config import ApiSettings
from ingest.errors import StoreUnavailableError
from ingest.runtime import Runtime


def export_response(
    runtime: Runtime,
    settings: ApiSettings,
    lines: Callable[[psycopg.Connection[Any]], Iterator[str]],
    *,
    name: str,
    fmt: str,
) -> StreamingResponse:
    """``lines(conn)`` streamed as ``{name}-<time>.{fmt}`` (csv or jsonl). The connection is taken here, so a
    control store that is down answers 503 instead of a 200 cut off after its headers."""
    conn_cm = runtime.control.connection(timeout=settings.pool_timeout_s)
    try:
        conn = conn_cm.__enter__()
    except Exception as exc:
        raise StoreUnavailableError("control", str(exc) or "no connection") from None

    def body() -> Iterator[str]:
        try:
            yield from lines(conn)
        finally:
            conn_cm.__exit__(None, None, None)

    media = "text/csv; charset=utf-8" if fmt == "csv" else "application/x-ndjson"
    stamp = datetime.now().strftime("%Y%m%dT%H%M%S")
    return StreamingResponse(
        body(), media_type=media, headers={"Content-Disposition": f'attachment; filename="{name}-{stamp}.{fmt}"'}
    )
