"""The decision contract (the policy's input and output) as pydantic models.

The models validate what the Rego policy validates (``rego/residency/flow.rego``), so that a flow the ingest
or the CLI accepts is one that every engine reads the same way: country codes are two ASCII letters (spaces
around them are trimmed, letters upper-cased; any other character, a tab or a no-break space included, is
refused), a subdivision is an ISO 3166-2 code (``QC`` or ``CA-QC``), and every counter is a
whole number from 0 to ``MAX_COUNT``.
"""

from __future__ import annotations

import json
import re
from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    StrictBool,
    StrictInt,
    StrictStr,
    ValidationError,
    field_validator,
)

from policy.errors import PolicyInputError

Localization = Literal["none", "primary_in_country", "in_country_only"]
TransformName = Literal["pseudonymized", "anonymized", "aggregated"]
# Ten billion (more than the people alive), data/vocabulary.json max_count: rego-cpp reads integers of 2^63
# and above wrongly, and prints numbers above 2^31 wrapped with sprintf("%d"), so the bound is checked here
# and in Rego. tests/policy/test_models.py checks that both say the same number.
MAX_COUNT = 10_000_000_000
Count = Annotated[StrictInt, Field(ge=0, le=MAX_COUNT)]
_SET_FIELDS = {"safeguards", "transforms_applied"}
# Spaces and [A-Za-z], not \s, str.strip() or str.upper(): those also take Unicode characters (a no-break
# space, the long s that upper-cases to S) that OPA and rego-cpp treat differently (rego/residency/flow.rego).
_CODE_RE = re.compile(r" *([A-Za-z]{2}) *")
_SUBDIVISION_RE = re.compile(r" *((?:[A-Za-z]{2}-)?[A-Za-z0-9]{1,3}) *")
# rego/residency/flow.rego _date_re: the same pattern, no calendar check (2025-02-30 passes both), so that what
# this model accepts is what the policy accepts. No check against today: a date after today is valid input that
# the policy treats as "not in force yet" (a schema can state a pattern, not the clock).
DATE_PATTERN = r"^[12][0-9]{3}-(0[1-9]|1[0-2])-(0[1-9]|[12][0-9]|3[01])$"
_DATE_RE = re.compile(DATE_PATTERN)


def safeguard_date(value: str) -> str:
    """A YYYY-MM-DD date (the pattern of flow.rego); ValueError otherwise."""
    if _DATE_RE.fullmatch(value) is None:
        raise ValueError(f"{value!r} is not a date (YYYY-MM-DD)")
    return value


SafeguardDate = Annotated[StrictStr, AfterValidator(safeguard_date)]


def country_code(value: str) -> str:
    """Two ASCII letters (spaces around them allowed), upper-cased; ValueError otherwise."""
    match = _CODE_RE.fullmatch(value)
    if match is None:
        raise ValueError(f"{value!r} is not an ISO 3166-1 alpha-2 country code (two letters A-Z)")
    return match.group(1).upper()


def subdivision_code(value: str) -> str:
    """An ISO 3166-2 subdivision code, ``QC`` or ``CA-QC``, upper-cased; ValueError otherwise."""
    match = _SUBDIVISION_RE.fullmatch(value)
    if match is None:
        raise ValueError(f"{value!r} is not an ISO 3166-2 subdivision code (e.g. QC or CA-QC)")
    return match.group(1).upper()


CountryCode = Annotated[StrictStr, AfterValidator(country_code)]
SubdivisionCode = Annotated[StrictStr, AfterValidator(subdivision_code)]


class Recipient(BaseModel):
    """Attributes of the organisation that would hold the data at the destination.

    Every flag defaults to false: a flag can only open a route, never close one, except ``covered_person``.
    """

    model_config = ConfigDict(extra="allow", frozen=True)

    dpf_certified: StrictBool = False
    uk_extension: StrictBool = False
    cbpr_certified: StrictBool = False
    pipeda: StrictBool = False
    appi: StrictBool = False
    swiss_dpf_certified: StrictBool = False
    covered_person: StrictBool = False
    """28 CFR 202.211: the recipient is a covered person (owned by or located in a country of concern...).
    The one flag that only closes routes (the DOJ overlay); declared per region in the registry."""


class Entity(BaseModel):
    """Attributes of the exporting organisation at the origin."""

    model_config = ConfigDict(extra="allow", frozen=True)

    ciio: StrictBool = False
    public_scope: StrictBool = False
    cni: StrictBool = False
    subdivision: SubdivisionCode | None = None


class Subject(BaseModel):
    """Attributes of the data subjects where a subject-based rule applies."""

    model_config = ConfigDict(extra="allow", frozen=True)

    citizenship: CountryCode | None = None
    government_related: StrictBool = False


class Volume(BaseModel):
    """Distinct people (and devices) whose data went this way, including the flow being decided.

    ``*_ytd``: since 1 January (CN CAC 2024 Provisions). ``*_12m``: the preceding 12 months (US 28 CFR
    202.205; also used for Vietnam); the policy never reads a 12-month count below the year-to-date one.
    ``precise_geolocation_devices_12m``: US devices whose precise geolocation the data carries (28 CFR 202.242).
    """

    model_config = ConfigDict(extra="allow", frozen=True)

    individuals_ytd: Count = 0
    sensitive_individuals_ytd: Count = 0
    individuals_12m: Count = 0
    sensitive_individuals_12m: Count = 0
    precise_geolocation_devices_12m: Count = 0


class Flow(BaseModel):
    """One category of data from one origin to one destination (the policy input).

    ``origin``, ``destination`` and ``category`` are required; unknown country
    codes and categories are valid input here and denied by the policy with a
    reason. Keys the contract does not define are ignored.
    """

    model_config = ConfigDict(extra="ignore", frozen=True)

    origin: CountryCode
    destination: CountryCode
    category: StrictStr
    safeguards: tuple[StrictStr, ...] = ()
    safeguard_dates: dict[StrictStr, SafeguardDate] = Field(default_factory=dict)
    """The day each dated safeguard was made or last renewed (e.g. MY_TIA: valid three years, vocabulary.json
    safeguard_validity); a code with a validity is in force only with its date, and only within it."""
    recipient: Recipient = Recipient()
    entity: Entity = Entity()
    subject: Subject = Subject()
    purpose: StrictStr | None = None
    volume: Volume = Volume()
    transforms_applied: tuple[TransformName, ...] = ()

    @field_validator("safeguard_dates")
    @classmethod
    def _sorted_dates(cls, dates: dict[str, str]) -> dict[str, str]:
        return dict(sorted(dates.items()))  # one cache key whatever the order given

    @field_validator("entity")
    @classmethod
    def _subdivision_of_origin(cls, entity: Entity, info: Any) -> Entity:
        origin = info.data.get("origin")
        sub = entity.subdivision
        if sub and "-" in sub and origin and not sub.startswith(f"{origin}-"):
            raise ValueError(f"subdivision {sub} is a subdivision of another country than the origin {origin}")
        return entity

    @classmethod
    def parse(cls, value: Any) -> Flow:
        """Validate a decoded JSON value, raising :class:`PolicyInputError` with one clear line."""
        if not isinstance(value, dict):
            raise PolicyInputError(f"a flow must be a JSON object, got {type(value).__name__}")
        try:
            return cls.model_validate(value)
        except ValidationError as exc:
            raise PolicyInputError(_one_line(exc)) from exc

    @classmethod
    def parse_json(cls, text: str | bytes) -> Flow:
        """Decode and validate JSON text, raising :class:`PolicyInputError` with one clear line."""
        try:
            value = json.loads(text)
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            raise PolicyInputError(f"input is not JSON: {exc}") from exc
        return cls.parse(value)

    def to_input(self) -> dict[str, Any]:
        """The JSON object handed to Rego as ``input``."""
        return self.model_dump(mode="json")

    def cache_key(self) -> str:
        """A canonical string of the whole policy input, so equal keys mean equal inputs for the policy.

        It is built from :meth:`to_input`, the only thing the policy can read (besides its data and the
        date, which :class:`policy.cache.CachedPolicyEngine` adds): nothing the policy reads can be missing
        from the key, even after a data edit makes it read a new recipient or entity flag. Safeguards and
        transforms are sets to the policy, so their order and repetitions do not matter; keys the
        contract does not define are dropped at parsing (extra recipient, entity, subject and volume
        attributes are kept, since the data may name them).
        """
        sets = json.dumps([sorted(set(self.safeguards)), sorted(set(self.transforms_applied))], separators=(",", ":"))
        return sets + self.model_dump_json(exclude=_SET_FIELDS)


class Decision(BaseModel):
    """The policy's answer for one flow (the policy output)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    allow: StrictBool
    localization: Localization
    requires: list[StrictStr]
    transforms: dict[StrictStr, StrictStr]
    reasons: list[StrictStr]
    policy_revision: StrictStr

    def to_contract(self) -> dict[str, Any]:
        """The decision as the JSON object of the contract, fields in contract order."""
        return self.model_dump(mode="json")


def _one_line(exc: ValidationError) -> str:
    parts = []
    for err in exc.errors():
        loc = ".".join(str(p) for p in err["loc"]) or "input"
        if err["type"] == "missing":
            parts.append(f"{loc} is required")
        else:
            parts.append(f"{loc}: {err['msg'].removeprefix('Value error, ')}")
    return "invalid flow: " + "; ".join(parts)
