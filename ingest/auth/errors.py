"""Errors of authentication and authorisation, as types; ``ingest.api.auth`` maps them to 401 / 403."""

from __future__ import annotations

from ingest.errors import IngestError


class AuthError(IngestError):
    """Base class of the authentication and authorisation errors."""


class MalformedTokenError(AuthError):
    """The presented text is not a token of the form ``rtk_<token_id>_<secret>``."""


class InvalidTokenError(AuthError):
    """The token is unknown, its secret does not match, or its user is disabled."""


class ExpiredTokenError(AuthError):
    """The token's expiry has passed."""


class RevokedTokenError(AuthError):
    """The token was revoked."""


class UnknownRoleError(AuthError):
    """A role name that is not one of operator, compliance, engineer, admin."""
