"""Response models of the API (one ``*Public`` model per resource, pages as ``*Page``)."""

from __future__ import annotations

import re
from datetime import datetime
from typing import Annotated, Any, Literal
from uuid import UUID

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, StrictBool, StrictInt, model_validator
from pydantic.json_schema import SkipJsonSchema

from ingest.registry import Category

Outcome = Literal["stored", "transformed", "denied"]
OUTCOMES: tuple[Outcome, ...] = ("stored", "transformed", "denied")
Bucket = Literal["10s", "1m", "5m", "1h", "1d"]
SeriesBucket = Literal["raw", "10s", "1m", "5m", "1h", "1d"]


class FieldErrorPublic(BaseModel):
    """One field of the request that is wrong."""

    location: Literal["path", "query", "header", "cookie", "body"]
    field: str = Field(description="Dotted path of the field in its location ('' for the body as a whole).")
    message: str = Field(description="What is wrong with it.")
    accepted: list[str] | None = Field(
        default=None,
        description="The accepted values, when they are a closed set (regions, countries, "
        "categories, profiles, roles, ...).",
    )


class ErrorPublic(BaseModel):
    """The body of every 4xx and 5xx answer of the API."""

    detail: str = Field(description="What is wrong, naming the device, parameter, field or store at fault.")
    parameter: str | None = Field(default=None, description="The parameter or body field at fault (400, 422).")
    store: str | None = Field(default=None, description="The store that is unreachable (503).")
    errors: list[FieldErrorPublic] | None = Field(
        default=None, description="422: every field at fault, with the accepted values of a closed set."
    )


def _not_a_number(value: Any) -> Any:
    if isinstance(value, (bool, int, float)) or (isinstance(value, str) and _NUMBER.fullmatch(value.strip())):
        raise ValueError("a date and time like 2026-05-01T12:00:00Z (ISO 8601), not a number")
    return value


_NUMBER = re.compile(r"[+-]?(\d+(\.\d*)?|\.\d+)([eE][+-]?\d+)?")
IsoDateTime = Annotated[datetime, BeforeValidator(_not_a_number)]
"""A date and time in ISO 8601 (pydantic would also read a number as seconds since 1970: ``start=0.5``)."""


# --- health -------------------------------------------------------------------------------------


class CheckPublic(BaseModel):
    ok: bool
    detail: str
    latency_ms: float | None = None


class HealthPublic(BaseModel):
    status: Literal["ok", "degraded"]
    policy_revision: str | None
    checks: dict[str, CheckPublic] = Field(
        description="'control', 'region:<name>' for every region, 'jobs:<name>' for every TimescaleDB region "
        "store (its background jobs: failing, overdue, paused or missing), 'pipeline' and 'policy'."
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
    withheld: bool = Field(
        default=False,
        description="The value is not returned: restricted (non-machine) data of a region the caller is not "
        "authorised for (outside the user's region scope).",
    )


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


class RawPointPublic(BaseModel):
    ts: datetime
    seq: int = Field(description="The device's batch sequence number.")
    idx: int = Field(description="Index of the reading in its batch.")
    value: float | str | None
    transform: str | None


class SeriesPublic(BaseModel):
    device_id: str
    name: str
    category: Category
    unit: str | None
    region: str = Field(description="The region store read, or 'all' for a combined answer.")
    bucket: SeriesBucket
    start: datetime
    end: datetime
    points: list[SeriesPointPublic] = Field(
        description="Buckets holding data, oldest first (no gap filling); empty for bucket=raw."
    )
    rollup: str | None = Field(
        default=None,
        description="Rollup that answered the whole buckets (readings_1m, readings_1h); raw rows answer the "
        "partial buckets at the window's edges. Null: computed from raw rows only.",
    )
    regions: list[str] = Field(
        default_factory=list,
        description="region=all: the stores consulted. A bucket's value comes from the store holding the most "
        "readings of it (stores hold copies of the same readings, so they are not added up).",
    )
    readings: list[RawPointPublic] | None = Field(
        default=None, description="bucket=raw: the stored readings, oldest first, at most limit; null otherwise."
    )
    limit: int | None = Field(default=None, description="bucket=raw: the page size.")
    next_cursor: str | None = Field(
        default=None, description="bucket=raw: pass as cursor= for the next page; null on the last page."
    )


class AggregatePublic(BaseModel):
    min: float | None
    max: float | None
    avg: float | None
    count: int


class RegionCountPublic(BaseModel):
    """What one region store holds of the metric over the window, and how much of it the totals count."""

    region: str
    values_stored: int = Field(
        description="Stored values of the metric in this region over the window (one per "
        "reading of a device; copies included)."
    )
    values_counted: int = Field(
        description="Of these, the values counted in `total` and `points`: for each device "
        "and bucket, the store holding the most values of it is counted."
    )
    copies_not_counted: int = Field(
        description="values_stored - values_counted: copies of values counted from "
        "another region's store (the analytics copy of a home region's values)."
    )


class AggregatePointPublic(SeriesPointPublic):
    regions: dict[str, int] = Field(
        description="Values of this bucket counted from each region store (they add up to count)."
    )


class DeviceAggregatePublic(AggregatePublic):
    device_id: str
    site: str


class MetricAggregatePublic(BaseModel):
    name: str
    category: Category
    unit: str | None
    site: str | None
    region: str = Field(
        description="'all' (every candidate region of the sites involved, combined) or the one region store asked."
    )
    bucket: Bucket
    start: datetime
    end: datetime
    points: list[AggregatePointPublic] = Field(
        description="The time series: per bucket, over every device, oldest first (buckets without values are "
        "left out). sum(points.count) == total.count."
    )
    total: AggregatePublic = Field(
        description="Over every device and the whole window: total.count == sum(points.count) == "
        "sum(regions.values_counted) == the sum of every device's count."
    )
    regions: list[RegionCountPublic] = Field(
        description="Every region store consulted, with what it holds and what of it is counted."
    )
    devices_total: int = Field(description="Devices included (declaring the metric, of sites the caller may read).")
    limit: int
    offset: int
    devices: list[DeviceAggregatePublic] = Field(
        description="One page (limit, offset) of per-device aggregates over the window."
    )


# --- site summary -------------------------------------------------------------------------------


class LatestValuePublic(BaseModel):
    device_id: str
    ts: datetime
    value: float | str | None
    withheld: bool = False


class MetricSummaryPublic(BaseModel):
    name: str
    category: Category
    unit: str | None
    devices: int = Field(description="Devices of the site that declare this field.")
    latest: LatestValuePublic | None = Field(description="Most recent value over the site's devices.")
    last_hour: AggregatePublic | None = Field(description="Numeric values of the last hour; null for withheld data.")
    withheld: bool = Field(
        default=False, description="Restricted data of a region the caller is not authorised for: values omitted."
    )


class SiteSummaryPublic(BaseModel):
    site_id: str
    name: str
    country: str
    home_region: str
    candidate_regions: list[str]
    window_start: datetime
    window_end: datetime
    devices_total: int
    online: int
    offline: int
    unknown: int
    readings_last_hour: int = Field(
        description="Readings (timestamped samples of a device, whatever their fields) "
        "held in the home region over the last hour."
    )
    readings_last_hour_by_region: dict[str, int] = Field(
        description="The same, per candidate region: readings of which the region holds at least one value."
    )
    values_last_hour: int = Field(
        description="Stored values (one per field of a reading) in the home region over the last hour."
    )
    values_last_hour_by_region: dict[str, int] = Field(description="The same, per candidate region (copies).")
    metrics: list[MetricSummaryPublic] = Field(description="Every field declared by the site's devices, by name.")
    limit: int
    offset: int
    devices: list[DevicePublic] = Field(description="One page of the site's devices (limit, offset).")


# --- decisions, flows, rejections ---------------------------------------------------------------


class DecisionPublic(BaseModel):
    decision_id: UUID = Field(
        description="The distinct decision: this device's category placed in this region this way under one policy "
        "input and answer; shared by every message decided the same way, and carried by every value it placed. "
        "(decision_id, seq) names one message's decision."
    )
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
    total: int = Field(description="Decisions matching the filters, over every page.")
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


# --- policy: status, drafts, activations, what-if -----------------------------------------------

ActivationSource = Literal["startup", "file", "api", "opa"]


class PolicyCachePublic(BaseModel):
    hits: int
    misses: int
    size: int
    maxsize: int


class ActivationPublic(BaseModel):
    id: int | None = Field(default=None, description="Row id in policy_activations (null: not recorded yet).")
    at: datetime
    revision: str
    previous_revision: str | None
    draft_id: str | None = Field(default=None, description="Source api: the draft that was checked.")
    activated_by: str = Field(description="The authenticated user of the API call, file:<dir>, opa-bundle or startup.")
    source: ActivationSource
    outcome: Literal["accepted", "refused"]
    error: str | None = Field(
        description="Why a candidate was refused (load error, broken platform invariants or failing Rego tests)."
    )
    replica: str | None = None
    engine: str | None = None
    tests_passed: int | None = None
    tests_failed: int | None = None


class ActivationPage(BaseModel):
    limit: int
    offset: int
    items: list[ActivationPublic]


class PolicyStatusPublic(BaseModel):
    revision: str = Field(description="The active revision: what the next message is decided with.")
    engine: Literal["embedded", "opa"]
    loaded_at: datetime
    source: ActivationSource = Field(description="How the active revision became active.")
    activated_by: str
    policy_dir: str | None = Field(description="The watched policy directory (embedded engine).")
    file_revision: str | None = Field(description="Revision of the policy directory at the last check.")
    watch_s: float = Field(description="Seconds between checks for a new revision (0: no watcher).")
    replica: str
    cache: PolicyCachePublic | None = Field(
        description="Decision cache of the active revision (a new, empty one on every activation)."
    )
    last_refused: ActivationPublic | None = Field(
        description="The last candidate this replica refused, until a later activation succeeds."
    )
    unrecorded_activations: int = Field(description="Attempts not yet written to policy_activations (store down).")
    paused: str | None = Field(
        default=None,
        description="OPA mode: why routing waits (OPA serves a revision that breaks a platform "
        "invariant); null when decisions flow.",
    )
    invariants: int = Field(default=0, description="Platform invariants every candidate is checked against.")


class DraftPublic(BaseModel):
    draft_id: str = Field(description="sha256 over every file, tests included: pass it to POST /policy/activate.")
    revision: str = Field(description="sha256 over the policy and data (tests left out), as decisions carry it.")
    uploaded_by: str
    uploaded_at: datetime
    bytes: int
    tests: int = Field(description="Number of *_test.rego files.")
    loads: bool | None = Field(default=None, description="The upload check: it loads (null: not checked).")
    tests_passed: int | None = None
    tests_failed: int | None = None
    invariants_failed: list[str] = Field(default_factory=list, description="Platform invariants it breaks.")
    error: str | None = Field(
        default=None, description="Why its activation would be refused (null: it would pass, or it was not checked)."
    )


class DraftCheckPublic(BaseModel):
    revision: str = Field(description="Revision the draft's files hash to.")
    draft_id: str = Field(
        description="sha256 over every file, tests included: pass it to POST /policy/activate "
        "(drafts differing only in tests share a revision)."
    )
    files: int
    bytes: int
    tests: int
    loads: bool
    tests_passed: int
    tests_failed: int
    invariants_failed: list[str] = Field(description="Ids of the platform invariants the draft breaks.")
    error: str | None = Field(description="Why activation would be refused; null when it would be accepted.")


class ActivateRequest(BaseModel):
    """What to activate: one of ``draft_id`` (exactly that draft), ``revision`` (the newest draft of that
    revision whose upload check passed; or the policy directory when it has that revision and no draft
    does) or ``file: true`` (the policy directory the ingest runs from, INGEST_POLICY_DIR, again)."""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "oneOf": [
                {"required": ["draft_id"]},
                {"required": ["revision"], "not": {"required": ["draft_id"]}},
                {"required": ["file"], "properties": {"file": {"const": True}}},
            ]
        },
    )

    draft_id: Annotated[str, Field(min_length=1)] | SkipJsonSchema[None] = Field(
        default=None, description="A draft (from POST or GET /policy/drafts)."
    )
    revision: Annotated[str, Field(min_length=1)] | SkipJsonSchema[None] = Field(
        default=None, description="A revision; with draft_id, it must be that draft's."
    )
    file: StrictBool = Field(default=False, description="Activate the policy directory again (no draft).")

    @model_validator(mode="after")
    def _one_target(self) -> ActivateRequest:
        if self.file and (self.draft_id or self.revision):
            raise ValueError("file: true names the policy directory; leave draft_id and revision out")
        if not self.file and not (self.draft_id or self.revision):
            raise ValueError("name a draft_id, a revision, or file: true")
        return self


class WhatIfRequest(BaseModel):
    revision: str = Field(description="Revision of an uploaded draft to replay the recorded decisions against.")
    since: IsoDateTime | None = Field(default=None, description="Start of the window (default: until - window_s).")
    until: IsoDateTime | None = Field(default=None, description="End of the window (default: now).")
    window_s: StrictInt = Field(
        default=86_400, ge=1, le=31 * 86_400, description="Window length when since is not given."
    )
    limit: StrictInt | None = Field(default=None, ge=1, description="Only the newest N decisions of the window.")
    examples: StrictInt = Field(default=3, ge=0, le=50, description="Examples per changed transition.")


class TransitionPublic(BaseModel):
    origin: str
    region: str
    destination: str
    category: str
    old: str = Field(description="Recorded outcome: stored, transformed or denied.")
    new: str = Field(description="Outcome under the draft (error: the draft could not decide).")
    decisions: int
    readings: int
    changed: bool


class PolicyRegionCountPublic(BaseModel):
    region: str
    decisions: int
    readings: int


class MessageCountPublic(BaseModel):
    messages: int
    readings: int


class WhatIfExamplePublic(BaseModel):
    origin: str
    region: str
    destination: str
    category: str
    old: str
    new: str
    device_id: str
    seq: int
    old_reasons: list[str]
    new_reasons: list[str]
    old_requires: list[str]
    new_requires: list[str]
    policy_input: dict[str, Any]


class WhatIfPublic(BaseModel):
    since: datetime
    until: datetime
    draft_revision: str
    recorded_revisions: dict[str, int] = Field(description="Revisions that made the recorded decisions.")
    decisions: int
    messages: int = Field(description="Message-categories replayed.")
    distinct_inputs: int = Field(description="Distinct policy inputs, each evaluated once.")
    seconds: float
    changed_decisions: int
    reasons_only_changed_decisions: int
    transitions: list[TransitionPublic] = Field(description="Per origin -> region -> category: old -> new.")
    newly_denied: list[PolicyRegionCountPublic] = Field(description="Rows that would no longer be stored there.")
    newly_allowed: list[PolicyRegionCountPublic] = Field(description="Rows that would now be stored there.")
    newly_quarantined: MessageCountPublic = Field(description="Message-categories no region could hold any more.")
    newly_placed: MessageCountPublic = Field(description="Previously quarantined message-categories now stored.")
    examples: list[WhatIfExamplePublic]
    errors: list[dict[str, Any]]


# --- store jobs (TimescaleDB policies: ingest.store.jobs) --------------------------------------------


class StoreJobPublic(BaseModel):
    name: str = Field(description="The policy and what it acts on, e.g. policy_compression(readings).")
    job_id: int | None = Field(description="TimescaleDB's job id; null when the policy has no job (missing).")
    scheduled: bool
    job_status: str | None = Field(description="Scheduled, Running or Paused (timescaledb_information.job_stats).")
    last_run_status: str | None = Field(description="Success or Failed; null before the first run.")
    last_run_started_at: datetime | None
    last_successful_finish: datetime | None
    next_start: datetime | None
    total_runs: int
    total_failures: int
    consecutive_failures: int = Field(description="Failed runs since the last successful one (job_history).")
    last_error: str | None
    problem: str | None = Field(description="Why the job needs attention (failing, overdue, paused, missing).")


class StoreJobsPublic(BaseModel):
    region: str
    backend: Literal["timescaledb", "plain"] | None = Field(
        description="plain: no background jobs in the store (the ingest's maintenance does the work); "
        "null when the store could not be read."
    )
    ok: bool
    error: str | None = None
    jobs: list[StoreJobPublic] = Field(default_factory=list)


class StoreJobsListPublic(BaseModel):
    stores: list[StoreJobsPublic]
