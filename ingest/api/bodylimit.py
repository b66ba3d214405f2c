"""Request body size limit, checked as the body streams (not only ``Content-Length``): 413 above it.

A pure ASGI middleware: a declared ``Content-Length`` above the limit is refused before anything is
read; otherwise the bytes are counted as the app receives them and the request is cut off (413) as soon
as they pass the limit, so a chunked upload cannot exceed it either. Policy draft uploads
(``POST /api/v1/policy/drafts``) have their own, larger limit (``INGEST_POLICY_DRAFT_MAX_BYTES``).
"""

from __future__ import annotations

import json
from collections.abc import Callable

from fastapi import HTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send


class BodyTooLargeError(HTTPException):
    """Raised from ``receive`` when the streamed body passes the limit; an HTTPException so FastAPI's
    body parsing passes it through unchanged and Starlette answers it with 413."""

    def __init__(self, limit: int, what: str) -> None:
        super().__init__(413, f"request body too large: the limit is {limit} bytes for {what}")


class BodySizeLimit:
    def __init__(self, app: ASGIApp, *, limit_for: Callable[[Scope], tuple[int, str]]) -> None:
        """``limit_for(scope)`` -> (byte limit, name of the setting) for that request."""
        self.app = app
        self.limit_for = limit_for

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        limit, what = self.limit_for(scope)
        declared = _content_length(scope)
        if declared is not None and declared > limit:
            await _refuse(send, BodyTooLargeError(limit, what).detail)
            return
        received = 0
        started = False

        async def counting_receive() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > limit:
                    raise BodyTooLargeError(limit, what)
            return message

        async def tracking_send(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await self.app(scope, counting_receive, tracking_send)
        except BodyTooLargeError as exc:  # raised outside the exception middleware (e.g. a raw body read)
            if started:
                raise
            await _refuse(send, exc.detail)


def _content_length(scope: Scope) -> int | None:
    for name, value in scope.get("headers", ()):
        if name == b"content-length":
            try:
                return int(value)
            except ValueError:
                return None
    return None


async def _refuse(send: Send, detail: str) -> None:
    body = json.dumps({"detail": detail}).encode()
    await send(
        {
            "type": "http.response.start",
            "status": 413,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(body)).encode()),
                (b"connection", b"close"),
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})
