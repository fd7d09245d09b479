"""Assignment and driver-flow edge schemas."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import Annotated, Literal

from pydantic import Field

from fleet.fields import TEXT, DriverTime, Money, Text
from fleet.schemas import Id, Out, Strict

AssignmentState = Literal[
    "assigned", "accepted", "departed", "completed", "declined", "failed", "cancelled"
]


class AssignIn(Strict):
    vehicle_id: Id
    driver_id: Id


class ProposalIn(Strict):
    trip_id: Id
    vehicle_id: Id
    driver_id: Id


class BatchIn(Strict):
    items: list[ProposalIn] = Field(min_length=1, max_length=2000)
    source: Literal["manual", "optimizer"] = "optimizer"


class ProposalResult(Out):
    trip_id: int
    vehicle_id: int
    driver_id: int
    ok: bool
    assignment_id: int | None = None
    error: dict[str, object] | None = None


class DeclineIn(Strict):
    reason: Text = Field(min_length=2, max_length=500)


AT = (
    "when it happened (default: now); not ahead of now, at most 14 days back "
    "(`limits.driver_past_days`) and within 48 hours of the trip's window"
)


class DepartIn(Strict):
    odometer_km: float = Field(ge=0, le=10_000_000)
    at: DriverTime | None = Field(default=None, description=AT)


class ArriveIn(Strict):
    at: DriverTime | None = Field(default=None, description=AT)


class CompleteIn(Strict):
    odometer_km: float = Field(ge=0, le=10_000_000)
    tolls_cny: Money = Field(default=Decimal(0), ge=0, le=100_000, decimal_places=2)
    parking_cny: Money = Field(default=Decimal(0), ge=0, le=100_000, decimal_places=2)
    energy_cny: Money = Field(
        default=Decimal(0), ge=0, le=100_000, decimal_places=2, description="fuel or charging"
    )
    notes: Annotated[str, Field(max_length=1000), TEXT] | None = None
    at: DriverTime | None = Field(default=None, description=AT)


class SettleIn(Strict):
    note: Annotated[str, Field(max_length=500), TEXT] | None = None


class AssignmentOut(Out):
    id: int
    trip_id: int
    vehicle_id: int
    driver_id: int
    dispatcher_id: int | None
    starts_at: datetime
    ends_at: datetime
    state: AssignmentState
    source: str
    decline_reason: str | None
    departed_at: datetime | None
    arrived_at: datetime | None
    completed_at: datetime | None
    odometer_start_km: float | None
    odometer_end_km: float | None
    tolls_cny: Decimal | None
    parking_cny: Decimal | None
    energy_cny: Decimal | None
    notes: str | None


class MyAssignmentOut(AssignmentOut):
    plate: str
    trip_state: str
    purpose: str
    origin_address: str
    destination_address: str
    passengers: int


class CandidateVehicle(Out):
    id: int
    plate: str
    unit_id: int
    body_type: str
    seats: int
    energy: str
    nev_range_km: int | None
    shared_pool: str
    depot: dict[str, float]


class CandidateDriver(Out):
    id: int
    name: str
    unit_id: int
    licence_class: str


class PlanningInput(Out):
    """What an optimizer needs: approved, unbooked requests in scope and the candidates."""

    requests: list[dict[str, object]]
    vehicles: list[CandidateVehicle]
    drivers: list[CandidateDriver]
