"""Limits and timeouts of the HTTP API (pydantic-settings; every variable is prefixed INGEST_API_).

They keep a down or slow store from hanging a request: a request waits at most ``pool_timeout_s``
for a connection and a query runs at most ``statement_timeout_ms``, then the API answers 503 naming
the store.
"""

from __future__ import annotations

import ipaddress
from typing import Annotated, Any

from limits import RateLimitItem, parse
from pydantic import Field, ValidationError, field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from ingest.errors import ConfigError


class ApiSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="INGEST_API_", env_ignore_empty=True, extra="ignore")

    pool_timeout_s: float = Field(
        default=2.0, gt=0, le=60, description="Longest wait for a pooled connection before answering 503."
    )
    statement_timeout_ms: int = Field(
        default=5000, ge=1, le=600_000, description="PostgreSQL statement_timeout of every API query."
    )
    health_timeout_s: float = Field(
        default=2.0, gt=0, le=60, description="Longest wait for a store's SELECT 1 in GET /health."
    )
    max_series_buckets: int = Field(
        default=10_000, ge=1, description="GET /devices/{id}/series refuses windows with more buckets."
    )
    max_body_bytes: int = Field(
        default=65_536,
        ge=1024,
        le=1 << 30,
        description="Largest request body (413 above it); the policy draft upload has its own limit, "
        "INGEST_POLICY_DRAFT_MAX_BYTES.",
    )
    rate_limit: str = Field(
        default="1200/minute",
        description="Requests per authenticated token, per replica (`limits` notation: '20/second', "
        "'1200/minute', '100 per 10 seconds'); 429 with Retry-After above it.",
    )
    rate_limit_unauthenticated: str = Field(
        default="60/minute",
        description="Requests without a valid token to protected endpoints, per client address and replica.",
    )

    trusted_proxies: Annotated[list[str], NoDecode] = Field(
        default_factory=list,
        description="Comma-separated addresses or networks (CIDR) of the reverse proxies in front of the API: "
        "only their X-Forwarded-For / X-Forwarded-Proto are believed (the client address of the rate limit "
        "and the logs). Default: none, every request's address is the connecting one.",
    )

    @field_validator("trusted_proxies", mode="before")
    @classmethod
    def _proxies(cls, value: Any) -> list[str]:
        items = [p.strip() for p in value.split(",")] if isinstance(value, str) else list(value or [])
        if isinstance(value, str) and not value.strip():
            return []
        for item in items:
            try:
                ipaddress.ip_network(item, strict=False)
            except ValueError:
                raise ValueError(
                    f"not an IP address or network: {item!r} (a comma-separated list like "
                    "'10.0.0.5, 10.1.0.0/16'; '*' and host names are not accepted)"
                ) from None
        return items

    @field_validator("rate_limit", "rate_limit_unauthenticated")
    @classmethod
    def _parse_rate(cls, value: str) -> str:
        try:
            parse(value)
        except ValueError:
            raise ValueError(f"not a rate limit like '1200/minute' or '20 per 1 second': {value!r}") from None
        return value

    def rate_limit_item(self) -> RateLimitItem:
        return parse(self.rate_limit)

    def rate_limit_unauthenticated_item(self) -> RateLimitItem:
        return parse(self.rate_limit_unauthenticated)


def load_api_settings() -> ApiSettings:
    """Settings from the environment; raise ConfigError naming the variable at fault."""
    try:
        return ApiSettings()
    except ValidationError as exc:
        problems = "; ".join(
            f"INGEST_API_{'_'.join(str(p) for p in e['loc']).upper()}: {e['msg']}" for e in exc.errors()
        )
        raise ConfigError(problems) from None
