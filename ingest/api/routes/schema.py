"""GET /schema/telemetry: the JSON Schema of the wire payload that devices publish."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter

import wire

router = APIRouter(prefix="/schema", tags=["schema"])


@router.get("/telemetry", summary="JSON Schema of the telemetry batch payload")
def get_telemetry_schema() -> dict[str, Any]:
    return wire.json_schema()
