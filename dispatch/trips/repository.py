"""SQL of the trips domain: geography lookups, scoped lists, history."""

from __future__ import annotations

from sqlalchemy import ColumnElement, Select, and_, exists, func, literal, or_, select, text
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import aliased

from dispatch.assignments.models import Assignment
from dispatch.registry.models import Driver
from dispatch.trips.models import TripRequest
from fleet.audit import AuditEntry
from fleet.identity.models import Org, User
from fleet.identity.principal import Principal, scope_clause

TripUnit = aliased(Org, name="trip_unit")
ServingUnit = aliased(Org, name="serving_unit")
SUPERVISING = ("approver", "dispatcher", "auditor", "admin")


async def nearest_county(session: AsyncSession, lat: float, lon: float) -> Org | None:
    """The county whose seat is nearest to the point (a stand-in for division polygons)."""
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


async def point_of(session: AsyncSession, trip_id: int, column: str) -> tuple[float, float]:
    row = (
        await session.execute(
            text(f"SELECT ST_Y({column}), ST_X({column}) FROM trip_requests WHERE id = :id"),
            {"id": trip_id},
        )
    ).one()
    return float(row[0]), float(row[1])
