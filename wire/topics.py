"""Topic value types. Every topic carries a version segment so consumers can refuse what they do not know.

- data:   ``tele/v1/{site_id}/{device_id}``  (QoS 1, one :class:`wire.Batch` per message)
- status: ``status/v1/{site_id}/{gateway_id}`` (retained birth; Last Will for unexpected loss)
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from wire.errors import TopicError

DATA_PREFIX = "tele/v1"
STATUS_PREFIX = "status/v1"
_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")


def _check_id(kind: str, value: str, topic: str) -> None:
    if not _ID.match(value):
        raise TopicError(topic, f"{kind} {value!r} must match {_ID.pattern}")


def valid_id(value: str) -> bool:
    """True when ``value`` can be used as a site, gateway or device id in a topic."""
    return bool(_ID.match(value))


@dataclass(frozen=True, slots=True)
class DataTopic:
    """The topic a device's batches are published on."""

    site_id: str
    device_id: str

    def __post_init__(self) -> None:
        _check_id("site id", self.site_id, str(self))
        _check_id("device id", self.device_id, str(self))

    def __str__(self) -> str:
        return f"{DATA_PREFIX}/{self.site_id}/{self.device_id}"

    @classmethod
    def parse(cls, topic: str) -> DataTopic:
        parts = topic.split("/")
        if len(parts) != 4 or "/".join(parts[:2]) != DATA_PREFIX:
            raise TopicError(topic, f"expected {DATA_PREFIX}/<site_id>/<device_id>")
        return cls(site_id=parts[2], device_id=parts[3])


@dataclass(frozen=True, slots=True)
class StatusTopic:
    """The retained birth/death topic of one gateway (edge agent connection)."""

    site_id: str
    gateway_id: str

    def __post_init__(self) -> None:
        _check_id("site id", self.site_id, str(self))
        _check_id("gateway id", self.gateway_id, str(self))

    def __str__(self) -> str:
        return f"{STATUS_PREFIX}/{self.site_id}/{self.gateway_id}"

    @classmethod
    def parse(cls, topic: str) -> StatusTopic:
        parts = topic.split("/")
        if len(parts) != 4 or "/".join(parts[:2]) != STATUS_PREFIX:
            raise TopicError(topic, f"expected {STATUS_PREFIX}/<site_id>/<gateway_id>")
        return cls(site_id=parts[2], gateway_id=parts[3])


def data_subscription(share_group: str | None = None) -> str:
    """The subscription filter for every device's data, optionally as a shared subscription."""
    base = f"{DATA_PREFIX}/+/+"
    return f"$share/{share_group}/{base}" if share_group else base


def status_subscription() -> str:
    return f"{STATUS_PREFIX}/+/+"
