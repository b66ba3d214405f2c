"""Who is asking, as far as residency is concerned: the regions whose personal data the caller may read.

PLACEHOLDER for the authentication issue: today the caller's regions come from the ``X-Regions``
request header, which any client can set. The security issue replaces :func:`get_caller` with one
that derives ``regions`` from an authenticated identity; the routes and services keep using
:data:`CallerDep` and :meth:`Caller.may_read` unchanged.

``X-Regions``: a comma-separated list of region names (``eu-central,us-east``), ``*`` for every
region, or empty for none. Without the header: every region in development, none in production
(``INGEST_ENVIRONMENT``).

Enforcement (see the services): values of restricted fields (every category other than ``machine``:
personal, sensitive_personal, important, core) stored in a region outside the caller's set are
withheld: 403 for an explicit query of such a field, redacted (value null, ``withheld: true``) in
lists. Machine data is not restricted. Only machine data is ever combined across regions.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated

from fastapi import Depends, Header

from ingest.api.deps import RuntimeDep
from ingest.api.errors import ApiError, BadParameterError

UNRESTRICTED_CATEGORY = "machine"


class ForbiddenError(ApiError):
    """The caller is not authorised for this data (403)."""

    status_code = 403


@dataclass(frozen=True)
class Caller:
    regions: set[str] | None
    """Regions whose restricted (personal, sensitive, state-classified) data the caller may read;
    None = every region."""

    def may_read(self, region: str, category: str) -> bool:
        return category == UNRESTRICTED_CATEGORY or self.regions is None or region in self.regions

    def require(self, region: str, category: str, what: str) -> None:
        """403 unless the caller may read ``category`` data stored in ``region``."""
        if not self.may_read(region, category):
            allowed = ", ".join(sorted(self.regions or ())) or "none"
            raise ForbiddenError(
                f"{what} is {category} data stored in region {region!r}; the caller is authorised for "
                f"personal data of: {allowed} (X-Regions)"
            )


def restricted(category: str) -> bool:
    return category != UNRESTRICTED_CATEGORY


def get_caller(
    runtime: RuntimeDep,
    x_regions: Annotated[
        str | None,
        Header(
            alias="X-Regions",
            description=(
                "Development placeholder for authentication: regions whose personal data the caller may "
                "read, comma-separated; '*' = all; empty = none. Absent: all regions in development, "
                "none in production."
            ),
        ),
    ] = None,
) -> Caller:
    if x_regions is None:
        return Caller(regions=None if runtime.settings.environment == "development" else set())
    text = x_regions.strip()
    if text == "*":
        return Caller(regions=None)
    names = {part.strip() for part in text.split(",") if part.strip()}
    unknown = sorted(names - set(runtime.registry.regions))
    if unknown:
        known = ", ".join(sorted(runtime.registry.regions))
        raise BadParameterError("X-Regions", f"unknown region(s) {', '.join(unknown)} (known: {known})")
    return Caller(regions=names)


CallerDep = Annotated[Caller, Depends(get_caller)]
