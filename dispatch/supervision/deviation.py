"""Destination deviation (未到达目的地): a completed trip whose track never came within
``deviation_km`` of its approved destination; one alert per trip."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession

from dispatch.supervision.base import CheckReport, Rules, insert_alert
from dispatch.supervision.track import read_track, round_km

_COMPLETED = text(
    """
    SELECT a.id, a.trip_id, a.vehicle_id, v.plate, v.unit_id, o.path::text AS unit_path,
           t.destination_address, ST_X(t.destination) AS lon, ST_Y(t.destination) AS lat
    FROM trip_assignments a
    JOIN trip_requests t ON t.id = a.trip_id
    JOIN vehicles v ON v.id = a.vehicle_id
    JOIN orgs o ON o.id = v.unit_id
    WHERE a.state = 'completed' AND a.completed_at >= :since AND a.completed_at < :until
    """
)


async def detect(
    session: AsyncSession,
    since: datetime,
    until: datetime,
    now: datetime,
    rules: Rules,
    report: CheckReport,
) -> None:
    """Trips completed in [since, until) whose track never came near their destination."""
    rows = (await session.execute(_COMPLETED, {"since": since, "until": until})).mappings()
    for r in list(rows):
        t = await read_track(session, r["id"], until)
        if not t["points"] or t["closest_km"] is None or t["closest_km"] <= rules.deviation_km:
            continue
        made = await insert_alert(
            session,
            r["unit_path"],
            report,
            kind="destination_deviation",
            vehicle_id=r["vehicle_id"],
            org_id=r["unit_id"],
            trip_id=r["trip_id"],
            started_at=t["first_ts"],
            ended_at=t["last_ts"],
            lon=r["lon"],
            lat=r["lat"],
            message=f"{r['plate']} 未到达批准目的地 {r['destination_address']}"
            f" (最近 {t['closest_km']:.1f} km)",
            evidence={
                "destination": {
                    "lat": r["lat"],
                    "lon": r["lon"],
                    "address": r["destination_address"],
                },
                "closest_approach_km": round(float(t["closest_km"]), 3),
                "end_distance_km": round_km(t["end_km"]),
                "track_km": round_km(t["km"]),
                "points": t["points"],
                "threshold_km": rules.deviation_km,
            },
            dedup_key=f"destination_deviation:{r['trip_id']}",
        )
        if made:
            report.destination_deviation += 1
