"""The planning seam: the dispatch queue and the optimizer's input (requests, vehicles, drivers)."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Select, select
from sqlalchemy.ext.asyncio import AsyncSession

from dispatch.assignments import schemas
from dispatch.assignments.checks import ASSIGNABLE, DISPATCH
from dispatch.trips.models import TripRequest
from dispatch.trips.schemas import trip_out
from fleet.geo import point_from_db
from fleet.identity.principal import Principal, scope_clause
from fleet.paging import fetch_page
from fleet.registry.models import Driver, Vehicle
from fleet.registry.visibility import UnitOrg, vehicle_visibility


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
