"""Closed sets of accepted values (regions, profiles, countries, categories, roles) and where they show:
the OpenAPI document lists them as ``enum`` (from the running registry), and a 422 names them.

A field or parameter declares its set with :func:`closed_set` (``json_schema_extra={"x-closed-set": name}``);
:func:`apply_to_schema` turns the marker into an ``enum``. Regions and profiles come only from the YAML
registry, which does not change while the service runs, so the document stays true; sites change at run time
(the API registers them) and are not a closed set here. The values are checked where they are used (the
registry overlay, ``deps.region_store``), which raise :class:`InvalidChoiceError` naming the set.
"""

from __future__ import annotations

from typing import Any

from ingest.api.errors import BadParameterError
from ingest.auth.roles import ALL_REGIONS, Role
from ingest.registry import CATEGORIES, Registry, iso_countries

MARKER = "x-closed-set"


class InvalidChoiceError(BadParameterError):
    """A value outside a closed set (422): names the parameter and lists the accepted values."""

    status_code = 422

    def __init__(self, parameter: str, detail: str, accepted: list[str], *, location: str = "query") -> None:
        super().__init__(parameter, detail)
        self.accepted = accepted
        self.location = location


def closed_set(name: str) -> dict[str, Any]:
    """``json_schema_extra`` of a field or parameter whose values are the closed set ``name``."""
    return {MARKER: name}


def values(name: str, registry: Registry) -> list[str]:
    """The accepted values of the set ``name``."""
    regions = sorted(registry.regions)
    sets: dict[str, list[str]] = {
        "regions": regions,
        "regions+all": [*regions, "all"],
        "regions+*": [*regions, ALL_REGIONS],
        "profiles": sorted(registry.profiles),
        "countries": list(iso_countries()),
        "categories": list(CATEGORIES),
        "roles": [r.value for r in Role],
    }
    return sets[name]


FIELD_SETS = {
    "region": "regions",
    "regions": "regions+*",
    "home_region": "regions",
    "profile": "profiles",
    "country": "countries",
    "origin": "countries",
    "category": "categories",
    "roles": "roles",
}
"""The closed set of a field or parameter by its name, for 422 answers."""


def accepted_for(field: str, registry: Registry) -> list[str] | None:
    name = FIELD_SETS.get(field)
    return values(name, registry) if name else None


def apply_to_schema(node: Any, registry: Registry) -> None:
    """Replace every ``x-closed-set`` marker of an OpenAPI document (in place) by the ``enum`` it stands for."""
    if isinstance(node, list):
        for item in node:
            apply_to_schema(item, registry)
        return
    if not isinstance(node, dict):
        return
    name = node.pop(MARKER, None)
    if name is not None:
        _set_enum(node, values(name, registry))
    for child in node.values():
        apply_to_schema(child, registry)


def _set_enum(schema: dict[str, Any], accepted: list[str]) -> None:
    if schema.get("type") == "array":
        _set_enum(schema.setdefault("items", {}), accepted)
    elif "anyOf" in schema:
        for branch in schema["anyOf"]:
            if branch.get("type") in ("string", "array"):
                _set_enum(branch, accepted)
    elif schema.get("type", "string") == "string" and "const" not in schema:
        schema["enum"] = accepted
        schema.pop("pattern", None)


__all__ = ["InvalidChoiceError", "accepted_for", "apply_to_schema", "closed_set", "values"]
