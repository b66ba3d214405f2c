"""The decision contract as pydantic models."""

from __future__ import annotations

import json
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, StrictBool, StrictInt, StrictStr, ValidationError, field_validator

from policy.errors import PolicyInputError

Localization = Literal["none", "primary_in_country", "in_country_only"]
TransformName = Literal["pseudonymized", "anonymized", "aggregated"]
Count = Annotated[StrictInt, Field(ge=0)]
_SET_FIELDS = {"safeguards", "transforms_applied"}


class Recipient(BaseModel):
    """Attributes of the organisation that would hold the data at the destination.

    Every flag defaults to false: a flag can only open a route, never close one.
    """

    model_config = ConfigDict(extra="allow", frozen=True)

    dpf_certified: StrictBool = False
    uk_extension: StrictBool = False
    cbpr_certified: StrictBool = False
    pipeda: StrictBool = False
    appi: StrictBool = False
    swiss_dpf_certified: StrictBool = False


class Entity(BaseModel):
    """Attributes of the exporting organisation at the origin."""

    model_config = ConfigDict(extra="allow", frozen=True)

    ciio: StrictBool = False
    public_scope: StrictBool = False
    cni: StrictBool = False
    subdivision: StrictStr | None = None


class Subject(BaseModel):
    """Attributes of the data subjects where a subject-based rule applies."""

    model_config = ConfigDict(extra="allow", frozen=True)

    citizenship: StrictStr | None = None
    government_related: StrictBool = False


class Volume(BaseModel):
    """Counters since 1 January, including the flow being decided."""

    model_config = ConfigDict(extra="allow", frozen=True)

    individuals_ytd: Count = 0
    sensitive_individuals_ytd: Count = 0


class Flow(BaseModel):
    """One category of data from one origin to one destination (the policy input).

    ``origin``, ``destination`` and ``category`` are required; unknown country
    codes and categories are valid input here and denied by the policy with a
    reason. Keys the contract does not define are ignored.
    """

    model_config = ConfigDict(extra="ignore", frozen=True)

    origin: StrictStr
    destination: StrictStr
    category: StrictStr
    safeguards: tuple[StrictStr, ...] = ()
    recipient: Recipient = Recipient()
    entity: Entity = Entity()
    subject: Subject = Subject()
    purpose: StrictStr | None = None
    volume: Volume = Volume()
    transforms_applied: tuple[TransformName, ...] = ()

    @field_validator("origin", "destination")
    @classmethod
    def _upper_code(cls, value: str) -> str:
        return value.strip().upper()

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
            parts.append(f"{loc}: {err['msg']}")
    return "invalid flow: " + "; ".join(parts)
