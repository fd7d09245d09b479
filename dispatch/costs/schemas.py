"""Costs, service records, ratings and report edge schemas."""

from __future__ import annotations

from datetime import date, datetime
from decimal import Decimal
from typing import Annotated, Literal

from pydantic import Field

from fleet.fields import MONEY, TEXT, BookedDay, DueDay, Money, Whole
from fleet.schemas import Id, Out, Strict

Note = Annotated[str, Field(max_length=500), TEXT]

CostKind = Literal[
    "fuel",
    "charging",
    "toll",
    "parking",
    "repair",
    "maintenance",
    "insurance",
    "inspection",
    "other",
]
ServiceKind = Literal["repair", "maintenance", "insurance", "inspection"]


class CostIn(Strict):
    vehicle_id: Id
    trip_id: Id | None = None
    kind: CostKind
    amount_cny: Money = Field(ge=0, le=10_000_000, decimal_places=2)
    occurred_on: BookedDay = Field(description="within the last 5 years (`limits.cost_past_years`)")
    note: Note | None = None


class CostOut(Out):
    id: int
    vehicle_id: int
    trip_id: int | None
    kind: str
    amount_cny: Decimal
    occurred_on: date
    note: str | None
    recorded_by: int | None
    created_at: datetime


class ServiceIn(Strict):
    vehicle_id: Id
    kind: ServiceKind
    done_on: BookedDay = Field(description="within the last 5 years (`limits.cost_past_years`)")
    due_on: DueDay | None = Field(
        default=None,
        description="next service, policy expiry or inspection: from done_on, up to 10 years ahead",
    )
    cost_cny: Annotated[Decimal, Field(ge=0, le=10_000_000, decimal_places=2), MONEY] | None = None
    vendor: Annotated[str, Field(max_length=200), TEXT] | None = None
    note: Note | None = None


class ServiceOut(Out):
    id: int
    vehicle_id: int
    kind: str
    done_on: date
    due_on: date | None
    cost_id: int | None
    vendor: str | None
    note: str | None
    reminded_at: datetime | None
    created_at: datetime


class DueOut(Out):
    record_id: int
    vehicle_id: int
    plate: str
    unit_id: int
    kind: str
    due_on: date
    days_left: int


class RatingIn(Strict):
    score: Whole = Field(ge=1, le=5)
    comment: Note | None = None


class RatingOut(Out):
    id: int
    trip_id: int
    user_id: int
    score: int
    comment: str | None
    created_at: datetime


class CostPerKmRow(Out):
    unit_id: int
    unit_name: str
    month: str = Field(description="YYYY-MM, Asia/Shanghai")
    trips: int
    km: float
    cost_cny: Decimal
    cost_per_km: Decimal | None


class VehicleCostSummary(Out):
    vehicle_id: int
    total_cny: Decimal
    by_kind: dict[str, Decimal]
    km: float
    trips: int
