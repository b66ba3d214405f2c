"""Errors raised by the API's services; ``ingest.api.app`` turns them into HTTP answers.

Store failures use :class:`ingest.errors.StoreUnavailableError` (503, naming the store).
"""

from __future__ import annotations

from ingest.errors import IngestError


class ApiError(IngestError):
    """Base class of the errors a request can cause."""

    status_code = 400

    def __init__(self, detail: str) -> None:
        super().__init__(detail)
        self.detail = detail


class NotFoundError(ApiError):
    """A path names something the registry does not know (404)."""

    status_code = 404


class BadParameterError(ApiError):
    """A query parameter is well-formed but unusable (400); ``parameter`` names it."""

    status_code = 400

    def __init__(self, parameter: str, detail: str) -> None:
        super().__init__(f"{parameter}: {detail}")
        self.parameter = parameter
