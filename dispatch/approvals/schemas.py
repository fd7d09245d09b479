"""Approval edge schemas."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal

from pydantic import ConfigDict, Field, model_validator

from dispatch.approvals.levels import Level
from fleet.fields import TEXT, Text
from fleet.schemas import Id, Out, Strict

Kind = Literal["in_county", "cross_county", "cross_city", "emergency"]


class ChainStep(Strict):
    level: Level
    timeout_hours: float = Field(gt=0, le=720, description="overdue after this long; escalates")


class ChainIn(Strict):
    """An approval chain; it needs at least one step unless it dispatches first."""

    model_config = ConfigDict(
        json_schema_extra={
            "anyOf": [
                {"properties": {"steps": {"minItems": 1}}},
                {"required": ["dispatch_first"], "properties": {"dispatch_first": {"const": True}}},
            ]
        }
    )

    org_id: Id | None = Field(
        default=None, description="applies to this org's subtree; NULL: everywhere"
    )
    kind: Kind
    dispatch_first: bool = Field(default=False, description="dispatch at once, approve afterwards")
    steps: list[ChainStep] = Field(max_length=6)
    active: bool = True

    @model_validator(mode="after")
    def _steps(self) -> ChainIn:
        if not self.steps and not self.dispatch_first:
            raise ValueError("a chain needs at least one step unless it dispatches first")
        return self


class ChainOut(Out):
    id: int
    org_id: int | None
    kind: str
    dispatch_first: bool
    steps: list[ChainStep]
    active: bool
    updated_at: datetime


class DecisionIn(Strict):
    comment: Annotated[str, Field(max_length=500), TEXT] | None = None


class ReasonIn(Strict):
    reason: Text = Field(min_length=2, max_length=500)


class DelegateIn(Strict):
    user_id: Id
    reason: Annotated[str, Field(max_length=500), TEXT] | None = None


class StepOut(Out):
    id: int
    trip_id: int
    round: int
    seq: int
    level: str
    state: str
    assignee_id: int | None
    due_at: datetime | None
    escalations: int
    acted_by: int | None
    acted_at: datetime | None
    comment: str | None


class PersonOut(Out):
    """Someone in a chain, by name and the org they act for (never an id)."""

    name: str
    org: str


class ChainLevelOut(Out):
    seq: int
    level: Level
    scope: str = Field(description="the org whose approvers decide: the unit, 青秀区, 南宁市…")
    state: Literal["planned", "waiting", "pending", "approved", "rejected", "returned", "cancelled"]
    current: bool = Field(description="the level deciding now")
    due_at: datetime | None = Field(description="escalates one level up after this")
    escalations: int
    delegated: bool
    deciders: list[PersonOut] = Field(description="who can decide this level (open levels)")
    deciders_total: int = Field(description="all of them; the list shows the first 20")
    decided_by: PersonOut | None
    decided_at: datetime | None
    comment: str | None


class ChainProgressOut(Out):
    """A trip's approval chain as the requester and approvers see it."""

    trip_id: int
    kind: Kind
    dispatch_first: bool
    approval_status: str
    round: int = Field(description="0: not submitted yet, the levels are the planned ones")
    unit: str
    destination_county: str | None = Field(description="decided by the drawn borders")
    current_seq: int | None
    current_level: Level | None
    levels: list[ChainLevelOut]
