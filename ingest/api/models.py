"""Response models of the API (one ``*Public`` model per resource, pages as ``*Page``)."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal
from uuid import UUID

from pydantic import BaseModel, Field

from ingest.registry import Category

Outcome = Literal["stored", "transformed", "denied"]
OUTCOMES: tuple[Outcome, ...] = ("stored", "transformed", "denied")
Bucket = Literal["1m", "5m", "1h", "1d"]


class ErrorPublic(BaseModel):
    detail: str = Field(description="What is wrong, naming the device, parameter or store at fault.")
    parameter: str | None = Field(default=None, description="The query parameter at fault (400).")
    store: str | None = Field(default=None, description="The store that is unreachable (503).")


# --- health -------------------------------------------------------------------------------------


class CheckPublic(BaseModel):
    ok: bool
    detail: str
    latency_ms: float | None = None


class HealthPublic(BaseModel):
    status: Literal["ok", "degraded"]
    policy_revision: str | None
    checks: dict[str, CheckPublic] = Field(
        description="'control', 'region:<name>' for every region, 'pipeline' and 'policy'."
    )


# --- registry -----------------------------------------------------------------------------------


class RegionPublic(BaseModel):
    name: str
    country: str
    description: str
    recipient: dict[str, bool]
    analytics: bool = Field(description="This region receives the central analytics copy.")
    configured: bool = Field(description="This API has a connection pool for the region's store.")


class SitePublic(BaseModel):
    site_id: str
    name: str
    country: str
    home_region: str
    candidate_regions: list[str]
    ciio: bool
    devices: int


# --- devices ------------------------------------------------------------------------------------


class ProgressPublic(BaseModel):
    last_seq: int
    batches: int
    readings: int
    last_seen_at: datetime


class GatewayPublic(BaseModel):
    gateway_id: str
    state: str
    at: datetime
    reason: str | None


class DevicePublic(BaseModel):
    device_id: str
    site: str
    site_name: str
    country: str
    home_region: str
    profile: str
    description: str
    status: Literal["online", "offline", "unknown"] = Field(
        description="State of the gateway that last listed this device; unknown if none did."
    )
    gateway: GatewayPublic | None
    progress: ProgressPublic | None = Field(description="Ingest progress; null before the first batch.")


class DevicePage(BaseModel):
    total: int
    limit: int
    offset: int
    items: list[DevicePublic]


class FieldValuePublic(BaseModel):
    name: str
    category: str
    unit: str | None
    ts: datetime
    value: float | str | None
    transform: str | None
    policy_revision: str
    decision_id: UUID
    region: str


class LatestPublic(BaseModel):
    device_id: str
    region: str
    fields: list[FieldValuePublic] = Field(description="Latest value of every field stored in the region.")


class SeriesPointPublic(BaseModel):
    ts: datetime = Field(description="Start of the bucket (buckets are aligned to UTC multiples).")
    min: float
    max: float
    avg: float
    count: int


class SeriesPublic(BaseModel):
    device_id: str
    name: str
    category: Category
    unit: str | None
    region: str
    bucket: Bucket
    start: datetime
    end: datetime
    points: list[SeriesPointPublic] = Field(description="Buckets holding data, oldest first (no gap filling).")


# --- decisions, flows, rejections ---------------------------------------------------------------


class DecisionPublic(BaseModel):
    decision_id: UUID
    decided_at: datetime
    device_id: str
    seq: int
    site_id: str
    origin_country: str
    category: str
    region: str
    destination_country: str
    outcome: Outcome
    allow: bool
    localization: str
    requires: list[str]
    transforms: dict[str, Any]
    reasons: list[str]
    policy_revision: str
    readings: int
    input: dict[str, Any] | None = Field(
        default=None, description="The exact policy input; only with include_input=true."
    )


class DecisionPage(BaseModel):
    limit: int
    offset: int
    items: list[DecisionPublic]


class FlowPublic(BaseModel):
    origin_country: str
    region: str
    category: str
    outcome: Outcome
    decisions: int
    readings: int


class OutcomeTotalPublic(BaseModel):
    decisions: int = 0
    readings: int = 0


class RegionTotalPublic(BaseModel):
    region: str
    decisions: int
    readings: int
    outcomes: dict[Outcome, OutcomeTotalPublic]


class FlowsPublic(BaseModel):
    window_s: int
    since: datetime
    until: datetime
    flows: list[FlowPublic]
    totals: list[RegionTotalPublic] = Field(description="Per region (every registry region, zeros included).")


class RejectionPublic(BaseModel):
    id: int
    received_at: datetime
    topic: str
    device_id: str | None
    seq: int | None
    code: str
    detail: str
    payload_bytes: int
    payload_kept: bool


class RejectionPage(BaseModel):
    total: int = Field(description="Rejections matching the filter.")
    limit: int
    offset: int
    counts: dict[str, int] = Field(description="All rejections per code (unfiltered).")
    items: list[RejectionPublic]
