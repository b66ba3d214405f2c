"""Ingest service settings, validated at load (pydantic-settings; every variable is prefixed INGEST_).

Example::

    INGEST_MQTT_PORT=1883
    INGEST_REGISTRY_FILE=deploy/local/registry.yaml
    INGEST_REGION_DSNS='{"eu-central": "postgresql://...", "us-east": "postgresql://..."}'
    INGEST_CONTROL_DSN=postgresql://.../control
    INGEST_POLICY_ENGINE=embedded          # or "opa" with INGEST_OPA_URL=http://opa:8181
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from ingest.errors import ConfigError

DEFAULT_POLICY_DIR = Path(__file__).resolve().parent.parent / "policy"


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

    # --- batching ---
    flush_interval_ms: int = Field(200, ge=1, description="Maximum wait before committing a batch.")
    flush_max_messages: int = Field(500, ge=1, description="Commit after this many messages.")

    # --- stores ---
    registry_file: Path = Field(Path("deploy/local/registry.yaml"))
    region_dsns: dict[str, str] = Field(default_factory=dict, description="Region name -> PostgreSQL DSN.")
    control_dsn: str = Field(..., description="DSN of the control database (decision log, rejections).")
    timescaledb: Literal["auto", "on", "off"] = Field(
        "auto", description="Use the timescaledb extension when present (auto), require it, or never."
    )

    # --- policy ---
    policy_engine: Literal["embedded", "opa"] = "embedded"
    policy_dir: Path = DEFAULT_POLICY_DIR
    opa_url: str | None = None
    decision_cache_size: int = Field(10_000, ge=0)

    # --- transforms applied by the ingest when a decision demands them ---
    pseudonymization_key: SecretStr = Field(
        SecretStr("dev-only-change-me"), description="HMAC key for ingest-side pseudonymization."
    )
    environment: Literal["development", "production"] = "development"

    # --- API ---
    api_host: str = "127.0.0.1"
    api_port: int = Field(8000, ge=0, le=65535)
    log_level: str = "INFO"

    @field_validator("region_dsns")
    @classmethod
    def _dsns(cls, value: dict[str, str]) -> dict[str, str]:
        if not value:
            raise ValueError("at least one region DSN is required (INGEST_REGION_DSNS)")
        return value

    @model_validator(mode="after")
    def _consistent(self) -> IngestSettings:
        if self.policy_engine == "opa" and not self.opa_url:
            raise ValueError("INGEST_OPA_URL is required when INGEST_POLICY_ENGINE=opa")
        if self.environment == "production" and self.pseudonymization_key.get_secret_value() == (
            "dev-only-change-me"
        ):
            raise ValueError("INGEST_PSEUDONYMIZATION_KEY must be set in production")
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
        return IngestSettings(**overrides)  # type: ignore[arg-type]
    except ValidationError as exc:
        problems = "; ".join(
            f"INGEST_{'_'.join(str(p) for p in e['loc']).upper() or '(settings)'}: {e['msg']}"
            for e in exc.errors()
        )
        raise ConfigError(problems) from None
