"""Who is asking, as far as residency is concerned: the regions whose personal data the caller may read.

The regions come from the authenticated principal (:mod:`ingest.api.auth`): a user's region scope, or
every region for a user scoped to ``*``. Routes and services use :data:`CallerDep` and
:meth:`Caller.may_read` / :meth:`Caller.require`.

Enforcement (see the services): values of restricted fields (every category other than ``machine``:
personal, sensitive_personal, important, core) stored in a region outside the caller's scope are
withheld: 403 for an explicit query of such a field, redacted (value null, ``withheld: true``) in
lists. Machine data is not restricted. Only machine data is ever combined across regions.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated

from fastapi import Depends

from ingest.api.auth import PrincipalDep
from ingest.api.errors import ForbiddenError

__all__ = ["UNRESTRICTED_CATEGORY", "Caller", "CallerDep", "ForbiddenError", "get_caller", "restricted"]

UNRESTRICTED_CATEGORY = "machine"


@dataclass(frozen=True)
class Caller:
    regions: set[str] | None
    """Regions whose restricted (personal, sensitive, state-classified) data the caller may read;
    None = every region."""
    user: str = ""

    def may_read(self, region: str, category: str) -> bool:
        return category == UNRESTRICTED_CATEGORY or self.regions is None or region in self.regions

    def require(self, region: str, category: str, what: str) -> None:
        """403 unless the caller may read ``category`` data stored in ``region``."""
        if not self.may_read(region, category):
            allowed = ", ".join(sorted(self.regions or ())) or "none"
            who = f"user {self.user!r}" if self.user else "the caller"
            raise ForbiddenError(
                f"{what} is {category} data stored in region {region!r}; {who} is authorised for "
                f"personal data of: {allowed} (the user's region scope)"
            )


def restricted(category: str) -> bool:
    return category != UNRESTRICTED_CATEGORY


def get_caller(principal: PrincipalDep) -> Caller:
    return Caller(regions=None if principal.regions is None else set(principal.regions), user=principal.user)


CallerDep = Annotated[Caller, Depends(get_caller)]
