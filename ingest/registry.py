"""The device registry: regions, sites, device profiles and devices.

The registry, not the payload, decides where a message comes from (site -> country) and which
category each field belongs to. It is a YAML file that operators edit; it is validated at load and
every error names the file and the field at fault.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    PrivateAttr,
    StrictStr,
    ValidationError,
    model_validator,
)

from ingest.errors import RegistryError
from ingest.yaml_model import load_model
from policy import models as policy_models
from policy.models import DATE_PATTERN
from policy.vocabulary import VOCABULARY

Category = Literal["machine", "personal", "sensitive_personal", "important", "core"]
CATEGORIES: tuple[Category, ...] = ("machine", "personal", "sensitive_personal", "important", "core")


def iso_countries() -> tuple[str, ...]:
    """The ISO 3166-1 alpha-2 codes the shipped policy knows (policy/data/countries.json; any other code is
    denied by it)."""
    return VOCABULARY.countries


def _known_country(code: str) -> str:
    if code not in iso_countries():
        raise ValueError(f"{code!r} is not an ISO 3166-1 alpha-2 country code")
    return code


# x-closed-set: the API's OpenAPI document lists the accepted values (ingest.api.closed_sets)
Country = Annotated[
    str,
    Field(
        pattern=r"^[A-Z]{2}$",
        description="ISO 3166-1 alpha-2 country code",
        json_schema_extra={"x-closed-set": "countries"},
    ),
    AfterValidator(_known_country),
]
if TYPE_CHECKING:
    Safeguard = str
else:  # a Literal of the policy's codes: an unknown code is refused naming the field and every known code
    Safeguard = Literal[VOCABULARY.safeguards]
"""A safeguard code of the policy's vocabulary (policy/data/vocabulary.json ``safeguards``, read at import by
:mod:`policy.vocabulary`): adding a code to the policy lets a site list it, with no change here."""


def _iso_date(value: object) -> object:
    return value.isoformat() if isinstance(value, dt.date) else value  # YAML reads 2025-05-02 as a date


SafeguardDate = Annotated[
    str,
    Field(
        pattern=DATE_PATTERN,
        description="YYYY-MM-DD: the day the safeguard was made or last renewed (a later "
        "day than today UTC: not in force yet)",
    ),
    BeforeValidator(_iso_date),  # after Field: wraps the pattern check (and leaves the pattern in the schema)
]


class _Model(BaseModel):
    # strict: a YAML or JSON `false` is no count and `1` no flag (the API once took volume: false as 0)
    model_config = ConfigDict(extra="forbid", frozen=True, strict=True)


class Region(_Model):
    """A store with a location. Locally one database, in production one TimescaleDB."""

    country: Country
    description: str = ""
    recipient: dict[str, bool] = Field(
        default_factory=dict,
        description="Attributes of the organisation operating this store, e.g. dpf_certified: true.",
    )


FieldType = Literal["number", "integer", "boolean", "text"]
FIELD_TYPES: tuple[FieldType, ...] = ("number", "integer", "boolean", "text")
FIELD_VALUE_TYPES: dict[str, tuple[type, ...]] = {
    "number": (int, float),
    "integer": (int,),
    "boolean": (bool,),
    "text": (str,),
}
"""The Python types of the wire values each field type accepts, compared with ``type(value) in ...`` (so a bool
is not a number, though Python's bool is an int). None, a missing sample, is accepted by every type."""


class FieldSpec(_Model):
    category: Category
    type: FieldType = Field(
        default="number",
        description="What the field's values are: number (integer or decimal), integer, boolean or text. A value "
        "of another type is quarantined (wrong_type), never stored: a machine field cannot carry text.",
    )
    unit: str | None = None
    description: str = ""
    sparkplug_metric: str | None = Field(
        default=None,
        min_length=1,
        max_length=512,
        description="The Sparkplug B metric name whose values this field receives (it may contain '/', e.g. "
        "'Spindle/Speed'); docs/sparkplug.md. A metric of a Sparkplug device that no field names is an "
        "undeclared field.",
    )

    def accepts(self, value: object) -> bool:
        """Whether a wire value is of this field's type (None, a missing sample, always is)."""
        return value is None or type(value) in FIELD_VALUE_TYPES[self.type]


class Profile(_Model):
    """What a kind of device sends: every field with its category. Undeclared fields are not trusted."""

    fields: dict[str, FieldSpec] = Field(min_length=1)

    @model_validator(mode="after")
    def _one_field_per_metric(self) -> Profile:
        seen: dict[str, str] = {}
        for name, spec in self.fields.items():
            metric = spec.sparkplug_metric
            if metric is not None:
                if metric in seen:
                    raise ValueError(f"fields {seen[metric]!r} and {name!r} both receive Sparkplug metric {metric!r}")
                seen[metric] = name
        return self

    def sparkplug_fields(self) -> dict[str, str]:
        """Sparkplug metric name -> field name."""
        return {spec.sparkplug_metric: name for name, spec in self.fields.items() if spec.sparkplug_metric}


_SITE_SUBDIVISION = r"^ *[A-Za-z0-9]{1,3} *$"


def _site_subdivision(value: str) -> str:
    if re.fullmatch(_SITE_SUBDIVISION, value) is None:
        raise ValueError(
            f"{value!r} is not a subdivision of the site's country: give the part of its ISO 3166-2 "
            "code after the country (QC for CA-QC)"
        )
    return policy_models.subdivision_code(value)


SiteSubdivision = Annotated[
    StrictStr,
    Field(
        description="The site's ISO 3166-2 subdivision: the part of the code after the country, which is the "
        "site's (QC for CA-QC).",
        json_schema_extra={"pattern": _SITE_SUBDIVISION},
    ),
    AfterValidator(_site_subdivision),
]


class Entity(policy_models.Entity):
    """The exporting organisation's flags the policy reads (policy.models.Entity: the fields are defined there).
    In the registry, like every registry entry, an unknown key is refused rather than passed on, and the
    subdivision is one of the site's country (the policy's ``CA-QC`` form would name the country twice)."""

    model_config = ConfigDict(extra="forbid", frozen=True, strict=True)

    subdivision: SiteSubdivision | None = None


class Volume(policy_models.Volume):
    """Declared volumes (policy.models.Volume, fields defined there): a floor under what the ingest measures
    (docs/volumes.md). An unknown key is refused."""

    model_config = ConfigDict(extra="forbid", frozen=True, strict=True)


class Site(_Model):
    """A factory: its country decides which jurisdiction's rules apply to its data."""

    country: Country
    home_region: str = Field(json_schema_extra={"x-closed-set": "regions"})
    name: str = ""
    entity: Entity = Entity()
    volume: Volume = Volume()
    purpose: str | None = None
    safeguards: dict[Country, list[Safeguard]] = Field(
        default_factory=dict,
        description="Safeguards in force for flows from this site, per destination country.",
    )
    safeguard_dates: dict[Country, dict[Safeguard, SafeguardDate]] = Field(
        default_factory=dict,
        description="Per destination country, the day a dated safeguard was made or last renewed (MY_TIA: a "
        "transfer impact assessment, valid three years); the policy decides whether it is still in "
        "force (policy/data/vocabulary.json safeguard_validity).",
    )


_SPB_ID = r"^[^/+#\x00]{1,128}$"


class SparkplugAddress(_Model):
    """Where a device publishes as a Sparkplug B edge node or device: ``spBv1.0/{group}/.../{edge_node}[/{device}]``.
    Without ``device``: the edge node itself (its NBIRTH / NDATA metrics)."""

    group: str = Field(pattern=_SPB_ID, description="Sparkplug group id.")
    edge_node: str = Field(pattern=_SPB_ID, description="Sparkplug edge node id.")
    device: str | None = Field(
        default=None, pattern=_SPB_ID, description="Sparkplug device id; omitted for the edge node's own metrics."
    )


class Device(_Model):
    site: str
    profile: str = Field(json_schema_extra={"x-closed-set": "profiles"})
    description: str = ""
    sparkplug: SparkplugAddress | None = Field(
        default=None,
        description="A device of a third-party Sparkplug B edge node: its group, edge node and device "
        "ids (docs/sparkplug.md). Its metrics are mapped to fields by each field's sparkplug_metric.",
    )


class Registry(_Model):
    regions: dict[str, Region] = Field(min_length=1)
    analytics_region: str | None = Field(
        default=None, description="Region that receives a central copy of whatever may travel."
    )
    profiles: dict[str, Profile]
    sites: dict[str, Site]
    devices: dict[str, Device]
    # (group, edge node, device or None) -> device id; (group, edge node) -> site id
    _spb_devices: dict[tuple[str, str, str | None], str] = PrivateAttr(default_factory=dict)
    _spb_nodes: dict[tuple[str, str], str] = PrivateAttr(default_factory=dict)

    @model_validator(mode="after")
    def _references(self) -> Registry:
        if self.analytics_region is not None and self.analytics_region not in self.regions:
            raise ValueError(f"analytics_region: {self.analytics_region!r} is not a declared region")
        for site_id, site in self.sites.items():
            if site.home_region not in self.regions:
                raise ValueError(f"sites.{site_id}.home_region: {site.home_region!r} is not a declared region")
        for device_id, device in self.devices.items():
            if device.site not in self.sites:
                raise ValueError(f"devices.{device_id}.site: {device.site!r} is not a declared site")
            if device.profile not in self.profiles:
                raise ValueError(f"devices.{device_id}.profile: {device.profile!r} is not a declared profile")
        for device_id, device in sorted(self.devices.items()):
            address = device.sparkplug
            if address is None:
                continue
            key = (address.group, address.edge_node, address.device)
            if key in self._spb_devices:
                raise ValueError(
                    f"devices.{device_id}.sparkplug: {address.group}/{address.edge_node}/"
                    f"{address.device or '(node)'} is already device {self._spb_devices[key]!r}"
                )
            node_site = self._spb_nodes.setdefault(key[:2], device.site)
            if node_site != device.site:
                raise ValueError(
                    f"devices.{device_id}.sparkplug: edge node {address.group}/{address.edge_node} has "
                    f"devices in sites {node_site!r} and {device.site!r}; an edge node is at one site"
                )
            self._spb_devices[key] = device_id
        return self

    def sparkplug_device(self, group: str, edge_node: str, device: str | None) -> str | None:
        """The registry device a Sparkplug edge node (``device`` None) or device publishes as."""
        return self._spb_devices.get((group, edge_node, device))

    def sparkplug_node_site(self, group: str, edge_node: str) -> str | None:
        """The site of a registered Sparkplug edge node (any of its devices registered), else None."""
        return self._spb_nodes.get((group, edge_node))

    def site_of(self, device_id: str) -> tuple[str, Site] | None:
        device = self.devices.get(device_id)
        if device is None:
            return None
        return device.site, self.sites[device.site]

    def profile_of(self, device_id: str) -> Profile:
        return self.profiles[self.devices[device_id].profile]

    def candidate_regions(self, site: Site) -> list[str]:
        """Regions a site's data may be written to: its home region first, then the analytics region."""
        regions = [site.home_region]
        if self.analytics_region and self.analytics_region != site.home_region:
            regions.append(self.analytics_region)
        return regions


def load_registry(path: Path) -> Registry:
    """Load and validate a registry file; errors name the file, the line when known, and the field."""
    return load_model(
        path,
        Registry,
        what="registry",
        error=RegistryError,
        not_a_mapping="registry must be a mapping with regions, profiles, sites, devices",
    )


# --- the effective registry: the YAML overlaid with entries changed through the API -----------------------

EntrySpec = dict[str, Any] | None
"""A site's or device's fields as JSON (``Site`` / ``Device``), or None for a decommissioned entry."""


class RegistryEntryError(RegistryError):
    """Overlaying API entries on the file registry gives an invalid registry.

    ``kind`` (site / device) and ``entry_id`` name the entry when the problem is in one, ``field`` the field
    inside it (e.g. ``site``, ``home_region``, ``country``); ``where`` is the full dotted path."""

    def __init__(self, where: str, message: str) -> None:
        super().__init__(f"{where}: {message}")
        self.where = where
        self.message = message
        parts = where.split(".", 2)
        self.kind: str | None = {"sites": "site", "devices": "device"}.get(parts[0])
        self.entry_id: str | None = parts[1] if self.kind and len(parts) > 1 else None
        self.field: str | None = parts[2] if self.kind and len(parts) > 2 else None


def overlay(base: Registry, *, sites: Mapping[str, EntrySpec], devices: Mapping[str, EntrySpec]) -> Registry:
    """``base`` (the YAML) with the API entries applied: an entry replaces the file's entry of the same id,
    a tombstone (None) removes it. Validated like the file (every reference resolves); RegistryEntryError
    names the entry and the field at fault."""
    merged_sites: dict[str, Any] = dict(base.sites)
    merged_devices: dict[str, Any] = dict(base.devices)
    for target, changes in ((merged_sites, sites), (merged_devices, devices)):
        for entry_id, spec in changes.items():
            if spec is None:
                target.pop(entry_id, None)
            else:
                target[entry_id] = spec
    raw = {
        "regions": base.regions,
        "analytics_region": base.analytics_region,
        "profiles": base.profiles,
        "sites": merged_sites,
        "devices": merged_devices,
    }
    try:
        return Registry.model_validate(raw)  # unchanged entries are the file's (already valid) instances
    except ValidationError as exc:
        err = exc.errors()[0]
        loc = ".".join(str(p) for p in err["loc"])
        msg = err["msg"]
        if not loc and ": " in msg:  # cross-reference errors carry their path in the message
            loc, msg = msg.removeprefix("Value error, ").split(": ", 1)
        raise RegistryEntryError(loc or "(registry)", msg) from None
