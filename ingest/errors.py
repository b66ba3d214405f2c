"""Errors of the ingest service. Each carries the context needed to act on it."""


class IngestError(Exception):
    """Base class of every ingest error."""


class ConfigError(IngestError):
    """The service configuration is unusable; the message names the setting at fault."""


class RegistryError(ConfigError):
    """The device registry file is unusable; the message names the file, line and field."""


class StoreUnavailableError(IngestError):
    """A region (or control) database cannot be reached or refused a write."""

    def __init__(self, store: str, reason: str) -> None:
        super().__init__(f"store {store}: {reason}")
        self.store = store
        self.reason = reason
