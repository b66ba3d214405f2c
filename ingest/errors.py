"""Errors of the ingest service. Each carries the context needed to act on it."""


class IngestError(Exception):
    """Base class of every ingest error."""


class ConfigError(IngestError):
    """The service configuration is unusable; the message names the setting at fault."""


class RegistryError(ConfigError):
    """The device registry file is unusable; the message names the file, line and field."""


class StoreUnavailableError(IngestError):
    """A region (or control) database cannot be reached, or failed for a reason that is not the data written
    (an outage: connection lost, shutting down, out of resources, a lock or serialization failure). The
    messages that need it wait and are retried."""

    def __init__(self, store: str, reason: str) -> None:
        super().__init__(f"store {store}: {reason}")
        self.store = store
        self.reason = reason


class StoreDataError(IngestError):
    """A store refused *what was written*, not the connection: a value out of range, text it cannot hold, a
    constraint (SQLSTATE classes 22, 23, 54), or a value the driver could not encode. Retrying the same rows
    cannot help: the consumer finds the message at fault and quarantines it (``store_rejected``)."""

    def __init__(self, store: str, reason: str, sqlstate: str | None = None) -> None:
        super().__init__(f"store {store} refused the data: {reason}")
        self.store = store
        self.reason = reason
        self.sqlstate = sqlstate
