"""API tokens: ``rtk_<token_id>_<secret>``; only a SHA-256 digest of the secret is ever stored.

The secret is ``secrets.token_urlsafe(32)`` (256 random bits). For a high-entropy random secret a fast,
unsalted hash is the standard choice (GitHub and Stripe do the same): no dictionary or brute-force attack
is feasible against 256 bits, so a slow password hash (bcrypt, argon2) would only cost CPU per request.
Digests are compared in constant time (:func:`hmac.compare_digest`).
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
from dataclasses import dataclass
from pathlib import Path

from ingest.auth.errors import MalformedTokenError

PREFIX = "rtk"
_ID_BYTES = 9  # token_urlsafe(9) -> 12 characters
_SECRET_BYTES = 32
# token ids are URL-safe base64 without "_" so that the first "_" after the id separates the secret
_TOKEN_RE = re.compile(r"^rtk_(?P<token_id>[A-Za-z0-9-]{8,64})_(?P<secret>[A-Za-z0-9_-]{32,128})$")


@dataclass(frozen=True)
class IssuedToken:
    """A freshly generated token: ``text`` is shown once; only ``token_id`` and ``digest`` are stored."""

    token_id: str
    secret: str
    digest: str

    @property
    def text(self) -> str:
        return format_token(self.token_id, self.secret)


@dataclass(frozen=True)
class ParsedToken:
    token_id: str
    secret: str


def new_token_id() -> str:
    # token_urlsafe may produce "_": replace it so the id never contains the separator
    return secrets.token_urlsafe(_ID_BYTES).replace("_", "-")


def generate() -> IssuedToken:
    token_id = new_token_id()
    secret = secrets.token_urlsafe(_SECRET_BYTES)
    return IssuedToken(token_id=token_id, secret=secret, digest=hash_secret(secret))


def format_token(token_id: str, secret: str) -> str:
    return f"{PREFIX}_{token_id}_{secret}"


def parse(text: str) -> ParsedToken:
    """Split a presented token; MalformedTokenError (never echoing the secret) when it is not one."""
    match = _TOKEN_RE.match(text.strip())
    if match is None:
        raise MalformedTokenError("not an API token (expected rtk_<token_id>_<secret>)")
    return ParsedToken(token_id=match["token_id"], secret=match["secret"])


def hash_secret(secret: str) -> str:
    """Hex SHA-256 digest of the secret (what the database stores)."""
    return hashlib.sha256(secret.encode("utf-8")).hexdigest()


def verify(secret: str, digest: str) -> bool:
    """Constant-time comparison of the secret's digest with the stored one."""
    return hmac.compare_digest(hash_secret(secret), digest)


def issued_from_text(text: str) -> IssuedToken:
    """An existing token's text (e.g. from a secret file) as an IssuedToken, to store its digest."""
    parsed = parse(text)
    return IssuedToken(token_id=parsed.token_id, secret=parsed.secret, digest=hash_secret(parsed.secret))


def read_token_file(path: Path) -> IssuedToken:
    """The token held by ``path`` (surrounding whitespace ignored); ValueError naming the file otherwise."""
    try:
        text = path.read_text(encoding="utf-8").strip()
    except OSError as exc:
        raise ValueError(f"cannot read token file {path}: {exc.strerror or exc}") from None
    try:
        return issued_from_text(text)
    except MalformedTokenError as exc:
        raise ValueError(f"token file {path}: {exc}") from None
