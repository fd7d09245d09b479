"""Costs, service records with due-date reminders, ratings, and the cost-per-km report."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import Any

from sqlalchemy import Subquery, func, select, text
from sqlalchemy.dialects.postgresql import distinct_on
from sqlalchemy.ext.asyncio import AsyncSession

from dispatch import notify
from dispatch.assignments.models import Assignment
from dispatch.costs import schemas
from dispatch.costs.models import CostRecord, ServiceRecord, TripRating
from dispatch.trips.access import load_trip
from dispatch.trips.models import TripRequest
from dispatch.trips.service import read_trip
from dispatch.trips.state import require_state
from fleet import audit
from fleet.audit import Actor
from fleet.clock import local_today
from fleet.errors import Conflict, Forbidden, Invalid
from fleet.fields import limits, month_span
from fleet.identity.models import Org
from fleet.identity.principal import Principal, scope_clause
from fleet.identity.service import get_org
from fleet.paging import fetch_page
from fleet.registry.models import Vehicle
from fleet.registry.service import read_vehicle
from fleet.registry.visibility import UnitOrg

WRITE = ("dispatcher", "admin")
# Bookings in which the vehicle went (or is to go) on the trip: its costs may name the trip.
SERVED = ("assigned", "accepted", "departed", "completed")
READ = ("dispatcher", "admin", "auditor", "approver")
REMIND_DAYS = 30
WORKER = Actor(name="dispatch-worker")


async def _owned_vehicle(session: AsyncSession, principal: Principal, vehicle_id: int) -> Vehicle:
    """Costs are booked by staff of the owning unit (a shared pool lends, it does not own):
    404 for a vehicle the caller cannot see, 403 for a pooled one they only borrow."""
    principal.require(WRITE)
    vehicle = await read_vehicle(session, principal, vehicle_id, field="vehicle_id")
    unit = await get_org(session, vehicle.unit_id)
    if not principal.covers(WRITE, unit.path, unit.system_path):
        raise Forbidden("vehicle is outside your scope", code="out_of_scope", field="vehicle_id")
    return vehicle


async def _trip_of_vehicle(
    session: AsyncSession, principal: Principal, trip_id: int, vehicle: Vehicle
) -> TripRequest:
    """The trip a cost names: one the caller can see (404 otherwise, as for a missing one) and
    that this vehicle was booked for — a cost's vehicle and trip belong together."""
    trip = await load_trip(session, principal, trip_id)
    served = await session.scalar(
        select(Assignment.id).where(
            Assignment.trip_id == trip.id,
            Assignment.vehicle_id == vehicle.id,
            Assignment.state.in_(SERVED),
        )
    )
    if served is None:
        raise Invalid(
            f"vehicle {vehicle.plate} was not booked for trip {trip.id}",
            field="trip_id",
            code="vehicle_not_on_trip",
        )
    return trip


async def add_cost(session: AsyncSession, principal: Principal, body: schemas.CostIn) -> CostRecord:
    vehicle = await _owned_vehicle(session, principal, body.vehicle_id)
    # occurred_on is bounded (the last few years, not the future) by its type, BookedDay.
    if body.trip_id is not None:
        trip = await _trip_of_vehicle(session, principal, body.trip_id, vehicle)
        if trip.state == "settled":
            raise Conflict(
                "the trip is settled; its costs are closed",
                field="trip_id",
                code="illegal_transition",
                current=trip.state,
            )
    row = CostRecord(**body.model_dump(), recorded_by=principal.user_id)
    session.add(row)
    await session.flush()
    await session.refresh(row)
    await audit.record(
        session,
        principal.actor,
        "cost.create",
        "vehicle",
        vehicle.id,
        data=body.model_dump(mode="json") | {"cost_id": row.id},
    )
    return row


async def list_costs(
    session: AsyncSession,
    principal: Principal,
    *,
    vehicle_id: int | None,
    trip_id: int | None,
    limit: int,
    offset: int,
) -> tuple[list[CostRecord], int]:
    stmt = select(CostRecord)
    if vehicle_id is None and trip_id is None:
        # Neither filter: the costs of every vehicle the caller's roles cover (owning unit).
        paths = principal.require(READ)
        stmt = (
            stmt.join(Vehicle, Vehicle.id == CostRecord.vehicle_id)
            .join(UnitOrg, UnitOrg.id == Vehicle.unit_id)
            .where(scope_clause(paths, UnitOrg.path, UnitOrg.system_path))
        )
    if vehicle_id is not None:
        await read_vehicle(session, principal, vehicle_id, READ, field="vehicle_id")
        stmt = stmt.where(CostRecord.vehicle_id == vehicle_id)
    if trip_id is not None:
        await read_trip(session, principal, trip_id)
        stmt = stmt.where(CostRecord.trip_id == trip_id)
    order = (CostRecord.occurred_on.desc(), CostRecord.id.desc())
    return await fetch_page(session, stmt, order, limit=limit, offset=offset)


async def vehicle_summary(
    session: AsyncSession, principal: Principal, vehicle_id: int
) -> schemas.VehicleCostSummary:
    await read_vehicle(session, principal, vehicle_id, READ)
    rows = await session.execute(
        select(CostRecord.kind, func.sum(CostRecord.amount_cny))
        .where(CostRecord.vehicle_id == vehicle_id)
        .group_by(CostRecord.kind)
    )
    by_kind = {k: Decimal(v) for k, v in rows.all()}
    km_row = (
        await session.execute(
            text(
                "SELECT count(*), coalesce(sum(odometer_end_km - odometer_start_km), 0)"
                " FROM trip_assignments WHERE vehicle_id = :v AND state = 'completed'"
            ),
            {"v": vehicle_id},
        )
    ).one()
    return schemas.VehicleCostSummary(
        vehicle_id=vehicle_id,
        total_cny=sum(by_kind.values(), Decimal(0)),
        by_kind=by_kind,
        km=float(km_row[1]),
        trips=int(km_row[0]),
    )


async def add_service(
    session: AsyncSession, principal: Principal, body: schemas.ServiceIn
) -> ServiceRecord:
    """A repair, maintenance, insurance or inspection record; its cost books a cost record."""
    vehicle = await _owned_vehicle(session, principal, body.vehicle_id)
    if body.due_on is not None and body.due_on < body.done_on:
        raise Invalid("due_on must not be before done_on", field="due_on")
    cost_id = None
    if body.cost_cny is not None:
        cost = CostRecord(
            vehicle_id=vehicle.id,
            kind=body.kind,
            amount_cny=body.cost_cny,
            occurred_on=body.done_on,
            note=body.note,
            recorded_by=principal.user_id,
        )
        session.add(cost)
        await session.flush()
        cost_id = cost.id
    row = ServiceRecord(
        vehicle_id=vehicle.id,
        kind=body.kind,
        done_on=body.done_on,
        due_on=body.due_on,
        cost_id=cost_id,
        vendor=body.vendor,
        note=body.note,
        recorded_by=principal.user_id,
    )
    session.add(row)
    await session.flush()
    await session.refresh(row)
    await audit.record(
        session,
        principal.actor,
        f"service.{body.kind}",
        "vehicle",
        vehicle.id,
        data=body.model_dump(mode="json") | {"record_id": row.id},
    )
    return row


def _latest_due() -> Subquery:
    """The newest record per (vehicle, kind): only its due date is still current."""
    return (
        select(ServiceRecord)
        .ext(distinct_on(ServiceRecord.vehicle_id, ServiceRecord.kind))
        .where(ServiceRecord.due_on.is_not(None))
        .order_by(
            ServiceRecord.vehicle_id,
            ServiceRecord.kind,
            ServiceRecord.done_on.desc(),
            ServiceRecord.id.desc(),
        )
        .subquery()
    )


async def due_soon(
    session: AsyncSession, principal: Principal, *, within_days: int, today: date | None = None
) -> list[schemas.DueOut]:
    paths = principal.require(READ)
    today = today or local_today()
    latest = _latest_due()
    rows = await session.execute(
        select(
            latest.c.id,
            latest.c.vehicle_id,
            Vehicle.plate,
            Vehicle.unit_id,
            latest.c.kind,
            latest.c.due_on,
        )
        .join(Vehicle, Vehicle.id == latest.c.vehicle_id)
        .join(UnitOrg, UnitOrg.id == Vehicle.unit_id)
        .where(
            latest.c.due_on <= today + timedelta(days=within_days),
            scope_clause(paths, UnitOrg.path, UnitOrg.system_path),
        )
        .order_by(latest.c.due_on)
        .limit(1000)
    )
    return [
        schemas.DueOut(
            record_id=r[0],
            vehicle_id=r[1],
            plate=r[2],
            unit_id=r[3],
            kind=r[4],
            due_on=r[5],
            days_left=(r[5] - today).days,
        )
        for r in rows.all()
    ]


async def remind_due(
    session: AsyncSession, *, within_days: int = REMIND_DAYS, today: date | None = None
) -> int:
    """Notify the vehicle unit's dispatchers and admins once per record as its due date nears."""
    today = today or local_today()
    latest = _latest_due()
    rows = (
        await session.execute(
            select(latest.c.id, latest.c.kind, latest.c.due_on, Vehicle.id, Vehicle.plate, Org.path)
            .join(Vehicle, Vehicle.id == latest.c.vehicle_id)
            .join(Org, Org.id == Vehicle.unit_id)
            .where(
                latest.c.due_on <= today + timedelta(days=within_days),
                latest.c.reminded_at.is_(None),
                Vehicle.status.not_in(("scrapped",)),
            )
            .order_by(latest.c.due_on)
            .limit(5000)
        )
    ).all()
    count = 0
    now = datetime.now(UTC)
    due_rows: list[Any] = list(rows)
    for record_id, kind, due_on, vehicle_id, plate, unit_path in due_rows:
        users = set(await notify.users_with_role_covering(session, "dispatcher", unit_path))
        users |= set(await notify.users_with_role_covering(session, "admin", unit_path))
        label = {"insurance": "保险", "inspection": "年检", "maintenance": "保养", "repair": "维修"}
        notify.notify_users(
            session,
            sorted(users),
            f"{kind}_due",
            f"{plate} {label.get(kind, kind)}到期: {due_on.isoformat()}",
            vehicle_id=vehicle_id,
            record_id=record_id,
            due_on=due_on.isoformat(),
        )
        record = await session.get(ServiceRecord, record_id)
        assert record is not None
        record.reminded_at = now
        await audit.record(
            session,
            WORKER,
            "service.reminder",
            "vehicle",
            vehicle_id,
            data={"record_id": record_id, "kind": kind, "due_on": due_on, "users": sorted(users)},
        )
        count += 1
    await session.flush()
    return count


# ---- ratings ---------------------------------------------------------------------------


async def rate(
    session: AsyncSession, principal: Principal, trip_id: int, body: schemas.RatingIn
) -> TripRating:
    trip = await read_trip(session, principal, trip_id)
    if principal.user_id != trip.requester_id and principal.user_id not in trip.passenger_user_ids:
        raise Forbidden("only the requester or a listed passenger may rate", code="not_passenger")
    require_state(trip, "completed", "settled", action="rate")
    exists = await session.scalar(
        select(TripRating.id).where(
            TripRating.trip_id == trip_id, TripRating.user_id == principal.user_id
        )
    )
    if exists:
        raise Conflict("you have already rated this trip", field="trip_id", code="already_rated")
    row = TripRating(
        trip_id=trip_id, user_id=principal.user_id, score=body.score, comment=body.comment
    )
    session.add(row)
    await session.flush()
    await session.refresh(row)
    await audit.record(
        session, principal.actor, "trip.rate", "trip", trip_id, data=body.model_dump(mode="json")
    )
    return row


async def ratings(session: AsyncSession, principal: Principal, trip_id: int) -> list[TripRating]:
    await read_trip(session, principal, trip_id)
    rows = await session.execute(
        select(TripRating).where(TripRating.trip_id == trip_id).order_by(TripRating.id)
    )
    return list(rows.scalars())


# ---- report ----------------------------------------------------------------------------

_REPORT = text(
    """
    WITH scope AS (
        SELECT v.id AS vehicle_id, v.unit_id
        FROM vehicles v JOIN orgs u ON u.id = v.unit_id
        WHERE (u.path <@ CAST(CAST(:paths AS text[]) AS ltree[])
               OR (u.system_path IS NOT NULL
                   AND u.system_path <@ CAST(CAST(:paths AS text[]) AS ltree[])))
          AND (CAST(:under AS text) IS NULL OR u.path <@ CAST(CAST(:under AS text) AS ltree))
    ),
    km AS (
        SELECT s.unit_id,
               to_char(a.completed_at AT TIME ZONE :tz, 'YYYY-MM') AS month,
               count(*) AS trips,
               sum(a.odometer_end_km - a.odometer_start_km) AS km
        FROM trip_assignments a JOIN scope s ON s.vehicle_id = a.vehicle_id
        WHERE a.state = 'completed' AND a.odometer_end_km IS NOT NULL
          AND a.odometer_start_km IS NOT NULL
          AND (a.completed_at AT TIME ZONE :tz)::date >= CAST(:start AS date)
          AND (a.completed_at AT TIME ZONE :tz)::date < CAST(:stop AS date)
        GROUP BY 1, 2
    ),
    cost AS (
        SELECT s.unit_id, to_char(c.occurred_on, 'YYYY-MM') AS month, sum(c.amount_cny) AS cny
        FROM cost_records c JOIN scope s ON s.vehicle_id = c.vehicle_id
        WHERE c.occurred_on >= CAST(:start AS date) AND c.occurred_on < CAST(:stop AS date)
        GROUP BY 1, 2
    )
    SELECT coalesce(km.unit_id, cost.unit_id) AS unit_id, o.name,
           coalesce(km.month, cost.month) AS month,
           coalesce(km.trips, 0) AS trips, coalesce(km.km, 0) AS km,
           coalesce(cost.cny, 0) AS cny
    FROM km FULL JOIN cost ON cost.unit_id = km.unit_id AND cost.month = km.month
    JOIN orgs o ON o.id = coalesce(km.unit_id, cost.unit_id)
    ORDER BY 3, 2
    LIMIT 10000
    """
)


async def cost_per_km(
    session: AsyncSession,
    principal: Principal,
    *,
    month_from: str,
    month_to: str,
    under: int | None,
) -> list[schemas.CostPerKmRow]:
    """Cost per km by owning unit and month: costs booked in the month / km driven in it."""
    paths = principal.require(READ)
    start = datetime.strptime(month_from, "%Y-%m").date()  # fleet.fields.Month: 1970–2099
    last = datetime.strptime(month_to, "%Y-%m").date()
    if last < start:
        raise Invalid("month_to is before month_from", field="month_to")
    if month_span(month_from, month_to) > (most := limits().report_max_months):
        raise Invalid(f"a report covers at most {most} months", field="month_to")
    stop = date(last.year + (last.month == 12), last.month % 12 + 1, 1)
    under_path = None
    if under is not None:
        under_path = (await get_org(session, under, field="under")).path
    rows = await session.execute(
        _REPORT,
        {
            "paths": list(paths),
            "under": under_path,
            "start": start,
            "stop": stop,
            "tz": "Asia/Shanghai",
        },
    )
    out = []
    report_rows: list[Any] = list(rows.all())
    for unit_id, name, month, trips, km, cny in report_rows:
        km_f = float(km or 0)
        cny_d = Decimal(cny or 0)
        out.append(
            schemas.CostPerKmRow(
                unit_id=unit_id,
                unit_name=name,
                month=month,
                trips=int(trips),
                km=round(km_f, 1),
                cost_cny=cny_d,
                cost_per_km=(cny_d / Decimal(str(km_f))).quantize(Decimal("0.01"))
                if km_f > 0
                else None,
            )
        )
    return out


REPORT_COLUMNS = [
    (name, name)
    for name in ("unit_id", "unit_name", "month", "trips", "km", "cost_cny", "cost_per_km")
]
"""The CSV export of the report (written by fleet.tabular, like every export)."""
