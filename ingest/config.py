"""Ingest service settings, validated at load (pydantic-settings; every variable is prefixed INGEST_).

Example::

    INGEST_MQTT_PORT=1883
    INGEST_REGISTRY_FILE=deploy/local/registry.yaml
    INGEST_REGION_DSNS='{"eu-central": "postgresql://...", "us-east": "postgresql://..."}'
    INGEST_CONTROL_DSN=postgresql://.../control
    INGEST_POLICY_ENGINE=embedded          # or "opa" with INGEST_OPA_URL=http://opa:8181
"""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path
from typing import Literal

from pydantic import Field, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from ingest.auth.tokens import read_token_file
from ingest.errors import ConfigError
from ingest.store.options import Duration

DEFAULT_POLICY_DIR = Path(__file__).resolve().parent.parent / "policy"
DEFAULT_INVARIANTS_FILE = DEFAULT_POLICY_DIR / "invariants.yaml"


class IngestSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="INGEST_", env_ignore_empty=True, extra="ignore")

    # --- broker ---
    mqtt_host: str = Field("127.0.0.1", description="MQTT broker host.")
    mqtt_port: int = Field(1883, ge=1, le=65535)
    mqtt_username: str | None = None
    mqtt_password: SecretStr | None = None
    mqtt_tls: bool = False
    mqtt_ca_file: Path | None = None
    mqtt_client_id: str = Field("ingest-1", description="Unique per replica (persistent session id).")
    share_group: str = Field("ingest", description="Shared subscription group: replicas split the load.")
    session_expiry_s: int = Field(3600, ge=0, description="Broker keeps unacked messages this long.")
    receive_maximum: int = Field(
        2000, ge=1, le=65535, description="MQTT v5 Receive Maximum: unacked messages in flight."
    )
    max_message_bytes: int = Field(1_048_576, ge=1024, description="Larger payloads are rejected.")
    workers: int | None = Field(
        None,
        ge=1,
        le=256,
        description="Consumer processes of this replica (`ingest serve --workers`), in its "
        "shared-subscription group; default: the CPUs it may run on. docs/small-messages.md says how to size it.",
    )

    # --- what one device may claim (docs/message-isolation.md) ---
    seq_jump_allowance: int = Field(
        1000,
        ge=1,
        description="A batch more than this many seqs (plus INGEST_SEQ_RATE_MAX per second since the "
        "device's last batch) ahead of the device's highest seq is quarantined as seq_jump.",
    )
    seq_rate_max: float = Field(
        50.0,
        gt=0,
        description="Most batches per second a device can produce (bounds a plausible seq jump after an outage).",
    )
    seq_gap_grace_s: float = Field(
        2.0,
        ge=0,
        le=3600,
        description="A missing seq becomes a gap (GET /api/v1/gaps) once a later batch of its device was received "
        "this long ago and it is still missing: consumers of one shared subscription work out a device's batches out "
        "of order, and most holes fill within a flush. 0: a jump opens its gap at once.",
    )
    sparkplug: bool = Field(
        True,
        description="Also subscribe to Sparkplug B edge nodes' births, data and deaths (spBv1.0/...; "
        "docs/sparkplug.md).",
    )
    sparkplug_birth_wait_s: float = Field(
        2.0,
        ge=0,
        description="A Sparkplug message that finds no birth is held back (unacknowledged) and worked out "
        "again for this long before it is quarantined as spb_no_birth: with several replicas, the birth it follows "
        "may be committing in another one.",
    )
    sparkplug_gap_wait_s: float = Field(
        2.0,
        ge=0,
        description="A Sparkplug seq gap still open this long after it was seen makes the ingest ask the "
        "edge node for a Rebirth (with several replicas a node's messages can be worked out out of order: most gaps "
        "close by themselves).",
    )
    sparkplug_rebirth_interval_s: float = Field(
        30.0,
        ge=0,
        description="Least time between two Rebirth requests (NCMD) to one Sparkplug edge node.",
    )
    max_clock_skew_s: float = Field(
        300.0,
        gt=0,
        description="A gateway status dated more than this ahead of the ingest's clock is refused.",
    )
    watchdog_stall_s: float = Field(
        120.0,
        gt=0,
        description="Unhealthy when the pipeline made no progress this long with messages waiting.",
    )

    # --- batching ---
    flush_interval_ms: int = Field(
        200,
        ge=1,
        le=60_000,
        description="Longest a batch stays open for more messages, counted from its first message's arrival.",
    )
    flush_idle_ms: int = Field(
        10,
        ge=0,
        le=60_000,
        description="A batch closes early when no message has arrived for this long (0: as soon as the queue "
        "is empty). Under load messages keep coming and batches grow to the interval or the caps; at low "
        "load a message does not wait the whole interval.",
    )
    flush_max_messages: int = Field(500, ge=1, description="Commit after this many messages.")
    flush_max_bytes: int = Field(
        32 * 1024 * 1024,
        ge=1024,
        description="Commit once the batch's payloads reach this many bytes (bounds memory and transaction size).",
    )

    # --- stores ---
    registry_file: Path = Field(Path("deploy/local/registry.yaml"))
    registry_refresh_s: float = Field(
        2.0,
        gt=0,
        le=3600,
        description="Seconds between checks for registry changes made through the API "
        "(on any replica): sites and devices in the control store, overlaid on INGEST_REGISTRY_FILE.",
    )
    region_dsns: dict[str, str] = Field(default_factory=dict, description="Region name -> PostgreSQL DSN.")
    control_dsn: str = Field(..., description="DSN of the control database (decision log, rejections).")
    timescaledb: Literal["auto", "on", "off"] = Field(
        "auto", description="Use the timescaledb extension when present (auto), require it, or never."
    )
    chunk_interval: Duration = Field(
        timedelta(days=1),
        description="TimescaleDB chunk interval of readings, e.g. '1 day', '12h' (plain "
        "PostgreSQL always uses daily partitions).",
    )
    compress_after: Duration = Field(
        timedelta(days=7), description="TimescaleDB compresses chunks older than this, e.g. '7 days'."
    )
    retention_days: int = Field(
        90, ge=0, description="Drop raw readings older than this many days (whole days/chunks); 0 keeps them."
    )
    rollup_retention_days: int = Field(
        0, ge=0, description="Drop 1-minute/1-hour rollup rows older than this many days; 0 keeps them."
    )
    partitions_ahead: int = Field(
        7, ge=1, le=366, description="Plain PostgreSQL: daily partitions of readings created ahead of today."
    )
    quarantine_retention_days: float = Field(
        30,
        ge=0,
        le=3650,
        description="Held quarantine payloads older than this are deleted (item state "
        "'expired', recorded in the audit trail); 0 keeps them until released or dismissed.",
    )
    quarantine_sweep_s: float = Field(
        3600, gt=0, description="How often the quarantine retention runs (each replica; the items are locked)."
    )
    maintenance_interval_s: float = Field(
        3600, gt=0, description="How often the store maintenance (partitions ahead, retention) runs."
    )
    rollup_refresh_window: Duration = Field(
        timedelta(days=7),
        description="TimescaleDB: how far back continuous-aggregate refreshes look for "
        "late readings (kept below the retention).",
    )
    late_refresh_interval_s: float = Field(
        60,
        gt=0,
        description="TimescaleDB: how often the maintenance refreshes the rollups over late readings "
        "older than the refresh window (ranges the writer recorded).",
    )

    # --- residency cells (docs/cells.md) ---
    topology_file: Path | None = Field(
        None,
        description="The cells' topology (YAML). With it, this ingest serves one cell (INGEST_CELL): its "
        "regions are written here, the others receive parts over the cell's broker and its bridges.",
    )
    cell: str | None = Field(None, description="The cell this ingest serves (a name of INGEST_TOPOLOGY_FILE).")
    link_window: int = Field(
        1000,
        ge=1,
        le=100_000,
        description="Parts in flight (sent, not receipted) per link at most: the bridge "
        "queue never holds more, so the broker never drops one (keep its max_queued_messages above this).",
    )
    link_resend_s: float = Field(
        30.0, gt=0, description="A part not receipted this long after it was sent while the link was up is sent again."
    )
    peer_token_file: Path | None = Field(
        None,
        description="A file holding the API token this cell presents to its peers' APIs to ask for the "
        "aggregates of machine data of the regions they host (a user with the engineer role in each peer cell).",
    )
    link_outbox_max: int = Field(
        1_000_000,
        ge=1,
        description="Parts waiting per link at most; beyond, messages that need that link are "
        "parked (not acknowledged) until it drains.",
    )

    # --- policy ---
    policy_engine: Literal["embedded", "opa"] = "embedded"
    policy_dir: Path = DEFAULT_POLICY_DIR
    opa_url: str | None = None
    decision_cache_size: int = Field(10_000, ge=0)
    policy_watch_s: float = Field(
        5.0,
        ge=0,
        description="Seconds between checks for a new policy revision (policy directory, API "
        "activations made on other replicas, or the OPA bundle revision); 0 disables the watcher.",
    )
    policy_draft_max_bytes: int = Field(
        16 * 1024 * 1024,
        ge=1024,
        description="Largest policy draft POST /api/v1/policy/drafts accepts (also the most it may unpack to).",
    )
    policy_invariants_file: Path = Field(
        DEFAULT_INVARIANTS_FILE,
        description="The platform's residency invariants every policy revision must keep "
        "(checked at every activation; shipped with the ingest, never part of a draft).",
    )

    # --- measured transfer volumes (docs/volumes.md) ---
    measure_volumes: bool = Field(
        True,
        description="Count the distinct data subjects transferred per (site, region) and feed the larger "
        "of measured and declared volumes into the policy input.",
    )
    volume_sync_s: float = Field(
        2.0,
        gt=0,
        le=300,
        description="Seconds between exchanges of measured volumes with the control store "
        "(this replica's new records out, every replica's in).",
    )
    volume_warn_ratio: float = Field(
        0.8,
        gt=0,
        le=1,
        description="Share of a volume threshold (data/thresholds.json) from which a flow is "
        "reported as approaching it (API, metric, compliance page).",
    )

    # --- transforms applied by the ingest when a decision demands them ---
    pseudonymization_key: SecretStr = Field(
        SecretStr("dev-only-change-me"), description="HMAC key for ingest-side pseudonymization."
    )
    environment: Literal["development", "production"] = "development"

    # --- API ---
    api_host: str = "127.0.0.1"
    api_port: int = Field(8000, ge=0, le=65535)
    bootstrap_admin_token_file: Path | None = Field(
        None,
        description="A file (Docker secret) holding an API token rtk_<id>_<secret>: at start, if no user "
        "exists yet, user 'admin' (every role, every region) is created with that token's hash.",
    )
    log_level: str = "INFO"

    @field_validator("bootstrap_admin_token_file")
    @classmethod
    def _bootstrap_token(cls, value: Path | None) -> Path | None:
        if value is not None:
            read_token_file(value)  # raises ValueError naming the file and what is wrong
        return value

    @field_validator("region_dsns")
    @classmethod
    def _dsns(cls, value: dict[str, str]) -> dict[str, str]:
        if not value:
            raise ValueError("at least one region DSN is required (INGEST_REGION_DSNS)")
        return value

    @model_validator(mode="after")
    def _consistent(self) -> IngestSettings:
        if (self.topology_file is None) != (self.cell is None):
            raise ValueError("INGEST_TOPOLOGY_FILE and INGEST_CELL go together (a cell's ingest needs both)")
        if self.policy_engine == "opa" and not self.opa_url:
            raise ValueError("INGEST_OPA_URL is required when INGEST_POLICY_ENGINE=opa")
        if self.environment == "production" and self.pseudonymization_key.get_secret_value() == ("dev-only-change-me"):
            raise ValueError("INGEST_PSEUDONYMIZATION_KEY must be set in production")
        if self.flush_idle_ms > self.flush_interval_ms:
            raise ValueError(
                f"INGEST_FLUSH_IDLE_MS ({self.flush_idle_ms}) must be <= INGEST_FLUSH_INTERVAL_MS "
                f"({self.flush_interval_ms})"
            )
        if self.receive_maximum < self.flush_max_messages:
            raise ValueError(
                f"INGEST_RECEIVE_MAXIMUM ({self.receive_maximum}) must be >= INGEST_FLUSH_MAX_MESSAGES "
                f"({self.flush_max_messages}), or the broker stalls waiting for acks"
            )
        return self


def load_settings(**overrides: object) -> IngestSettings:
    """Load settings from the environment (and overrides); raise ConfigError naming the setting."""
    from pydantic import ValidationError

    try:
        return IngestSettings(**overrides)  # type: ignore[arg-type]  # the model validates the overrides
    except ValidationError as exc:
        problems = "; ".join(
            f"INGEST_{'_'.join(str(p) for p in e['loc']).upper() or '(settings)'}: {e['msg']}" for e in exc.errors()
        )
        raise ConfigError(problems) from None
