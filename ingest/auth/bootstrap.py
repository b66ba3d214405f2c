"""The first admin of a fresh deployment, from ``INGEST_BOOTSTRAP_ADMIN_TOKEN_FILE`` (a Docker secret).

At start, after the control store is migrated: if no user exists, user ``admin`` (every role, every
region) is created holding that token (only its digest is stored). Once any user exists the file is
ignored, so rotating the secret does not re-create or change anyone; revoke the bootstrap token
(``DELETE /api/v1/tokens/{id}``) after creating personal admins.
"""

from __future__ import annotations

import logging

import psycopg

from ingest.auth.tokens import read_token_file
from ingest.config import IngestSettings
from ingest.errors import ConfigError, StoreUnavailableError
from ingest.store import users

BOOTSTRAP_USER = "admin"

log = logging.getLogger("ingest.auth")


def bootstrap_admin(settings: IngestSettings) -> bool:
    """Create the bootstrap admin when configured and no user exists; return whether it did."""
    path = settings.bootstrap_admin_token_file
    if path is None:
        return False
    try:
        issued = read_token_file(path)
    except ValueError as exc:
        raise ConfigError(f"INGEST_BOOTSTRAP_ADMIN_TOKEN_FILE: {exc}") from None
    try:
        with psycopg.connect(settings.control_dsn, connect_timeout=5) as conn, conn.transaction():
            created = users.bootstrap_admin(conn, name=BOOTSTRAP_USER, issued=issued)
    except psycopg.OperationalError as exc:
        raise StoreUnavailableError("control", str(exc).strip().splitlines()[0]) from None
    if created:
        log.warning(
            "no user existed: created %r (every role and region) with the token of %s (token id %s)",
            BOOTSTRAP_USER,
            path,
            issued.token_id,
        )
    return created
