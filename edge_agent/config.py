"""The agent's configuration: pydantic models loaded from YAML (see ``sample.yaml``).

Every error names the file, the line (best effort) and the field, e.g.
``agent.yaml:12: broker.port: Input should be less than or equal to 65535 (got 70000)``.
Relative paths (``state_dir``, TLS files, keys, certificates) are relative to the working directory.
"""

from __future__ import annotations

import ipaddress
import re
from pathlib import Path
from typing import Any, Literal

from pydantic import (
    BaseModel,
    ByteSize,
    ConfigDict,
    Field,
    SecretStr,
    ValidationError,
    field_validator,
    model_validator,
)

from edge_agent._yaml import YamlDocument, load_yaml
from edge_agent.errors import ConfigError
from edge_agent.privacy import PrivacySettings
from edge_agent.sources.base import DeviceId
from edge_agent.sources.registry import SOURCE_TYPES, AnySourceSettings
from wire import MAX_READINGS_PER_BATCH

__all__ = [
    "AgentConfig",
    "AnySourceSettings",
    "BatchSettings",
    "BrokerSettings",
    "MetricsSettings",
    "PublishSettings",
    "QueueSettings",
    "ReconnectSettings",
    "TlsSettings",
    "load_config",
]

# The source settings: one member per plugin of edge_agent/sources/registry.py (PLUGINS), selected by ``type``.


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class TlsSettings(_Model):
    """TLS to the broker; with cert_file and key_file also client-certificate (mutual) TLS."""

    enabled: bool = Field(default=False, description="Connect with TLS.")
    ca_file: Path | None = Field(default=None, description="CA bundle that signed the broker certificate (PEM).")
    cert_file: Path | None = Field(default=None, description="Client certificate (PEM), for mutual TLS.")
    key_file: Path | None = Field(default=None, description="Client private key (PEM), for mutual TLS.")

    @field_validator("ca_file", "cert_file", "key_file")
    @classmethod
    def _exists(cls, value: Path | None) -> Path | None:
        if value is not None and not value.is_file():
            raise ValueError(f"file not found: {value}")
        return value

    @model_validator(mode="after")
    def _pair(self) -> TlsSettings:
        if (self.cert_file is None) != (self.key_file is None):
            raise ValueError("cert_file and key_file must be given together")
        return self


class ReconnectSettings(_Model):
    """Exponential backoff with jitter between connection attempts."""

    min_delay_s: float = Field(default=0.5, gt=0, le=3600, description="First delay after a lost connection.")
    max_delay_s: float = Field(default=30.0, gt=0, le=86_400, description="Cap of the doubling delay.")

    @model_validator(mode="after")
    def _order(self) -> ReconnectSettings:
        if self.max_delay_s < self.min_delay_s:
            raise ValueError("max_delay_s must be >= min_delay_s")
        return self


class BrokerSettings(_Model):
    """The MQTT broker (MQTT v5, QoS 1)."""

    host: str = Field(default="127.0.0.1", min_length=1, description="Broker host name or address.")
    port: int = Field(default=1883, ge=1, le=65535, description="Broker port (8883 is usual with TLS).")
    username: str | None = Field(default=None, min_length=1, description="MQTT user name, if the broker wants one.")
    password: SecretStr | None = Field(default=None, description="MQTT password (needs username).")
    password_file: Path | None = Field(
        default=None,
        description="File holding the MQTT password (one line, e.g. identities/<gateway_id>/password of "
        "`python -m broker credentials`); instead of password. Read when the agent starts.",
    )
    keepalive_s: int = Field(default=30, ge=5, le=65535, description="MQTT keep-alive; also bounds LWT latency.")
    connect_timeout_s: float = Field(default=5.0, gt=0, le=300, description="TCP/TLS connect timeout.")
    max_inflight: int = Field(
        default=20, ge=1, le=65535, description="Unacknowledged batches on the wire (capped by the broker's limit)."
    )
    retry_unrouted: bool = Field(
        default=True,
        description="A batch the broker acknowledges with 'no matching subscribers' (0x10: no ingest is "
        "subscribed) is kept and sent again with the reconnect backoff, instead of counting as delivered.",
    )
    retry_unauthorized: bool = Field(
        default=True,
        description="A batch the broker refuses with 'not authorized' (0x87: its ACL does not allow the topic) "
        "is kept and sent again with backoff (an ACL fix makes it flow), instead of being dropped.",
    )
    tls: TlsSettings = TlsSettings()
    reconnect: ReconnectSettings = ReconnectSettings()

    @field_validator("password_file")
    @classmethod
    def _password_file(cls, value: Path | None) -> Path | None:
        if value is not None:
            read_password_file(value)
        return value

    @model_validator(mode="after")
    def _credentials(self) -> BrokerSettings:
        if self.password is not None and self.password_file is not None:
            raise ValueError("password and password_file are both set: use one")
        if (self.password is not None or self.password_file is not None) and self.username is None:
            raise ValueError("password is set but username is not")
        return self

    def secret(self) -> str | None:
        """The MQTT password: ``password``, or the content of ``password_file`` read now (rotations apply)."""
        if self.password_file is not None:
            return read_password_file(self.password_file)
        return self.password.get_secret_value() if self.password is not None else None


def read_password_file(path: Path) -> str:
    """The one-line secret in ``path`` (surrounding whitespace stripped); ValueError naming the problem."""
    try:
        value = path.read_text(encoding="utf-8").strip()
    except FileNotFoundError:
        raise ValueError(f"file not found: {path}") from None
    except OSError as exc:
        raise ValueError(f"cannot read {path}: {exc.strerror}") from None
    except UnicodeDecodeError:
        raise ValueError(f"{path} is not UTF-8 text") from None
    if not value or "\n" in value:
        raise ValueError(f"{path} must hold exactly one non-empty line")
    return value


class BatchSettings(_Model):
    """How readings of one device are grouped into a batch (one MQTT message)."""

    max_readings: int = Field(default=50, ge=1, le=MAX_READINGS_PER_BATCH, description="Cut a batch at this size.")
    max_latency_ms: int = Field(
        default=1000, ge=1, le=3_600_000, description="Cut a batch when its oldest reading has waited this long."
    )


class QueueSettings(_Model):
    """Batches kept until the broker acknowledges them (store and forward)."""

    kind: Literal["disk", "memory"] = Field(
        default="disk", description="disk: SQLite in state_dir, survives restarts; memory: lost on restart."
    )
    max_batches: int = Field(default=1_000_000, ge=1, le=100_000_000, description="Bound on queued batches.")
    max_bytes: ByteSize = Field(
        default=ByteSize(256 * 1024 * 1024), ge=1024, description="Bound on queued payload bytes, e.g. 256MiB or 2GB."
    )
    when_full: Literal["drop_oldest", "reject_new"] = Field(
        default="drop_oldest",
        description="drop_oldest: evict the oldest unsent batches; reject_new: refuse the new batch. Both counted.",
    )


class PublishSettings(_Model):
    """How batches go on the wire: compression and rate limit."""

    compression: Literal["none", "gzip"] = Field(
        default="none",
        description="gzip: compress each payload; signalled by content type application/json+gzip "
        "and user property content-encoding=gzip (the ingest must support it).",
    )
    compression_level: int = Field(default=6, ge=1, le=9, description="gzip level (1 fast ... 9 small).")
    max_messages_per_s: float = Field(
        default=0, ge=0, le=1_000_000, description="Token-bucket limit on data messages per second (0: none)."
    )
    burst: int = Field(default=20, ge=1, le=1_000_000, description="Messages that may go out at once under the limit.")


_LABEL = r"[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?"
_HOSTNAME = re.compile(rf"^(?=.{{1,253}}$){_LABEL}(?:\.{_LABEL})*$")


class MetricsSettings(_Model):
    """The Prometheus endpoint of ``edge-agent run``: ``http://host:port/metrics`` (no TLS, no auth)."""

    enabled: bool = Field(default=False, description="Serve Prometheus metrics while the agent runs.")
    host: str = Field(
        default="127.0.0.1",
        description="Address to listen on: 127.0.0.1 (local scrapers only), 0.0.0.0 or :: (every interface).",
    )
    port: int = Field(default=9108, ge=1, le=65535, description="TCP port of the metrics endpoint.")

    @field_validator("host")
    @classmethod
    def _address(cls, value: str) -> str:
        try:
            ipaddress.ip_address(value)
        except ValueError:
            if not _HOSTNAME.match(value):
                raise ValueError("must be an IP address (e.g. 127.0.0.1, 0.0.0.0, ::) or a host name") from None
        return value


class AgentConfig(_Model):
    """Everything one gateway's agent needs."""

    gateway_id: DeviceId = Field(description="Gateway id: MQTT client id and status topic segment.")
    site_id: DeviceId = Field(description="Site (factory) id: topic segment of every device.")
    country: str | None = Field(
        default=None, pattern=r"^[A-Z]{2}$", description="Origin claim put in each batch; the ingest checks it."
    )
    state_dir: Path = Field(description="Directory for per-device sequence numbers (must survive reboots).")
    broker: BrokerSettings = BrokerSettings()
    batch: BatchSettings = BatchSettings()
    queue: QueueSettings = QueueSettings()
    publish: PublishSettings = PublishSettings()
    privacy: PrivacySettings = PrivacySettings()
    status_interval_s: float = Field(
        default=2.0, ge=0.1, le=3600, description="How often state_dir/status.json is rewritten (edge-agent status)."
    )
    metrics: MetricsSettings = MetricsSettings()
    sources: list[AnySourceSettings] = Field(min_length=1, description="One source per device.")

    @field_validator("sources")
    @classmethod
    def _unique_devices(cls, sources: list[AnySourceSettings]) -> list[AnySourceSettings]:
        first: dict[str, int] = {}
        for i, source in enumerate(sources):
            if source.device_id in first:
                raise ValueError(f"device_id {source.device_id!r} is used by sources {first[source.device_id]} and {i}")
            first[source.device_id] = i
        return sources

    @model_validator(mode="after")
    def _keys_for_personal_fields(self) -> AgentConfig:
        for i, source in enumerate(self.sources):
            fields, keys = self.privacy_of(i)
            if fields and keys.active is None:
                where = f"sources.{i}.privacy" if source.privacy and source.privacy.pseudonymize else "privacy"
                raise ValueError(
                    f"{where}: {', '.join(fields)} of {source.device_id} must be pseudonymized but no key is "
                    "configured (set key_id and key_file, or keys and active_key)"
                )
        return self

    def privacy_of(self, index: int) -> tuple[list[str], PrivacySettings]:
        """Fields to pseudonymize for source ``index`` (site's plus source's) and the keys to use."""
        site, own = self.privacy, self.sources[index].privacy
        fields = list(site.pseudonymize)
        if own is not None:
            fields += [f for f in own.pseudonymize if f not in fields]
        keys = own if own is not None and own.keys else site
        return fields, keys

    @property
    def device_ids(self) -> list[str]:
        return [s.device_id for s in self.sources]


def _strip_tags(loc: tuple[Any, ...]) -> tuple[Any, ...]:
    """Drop the union tag pydantic puts after a source's index: ``sources.0.modbus.port`` -> ``sources.0.port``."""
    out: list[Any] = []
    for i, part in enumerate(loc):
        if i >= 2 and loc[i - 2] == "sources" and isinstance(loc[i - 1], int) and part in SOURCE_TYPES:
            continue
        out.append(part)
    return tuple(out)


_WHERE = re.compile(r"^(?:Value error, )?((?:privacy|sources\.\d+\.privacy)): (.*)$", re.DOTALL)


def _describe(doc: YamlDocument, err: dict[str, Any]) -> ConfigError:
    loc = _strip_tags(tuple(err.get("loc", ())))
    if err.get("type") in ("union_tag_invalid", "union_tag_not_found"):
        loc += ("type",)  # the source's type is what is wrong (or missing)
    reason = str(err.get("msg", "invalid"))
    where = _WHERE.match(reason) if not loc else None
    if where:  # a whole-config check that names the section it is about
        loc = tuple(int(p) if p.isdigit() else p for p in where.group(1).split("."))
        reason = where.group(2)
    field = ".".join(str(p) for p in loc) or None
    value = err.get("input")
    if err.get("type") not in ("missing", "extra_forbidden") and isinstance(value, str | int | float | bool):
        reason = f"{reason} (got {value!r})"
    return ConfigError(reason, file=doc.path, line=doc.line_of(loc), field=field)


def load_config(path: str | Path) -> AgentConfig:
    """Load and validate the agent config; raise :class:`ConfigError` naming file, line and field."""
    doc = load_yaml(Path(path))
    if not isinstance(doc.data, dict):
        raise ConfigError("the config must be a YAML mapping (key: value)", file=doc.path, line=1)
    try:
        return AgentConfig.model_validate(doc.data)
    except ValidationError as exc:
        first, *more = [_describe(doc, dict(e)) for e in exc.errors()]
        raise ConfigError(first.reason, file=first.file, line=first.line, field=first.field, more=more) from None
