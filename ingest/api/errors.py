"""Errors raised by the API's services; ``ingest.api.app`` turns them into HTTP answers.

Store failures use :class:`ingest.errors.StoreUnavailableError` (503, naming the store).
"""

from __future__ import annotations

from ingest.errors import IngestError


class ApiError(IngestError):
    """Base class of the errors a request can cause."""

    status_code = 400

    def __init__(self, detail: str, *, headers: dict[str, str] | None = None) -> None:
        super().__init__(detail)
        self.detail = detail
        self.headers = headers or {}


class NotFoundError(ApiError):
    """A path names something the registry does not know (404)."""

    status_code = 404


class BadParameterError(ApiError):
    """A query parameter is well-formed but unusable (400); ``parameter`` names it."""

    status_code = 400

    def __init__(self, parameter: str, detail: str) -> None:
        super().__init__(f"{parameter}: {detail}")
        self.parameter = parameter


class UnauthorizedError(ApiError):
    """No token, or a malformed, unknown, expired or revoked one (401, ``WWW-Authenticate: Bearer``)."""

    status_code = 401

    def __init__(self, detail: str, *, error: str = "invalid_token") -> None:
        # RFC 6750 section 3: the challenge names the error (no error code when no token was sent)
        challenge = 'Bearer realm="ingest"' + (f', error="{error}"' if error else "")
        super().__init__(detail, headers={"WWW-Authenticate": challenge})


class ForbiddenError(ApiError):
    """The caller is authenticated but not authorised: role or region scope (403)."""

    status_code = 403


class ConflictError(ApiError):
    """The request conflicts with the current state: the id exists already, the entry is still in use,
    or the policy is managed elsewhere (409)."""

    status_code = 409


class PayloadTooLargeError(ApiError):
    """The request body is larger than allowed (413)."""

    status_code = 413


class TooManyRequestsError(ApiError):
    """Over the rate limit (429, ``Retry-After`` in seconds)."""

    status_code = 429

    def __init__(self, detail: str, *, retry_after_s: int) -> None:
        super().__init__(detail, headers={"Retry-After": str(max(1, retry_after_s))})


class OtherCellError(ApiError):
    """The region is hosted by another residency cell (docs/cells.md): ask that cell's API. Personal values are
    served only by the cell that holds them; this cell never fetches them across a border."""

    status_code = 421

    def __init__(self, region: str, cell: str, api: str | None) -> None:
        where = f" at {api}" if api else ""
        super().__init__(
            f"region {region!r} is hosted by cell {cell!r}: ask its API{where} (only aggregates of "
            "machine data are combined across cells)"
        )
        self.region = region
        self.cell = cell
        self.api = api
