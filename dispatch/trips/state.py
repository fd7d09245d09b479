"""The trip lifecycle (DESIGN.md §1) as one state machine; every transition is audited.

draft → submitted → approved | rejected → assigned → accepted → departed → completed → settled,
`cancelled` from any state before departure, `reassigned` when a driver declines or a vehicle
fails (and back to `assigned` when dispatch books another), `draft` again when an approver
returns a request for changes.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from dispatch import notify
from dispatch.assignments.models import Assignment
from dispatch.trips.models import TripRequest
from fleet import audit
from fleet.audit import Actor
from fleet.errors import Conflict, NotFound
from fleet.identity.models import Org

STATES = (
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
)
TRANSITIONS: dict[str, tuple[str, ...]] = {
    "draft": ("submitted", "cancelled"),
    "submitted": ("approved", "rejected", "draft", "cancelled"),
    "approved": ("assigned", "cancelled"),
    "rejected": (),
    "assigned": ("accepted", "reassigned", "cancelled"),
    "accepted": ("departed", "reassigned", "cancelled"),
    "reassigned": ("assigned", "cancelled"),
    "departed": ("completed",),
    "completed": ("settled",),
    "settled": (),
    "cancelled": (),
}
BEFORE_DEPARTURE = ("draft", "submitted", "approved", "assigned", "accepted", "reassigned")


def illegal(current: str, target: str, what: str | None = None) -> Conflict:
    return Conflict(
        what or f"a trip in state {current} cannot become {target}",
        field="state",
        code="illegal_transition",
        current=current,
        allowed=list(TRANSITIONS[current]),
    )


def require_state(trip: TripRequest, *states: str, action: str) -> None:
    """409 with the current state unless the trip is in one of `states`."""
    if trip.state not in states:
        raise Conflict(
            f"cannot {action} a trip in state {trip.state}",
            field="state",
            code="illegal_transition",
            current=trip.state,
            allowed=list(TRANSITIONS[trip.state]),
        )


async def lock_trip(session: AsyncSession, trip_id: int) -> TripRequest:
    """The trip row, locked for this transaction so concurrent transitions serialise."""
    trip = (
        await session.execute(
            select(TripRequest)
            .where(TripRequest.id == trip_id)
            .with_for_update()
            .execution_options(populate_existing=True)
        )
    ).scalar_one_or_none()
    if trip is None:
        raise NotFound(f"trip {trip_id} not found", field="trip_id")
    return trip


async def transition(
    session: AsyncSession,
    trip: TripRequest,
    target: str,
    actor: Actor,
    *,
    reason: str | None = None,
    data: dict[str, Any] | None = None,
) -> None:
    """Move the (locked) trip to `target` or refuse with 409; audit and announce it."""
    current = trip.state
    if target not in TRANSITIONS[current]:
        raise illegal(current, target)
    trip.state = target
    trip.state_reason = reason
    await session.flush()
    await audit.record(
        session,
        actor,
        f"trip.{target}",
        "trip",
        trip.id,
        from_state=current,
        to_state=target,
        reason=reason,
        data=data,
    )
    unit = await session.get(Org, trip.unit_id)
    event: dict[str, Any] = {
        "trip_id": trip.id,
        "from": current,
        "to": target,
        "unit_id": trip.unit_id,
    }
    # The booking the transition is about, so a console can mark the vehicle without a
    # lookup (assigned … completed, and the booking a reassignment released).
    assignment_id = (data or {}).get("assignment_id")
    if assignment_id is not None:
        booking = await session.get(Assignment, assignment_id)
        if booking is not None:
            event.update(
                assignment_id=booking.id,
                vehicle_id=booking.vehicle_id,
                driver_id=booking.driver_id,
            )
    notify.queue(session, "trip", event, org_path=unit.path if unit else None)
