"""The wire format shared by the edge agent and the ingest: topics and the versioned batch payload."""

from wire.envelope import (
    MAX_MAGNITUDE,
    MAX_READINGS_PER_BATCH,
    MAX_SEQ,
    SCHEMA_VERSION,
    Batch,
    OriginClaim,
    Reading,
    Status,
    Value,
    decode_batch,
    decode_status,
    encode_batch,
    json_schema,
)
from wire.errors import DecodeError, SchemaVersionError, TopicError, WireError
from wire.topics import DataTopic, StatusTopic, data_subscription

__all__ = [
    "MAX_MAGNITUDE",
    "MAX_READINGS_PER_BATCH",
    "MAX_SEQ",
    "SCHEMA_VERSION",
    "Batch",
    "DataTopic",
    "DecodeError",
    "OriginClaim",
    "Reading",
    "SchemaVersionError",
    "Status",
    "StatusTopic",
    "TopicError",
    "Value",
    "WireError",
    "data_subscription",
    "decode_batch",
    "decode_status",
    "encode_batch",
    "json_schema",
]
