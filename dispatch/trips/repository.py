"""SQL of the trips domain: geography lookups, scoped lists, history."""

from __future__ import annotations

from sqlalchemy import ColumnElement, Select, and_, exists, func, literal, or_, select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import aliased

from dispatch.assignments.models import Assignment
from dispatch.trips.models import TripRequest
from fleet.audit import AuditEntry
from fleet.identity.models import DivisionBoundary, Org, User
from fleet.identity.principal import Principal, scope_clause
from fleet.registry.models import Driver

TripUnit = aliased(Org, name="trip_unit")
ServingUnit = aliased(Org, name="serving_unit")
SUPERVISING = ("approver", "dispatcher", "auditor", "admin")


# A point in no drawn county but this close to one (degrees, ~550 m) lies in a sliver between
# two borders simplified independently (the map's tolerance is 0.0015°): the nearest border
# decides, not the nearest seat.
SLIVER_DEG = 0.005


async def county_at(session: AsyncSession, lat: float, lon: float) -> Org | None:
    """The county whose drawn border covers the point, as the map shows it.

    Borders are the base map's own (`fleet.boundaries`); ties on a shared edge go to the lower
    adcode. A point just outside every border (a sliver between simplified borders) takes the
    nearest border; a point far from all (outside Guangxi), or a database without borders,
    takes the county whose seat is nearest."""
    point = func.ST_SetSRID(func.ST_MakePoint(lon, lat), 4326)
    covering = (
        await session.execute(
            select(Org)
            .join(DivisionBoundary, DivisionBoundary.org_id == Org.id)
            .where(Org.kind == "county", func.ST_Covers(DivisionBoundary.geom, point))
            .order_by(Org.code)
            .limit(1)
        )
    ).scalar_one_or_none()
    if covering is not None:
        return covering
    near = (
        await session.execute(
            select(Org)
            .join(DivisionBoundary, DivisionBoundary.org_id == Org.id)
            .where(Org.kind == "county", func.ST_DWithin(DivisionBoundary.geom, point, SLIVER_DEG))
            .order_by(func.ST_Distance(DivisionBoundary.geom, point), Org.code)
            .limit(1)
        )
    ).scalar_one_or_none()
    return near if near is not None else await nearest_county_seat(session, lat, lon)


async def nearest_county_seat(session: AsyncSession, lat: float, lon: float) -> Org | None:
    """The county whose seat is nearest to the point: the fallback outside every border."""
    point = func.ST_SetSRID(func.ST_MakePoint(lon, lat), 4326)
    return (
        await session.execute(
            select(Org)
            .where(Org.kind == "county", Org.location.is_not(None))
            .order_by(Org.location.op("<->")(point))
            .limit(1)
        )
    ).scalar_one_or_none()


async def users_in_territory(session: AsyncSession, ids: list[int], territory: str) -> list[int]:
    """Of the given user ids, the active users whose org lies in the territory (an ltree path)."""
    if not ids:
        return []
    rows = await session.execute(
        select(User.id)
        .join(Org, Org.id == User.org_id)
        .where(User.id.in_(ids), User.active, Org.path.op("<@")(territory))
    )
    return [int(u) for u in rows.scalars()]


def visible_clause(principal: Principal) -> ColumnElement[bool]:
    """Trips the principal may read: own, as passenger, as driver, or units in role scope."""
    paths = principal.paths(SUPERVISING)
    clauses: list[ColumnElement[bool]] = [
        TripRequest.requester_id == principal.user_id,
        literal(principal.user_id) == func.any(TripRequest.passenger_user_ids),
        # The caller's driver record first (one index lookup, at most one row: user_id is
        # unique), then its bookings by (driver, trip). Joining drivers inside the EXISTS made
        # PostgreSQL hash every booking in the table on each call: 1.8 ms at 600 bookings,
        # growing with the table.
        exists(
            select(Assignment.id).where(
                Assignment.trip_id == TripRequest.id,
                Assignment.driver_id
                == select(Driver.id).where(Driver.user_id == principal.user_id).scalar_subquery(),
            )
        ),
    ]
    if paths:
        clauses.append(scope_clause(paths, TripUnit.path, TripUnit.system_path))
        clauses.append(
            and_(
                TripRequest.serving_unit_id.is_not(None),
                scope_clause(paths, ServingUnit.path, ServingUnit.system_path),
            )
        )
    return or_(*clauses)


def trips_query(principal: Principal) -> Select[TripRequest]:
    return (
        select(TripRequest)
        .join(TripUnit, TripUnit.id == TripRequest.unit_id)
        .outerjoin(ServingUnit, ServingUnit.id == TripRequest.serving_unit_id)
        .where(visible_clause(principal))
    )


async def history(session: AsyncSession, trip_id: int) -> list[AuditEntry]:
    rows = await session.execute(
        select(AuditEntry)
        .where(AuditEntry.entity == "trip", AuditEntry.entity_id == str(trip_id))
        .order_by(AuditEntry.id)
    )
    return list(rows.scalars())
