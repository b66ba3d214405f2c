"""Errors raised while reading the wire format. Each names what is wrong."""


class WireError(ValueError):
    """Base class of every wire-format error."""


class TopicError(WireError):
    """A topic does not follow the versioned topic scheme."""

    def __init__(self, topic: str, reason: str) -> None:
        super().__init__(f"topic {topic!r}: {reason}")
        self.topic = topic
        self.reason = reason


class DecodeError(WireError):
    """A payload is not a valid batch; ``field`` names the first offending field when known."""

    def __init__(self, reason: str, field: str | None = None) -> None:
        super().__init__(f"{field}: {reason}" if field else reason)
        self.reason = reason
        self.field = field


class SchemaVersionError(DecodeError):
    """A payload declares a schema version this code does not understand."""

    def __init__(self, version: object) -> None:
        super().__init__(f"unsupported schema version {version!r}", field="v")
        self.version = version
