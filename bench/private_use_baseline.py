"""The private-use detector as it was before the region-scale work (commit 4573f8e), kept
for ``bench.private_use`` to compare against in the same run: one statement over every ping
of the window ``[since, until)``."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession

from dispatch.supervision.base import CheckReport, Rules, announce

SQL = text(
    """
    WITH moving AS (
        SELECT p.vehicle_id, p.ts, p.geom, p.speed_kmh
        FROM positions p
        WHERE p.ts >= :since AND p.ts < :until
          AND p.fix IS NOT FALSE AND p.acc IS NOT FALSE AND p.speed_kmh >= :speed
          AND NOT EXISTS (
              SELECT 1 FROM trip_assignments a
              WHERE a.vehicle_id = p.vehicle_id
                AND a.state IN ('assigned', 'accepted', 'departed', 'completed')
                AND (p.ts <@ a.period
                     OR (a.departed_at IS NOT NULL AND p.ts >= a.departed_at
                         AND p.ts <= coalesce(a.completed_at, 'infinity'::timestamptz))))
    ),
    marked AS (
        SELECT *, CASE WHEN lag(ts) OVER w IS NULL
                         OR ts - lag(ts) OVER w > make_interval(secs => :gap_s)
                       THEN 1 ELSE 0 END AS brk
        FROM moving WINDOW w AS (PARTITION BY vehicle_id ORDER BY ts)
    ),
    grouped AS (
        SELECT *, sum(brk) OVER (PARTITION BY vehicle_id ORDER BY ts) AS episode FROM marked
    ),
    episodes AS (
        SELECT vehicle_id, episode, min(ts) AS started_at, max(ts) AS ended_at, count(*) AS points,
               CASE WHEN count(*) > 1
                    THEN ST_Length(ST_MakeLine(geom ORDER BY ts)::geography) / 1000
                    ELSE 0 END AS km,
               max(speed_kmh) AS max_speed_kmh,
               (array_agg(geom ORDER BY ts))[1] AS first_geom,
               (array_agg(jsonb_build_array(round(ST_X(geom)::numeric, 6),
                                            round(ST_Y(geom)::numeric, 6), ts, speed_kmh)
                          ORDER BY ts))[1:(:max_pts)] AS pts
        FROM grouped GROUP BY vehicle_id, episode
    ),
    flagged AS (
        SELECT e.*, extract(epoch FROM e.ended_at - e.started_at) / 60 AS minutes,
               v.plate, v.unit_id,
               -- an alert of an earlier, overlapping window for the same movement
               (SELECT a.id FROM alerts a
                 WHERE a.kind = 'private_use' AND a.vehicle_id = e.vehicle_id
                   AND a.started_at <= e.ended_at
                   AND coalesce(a.ended_at, a.started_at)
                       >= e.started_at - make_interval(secs => :gap_s)
                 ORDER BY a.started_at LIMIT 1) AS existing
        FROM episodes e JOIN vehicles v ON v.id = e.vehicle_id
        WHERE e.km >= :min_km OR e.ended_at - e.started_at >= make_interval(secs => :min_s)
    ),
    extended AS (
        UPDATE alerts a SET ended_at = greatest(a.ended_at, f.ended_at)
        FROM flagged f WHERE a.id = f.existing
        RETURNING a.id
    ),
    inserted AS (
        INSERT INTO alerts (kind, severity, vehicle_id, org_id, started_at, ended_at, location,
                            message, evidence, dedup_key)
        SELECT 'private_use', 'warning', f.vehicle_id, f.unit_id, f.started_at, f.ended_at,
               f.first_geom,
               format('%s 无有效派车行驶 %s km / %s 分钟 (疑似公车私用)', f.plate,
                      round(f.km::numeric, 1), round(f.minutes::numeric)),
               jsonb_build_object(
                   'rule', 'moving without an active approved trip',
                   'distance_km', round(f.km::numeric, 3),
                   'duration_min', round(f.minutes::numeric, 1),
                   'max_speed_kmh', f.max_speed_kmh,
                   'points', f.points,
                   'positions', to_jsonb(f.pts),
                   'positions_format', jsonb_build_array('lon', 'lat', 'ts', 'speed_kmh')),
               'private_use:' || f.vehicle_id || ':'
                   || to_char(f.started_at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS"Z"')
        FROM flagged f WHERE f.existing IS NULL
        ON CONFLICT (dedup_key) DO NOTHING
        RETURNING id, vehicle_id, org_id, started_at, message
    )
    SELECT i.id, i.vehicle_id, i.started_at, i.message, o.path::text AS unit_path,
           (SELECT count(*) FROM extended) AS extended
    FROM inserted i JOIN orgs o ON o.id = i.org_id
    ORDER BY i.vehicle_id, i.started_at
    """
)


async def detect_private_use(
    session: AsyncSession,
    since: datetime,
    until: datetime,
    now: datetime,
    rules: Rules,
    report: CheckReport,
) -> None:
    """Movement with no trip covering it (公车私用嫌疑): one set-based statement finds the
    episodes, extends alerts an overlapping earlier window already raised, inserts the rest."""
    rows = (
        await session.execute(
            SQL,
            {
                "since": since,
                "until": until,
                "speed": rules.moving_speed_kmh,
                "gap_s": rules.episode_gap_minutes * 60,
                "min_km": rules.private_min_km,
                "min_s": rules.private_min_minutes * 60,
                "max_pts": rules.evidence_points,
            },
        )
    ).mappings()
    for r in list(rows):
        report.alert_ids.append(int(r["id"]))
        report.private_use += 1
        await announce(
            session,
            r["unit_path"],
            id=int(r["id"]),
            kind="private_use",
            severity="warning",
            vehicle_id=r["vehicle_id"],
            trip_id=None,
            started_at=r["started_at"],
            message=r["message"],
        )
