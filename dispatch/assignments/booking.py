"""Booking (派车): assign, apply a batch of proposals, release, vehicle failed, settle.

Manual assignment and optimizer proposals go through the same `assign` function, so the
same checks apply; the database's exclusion constraints are the last word on overlaps.
"""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy import func, or_, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from dispatch import notify
from dispatch.assignments import schemas
from dispatch.assignments.checks import (
    ASSIGNABLE,
    DISPATCH,
    check_driver,
    check_vehicle,
    trip_to_dispatch,
    usable_driver,
    usable_vehicle,
)
from dispatch.assignments.models import ACTIVE, Assignment
from dispatch.assignments.repository import active_bookings
from dispatch.costs.models import CostRecord
from dispatch.trips.models import TripRequest
from dispatch.trips.state import require_state, transition
from fleet.errors import Conflict, FleetError
from fleet.identity.models import Org
from fleet.identity.principal import Principal
from fleet.registry.models import Driver

SETTLE = ("dispatcher", "admin")
_CONSTRAINTS = {
    "trip_assignments_vehicle_no_overlap": ("vehicle_double_booked", "vehicle_id", "vehicle"),
    "trip_assignments_driver_no_overlap": ("driver_double_booked", "driver_id", "driver"),
    "uq_trip_assignments_active_trip": ("trip_already_assigned", "trip_id", "trip"),
}


def assignment_out(a: Assignment) -> schemas.AssignmentOut:
    return schemas.AssignmentOut.model_validate(a)


# ---- assign ----------------------------------------------------------------------------


async def assign(
    session: AsyncSession,
    principal: Principal,
    trip_id: int,
    vehicle_id: int,
    driver_id: int,
    *,
    source: str = "manual",
) -> Assignment:
    """Book a vehicle and a driver for an approved (or reassigned) trip, or refuse with why."""
    trip, _ = await trip_to_dispatch(session, principal, trip_id)
    require_state(trip, *ASSIGNABLE, action="assign")
    vehicle = await usable_vehicle(session, principal, vehicle_id)
    check_vehicle(trip, vehicle)
    driver = await usable_driver(session, principal, driver_id, vehicle)
    check_driver(trip, vehicle, driver)
    overlaps = await active_bookings(
        session,
        trip.departure_at,
        trip.return_at,
        vehicle_ids=(vehicle.id,),
        driver_ids=(driver.id,),
    )
    for attr, value, code, field, what in (
        ("vehicle_id", vehicle.id, "vehicle_double_booked", "vehicle_id", "vehicle"),
        ("driver_id", driver.id, "driver_double_booked", "driver_id", "driver"),
    ):
        other = next((b.trip_id for b in overlaps if getattr(b, attr) == value), None)
        if other is not None:
            raise Conflict(
                f"the {what} is already booked for trip {other} in an overlapping time",
                field=field,
                code=code,
                trip_id=other,
            )
    a = Assignment(
        trip_id=trip.id,
        vehicle_id=vehicle.id,
        driver_id=driver.id,
        dispatcher_id=principal.user_id,
        starts_at=trip.departure_at,
        ends_at=trip.return_at,
        state="assigned",
        source=source,
    )
    try:
        async with session.begin_nested():
            session.add(a)
            await session.flush()
    except IntegrityError as exc:
        # A concurrent booking committed between our check and our insert.
        name = getattr(getattr(exc.orig, "__cause__", None), "constraint_name", None)
        code, field, what = _CONSTRAINTS.get(
            name or "", ("booking_conflict", "vehicle_id", "booking")
        )
        raise Conflict(
            f"the {what} was booked for an overlapping time by another dispatcher",
            field=field,
            code=code,
        ) from exc
    trip.serving_unit_id = vehicle.unit_id
    await transition(
        session,
        trip,
        "assigned",
        principal.actor,
        data={
            "assignment_id": a.id,
            "vehicle_id": vehicle.id,
            "plate": vehicle.plate,
            "driver_id": driver.id,
            "serving_unit_id": vehicle.unit_id,
            "source": source,
        },
    )
    notify.notify_users(
        session,
        [trip.requester_id, *trip.passenger_user_ids],
        "assigned",
        f"用车申请 #{trip.id} 已派车: {vehicle.plate}, 驾驶员 {driver.name}",
        trip_id=trip.id,
        plate=vehicle.plate,
        driver=driver.name,
    )
    if driver.user_id:
        notify.notify_users(
            session,
            [driver.user_id],
            "new_assignment",
            f"新任务: {trip.origin_address} → {trip.destination_address}",
            trip_id=trip.id,
            assignment_id=a.id,
        )
    return a


async def apply_assignments(
    session: AsyncSession,
    principal: Principal,
    items: Sequence[schemas.ProposalIn],
    *,
    source: str = "optimizer",
) -> list[schemas.ProposalResult]:
    """Apply proposals one by one through `assign`; a refused one does not undo the others.
    A caller who is no dispatcher is refused as a whole (403), before any item is read."""
    principal.require(DISPATCH)
    # The organisations the checks read (trips' and drivers' units), loaded in one statement
    # and kept referenced for the loop: the session's identity map holds objects weakly, so
    # otherwise each booking would SELECT the same units again (three times per booking).
    units = await _units_of(session, items)
    results: list[schemas.ProposalResult] = []
    for item in items:
        try:
            async with session.begin_nested():
                a = await assign(
                    session, principal, item.trip_id, item.vehicle_id, item.driver_id, source=source
                )
            results.append(schemas.ProposalResult(**item.model_dump(), ok=True, assignment_id=a.id))
        except FleetError as exc:
            results.append(
                schemas.ProposalResult(**item.model_dump(), ok=False, error=exc.to_dict())
            )
    del units  # referenced until the loop is done
    return results


async def _units_of(session: AsyncSession, items: Sequence[schemas.ProposalIn]) -> list[Org]:
    if not items:
        return []
    trips = select(TripRequest.unit_id).where(TripRequest.id.in_({i.trip_id for i in items}))
    drivers = select(Driver.unit_id).where(Driver.id.in_({i.driver_id for i in items}))
    rows = await session.execute(select(Org).where(or_(Org.id.in_(trips), Org.id.in_(drivers))))
    return list(rows.scalars())


async def release_assignment(
    session: AsyncSession, trip_id: int, new_state: str, reason: str | None = None
) -> Assignment | None:
    """End the trip's active booking (declined, failed, cancelled) so its time is free again."""
    a = (
        await session.execute(
            select(Assignment)
            .where(Assignment.trip_id == trip_id, Assignment.state.in_(ACTIVE))
            .with_for_update()
        )
    ).scalar_one_or_none()
    if a is None:
        return None
    a.state = new_state
    if reason:
        a.decline_reason = reason
    await session.flush()
    if new_state == "cancelled":
        driver = await session.get(Driver, a.driver_id)
        if driver and driver.user_id:
            notify.notify_users(
                session,
                [driver.user_id],
                "assignment_cancelled",
                f"任务已取消 (用车申请 #{trip_id})",
                trip_id=trip_id,
                assignment_id=a.id,
            )
    return a


async def vehicle_failed(
    session: AsyncSession, principal: Principal, trip_id: int, reason: str
) -> TripRequest:
    """A dispatcher takes the booked vehicle back before departure: the trip needs another."""
    trip, _ = await trip_to_dispatch(session, principal, trip_id)
    require_state(trip, "assigned", "accepted", action="reassign")
    a = await release_assignment(session, trip.id, "failed", reason)
    await transition(
        session,
        trip,
        "reassigned",
        principal.actor,
        reason=reason,
        data={"assignment_id": a.id if a else None, "cause": "vehicle_failed"},
    )
    return trip


async def settle(
    session: AsyncSession, principal: Principal, trip_id: int, note: str | None
) -> TripRequest:
    trip, _ = await trip_to_dispatch(session, principal, trip_id, SETTLE)
    total = await session.scalar(
        select(func.coalesce(func.sum(CostRecord.amount_cny), 0)).where(
            CostRecord.trip_id == trip.id
        )
    )
    await transition(
        session, trip, "settled", principal.actor, reason=note, data={"total_cny": total}
    )
    return trip


async def trip_assignments(session: AsyncSession, trip_id: int) -> list[Assignment]:
    rows = await session.execute(
        select(Assignment).where(Assignment.trip_id == trip_id).order_by(Assignment.id)
    )
    return list(rows.scalars())
