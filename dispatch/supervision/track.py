"""A trip's track against its plan: planned vs actual distance and time, the closest approach
to the approved destination (the deviation rule reads it too), the track as GeoJSON."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import select, text
from sqlalchemy.ext.asyncio import AsyncSession

from dispatch.assignments.models import Assignment
from dispatch.trips.models import TripRequest
from dispatch.trips.service import read_trip
from fleet.identity.principal import Principal
from fleet.schemas import Out

_TRACK = text(
    """
    WITH a AS (
        SELECT a.*, t.destination, t.planned_km, t.departure_at, t.return_at
        FROM trip_assignments a JOIN trip_requests t ON t.id = a.trip_id
        WHERE a.id = :assignment_id
    ),
    p AS (
        SELECT p.ts, p.geom
        FROM positions p, a
        WHERE p.vehicle_id = a.vehicle_id AND p.fix IS NOT FALSE
          AND p.ts >= a.departed_at AND p.ts <= coalesce(a.completed_at, :now)
    )
    SELECT (SELECT count(*) FROM p) AS points,
           (SELECT CASE WHEN count(*) > 1
                        THEN ST_Length(ST_MakeLine(geom ORDER BY ts)::geography) / 1000 END
              FROM p) AS km,
           (SELECT min(ST_Distance(p.geom::geography, a.destination::geography)) / 1000
              FROM p, a) AS closest_km,
           (SELECT ST_Distance(p.geom::geography, a.destination::geography) / 1000
              FROM p, a ORDER BY p.ts DESC LIMIT 1) AS end_km,
           (SELECT min(ts) FROM p) AS first_ts, (SELECT max(ts) FROM p) AS last_ts
    """
)


class TrackSummary(Out):
    trip_id: int
    assignment_id: int | None
    vehicle_id: int | None
    planned_km: float
    planned_minutes: float
    actual_km: float | None = None
    odometer_km: float | None = None
    actual_minutes: float | None = None
    points: int = 0
    end_distance_km: float | None = None
    closest_approach_km: float | None = None
    first_ts: datetime | None = None
    last_ts: datetime | None = None


async def read_track(session: AsyncSession, assignment_id: int, now: datetime) -> dict[str, Any]:
    row = (
        (await session.execute(_TRACK, {"assignment_id": assignment_id, "now": now}))
        .mappings()
        .one()
    )
    return dict(row)


async def track_summary(session: AsyncSession, principal: Principal, trip_id: int) -> TrackSummary:
    """Planned vs actual distance and duration; end point vs the approved destination."""
    trip: TripRequest = await read_trip(session, principal, trip_id)
    a = (
        await session.execute(
            select(Assignment)
            .where(Assignment.trip_id == trip_id, Assignment.departed_at.is_not(None))
            .order_by(Assignment.id.desc())
            .limit(1)
        )
    ).scalar_one_or_none()
    summary = TrackSummary(
        trip_id=trip.id,
        assignment_id=a.id if a else None,
        vehicle_id=a.vehicle_id if a else None,
        planned_km=trip.planned_km,
        planned_minutes=(trip.return_at - trip.departure_at).total_seconds() / 60,
    )
    if a is None or a.departed_at is None:
        return summary
    t = await read_track(session, a.id, datetime.now(UTC))
    end = a.completed_at or datetime.now(UTC)
    summary.actual_minutes = round((end - a.departed_at).total_seconds() / 60, 1)
    summary.points = int(t["points"])
    summary.actual_km = round(float(t["km"]), 3) if t["km"] is not None else None
    if a.odometer_end_km is not None and a.odometer_start_km is not None:
        summary.odometer_km = round(a.odometer_end_km - a.odometer_start_km, 1)
    summary.closest_approach_km = round_km(t["closest_km"])
    summary.end_distance_km = round_km(t["end_km"])
    summary.first_ts, summary.last_ts = t["first_ts"], t["last_ts"]
    return summary


_TRACK_GEOJSON = text(
    """
    SELECT count(*) AS points, min(p.ts) AS first_ts, max(p.ts) AS last_ts,
           ST_AsGeoJSON(ST_MakeLine(p.geom ORDER BY p.ts), 6)::jsonb AS line
    FROM positions p
    WHERE p.vehicle_id = :vehicle_id AND p.fix IS NOT FALSE
      AND p.ts >= :start AND p.ts <= :stop
    """
)


async def track_geojson(
    session: AsyncSession, principal: Principal, trip_id: int
) -> dict[str, Any]:
    """The trip's track (positions from departure to completion) as an RFC 7946 Feature."""
    trip = await read_trip(session, principal, trip_id)
    a = (
        await session.execute(
            select(Assignment)
            .where(Assignment.trip_id == trip_id, Assignment.departed_at.is_not(None))
            .order_by(Assignment.id.desc())
            .limit(1)
        )
    ).scalar_one_or_none()
    props: dict[str, Any] = {"trip_id": trip.id, "points": 0}
    if a is None or a.departed_at is None:
        return {"type": "Feature", "geometry": None, "properties": props}
    row = (
        (
            await session.execute(
                _TRACK_GEOJSON,
                {
                    "vehicle_id": a.vehicle_id,
                    "start": a.departed_at,
                    "stop": a.completed_at or datetime.now(UTC),
                },
            )
        )
        .mappings()
        .one()
    )
    props.update(
        vehicle_id=a.vehicle_id,
        assignment_id=a.id,
        points=int(row["points"]),
        first_ts=row["first_ts"],
        last_ts=row["last_ts"],
    )
    geometry = row["line"] if row["points"] and row["points"] > 1 else None
    return {"type": "Feature", "geometry": geometry, "properties": props}


def round_km(value: float | None) -> float | None:
    return round(float(value), 3) if value is not None else None
