"""Edge schemas of the track, alert and latest-position endpoints."""

from __future__ import annotations

from datetime import date, datetime
from typing import Any, Literal

from pydantic import BaseModel, Field

from fleet.fields import Text
from fleet.schemas import Out, Strict

AlertStatus = Literal["open", "acknowledged", "closed"]


class LatLon(BaseModel):
    lat: float
    lon: float


class TripOut(Out):
    id: int
    vehicle_id: int
    started_at: datetime
    ended_at: datetime | None = Field(description="null while the trip is under way")
    start: LatLon
    end: LatLon | None
    distance_m: float
    max_speed_kmh: float
    points: int
    odometer_start_km: float | None
    odometer_end_km: float | None


class StopOut(Out):
    id: int
    vehicle_id: int
    started_at: datetime
    ended_at: datetime | None
    location: LatLon
    ignition_off: bool


class MileageOut(Out):
    day: date = Field(description="local day (Asia/Shanghai)")
    distance_km: float
    source: Literal["odometer", "track"]
    track_km: float
    odometer_first_km: float | None
    odometer_last_km: float | None
    points: int


class AlertOut(Out):
    id: int
    kind: str
    severity: str
    vehicle_id: int | None
    plate: str | None
    org_id: int
    org_name: str
    trip_id: int | None
    started_at: datetime
    ended_at: datetime | None
    location: LatLon | None
    message: str
    dedup_key: str | None
    status: AlertStatus
    ack_by: int | None
    ack_at: datetime | None
    ack_comment: str | None
    created_at: datetime


class AlertDetail(AlertOut):
    evidence: dict[str, Any] = Field(
        description="GeoJSON FeatureCollection of the offending points with the rule's "
        "thresholds and time window as foreign members"
    )


class AlertAction(Strict):
    comment: Text = Field(min_length=1, max_length=2000, description="why (kept in the audit)")


class GeoJSONCollection(BaseModel):
    """An RFC 7946 FeatureCollection (documented shape; the body is produced directly)."""

    type: Literal["FeatureCollection"]
    features: list[dict[str, Any]]
    total: int | None = None
    limit: int | None = None
    offset: int | None = None
