"""The driver's flow on the phone: list, accept, decline, depart, arrive, complete (收车)."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal
from zoneinfo import ZoneInfo

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from dispatch import notify
from dispatch.assignments import schemas
from dispatch.assignments.booking import assignment_out
from dispatch.assignments.models import Assignment
from dispatch.costs.models import CostRecord
from dispatch.trips.models import TripRequest
from dispatch.trips.state import lock_trip, transition
from fleet import audit
from fleet.errors import Conflict, Invalid
from fleet.fields import check_near_trip
from fleet.identity.principal import Principal, hidden
from fleet.identity.service import get_org
from fleet.paging import count_rows
from fleet.registry.models import Driver, Vehicle

LOCAL_TZ = ZoneInfo("Asia/Shanghai")  # cost dates are local (settings.timezone)
DRIVE = ("driver",)


def _now() -> datetime:
    return datetime.now(UTC)


async def _dispatchers_of(session: AsyncSession, trip: TripRequest) -> list[int]:
    unit = await get_org(session, trip.unit_id)
    return await notify.users_with_role_covering(session, "dispatcher", unit.path)


async def _my_assignment(
    session: AsyncSession, principal: Principal, assignment_id: int
) -> tuple[Assignment, TripRequest]:
    """The calling driver's own assignment (and its trip), locked; anyone else's is answered
    as a missing one (404): drivers do not see each other's work."""
    principal.require(DRIVE)
    a = await session.get(Assignment, assignment_id)
    driver = await session.get(Driver, a.driver_id) if a is not None else None
    if a is None or driver is None or driver.user_id != principal.user_id:
        raise hidden("assignment", assignment_id, field="assignment_id")
    trip = await lock_trip(session, a.trip_id)
    await session.refresh(a, with_for_update=True)
    return a, trip


def _require_assignment(a: Assignment, *states: str, action: str) -> None:
    if a.state not in states:
        raise Conflict(
            f"cannot {action} an assignment in state {a.state}",
            field="state",
            code="illegal_transition",
            current=a.state,
        )


async def list_mine(
    session: AsyncSession, principal: Principal, *, state: str | None, limit: int, offset: int
) -> tuple[list[schemas.MyAssignmentOut], int]:
    principal.require(DRIVE)
    stmt = (
        select(Assignment, Vehicle.plate, TripRequest)
        .join(Driver, Driver.id == Assignment.driver_id)
        .join(Vehicle, Vehicle.id == Assignment.vehicle_id)
        .join(TripRequest, TripRequest.id == Assignment.trip_id)
        .where(Driver.user_id == principal.user_id)
    )
    if state:
        stmt = stmt.where(Assignment.state == state)
    total = await count_rows(session, stmt)
    rows = await session.execute(
        stmt.order_by(Assignment.starts_at.desc()).limit(limit).offset(offset)
    )
    out = []
    for a, plate, trip in rows.all():
        out.append(
            schemas.MyAssignmentOut(
                **assignment_out(a).model_dump(),
                plate=plate,
                trip_state=trip.state,
                purpose=trip.purpose,
                origin_address=trip.origin_address,
                destination_address=trip.destination_address,
                passengers=trip.passengers,
            )
        )
    return out, int(total)


async def accept(session: AsyncSession, principal: Principal, assignment_id: int) -> Assignment:
    a, trip = await _my_assignment(session, principal, assignment_id)
    _require_assignment(a, "assigned", action="accept")
    a.state = "accepted"
    await transition(session, trip, "accepted", principal.actor, data={"assignment_id": a.id})
    return a


async def decline(
    session: AsyncSession, principal: Principal, assignment_id: int, reason: str
) -> Assignment:
    a, trip = await _my_assignment(session, principal, assignment_id)
    _require_assignment(a, "assigned", "accepted", action="decline")
    a.state = "declined"
    a.decline_reason = reason
    await session.flush()
    await transition(
        session,
        trip,
        "reassigned",
        principal.actor,
        reason=reason,
        data={"assignment_id": a.id, "cause": "driver_declined"},
    )
    notify.notify_users(
        session,
        await _dispatchers_of(session, trip),
        "driver_declined",
        f"驾驶员拒绝了用车申请 #{trip.id} 的任务: {reason}",
        trip_id=trip.id,
        reason=reason,
    )
    return a


def _reported_at(a: Assignment, at: datetime | None) -> datetime:
    """A driver's reported time (default now), held near the booking (`DriverTime` already
    holds it near now)."""
    if at is None:
        return _now()
    why = check_near_trip(at, a.starts_at, a.ends_at)
    if why is not None:
        raise Invalid(f"at {why}", field="at")
    return at


async def depart(
    session: AsyncSession, principal: Principal, assignment_id: int, body: schemas.DepartIn
) -> Assignment:
    a, trip = await _my_assignment(session, principal, assignment_id)
    _require_assignment(a, "accepted", action="depart")
    at = _reported_at(a, body.at)
    a.state = "departed"
    a.departed_at = at
    a.odometer_start_km = body.odometer_km
    await transition(
        session,
        trip,
        "departed",
        principal.actor,
        data={"assignment_id": a.id, "odometer_km": body.odometer_km, "at": a.departed_at},
    )
    return a


async def arrive(
    session: AsyncSession, principal: Principal, assignment_id: int, body: schemas.ArriveIn
) -> Assignment:
    a, trip = await _my_assignment(session, principal, assignment_id)
    _require_assignment(a, "departed", action="arrive with")
    a.arrived_at = _reported_at(a, body.at)
    await session.flush()
    await audit.record(
        session,
        principal.actor,
        "assignment.arrive",
        "trip",
        trip.id,
        data={"assignment_id": a.id, "at": a.arrived_at},
    )
    return a


async def complete(
    session: AsyncSession, principal: Principal, assignment_id: int, body: schemas.CompleteIn
) -> Assignment:
    a, trip = await _my_assignment(session, principal, assignment_id)
    _require_assignment(a, "departed", action="complete")
    if a.odometer_start_km is not None and body.odometer_km < a.odometer_start_km:
        raise Invalid(
            f"odometer {body.odometer_km} km is below the departure reading "
            f"{a.odometer_start_km} km",
            field="odometer_km",
        )
    at = _reported_at(a, body.at)
    if a.departed_at is not None and at < a.departed_at:
        raise Invalid("completion is before departure", field="at")
    a.state = "completed"
    a.completed_at = at
    a.odometer_end_km = body.odometer_km
    a.tolls_cny = body.tolls_cny
    a.parking_cny = body.parking_cny
    a.energy_cny = body.energy_cny
    a.notes = body.notes
    vehicle = await session.get(Vehicle, a.vehicle_id)
    assert vehicle is not None
    energy_kind = "charging" if vehicle.energy == "bev" else "fuel"
    for kind, amount in (
        ("toll", body.tolls_cny),
        ("parking", body.parking_cny),
        (energy_kind, body.energy_cny),
    ):
        if amount > Decimal(0):
            session.add(
                CostRecord(
                    vehicle_id=a.vehicle_id,
                    trip_id=trip.id,
                    kind=kind,
                    amount_cny=amount,
                    occurred_on=at.astimezone(LOCAL_TZ).date(),
                    recorded_by=principal.user_id,
                    note="recorded at trip completion",
                )
            )
    await transition(
        session,
        trip,
        "completed",
        principal.actor,
        data={
            "assignment_id": a.id,
            "odometer_km": body.odometer_km,
            "tolls_cny": body.tolls_cny,
            "parking_cny": body.parking_cny,
            "energy_cny": body.energy_cny,
            "at": at,
        },
    )
    return a
