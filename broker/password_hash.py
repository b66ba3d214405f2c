"""Password hashes as Mosquitto's dynamic-security plugin stores them: PBKDF2-HMAC-SHA512.

A client of the plugin's JSON file carries ``password`` (the 64-byte digest), ``salt`` (12 random bytes),
both base64 with padding, and ``iterations`` (the format ``mosquitto_ctrl dynsec init`` writes; checked
in tests/broker/ against that tool and the real broker). We hash with the standard library's
``hashlib.pbkdf2_hmac`` so the credentials job needs no Mosquitto binary (it runs in the Python image).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import secrets
from dataclasses import dataclass

__all__ = ["DEFAULT_ITERATIONS", "SALT_BYTES", "PasswordHash", "hash_password", "verify_password"]

# The plugin's and mosquitto_passwd's default. Our secrets are 256-bit random values, so the iteration
# count does not protect them; a low count keeps the broker's per-CONNECT cost small.
DEFAULT_ITERATIONS = 101
SALT_BYTES = 12


@dataclass(frozen=True, slots=True)
class PasswordHash:
    """The three fields of a dynamic-security client: base64 digest, base64 salt, iteration count."""

    password: str
    salt: str
    iterations: int


def _digest(password: str, salt: bytes, iterations: int) -> bytes:
    return hashlib.pbkdf2_hmac("sha512", password.encode("utf-8"), salt, iterations)


def hash_password(password: str, *, iterations: int = DEFAULT_ITERATIONS, salt: bytes | None = None) -> PasswordHash:
    """A new salted hash of ``password`` (random salt unless given)."""
    if iterations < 1:
        raise ValueError("iterations must be >= 1")
    salt = salt if salt is not None else secrets.token_bytes(SALT_BYTES)
    return PasswordHash(
        password=base64.b64encode(_digest(password, salt, iterations)).decode(),
        salt=base64.b64encode(salt).decode(),
        iterations=iterations,
    )


def verify_password(password: str, stored: PasswordHash) -> bool:
    """True when ``stored`` is a hash of ``password``; False for malformed fields."""
    if not isinstance(stored.iterations, int) or stored.iterations < 1:
        return False
    try:
        salt = base64.b64decode(stored.salt, validate=True)
        expected = base64.b64decode(stored.password, validate=True)
    except (binascii.Error, ValueError, TypeError):
        return False
    return hmac.compare_digest(_digest(password, salt, stored.iterations), expected)
