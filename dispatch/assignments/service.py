"""Assignment rules (派车), the driver's flow, settlement, and the optimizer seam.

Manual assignment and optimizer proposals go through the same `assign` function, so the
same checks apply; the database's exclusion constraints are the last word on overlaps.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from zoneinfo import ZoneInfo

from sqlalchemy import Select, and_, func, or_, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from dispatch import notify
from dispatch.assignments import rules, schemas
from dispatch.assignments.models import ACTIVE, Assignment
from dispatch.costs.models import CostRecord
from dispatch.trips.access import load_trip
from dispatch.trips.models import TripRequest
from dispatch.trips.state import lock_trip, require_state, transition
from fleet import audit
from fleet.errors import Conflict, FleetError, Forbidden, Invalid
from fleet.fields import check_near_trip
from fleet.geo import point_from_db
from fleet.identity.models import Org
from fleet.identity.principal import Principal, hidden, scope_clause
from fleet.identity.service import get_org
from fleet.paging import count_rows, fetch_page
from fleet.registry.models import Driver, Vehicle
from fleet.registry.service import DRIVER_READ
from fleet.registry.visibility import VEHICLE_READ, UnitOrg, vehicle_visibility

LOCAL_TZ = ZoneInfo("Asia/Shanghai")  # cost dates are local (settings.timezone)
DISPATCH = ("dispatcher",)
SETTLE = ("dispatcher", "admin")
DRIVE = ("driver",)
ASSIGNABLE = ("approved", "reassigned")
_CONSTRAINTS = {
    "trip_assignments_vehicle_no_overlap": ("vehicle_double_booked", "vehicle_id", "vehicle"),
    "trip_assignments_driver_no_overlap": ("driver_double_booked", "driver_id", "driver"),
    "uq_trip_assignments_active_trip": ("trip_already_assigned", "trip_id", "trip"),
}


def _now() -> datetime:
    return datetime.now(UTC)


def assignment_out(a: Assignment) -> schemas.AssignmentOut:
    return schemas.AssignmentOut.model_validate(a)


# ---- checks ----------------------------------------------------------------------------


async def trip_to_dispatch(
    session: AsyncSession, principal: Principal, trip_id: int, roles: tuple[str, ...] = DISPATCH
) -> tuple[TripRequest, Org]:
    """The locked trip and its unit, for a dispatcher (or `roles`) covering the requesting unit:
    403 without the role, 404 when the trip is not visible to the caller (as a missing one),
    403 when it is visible (say, served by their pool) but its unit is not theirs."""
    principal.require(roles)
    trip = await load_trip(session, principal, trip_id, lock=True)
    unit = await get_org(session, trip.unit_id)
    principal.check(roles, unit.path, unit.system_path, what="trip")
    return trip, unit


async def usable_vehicle(session: AsyncSession, principal: Principal, vehicle_id: int) -> Vehicle:
    """A vehicle the dispatcher may send (own scope, or a pool shared with it): 404 when the
    caller cannot see it at all, 403 when they see it (another role) but may not send it."""
    # The vehicle and whether the dispatcher may send it, in one round trip; only a refusal
    # asks the second question (may they see it at all), so a booking costs one statement.
    row = (
        await session.execute(
            select(Vehicle, vehicle_visibility(principal, DISPATCH).label("usable"))
            .join(UnitOrg, UnitOrg.id == Vehicle.unit_id)
            .where(Vehicle.id == vehicle_id)
        )
    ).one_or_none()
    if row is not None and row.usable:
        vehicle: Vehicle = row[0]
        return vehicle
    visible = row is not None and await session.scalar(
        select(vehicle_visibility(principal, VEHICLE_READ))
        .select_from(Vehicle)
        .join(UnitOrg, UnitOrg.id == Vehicle.unit_id)
        .where(Vehicle.id == vehicle_id)
    )
    if not visible:
        raise hidden("vehicle", vehicle_id, field="vehicle_id")
    raise Forbidden(
        "vehicle is neither your scope's nor in a pool shared with it",
        code="out_of_scope",
        field="vehicle_id",
    )


def check_vehicle(trip: TripRequest, vehicle: Vehicle) -> None:
    """Vehicle rules against the trip (no database): status, body type, seats, NEV range."""
    if vehicle.status != "in_service":
        raise Conflict(
            f"vehicle {vehicle.plate} is {vehicle.status}, not in service",
            field="vehicle_id",
            code="vehicle_not_in_service",
        )
    if vehicle.body_type not in trip.allowed_body_types:
        raise Invalid(
            f"a {vehicle.body_type} is not allowed for this trip "
            f"(allowed: {', '.join(trip.allowed_body_types)})",
            field="vehicle_id",
            code="body_type_not_allowed",
        )
    capacity = rules.passenger_capacity(vehicle.seats)
    if capacity < trip.passengers:
        raise Invalid(
            f"vehicle seats {capacity} passengers besides the driver; the trip has "
            f"{trip.passengers}",
            field="vehicle_id",
            code="not_enough_seats",
        )
    if vehicle.energy == "bev" and (vehicle.nev_range_km or 0) < trip.planned_km:
        raise Invalid(
            f"battery range {vehicle.nev_range_km} km is less than the planned "
            f"{trip.planned_km:.0f} km",
            field="vehicle_id",
            code="nev_range_insufficient",
        )


def check_driver(trip: TripRequest, vehicle: Vehicle, driver: Driver) -> None:
    if driver.status != "active":
        raise Conflict(f"driver is {driver.status}", field="driver_id", code="driver_not_active")
    if driver.licence_expires is not None and driver.licence_expires < trip.return_at.date():
        raise Invalid(
            "the driver's licence expires before the trip ends",
            field="driver_id",
            code="licence_expired",
        )
    if not rules.licence_fits(driver.licence_class, vehicle.body_type, vehicle.seats):
        need = rules.required_licence(vehicle.body_type, vehicle.seats)
        raise Invalid(
            f"licence {driver.licence_class} does not cover a {vehicle.seats}-seat "
            f"{vehicle.body_type} (needs {need})",
            field="driver_id",
            code="licence_mismatch",
        )


async def usable_driver(
    session: AsyncSession, principal: Principal, driver_id: int, vehicle: Vehicle
) -> Driver:
    """A driver the dispatcher may send with the vehicle: one of their scope, or one of the
    unit that lends the (pooled) vehicle. 404 when the caller cannot see the driver at all."""
    driver = await session.get(Driver, driver_id)
    unit = await get_org(session, driver.unit_id) if driver is not None else None
    # A pooled vehicle may come with a driver of its own unit.
    if driver is not None and unit is not None and driver.unit_id == vehicle.unit_id:
        return driver
    if (
        driver is None
        or unit is None
        or not principal.covers(DRIVER_READ, unit.path, unit.system_path)
    ):
        raise hidden("driver", driver_id, field="driver_id")
    if not principal.covers(DISPATCH, unit.path, unit.system_path):
        raise Forbidden("driver is outside your scope", code="out_of_scope", field="driver_id")
    return driver


async def _overlaps(
    session: AsyncSession, vehicle_id: int, driver_id: int, trip: TripRequest
) -> list[tuple[int, int, int]]:
    """Active bookings of the vehicle or driver overlapping the trip: (trip, vehicle, driver)."""
    rows = await session.execute(
        select(Assignment.trip_id, Assignment.vehicle_id, Assignment.driver_id).where(
            or_(Assignment.vehicle_id == vehicle_id, Assignment.driver_id == driver_id),
            Assignment.state.in_(ACTIVE),
            Assignment.starts_at < trip.return_at,
            Assignment.ends_at > trip.departure_at,
        )
    )
    return [(int(t), int(v), int(d)) for t, v, d in rows.all()]


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
    overlaps = await _overlaps(session, vehicle.id, driver.id, trip)
    for index, value, code, field, what in (
        (1, vehicle.id, "vehicle_double_booked", "vehicle_id", "vehicle"),
        (2, driver.id, "driver_double_booked", "driver_id", "driver"),
    ):
        other = next((o[0] for o in overlaps if o[index] == value), None)
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


async def _dispatchers_of(session: AsyncSession, trip: TripRequest) -> list[int]:
    unit = await get_org(session, trip.unit_id)
    return await notify.users_with_role_covering(session, "dispatcher", unit.path)


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


# ---- the driver's flow -----------------------------------------------------------------


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


# ---- optimizer seam --------------------------------------------------------------------


@dataclass(frozen=True)
class Busy:
    starts_at: datetime
    ends_at: datetime


def _pending_stmt(
    principal: Principal, departure_from: datetime | None, departure_to: datetime | None
) -> Select[TripRequest]:
    paths = principal.require(DISPATCH)
    stmt = (
        select(TripRequest)
        .join(UnitOrg, UnitOrg.id == TripRequest.unit_id)
        .where(
            TripRequest.state.in_(ASSIGNABLE),
            scope_clause(paths, UnitOrg.path, UnitOrg.system_path),
        )
    )
    if departure_from is not None:
        stmt = stmt.where(TripRequest.return_at > departure_from)
    if departure_to is not None:
        stmt = stmt.where(TripRequest.departure_at < departure_to)
    return stmt


_URGENT_FIRST = (TripRequest.departure_at, TripRequest.id)


async def pending_requests(
    session: AsyncSession,
    principal: Principal,
    *,
    departure_from: datetime | None = None,
    departure_to: datetime | None = None,
    limit: int = 5000,
) -> list[TripRequest]:
    """Approved (or reassigned) requests without a booking, in the dispatcher's scope."""
    stmt = _pending_stmt(principal, departure_from, departure_to)
    rows = await session.execute(stmt.order_by(*_URGENT_FIRST).limit(limit))
    return list(rows.scalars())


async def queue_page(
    session: AsyncSession,
    principal: Principal,
    *,
    departure_from: datetime | None,
    departure_to: datetime | None,
    limit: int,
    offset: int,
) -> tuple[list[TripRequest], int]:
    """One page of the dispatch queue (earliest departure first) and the queue's length."""
    stmt = _pending_stmt(principal, departure_from, departure_to)
    return await fetch_page(session, stmt, _URGENT_FIRST, limit=limit, offset=offset)


def candidate_vehicles(principal: Principal, body_types: list[str]) -> Select[Vehicle]:
    """Vehicles the dispatcher can send (own scope and pools shared with it), in service, of
    the given body types (the planning input, auto-assign and urgent suggestions)."""
    return (
        select(Vehicle)
        .join(UnitOrg, UnitOrg.id == Vehicle.unit_id)
        .where(
            vehicle_visibility(principal, DISPATCH),
            Vehicle.status == "in_service",
            Vehicle.body_type.in_(body_types),
        )
        .order_by(Vehicle.id)
    )


async def planning_input(
    session: AsyncSession,
    principal: Principal,
    *,
    departure_from: datetime | None = None,
    departure_to: datetime | None = None,
) -> schemas.PlanningInput:
    """The optimizer's problem in one read: requests, candidate vehicles and drivers, bookings."""
    from dispatch.trips.service import trip_out

    trips = await pending_requests(
        session, principal, departure_from=departure_from, departure_to=departure_to
    )
    body_types = sorted({b for t in trips for b in t.allowed_body_types})
    vehicles = (await session.execute(candidate_vehicles(principal, body_types))).scalars()
    cand_v = [
        schemas.CandidateVehicle(
            id=v.id,
            plate=v.plate,
            unit_id=v.unit_id,
            body_type=v.body_type,
            seats=v.seats,
            energy=v.energy,
            nev_range_km=v.nev_range_km,
            shared_pool=v.shared_pool,
            depot=point_from_db(v.depot) or {},
        )
        for v in vehicles
    ]
    paths = principal.paths(DISPATCH)
    drivers = (
        await session.execute(
            select(Driver)
            .join(UnitOrg, UnitOrg.id == Driver.unit_id)
            .where(
                scope_clause(paths, UnitOrg.path, UnitOrg.system_path), Driver.status == "active"
            )
            .order_by(Driver.id)
        )
    ).scalars()
    cand_d = [
        schemas.CandidateDriver(
            id=d.id, name=d.name, unit_id=d.unit_id, licence_class=d.licence_class
        )
        for d in drivers
    ]
    requests = []
    for t in trips:
        data = trip_out(t).model_dump(mode="json")
        requests.append(data)
    return schemas.PlanningInput(requests=requests, vehicles=cand_v, drivers=cand_d)


async def bookings(
    session: AsyncSession, vehicle_ids: Sequence[int], start: datetime, end: datetime
) -> dict[int, list[Busy]]:
    """Active bookings of the given vehicles overlapping [start, end) (for the optimizer)."""
    rows = await session.execute(
        select(Assignment.vehicle_id, Assignment.starts_at, Assignment.ends_at).where(
            Assignment.vehicle_id.in_(list(vehicle_ids)),
            Assignment.state.in_(ACTIVE),
            and_(Assignment.starts_at < end, Assignment.ends_at > start),
        )
    )
    out: dict[int, list[Busy]] = {}
    for vid, s, e in rows.all():
        out.setdefault(int(vid), []).append(Busy(s, e))
    return out
