"""Trip overtime (超时用车): a trip still out, or returned, later than its approved window
plus ``overtime_grace_minutes``; one alert per trip."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession

from dispatch.supervision.base import CheckReport, Rules, insert_alert

_OVERTIME = text(
    """
    SELECT a.id, a.trip_id, a.vehicle_id, a.state, a.departed_at, a.completed_at, t.return_at,
           v.plate, v.unit_id, o.path::text AS unit_path
    FROM trip_assignments a
    JOIN trip_requests t ON t.id = a.trip_id
    JOIN vehicles v ON v.id = a.vehicle_id
    JOIN orgs o ON o.id = v.unit_id
    WHERE ((a.state = 'departed'
            AND CAST(:now AS timestamptz) > t.return_at + make_interval(secs => :grace_s))
        OR (a.state = 'completed' AND a.completed_at >= :since AND a.completed_at < :until
            AND a.completed_at > t.return_at + make_interval(secs => :grace_s)))
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
    """A trip still out (or returned) later than its approved window plus grace."""
    rows = (
        await session.execute(
            _OVERTIME,
            {
                "now": now,
                "since": since,
                "until": until,
                "grace_s": rules.overtime_grace_minutes * 60,
            },
        )
    ).mappings()
    for r in list(rows):
        end = r["completed_at"] or now
        late_min = (end - r["return_at"]).total_seconds() / 60
        made = await insert_alert(
            session,
            r["unit_path"],
            report,
            kind="trip_overtime",
            vehicle_id=r["vehicle_id"],
            org_id=r["unit_id"],
            trip_id=r["trip_id"],
            started_at=r["return_at"],
            ended_at=r["completed_at"],
            message=f"{r['plate']} 超出批准用车时间 {late_min:.0f} 分钟 (用车申请 #{r['trip_id']})",
            evidence={
                "approved_return_at": r["return_at"],
                "departed_at": r["departed_at"],
                "completed_at": r["completed_at"],
                "late_minutes": round(late_min, 1),
                "still_out": r["state"] == "departed",
            },
            dedup_key=f"trip_overtime:{r['trip_id']}",
        )
        if made:
            report.trip_overtime += 1
