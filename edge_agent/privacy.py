"""Pseudonymization at the edge: fields declared personal leave the site only as keyed hashes.

A field listed in ``privacy.pseudonymize`` (site level, source level, or both: the lists add up)
is replaced, in every reading, by ``HMAC-SHA256(key, str(value))`` truncated to 128 bits and
written as 32 lowercase hex digits. The key is a file on the gateway and never leaves it; the batch
carries the id of the key (``key_id``) and the list of transformed fields
(``edge_transforms: {field: "pseudonymized"}``), so the ingest knows what it receives and which key
generation produced it. The same value under the same key always gives the same pseudonym, so
records stay linkable (per operator, per shift...) without naming anyone.

Keys rotate: a site lists several keys and names the ``active_key``; only the active key is used
to pseudonymize, the others stay listed so ``edge-agent pseudonym`` can still compute the old
pseudonyms of a value (to find a person's past records on request) until they are retired. See
``edge_agent/README.md`` ("Privacy") for the rotation procedure.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import secrets
import stat
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from wire import Reading

__all__ = [
    "MIN_KEY_BYTES",
    "KeySettings",
    "PrivacySettings",
    "Pseudonymizer",
    "generate_key_file",
    "read_key",
]

MIN_KEY_BYTES = 32
PSEUDONYM_HEX_DIGITS = 32  # 128 bits of the HMAC-SHA256 output

KeyId = Annotated[str, Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,31}$")]
FieldName = Annotated[str, Field(pattern=r"^[a-z][a-z0-9_]{0,62}$")]


def read_key(path: Path) -> bytes:
    """The key bytes of ``path`` (trailing whitespace removed); ValueError when unusable."""
    try:
        data = path.read_bytes().rstrip()
    except OSError as exc:
        raise ValueError(f"cannot read key file {path}: {exc.strerror or exc}") from None
    if len(data) < MIN_KEY_BYTES:
        raise ValueError(
            f"key file {path} holds {len(data)} bytes; a key needs at least {MIN_KEY_BYTES} "
            "(create one with `edge-agent keygen FILE`)"
        )
    return data


def generate_key_file(path: Path) -> None:
    """Write a new random key (32 bytes, as 64 hex digits) to ``path``, readable by its owner only."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(secrets.token_hex(32) + "\n")


def loosely_protected(path: Path) -> bool:
    """True when group or others may read the key file."""
    try:
        return bool(path.stat().st_mode & (stat.S_IRWXG | stat.S_IRWXO))
    except OSError:
        return False


class KeySettings(BaseModel):
    """One pseudonymization key: an id that travels with the data, and the file that stays here."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    id: KeyId = Field(description="Key id sent in each batch (key_id); never reuse an id for another key.")
    file: Path = Field(description="File holding the key (at least 32 bytes); readable by the agent only.")

    @field_validator("file")
    @classmethod
    def _usable(cls, value: Path) -> Path:
        if not value.is_file():
            raise ValueError(f"file not found: {value}")
        read_key(value)
        return value


class PrivacySettings(BaseModel):
    """Fields pseudonymized before they leave the site, and the keys to do it.

    Short form: ``key_id`` + ``key_file`` (one key). Rotation form: ``keys`` (a list of ``id`` +
    ``file``) and ``active_key``.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    pseudonymize: list[FieldName] = Field(
        default_factory=list, description="Fields replaced by a keyed hash (HMAC-SHA256) before publishing."
    )
    keys: list[KeySettings] = Field(default_factory=list, description="Known keys; only active_key is used.")
    active_key: KeyId | None = Field(default=None, description="Id of the key used to pseudonymize.")

    @model_validator(mode="before")
    @classmethod
    def _short_form(cls, data: Any) -> Any:
        if not isinstance(data, dict) or ("key_id" not in data and "key_file" not in data):
            return data
        data = dict(data)
        key_id, key_file = data.pop("key_id", None), data.pop("key_file", None)
        if data.get("keys"):
            raise ValueError("use either key_id + key_file or keys + active_key, not both")
        if key_id is None or key_file is None:
            raise ValueError("key_id and key_file must be given together")
        data["keys"] = [{"id": key_id, "file": key_file}]
        data.setdefault("active_key", key_id)
        return data

    @model_validator(mode="after")
    def _consistent(self) -> PrivacySettings:
        ids = [k.id for k in self.keys]
        duplicates = sorted({i for i in ids if ids.count(i) > 1})
        if duplicates:
            raise ValueError(f"key id(s) listed twice: {duplicates}")
        if self.active_key is not None and self.active_key not in ids:
            raise ValueError(f"active_key {self.active_key!r} is not among the keys {ids}")
        if self.active_key is None and len(self.keys) > 1:
            raise ValueError("several keys are listed: name the one to use in active_key")
        return self

    @property
    def active(self) -> KeySettings | None:
        if not self.keys:
            return None
        wanted = self.active_key or self.keys[0].id
        return next(k for k in self.keys if k.id == wanted)


class Pseudonymizer:
    """Replaces the declared fields of readings by keyed hashes of their values."""

    def __init__(self, fields: Iterable[str], key_id: str, key: bytes) -> None:
        self.fields = frozenset(fields)
        self.key_id = key_id
        self._key = key
        self._cache: dict[str, str] = {}  # badge ids repeat: cache their pseudonyms (bounded below)

    @classmethod
    def from_settings(cls, fields: Sequence[str], settings: PrivacySettings) -> Pseudonymizer | None:
        """None when there is nothing to pseudonymize; ValueError when a key is needed but missing."""
        if not fields:
            return None
        key = settings.active
        if key is None:
            raise ValueError(f"fields {sorted(fields)} are to be pseudonymized but no key is configured")
        return cls(fields, key.id, read_key(key.file))

    def pseudonym(self, value: object) -> str:
        """The pseudonym of ``value`` (its ``str()`` form) under this key."""
        text = value if isinstance(value, str) else str(value)
        cached = self._cache.get(text)
        if cached is None:
            digest = hmac.new(self._key, text.encode(), hashlib.sha256).hexdigest()
            cached = digest[:PSEUDONYM_HEX_DIGITS]
            if len(self._cache) >= 4096:
                self._cache.clear()
            self._cache[text] = cached
        return cached

    def apply(self, readings: list[Reading]) -> tuple[list[Reading], dict[str, str]]:
        """Pseudonymized copies of ``readings`` and the ``edge_transforms`` of the fields present."""
        fields = self.fields
        out: list[Reading] = []
        seen: set[str] = set()
        for reading in readings:
            hit = fields.intersection(reading.values)
            if not hit:
                out.append(reading)
                continue
            values = dict(reading.values)
            for name in hit:
                if values[name] is not None:
                    values[name] = self.pseudonym(values[name])
            seen |= hit
            out.append(Reading.model_construct(ts=reading.ts, values=values))
        return out, dict.fromkeys(sorted(seen), "pseudonymized")
