"""Vehicle and driver edge schemas."""

from __future__ import annotations

from datetime import date, datetime
from decimal import Decimal
from typing import Annotated, Literal

from pydantic import AfterValidator, Field

from fleet.fields import LITRES, TEXT, WHOLE, Day, Money, Text, Whole
from fleet.registry import vin as vin_rule
from fleet.schemas import Id, Out, Point, Strict

Category = Literal["courier", "emergency", "law_enforcement", "special", "pool"]
BodyType = Literal["sedan", "suv", "mpv", "minibus", "bus"]
Energy = Literal["ice", "bev", "phev"]
VehicleStatus = Literal["in_service", "under_repair", "sealed", "awaiting_disposal", "scrapped"]
Pool = Literal["none", "county", "city"]
LicenceClass = Literal["A1", "A2", "A3", "B1", "B2", "C1", "C2"]

PLATE = r"^[\u4e00-\u9fa5][A-HJ-NP-Z][A-HJ-NP-Z0-9]{5,6}$"
VIN = vin_rule.PATTERN
# 17 characters without I/O/Q, and the check digit in position 9 (ISO 3779 / GB 16735).
Vin = Annotated[
    str,
    Field(pattern=VIN, description="17 characters, no I/O/Q; position 9 is the check digit"),
    AfterValidator(vin_rule.checked),
]
RangeKm = Annotated[int, Field(ge=1, le=2000), WHOLE]


class VehicleIn(Strict):
    plate: str = Field(pattern=PLATE, description="e.g. 桂A12345, NEV 桂AD12345")
    vin: Vin
    category: Category
    body_type: BodyType
    seats: Whole = Field(ge=2, le=60)
    energy: Energy
    nev_range_km: RangeKm | None = None
    engine_l: Annotated[Decimal, Field(gt=0, lt=20, decimal_places=1), LITRES] | None = None
    price_cny: Money = Field(gt=0, le=10_000_000, decimal_places=2)
    purchase_date: Day
    unit_id: Id
    depot: Point
    status: VehicleStatus = "in_service"
    shared_pool: Pool = "none"


class VehiclePatch(Strict):
    """Editable attributes; lifecycle status changes go through POST /vehicles/{id}/status."""

    plate: str | None = Field(default=None, pattern=PLATE)
    category: Category | None = None
    seats: Annotated[int, Field(ge=2, le=60), WHOLE] | None = None
    nev_range_km: RangeKm | None = None
    unit_id: Id | None = None
    depot: Point | None = None
    shared_pool: Pool | None = None


class StatusChange(Strict):
    status: VehicleStatus
    reason: Text = Field(min_length=2, max_length=500)


class VehicleOut(Out):
    id: int
    plate: str
    vin: str
    category: Category
    body_type: BodyType
    seats: int
    energy: Energy
    nev_range_km: int | None
    engine_l: Decimal | None
    price_cny: Decimal
    purchase_date: date
    unit_id: int
    depot: dict[str, float]
    status: VehicleStatus
    shared_pool: Pool
    created_at: datetime
    updated_at: datetime


class DriverIn(Strict):
    name: Text = Field(min_length=1, max_length=100)
    licence_class: LicenceClass
    licence_no: str = Field(min_length=6, max_length=32, pattern=r"^[0-9A-Za-z]+$")
    licence_expires: Day | None = None
    phone: str | None = Field(default=None, pattern=r"^\+?[0-9-]{5,20}$")
    unit_id: Id
    user_id: Id | None = None


class DriverPatch(Strict):
    name: Annotated[str, Field(min_length=1, max_length=100), TEXT] | None = None
    licence_class: LicenceClass | None = None
    licence_expires: Day | None = None
    phone: str | None = Field(default=None, pattern=r"^\+?[0-9-]{5,20}$")
    unit_id: Id | None = None
    status: Literal["active", "on_leave", "inactive"] | None = None
    user_id: Id | None = None


class DriverOut(Out):
    id: int
    user_id: int | None
    name: str
    licence_class: LicenceClass
    licence_no: str
    licence_expires: date | None
    phone: str | None
    unit_id: int
    status: str
