"""Trip request edge schemas, and `trip_out`: a stored trip in its edge shape."""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING, Annotated, Any, Literal

from pydantic import Field, model_validator

from fleet.fields import TEXT, Instant, Text, TripTime, Whole
from fleet.geo import point_from_db
from fleet.schemas import Id, Out, Strict

if TYPE_CHECKING:
    from dispatch.trips.models import TripRequest

TripNature = Literal[
    "official",
    "meeting",
    "inspection",
    "reception",
    "emergency",
    "law_enforcement",
    "courier",
    "special",
]
Urgency = Literal["normal", "urgent", "emergency"]
TripState = Literal[
    "draft",
    "submitted",
    "approved",
    "rejected",
    "assigned",
    "accepted",
    "departed",
    "completed",
    "settled",
    "cancelled",
    "reassigned",
]
TripKind = Literal["in_county", "cross_county", "cross_city", "emergency"]


class Place(Strict):
    """A WGS-84 point with its address as the requester wrote it."""

    lat: float = Field(ge=-90, le=90)
    lon: float = Field(ge=-180, le=180)
    address: Text = Field(min_length=1, max_length=300)


class TripIn(Strict):
    unit_id: Id | None = Field(default=None, description="requesting unit (default: your org)")
    passengers: Whole = Field(ge=1, le=100)
    passenger_names: list[Annotated[str, Field(max_length=100), TEXT]] = Field(
        default_factory=list, max_length=100
    )
    passenger_user_ids: list[Id] = Field(
        default_factory=list, max_length=100, description="passengers who may rate the trip"
    )
    nature: TripNature = "official"
    purpose: Text = Field(min_length=2, max_length=1000)
    origin: Place
    destination: Place
    stops: list[Place] = Field(default_factory=list, max_length=10)
    departure_at: TripTime = Field(
        description="from a few minutes ago up to `limits.trip_ahead_days` (180) days ahead"
    )
    return_at: Instant = Field(
        description="expected return (end of the booking): after departure_at, within 14 days"
    )
    round_trip: bool = Field(default=False, description="wait and return (往返) vs one way")
    urgency: Urgency = "normal"
    special_needs: Annotated[str, Field(max_length=500), TEXT] | None = None
    submit: bool = Field(default=False, description="submit for approval right away")

    @model_validator(mode="after")
    def _checks(self) -> TripIn:
        if self.return_at <= self.departure_at:
            raise ValueError("return_at must be after departure_at")
        if len(self.passenger_names) > self.passengers:
            raise ValueError("more passenger_names than passengers")
        return self


class ReasonIn(Strict):
    reason: Text = Field(min_length=2, max_length=500)


class TripOut(Out):
    id: int
    requester_id: int
    unit_id: int
    serving_unit_id: int | None
    passengers: int
    passenger_names: list[str]
    passenger_user_ids: list[int]
    nature: str
    purpose: str
    origin: Place
    destination: Place
    destination_org_id: int | None
    stops: list[Place]
    departure_at: datetime
    return_at: datetime
    round_trip: bool
    urgency: str
    special_needs: str | None
    kind: TripKind
    allowed_body_types: list[str]
    planned_km: float
    state: TripState
    state_reason: str | None
    dispatch_first: bool
    approval_status: str
    approval_round: int
    created_at: datetime
    updated_at: datetime


class HistoryOut(Out):
    at: datetime
    actor: str
    action: str
    from_state: str | None
    to_state: str | None
    reason: str | None


def trip_out(trip: TripRequest) -> TripOut:
    """The trip as the API shows it: points as lat/lon places, stops as places."""
    origin = point_from_db(trip.origin) or {}
    dest = point_from_db(trip.destination) or {}
    data: dict[str, Any] = {
        name: getattr(trip, name)
        for name in TripOut.model_fields
        if name not in ("origin", "destination", "stops")
    }
    return TripOut(
        **data,
        origin=Place(**origin, address=trip.origin_address),
        destination=Place(**dest, address=trip.destination_address),
        stops=[Place(**s) for s in trip.stops],
    )
