"""Approval edge schemas."""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import Field

from fleet.schemas import Id, Out, Strict

Level = Literal["unit", "county", "city", "region"]
Kind = Literal["in_county", "cross_county", "cross_city", "emergency"]


class ChainStep(Strict):
    level: Level
    timeout_hours: float = Field(gt=0, le=720, description="overdue after this long; escalates")


class ChainIn(Strict):
    org_id: Id | None = Field(
        default=None, description="applies to this org's subtree; NULL: everywhere"
    )
    kind: Kind
    dispatch_first: bool = Field(default=False, description="dispatch at once, approve afterwards")
    steps: list[ChainStep] = Field(max_length=6)
    active: bool = True


class ChainOut(Out):
    id: int
    org_id: int | None
    kind: str
    dispatch_first: bool
    steps: list[ChainStep]
    active: bool
    updated_at: datetime


class DecisionIn(Strict):
    comment: str | None = Field(default=None, max_length=500)


class ReasonIn(Strict):
    reason: str = Field(min_length=2, max_length=500)


class DelegateIn(Strict):
    user_id: Id
    reason: str | None = Field(default=None, max_length=500)


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
