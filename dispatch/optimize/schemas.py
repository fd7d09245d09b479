"""Auto-assign edge schemas: create a proposal, read it with progress, edit items, accept."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Literal

from pydantic import ConfigDict, Field, model_validator

from dispatch.assignments.schemas import ProposalResult
from fleet.fields import PlanDay, Whole, WindowTime, limits
from fleet.schemas import Id, Out, Strict

RunState = Literal["queued", "running", "done", "failed", "accepted", "discarded"]


class ProposalCreate(Strict):
    """Auto-assign the waiting requests of an org subtree for one local day or a window: give
    `day`, or both `window_from` and `window_to` (at most 7 days apart,
    `limits.window_max_days`), near now."""

    model_config = ConfigDict(
        json_schema_extra={
            "oneOf": [
                {
                    "required": ["day"],
                    "properties": {
                        "day": {"type": "string"},
                        "window_from": {"type": "null"},
                        "window_to": {"type": "null"},
                    },
                },
                {
                    "required": ["window_from", "window_to"],
                    "properties": {
                        "day": {"type": "null"},
                        "window_from": {"type": "string"},
                        "window_to": {"type": "string"},
                    },
                },
            ]
        }
    )

    org_id: Id = Field(description="scope: the org subtree (must be in your dispatcher scope)")
    day: PlanDay | None = Field(default=None, description="local day (Asia/Shanghai)")
    window_from: WindowTime | None = Field(default=None, description="or: departures from")
    window_to: WindowTime | None = Field(default=None, description="or: departures before")
    time_limit_s: float = Field(default=10.0, ge=0.5, le=300, description="solver wall time")
    late_slack_min: float = Field(
        default=10.0, ge=0, le=120, description="lateness accepted at pickup; also the turnaround"
    )
    seed: Whole = Field(default=0, ge=0, le=2**31 - 1)

    @model_validator(mode="after")
    def _one_window(self) -> ProposalCreate:
        windowed = self.window_from is not None or self.window_to is not None
        if (self.day is None) == (self.window_from is None or self.window_to is None) or (
            self.day is not None and windowed
        ):
            raise ValueError("give either day, or both window_from and window_to")
        if self.window_from and self.window_to:
            if self.window_to <= self.window_from:
                raise ValueError("window_to must be after window_from")
            if self.window_to - self.window_from > timedelta(
                days=(most := limits().window_max_days)
            ):
                raise ValueError(f"a window spans at most {most} days")
        return self


class ProposalItem(Out):
    trip_id: int
    label: str
    vehicle_id: int
    plate: str
    driver_id: int
    driver_name: str
    pickup_at: datetime | None
    sequence: int
    why: str = Field(description="the optimizer's explanation (or the dispatcher's edit)")
    eligible_vehicles: int | None
    dropped: bool
    edited: bool


class UnservedItem(Out):
    trip_id: int
    reason: str
    detail: str


class Progress(Out):
    elapsed_s: float | None = None
    time_limit_s: float
    phase: str | None = None
    best_objective: float | None = Field(
        default=None, description="the solver's objective, once known (OR-Tools reports it last)"
    )


class ProposalOut(Out):
    id: int
    org_id: int
    created_by: int
    state: RunState
    window_start: datetime
    window_end: datetime
    time_limit_s: float
    counts: dict[str, int]
    progress: Progress
    items: list[ProposalItem]
    unserved: list[UnservedItem]
    stats: dict[str, str]
    vehicles_used: int | None
    distance_km: float | None
    error: str | None
    results: list[ProposalResult] | None
    created_at: datetime
    started_at: datetime | None
    finished_at: datetime | None
    accepted_at: datetime | None


class ProposalSummary(Out):
    id: int
    org_id: int
    state: RunState
    window_start: datetime
    window_end: datetime
    counts: dict[str, int]
    created_at: datetime


class ItemEdit(Strict):
    trip_id: Id
    vehicle_id: Id | None = None
    driver_id: Id | None = None
    drop: bool | None = Field(default=None, description="true: leave out of the acceptance")


class ProposalEdit(Strict):
    items: list[ItemEdit] = Field(min_length=1, max_length=2000)


class AcceptOut(Out):
    id: int
    state: RunState
    accepted: int
    refused: int
    results: list[ProposalResult]


# ---- urgent suggestions (GET /dispatch/trips/{trip_id}/suggestions) --------------------


class SuggestedVehicle(Out):
    id: int
    plate: str
    body_type: str
    seats: int
    energy: str
    unit_id: int
    unit_name: str
    shared_pool: str
    start: Literal["live", "depot"] = Field(
        description="where the car sets out: a fresh live position, or its depot"
    )
    position_at: datetime | None = Field(description="time of the live fix used, if any")
    distance_km: float = Field(description="straight line from the start to the pickup")


class SuggestedDriver(Out):
    id: int
    name: str
    licence_class: str
    unit_id: int


class Suggestion(Out):
    rank: int
    vehicle: SuggestedVehicle
    driver: SuggestedDriver
    added_km: float = Field(description="road km the trip adds to the car's day (estimate)")
    pickup_at: datetime = Field(description="planned start of the pickup")
    late_min: float = Field(description="minutes the pickup is after the departure time")
    score: float = Field(description="added km + 0.5 per minute late; lower ranks first")
    bookings_before: int
    bookings_after: int
    why: str


class SuggestionsOut(Out):
    trip_id: int
    state: str
    urgency: str
    departure_at: datetime
    vehicles_visible: int = Field(description="vehicles you can dispatch, any state or type")
    eligible: int = Field(description="vehicles that could take the trip (ranked)")
    excluded: dict[str, int] = Field(description="the others, counted by reason")
    suggestions: list[Suggestion]
    complete: bool = Field(description="false if the ranking's time limit cut the scan short")
    timings_ms: dict[str, float]
