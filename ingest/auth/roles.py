"""Roles and the authenticated principal: who is calling, with which roles, for which regions."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from enum import StrEnum

from ingest.auth.errors import UnknownRoleError

ALL_REGIONS = "*"
"""How "every region" is written in settings, the CLI and the API (stored as NULL)."""


class Role(StrEnum):
    OPERATOR = "operator"
    """Registers devices and sites, sees device health."""
    COMPLIANCE = "compliance"
    """Policies, what-if, activation, quarantine release, audit export."""
    ENGINEER = "engineer"
    """Queries telemetry."""
    ADMIN = "admin"
    """Users and tokens."""


def parse_roles(names: Iterable[str]) -> frozenset[Role]:
    """Role names -> roles; UnknownRoleError naming the bad name(s). At least one role is required."""
    roles: set[Role] = set()
    unknown: list[str] = []
    for name in names:
        text = name.strip().lower()
        try:
            roles.add(Role(text))
        except ValueError:
            unknown.append(name)
    if unknown:
        raise UnknownRoleError(
            f"unknown role(s) {', '.join(repr(u) for u in unknown)} (known: {', '.join(r.value for r in Role)})"
        )
    if not roles:
        raise UnknownRoleError("at least one role is required")
    return frozenset(roles)


@dataclass(frozen=True)
class Principal:
    """An authenticated caller."""

    user: str
    roles: frozenset[Role]
    regions: frozenset[str] | None
    """Regions the principal acts for; None = every region."""
    token_id: str | None
    """The API token that authenticated the request (None for the CLI / internal callers)."""

    def in_scope(self, region: str) -> bool:
        return self.regions is None or region in self.regions

    def all_in_scope(self, regions: Iterable[str]) -> bool:
        return all(self.in_scope(r) for r in regions)

    def has_any(self, *roles: Role) -> bool:
        return bool(self.roles.intersection(roles))

    @property
    def scope_text(self) -> str:
        """``*`` or the comma-separated regions (``none`` when empty)."""
        if self.regions is None:
            return ALL_REGIONS
        return ",".join(sorted(self.regions)) or "none"
