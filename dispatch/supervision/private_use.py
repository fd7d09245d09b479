"""Private use (公车私用嫌疑): movement no booking covers.

Pings that move (``telematics.rules.moving``, with a fix) outside every assignment of the
vehicle are grouped into episodes (a gap over ``episode_gap_minutes`` starts a new one); an
episode of at least ``private_min_km`` or ``private_min_minutes`` is an alert. One set-based
statement finds the episodes, extends the alerts an overlapping earlier window already raised
(their figures restated over everything they now cover) and inserts the rest.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession

from dispatch.supervision.base import CheckReport, Rules, announce
from telematics.rules.moving import moving_sql

# Pings of `p` that count as movement no booking covers (the rule of 公车私用嫌疑).
_UNCOVERED_MOVING = f"""
          p.fix IS NOT FALSE AND {moving_sql("p", speed_param=":speed")}
          AND NOT EXISTS (
              SELECT 1 FROM trip_assignments a
              WHERE a.vehicle_id = p.vehicle_id
                AND a.state IN ('assigned', 'accepted', 'departed', 'completed')
                AND (p.ts <@ a.period
                     OR (a.departed_at IS NOT NULL AND p.ts >= a.departed_at
                         AND p.ts <= coalesce(a.completed_at, 'infinity'::timestamptz))))
"""
# One alert's text and figures, from its movement's stats `s` (raised or extended alike).
_MESSAGE = """format('%s 无有效派车行驶 %s km / %s 分钟 (疑似公车私用)', s.plate,
                      round(s.km::numeric, 1), round(s.minutes::numeric))"""
_FIGURES = """'distance_km', round(s.km::numeric, 3),
                   'duration_min', round(s.minutes::numeric, 1),
                   'max_speed_kmh', s.max_speed_kmh,
                   'points', s.points,
                   'positions', to_jsonb(s.pts)"""
_PTS = """(array_agg(jsonb_build_array(round(ST_X(geom)::numeric, 6),
                                            round(ST_Y(geom)::numeric, 6), ts, speed_kmh)
                          ORDER BY ts))[1:(:max_pts)]"""

_PRIVATE_USE = text(
    f"""
    WITH moving AS (
        SELECT p.vehicle_id, p.ts, p.geom, p.speed_kmh
        FROM positions p
        WHERE p.ts >= :since AND p.ts < :until AND {_UNCOVERED_MOVING}
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
               {_PTS} AS pts
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
    reached AS (
        SELECT existing AS id, max(ended_at) AS ended_at FROM flagged
        WHERE existing IS NOT NULL GROUP BY existing
    ),
    grown AS (
        -- The alerts this round carries further. By primary key, from two arrays: joined to
        -- flagged, the lookup was planned from its (far too high) row estimate as a hash or
        -- merge join over the whole alerts table, every kind, every year.
        SELECT a.id, a.vehicle_id, a.started_at, a.ended_at AS was_ended, r.ended_at,
               a.evidence
        FROM unnest(ARRAY(SELECT id FROM reached ORDER BY id),
                    ARRAY(SELECT ended_at FROM reached ORDER BY id)) AS r(id, ended_at)
        JOIN alerts a ON a.id = r.id
        WHERE r.ended_at > coalesce(a.ended_at, a.started_at)
    ),
    restated AS MATERIALIZED (
        -- Its text and figures describe all the alert now covers, not the window that
        -- raised it: the pings this round adds (after its last fix) are read, by key, and
        -- added to the figures it carries, its line continued from that last fix. Reading
        -- only the new pings keeps a round's cost independent of how long drives last.
        SELECT g.id, g.vehicle_id, v.plate, g.ended_at,
               extract(epoch FROM g.ended_at - g.started_at) / 60 AS minutes,
               coalesce((g.evidence->>'points')::int, 0) + n.points AS points,
               coalesce((g.evidence->>'distance_km')::float8, 0) + n.km AS km,
               greatest((g.evidence->>'max_speed_kmh')::float8, n.max_speed_kmh)
                   AS max_speed_kmh,
               (ARRAY(SELECT e FROM jsonb_array_elements(
                          coalesce(g.evidence->'positions', '[]'::jsonb))
                          WITH ORDINALITY AS x(e, i) ORDER BY i)
                || coalesce(n.pts, '{{}}'::jsonb[]))[1:(:max_pts)] AS pts
        FROM grown g
        JOIN vehicles v ON v.id = g.vehicle_id
        CROSS JOIN LATERAL (
            SELECT count(*) FILTER (WHERE q.added) AS points,
                   CASE WHEN count(*) > 1
                        THEN ST_Length(ST_MakeLine(q.geom ORDER BY q.ts)::geography) / 1000
                        ELSE 0 END AS km,
                   max(q.speed_kmh) FILTER (WHERE q.added) AS max_speed_kmh,
                   (array_agg(jsonb_build_array(round(ST_X(q.geom)::numeric, 6),
                                                round(ST_Y(q.geom)::numeric, 6), q.ts,
                                                q.speed_kmh) ORDER BY q.ts)
                        FILTER (WHERE q.added)) AS pts
            FROM (
                SELECT p.ts, p.geom, p.speed_kmh, false AS added FROM positions p
                WHERE p.vehicle_id = g.vehicle_id AND p.ts = g.was_ended
                UNION ALL
                SELECT p.ts, p.geom, p.speed_kmh, true FROM positions p
                WHERE p.vehicle_id = g.vehicle_id AND p.ts > g.was_ended
                  AND p.ts <= g.ended_at AND {_UNCOVERED_MOVING}
            ) q
        ) n
    ),
    extended AS (
        UPDATE alerts a SET ended_at = s.ended_at,
               message = {_MESSAGE},
               evidence = a.evidence || jsonb_build_object({_FIGURES})
        FROM restated s
        WHERE a.id = s.id
        RETURNING a.id
    ),
    inserted AS (
        INSERT INTO alerts (kind, severity, vehicle_id, org_id, started_at, ended_at, location,
                            message, evidence, dedup_key)
        SELECT 'private_use', 'warning', s.vehicle_id, s.unit_id, s.started_at, s.ended_at,
               s.first_geom,
               {_MESSAGE},
               jsonb_build_object(
                   'rule', 'moving without an active approved trip',
                   {_FIGURES},
                   'positions_format', jsonb_build_array('lon', 'lat', 'ts', 'speed_kmh')),
               'private_use:' || s.vehicle_id || ':'
                   || to_char(s.started_at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS"Z"')
        FROM flagged s WHERE s.existing IS NULL
        ON CONFLICT (dedup_key) DO NOTHING
        RETURNING id, vehicle_id, org_id, started_at, message
    )
    SELECT i.id, i.vehicle_id, i.started_at, i.message, o.path::text AS unit_path,
           (SELECT count(*) FROM extended) AS extended
    FROM inserted i JOIN orgs o ON o.id = i.org_id
    ORDER BY i.vehicle_id, i.started_at
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
    """Movement with no trip covering it in [since, until) (``now`` is unused: the window
    alone decides). One set-based statement finds the episodes, extends alerts an overlapping
    earlier window already raised, inserts the rest.

    Without JIT: at region scale (26,638 vehicles, ~1.8 M pings a round) the planner's cost
    estimate (it cannot know how few pings escape the bookings) switches JIT compilation on,
    which took ~0.6 s of a ~1.2 s round, more than the scan itself (bench.private_use)."""
    jit = str((await session.execute(text("SELECT current_setting('jit')"))).scalar_one())
    await session.execute(text("SELECT set_config('jit', 'off', true)"))
    rows = (
        await session.execute(
            _PRIVATE_USE,
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
    found = list(rows)
    # Back to the session's setting for the rest of the transaction (an error rolls it back).
    await session.execute(text("SELECT set_config('jit', :jit, true)"), {"jit": jit})
    for r in found:
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
