"""Trip-aware supervision (运行监管): private use, overtime, destination deviation; track summary.

These rules need both trips and stored positions, so they live on the side that knows trips.
Each detector reads real `positions` rows over a time window, writes `alerts` rows with
evidence an auditor can open on the map (deduplicated by `dedup_key`), and announces each new
alert on the live bus (type "alert") after commit.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import orjson
from sqlalchemy import select, text
from sqlalchemy.ext.asyncio import AsyncSession

from dispatch import notify
from dispatch.assignments.models import Assignment
from dispatch.trips.models import TripRequest
from dispatch.trips.service import read_trip
from fleet import audit
from fleet.identity.principal import Principal
from fleet.logging import get_logger
from fleet.schemas import Out
from telematics.rules.moving import MOVING_MIN_SPEED_KMH, moving_sql

log = get_logger("dispatch.supervision")
SUPERVISION = audit.Actor("supervision")


@dataclass(frozen=True)
class Rules:
    """Thresholds; units in the names."""

    # what "moving" means, shared with telematics (a ping at or above it, ignition not off)
    moving_speed_kmh: float = MOVING_MIN_SPEED_KMH
    private_min_km: float = 1.0  # an uncovered movement this long is suspected private use…
    private_min_minutes: float = 3.0  # …or one lasting this long
    episode_gap_minutes: float = 10.0  # moving pings further apart start a new episode
    overtime_grace_minutes: float = 30.0
    deviation_km: float = 2.0  # closest approach to the approved destination
    evidence_points: int = 300


@dataclass
class CheckReport:
    private_use: int = 0
    trip_overtime: int = 0
    destination_deviation: int = 0
    alert_ids: list[int] = field(default_factory=list)


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

_INSERT = text(
    """
    INSERT INTO alerts (kind, severity, vehicle_id, org_id, trip_id, started_at, ended_at,
                        location, message, evidence, dedup_key)
    VALUES (:kind, :severity, :vehicle_id, :org_id, :trip_id, :started_at, :ended_at,
            CASE WHEN CAST(:lon AS float8) IS NULL THEN NULL
                 ELSE ST_SetSRID(ST_MakePoint(:lon, :lat), 4326) END,
            :message, CAST(:evidence AS jsonb), :dedup_key)
    ON CONFLICT (dedup_key) DO NOTHING
    RETURNING id
    """
)


async def _insert_alert(
    session: AsyncSession, unit_path: str, report: CheckReport, **values: Any
) -> int | None:
    values.setdefault("trip_id", None)
    values.setdefault("severity", "warning")
    values.setdefault("lon", None)
    values.setdefault("lat", None)
    values["evidence"] = orjson.dumps(values["evidence"], default=str).decode()
    alert_id = (await session.execute(_INSERT, values)).scalar_one_or_none()
    if alert_id is None:
        return None
    report.alert_ids.append(int(alert_id))
    await _announce(
        session,
        unit_path,
        id=int(alert_id),
        **{k: values[k] for k in ("kind", "severity", "vehicle_id", "trip_id", "started_at")},
        message=values["message"],
    )
    return int(alert_id)


async def _announce(session: AsyncSession, unit_path: str, **data: Any) -> None:
    """A new alert: audited, and on the live bus (type "alert") to consoles whose scope
    covers the unit once the transaction commits."""
    await audit.record(
        session,
        SUPERVISION,
        "alert.create",
        "alert",
        data["id"],
        to_state="open",
        data={k: data.get(k) for k in ("kind", "severity", "vehicle_id", "trip_id")},
    )
    notify.queue(session, "alert", data, org_path=unit_path)


async def detect_private_use(
    session: AsyncSession, since: datetime, until: datetime, rules: Rules, report: CheckReport
) -> None:
    """Movement with no trip covering it (公车私用嫌疑): one set-based statement finds the
    episodes, extends alerts an overlapping earlier window already raised, inserts the rest.

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
        await _announce(
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


async def detect_overtime(
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
        made = await _insert_alert(
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


async def _track(session: AsyncSession, assignment_id: int, now: datetime) -> dict[str, Any]:
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
    t = await _track(session, a.id, datetime.now(UTC))
    end = a.completed_at or datetime.now(UTC)
    summary.actual_minutes = round((end - a.departed_at).total_seconds() / 60, 1)
    summary.points = int(t["points"])
    summary.actual_km = round(float(t["km"]), 3) if t["km"] is not None else None
    if a.odometer_end_km is not None and a.odometer_start_km is not None:
        summary.odometer_km = round(a.odometer_end_km - a.odometer_start_km, 1)
    summary.closest_approach_km = _r(t["closest_km"])
    summary.end_distance_km = _r(t["end_km"])
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


def _r(value: float | None) -> float | None:
    return round(float(value), 3) if value is not None else None


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


async def detect_deviation(
    session: AsyncSession, since: datetime, until: datetime, rules: Rules, report: CheckReport
) -> None:
    """A completed trip whose track never came near its approved destination."""
    rows = (await session.execute(_COMPLETED, {"since": since, "until": until})).mappings()
    for r in list(rows):
        t = await _track(session, r["id"], until)
        if not t["points"] or t["closest_km"] is None or t["closest_km"] <= rules.deviation_km:
            continue
        made = await _insert_alert(
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
                "end_distance_km": _r(t["end_km"]),
                "track_km": _r(t["km"]),
                "points": t["points"],
                "threshold_km": rules.deviation_km,
            },
            dedup_key=f"destination_deviation:{r['trip_id']}",
        )
        if made:
            report.destination_deviation += 1


async def run_checks(
    session: AsyncSession,
    since: datetime,
    until: datetime,
    *,
    now: datetime | None = None,
    rules: Rules | None = None,
) -> CheckReport:
    """Run every trip-aware rule over positions and trips in [since, until)."""
    rules = rules or Rules()
    now = now or datetime.now(UTC)
    report = CheckReport()
    await detect_private_use(session, since, until, rules, report)
    await detect_overtime(session, since, until, now, rules, report)
    await detect_deviation(session, since, until, rules, report)
    log.info(
        "supervision.checked",
        since=since.isoformat(),
        until=until.isoformat(),
        private_use=report.private_use,
        trip_overtime=report.trip_overtime,
        destination_deviation=report.destination_deviation,
    )
    return report


def default_window(now: datetime, minutes: float = 30) -> tuple[datetime, datetime]:
    return now - timedelta(minutes=minutes), now
