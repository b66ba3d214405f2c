"""Every 4xx and 5xx answer as one body model, :class:`ingest.api.models.ErrorPublic`, and the OpenAPI
document saying so.

- Request validation (FastAPI's ``RequestValidationError``): 422 with ``detail`` (one line naming every field
  at fault), ``parameter`` (the first) and ``errors`` (location, field, message and, for a closed set, the
  accepted values); never pydantic's raw error list (which echoes the input).
- Starlette's own errors (``HTTPException``): the same body. A body that is not UTF-8 JSON is 422 like any
  other malformed body (FastAPI answers 400 "There was an error parsing the body" for bytes it cannot decode).
  405 lists in ``Allow`` every method of the path (Starlette lists only those of the first route that matched
  the path; GET and POST of one path are separate routes here).
- :func:`document` rewrites the generated OpenAPI document: every 4xx/5xx response of every operation refers
  to ``ErrorPublic`` (FastAPI documents 422 with its own ``HTTPValidationError``), and closed sets become enums.
"""

from __future__ import annotations

import re
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from ingest.api import closed_sets
from ingest.api.models import ErrorPublic, FieldErrorPublic
from ingest.registry import Registry

_LOCATIONS = {"path", "query", "header", "cookie", "body"}
_QUOTED = re.compile(r"'([^']*)'")
_UNPARSABLE_BODY = "There was an error parsing the body"  # fastapi.routing's detail for an undecodable body
_SHOWN = 12  # accepted values quoted in the one-line detail (all of them are in ``errors``)


def field_errors(raw: list[dict[str, Any]], registry: Registry) -> list[FieldErrorPublic]:
    """Pydantic's errors as :class:`FieldErrorPublic` (no input echoed back)."""
    found = []
    for err in raw:
        loc = [str(p) for p in err.get("loc", ())]
        location = loc[0] if loc and loc[0] in _LOCATIONS else "body"
        path = loc[1:] if loc and loc[0] in _LOCATIONS else loc
        path = [p for p in path if not p.startswith(("function-after[", "function-before["))]
        message = str(err.get("msg", "invalid")).removeprefix("Value error, ")
        accepted = None
        if err.get("type") in ("literal_error", "enum"):
            accepted = _QUOTED.findall(str((err.get("ctx") or {}).get("expected", ""))) or None
        named = [p for p in path if not p.isdigit()]
        if accepted is None and named:
            accepted = closed_sets.accepted_for(named[-1], registry)
        if err.get("type") == "json_invalid":
            path, message = [], f"not valid JSON: {(err.get('ctx') or {}).get('error', message)}"
        found.append(FieldErrorPublic(location=location, field=".".join(path), message=message, accepted=accepted))
    return found


def summary(errors: list[FieldErrorPublic]) -> str:
    parts = []
    for e in errors:
        where = e.field or ("request body" if e.location == "body" else e.location)
        text = f"{where}: {e.message}"
        if e.accepted:
            shown = ", ".join(e.accepted[:_SHOWN]) + (
                f", ... ({len(e.accepted)} in all)" if len(e.accepted) > _SHOWN else ""
            )
            text += f" (accepted: {shown})"
        parts.append(text)
    return "; ".join(parts) or "invalid request"


def error_response(
    status: int,
    detail: str,
    *,
    parameter: str | None = None,
    store: str | None = None,
    errors: list[FieldErrorPublic] | None = None,
    headers: dict[str, str] | None = None,
) -> JSONResponse:
    body = ErrorPublic(detail=detail, parameter=parameter, store=store, errors=errors)
    return JSONResponse(body.model_dump(mode="json", exclude_none=True), status_code=status, headers=headers)


def _registry(request: Request) -> Registry:
    registry: Registry = request.app.state.runtime.registry
    return registry


def validation_error(request: Request, exc: RequestValidationError) -> JSONResponse:
    errors = field_errors(list(exc.errors()), _registry(request))
    parameter = next((e.field.split(".")[0] for e in errors if e.field), None)
    return error_response(422, summary(errors), parameter=parameter, errors=errors)


def http_error(request: Request, exc: StarletteHTTPException) -> JSONResponse:
    headers = dict(exc.headers or {})
    detail = exc.detail if isinstance(exc.detail, str) else str(exc.detail)
    if exc.status_code == 400 and detail == _UNPARSABLE_BODY:
        cause = exc.__cause__
        message = f"not valid UTF-8 JSON ({type(cause).__name__})" if cause else "not valid UTF-8 JSON"
        errors = [FieldErrorPublic(location="body", field="", message=message)]
        return error_response(422, f"request body: {message}", errors=errors)
    if exc.status_code == 405:
        headers["Allow"] = ", ".join(allowed_methods(request))
    return error_response(exc.status_code, detail, headers=headers or None)


def allowed_methods(request: Request) -> list[str]:
    """Every method the OpenAPI document gives the request's path (FastAPI's routers nest included routes,
    so the document is the one flat list of paths and methods)."""
    found: set[str] = set()
    for pattern, methods in _path_methods(request.app):
        if pattern.fullmatch(request.url.path):
            found |= methods
    return sorted(found)


def _path_methods(app: FastAPI) -> list[tuple[re.Pattern[str], set[str]]]:
    cached: list[tuple[re.Pattern[str], set[str]]] | None = getattr(app.state, "path_methods", None)
    if cached is None:
        cached = []
        for path, operations in app.openapi().get("paths", {}).items():
            pattern = re.compile(
                "".join("[^/]+" if part.startswith("{") else re.escape(part) for part in re.split(r"(\{[^}]+\})", path))
            )
            cached.append((pattern, {m.upper() for m in operations}))
        app.state.path_methods = cached
    return cached


def install(app: FastAPI) -> None:
    app.add_exception_handler(RequestValidationError, validation_error)  # type: ignore[arg-type]  # Starlette types handlers for Exception
    app.add_exception_handler(StarletteHTTPException, http_error)  # type: ignore[arg-type]  # as above


def document(app: FastAPI, registry: Registry) -> None:
    """Make ``app.openapi()`` return the rewritten document (built once: regions and profiles are fixed)."""
    build = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            schema = build()
            _errors_as_error_public(schema)
            closed_sets.apply_to_schema(schema, registry)
            app.openapi_schema = schema
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]  # FastAPI's documented override


def _errors_as_error_public(schema: dict[str, Any]) -> None:
    ref = {"$ref": "#/components/schemas/ErrorPublic"}
    for operations in schema.get("paths", {}).values():
        for operation in operations.values():
            for status, response in operation.get("responses", {}).items():
                if not status.startswith(("4", "5")) or (status == "503" and "HealthPublic" in str(response)):
                    continue
                response["content"] = {"application/json": {"schema": dict(ref)}}
                if status == "422" and response.get("description") == "Validation Error":
                    response["description"] = "A parameter or body field is malformed or outside its accepted values."
    components = schema.get("components", {}).get("schemas", {})
    for unused in ("HTTPValidationError", "ValidationError"):
        components.pop(unused, None)


__all__ = ["allowed_methods", "document", "error_response", "field_errors", "install"]
