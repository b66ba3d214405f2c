"""Transforms the ingest applies to a category's values when a decision demands them.

``pseudonymize`` replaces a value by a keyed HMAC-SHA256 (the data stays personal: GDPR as in force);
``drop`` (and ``anonymize``, which for a single identifier means removing it) stores nothing.
Other transforms (``aggregate``) cannot be applied to one message; the part is then not stored there.
"""

from __future__ import annotations

import hashlib
import hmac

from wire import Value

SUPPORTED = frozenset({"pseudonymize", "drop", "anonymize"})


class Pseudonymizer:
    """Keyed, deterministic pseudonyms: the same badge maps to the same token under one key."""

    def __init__(self, key: bytes, key_id: str = "ingest-1") -> None:
        if not key:
            raise ValueError("pseudonymization key must not be empty")
        self._key = key
        self.key_id = key_id

    def token(self, value: Value) -> str:
        digest = hmac.new(
            self._key, repr(value).encode() if not isinstance(value, str) else value.encode(), hashlib.sha256
        ).hexdigest()
        return f"ps1:{self.key_id}:{digest[:32]}"


def apply(transform: str, value: Value, pseudonymizer: Pseudonymizer) -> tuple[bool, Value]:
    """(keep, new value) for one value under ``transform``; raise ValueError when unsupported."""
    if transform == "pseudonymize":
        return True, pseudonymizer.token(value)
    if transform in ("drop", "anonymize"):
        return False, None
    raise ValueError(f"transform {transform!r} cannot be applied per message by the ingest")
