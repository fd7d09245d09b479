"""Standards edge schemas."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import Annotated

from pydantic import ConfigDict, Field, model_validator

from fleet.fields import LITRES, MONEY, TEXT, WHOLE, Whole
from fleet.registry.schemas import BodyType, Category
from fleet.schemas import Id, Out, Strict

Note = Annotated[str, Field(max_length=500), TEXT]

NATURE = r"^[a-z_]{3,40}$"
ORG_ID = Field(
    default=None,
    description="the level the rule belongs to: NULL region-wide, else a city, county or unit "
    "whose own stricter rule applies on top of the levels above (it can only narrow them)",
)


class UsageStandardIn(Strict):
    org_id: Id | None = ORG_ID
    nature: str | None = Field(default=None, pattern=NATURE, description="NULL: every nature")
    min_passengers: Whole = Field(ge=1, le=100)
    max_passengers: Annotated[int, Field(ge=1, le=100), WHOLE] | None = Field(
        default=None, description="NULL: no limit; else at least min_passengers"
    )
    body_types: list[BodyType] = Field(min_length=1)
    active: bool = True
    note: Note | None = None

    @model_validator(mode="after")
    def _range(self) -> UsageStandardIn:
        if self.max_passengers is not None and self.max_passengers < self.min_passengers:
            raise ValueError("max_passengers must be >= min_passengers")
        return self


class UsageStandardOut(Out):
    id: int
    org_id: int | None
    nature: str | None
    min_passengers: int
    max_passengers: int | None
    body_types: list[str]
    active: bool
    note: str | None
    updated_at: datetime


class ProvisioningStandardIn(Strict):
    """A cap per category and body type: a price cap, an engine-size cap, or both."""

    model_config = ConfigDict(
        json_schema_extra={
            "anyOf": [
                {
                    "required": ["max_price_cny"],
                    "properties": {"max_price_cny": {"not": {"type": "null"}}},
                },
                {
                    "required": ["max_engine_l"],
                    "properties": {"max_engine_l": {"not": {"type": "null"}}},
                },
            ]
        }
    )

    org_id: Id | None = ORG_ID
    category: Category
    body_type: BodyType | None = Field(default=None, description="NULL: every body type")
    max_price_cny: (
        Annotated[Decimal, Field(gt=0, le=10_000_000, decimal_places=2), MONEY] | None
    ) = None
    max_engine_l: Annotated[Decimal, Field(gt=0, lt=20, decimal_places=1), LITRES] | None = None
    note: Note | None = None

    @model_validator(mode="after")
    def _a_cap(self) -> ProvisioningStandardIn:
        if self.max_price_cny is None and self.max_engine_l is None:
            raise ValueError("give max_price_cny, max_engine_l or both")
        return self


class ProvisioningStandardOut(Out):
    id: int
    org_id: int | None
    category: str
    body_type: str | None
    max_price_cny: Decimal | None
    max_engine_l: Decimal | None
    note: str | None
    updated_at: datetime


class ViolationOut(Out):
    vehicle_id: int
    plate: str
    category: str
    body_type: str
    price_cny: Decimal
    engine_l: Decimal | None
    standard_id: int
    reasons: list[str]
