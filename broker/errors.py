"""Errors of the broker credentials tool; each message names the file and the field or identity at fault."""

from __future__ import annotations


class BrokerConfigError(Exception):
    """Bad input: the identities file, the registry, or an option (``--rotate`` of an unknown identity)."""


class CredentialsWriteError(Exception):
    """The output directory or one of its files cannot be read or written."""
