"""Who is asking, as far as residency is concerned: the regions whose personal data the caller may read,
and for operators the sites whose machine data they may read.

The regions come from the authenticated principal (:mod:`ingest.api.auth`): a user's region scope, or
every region for a user scoped to ``*``. Routes and services use :data:`CallerDep` and
:meth:`Caller.may_read` / :meth:`Caller.require` / :meth:`Caller.require_site`.

Enforcement (see the services):

- Engineers: values of restricted fields (every category other than ``machine``: personal,
  sensitive_personal, important, core) stored in a region outside the caller's scope are withheld: 403 for
  an explicit query of such a field, redacted (value null, ``withheld: true``) in lists. Machine data is not
  restricted.
- Operators (without the engineer role): machine data only, of the sites whose home region is in their scope
  (the plants they run); restricted fields are withheld everywhere, other sites answer 403.

Only machine data is ever combined across regions.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated

from fastapi import Depends

from ingest.api.auth import PrincipalDep
from ingest.api.errors import ForbiddenError
from ingest.auth.roles import Role
from ingest.registry import Site

__all__ = ["UNRESTRICTED_CATEGORY", "Caller", "CallerDep", "ForbiddenError", "get_caller", "restricted"]

UNRESTRICTED_CATEGORY = "machine"


@dataclass(frozen=True)
class Caller:
    regions: set[str] | None
    """Regions whose restricted (personal, sensitive, state-classified) data the caller may read;
    None = every region. For a machine-only caller: the home regions of the sites it may read."""
    user: str = ""
    machine_only: bool = False
    """An operator without the engineer role: machine data of the sites of its regions, nothing else."""

    @property
    def _who(self) -> str:
        return f"user {self.user!r}" if self.user else "the caller"

    def may_read(self, region: str, category: str) -> bool:
        if self.machine_only:
            return category == UNRESTRICTED_CATEGORY
        return category == UNRESTRICTED_CATEGORY or self.regions is None or region in self.regions

    def require(self, region: str, category: str, what: str) -> None:
        """403 unless the caller may read ``category`` data stored in ``region``."""
        if self.may_read(region, category):
            return
        if self.machine_only:
            raise ForbiddenError(
                f"{what} is {category} data; {self._who} has the role operator, which reads machine data only "
                "(telemetry of other categories needs the role engineer)"
            )
        allowed = ", ".join(sorted(self.regions or ())) or "none"
        raise ForbiddenError(
            f"{what} is {category} data stored in region {region!r}; {self._who} is authorised for "
            f"personal data of: {allowed} (the user's region scope)"
        )

    def may_see_site(self, site: Site) -> bool:
        """Whether the caller may read telemetry of ``site`` at all (operators: their regions' sites)."""
        return not self.machine_only or self.regions is None or site.home_region in self.regions

    def require_site(self, site_id: str, site: Site) -> None:
        """403 unless the caller may read telemetry of ``site``."""
        if not self.may_see_site(site):
            allowed = ", ".join(sorted(self.regions or ())) or "none"
            raise ForbiddenError(
                f"site {site_id!r} has its home in region {site.home_region!r}, outside the region scope of "
                f"{self._who} ({allowed}): operators read the machine data of their regions' sites"
            )


def restricted(category: str) -> bool:
    return category != UNRESTRICTED_CATEGORY


def get_caller(principal: PrincipalDep) -> Caller:
    machine_only = Role.ENGINEER not in principal.roles and Role.OPERATOR in principal.roles
    return Caller(
        regions=None if principal.regions is None else set(principal.regions),
        user=principal.user,
        machine_only=machine_only,
    )


CallerDep = Annotated[Caller, Depends(get_caller)]
