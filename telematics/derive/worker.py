"""The derive worker: status, trips/stops, daily mileage and supervision alerts from positions.

It runs beside the ingest, never on its hot path. Each cycle, in one transaction:

1. reads the positions received since its cursor (``received_at`` watermark, BRIN-indexed;
   ``ts`` floored at ``lookback_h`` so only recent partitions are touched), at most
   ``window_s`` of arrivals and none younger than ``settle_s`` (so batches still being
   committed are not skipped), with each point's geofence context computed in SQL;
2. per vehicle, resumes its stored state (segmenter + open rule episodes) and feeds the new
   points in ts order; a vehicle that received pings older than its state (buffered uploads
   after a coverage gap) is re-derived from the segment before them instead — the same code,
   run from a clean state, so re-processing is idempotent;
3. writes segments (upsert on (vehicle, started_at)), mileage, states, alerts (upsert on
   dedup_key) and status changes, runs the fleet-wide checks (offline, offline in service,
   not at the depot), advances the cursor;
4. after commit, publishes status and alert events on the bus.

Several workers can split the fleet with ``--shard i/n`` (vehicle_id % n = i, one cursor
per shard); within a shard an advisory lock keeps a single runner.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import asyncpg
import orjson
from redis.asyncio import Redis

from fleet.audit import Actor, record
from fleet.holidays import calendar
from fleet.logging import get_logger
from telematics import bus
from telematics.derive.config import DeriveSettings
from telematics.derive.segment import Pt, Segment, Segmenter, SegState
from telematics.positions.flags import UNRELIABLE
from telematics.positions.track import haversine_m
from telematics.rules.base import (
    AlertDraft,
    RulePoint,
    in_working_hours,
    point_rules,
    run_point_rules,
)

log = get_logger("derive")
DERIVE = Actor("derive")

_POINT_COLUMNS = """
    p.vehicle_id, p.ts, ST_Y(p.geom) AS lat, ST_X(p.geom) AS lon, p.speed_kmh, p.acc,
    p.odometer_km, p.flags, v.body_type, sl.limit_kmh, aa.inside, aa.ids
"""
# A geofence applies to a ping only from its creation on: a fence drawn today says nothing
# about where a car was allowed yesterday (re-derived or buffered pings included).
_POINT_JOINS = """
JOIN vehicles v ON v.id = p.vehicle_id
JOIN orgs o ON o.id = v.unit_id
LEFT JOIN LATERAL (
    SELECT min(g.speed_limit_kmh)::float8 AS limit_kmh
    FROM geofences g JOIN orgs go ON go.id = g.org_id
    WHERE g.purpose = 'speed_limit' AND g.active AND go.path @> o.path
      AND g.created_at <= p.ts AND ST_Covers(g.geom, p.geom)
) sl ON true
LEFT JOIN LATERAL (
    SELECT bool_or(ST_Covers(g.geom, p.geom)) AS inside, array_agg(g.id) AS ids
    FROM geofences g JOIN orgs go ON go.id = g.org_id
    WHERE g.purpose = 'allowed_area' AND g.active AND go.path @> o.path
      AND g.created_at <= p.ts
) aa ON true
"""
_NEW_POINTS_SQL = f"""
SELECT {_POINT_COLUMNS}
FROM positions p {_POINT_JOINS}
WHERE p.received_at > $1 AND p.received_at <= $2 AND p.ts >= $3 AND p.ts <= $4
  AND p.vehicle_id % $5 = $6
ORDER BY p.vehicle_id, p.ts
"""
_VEHICLE_POINTS_SQL = f"""
SELECT {_POINT_COLUMNS}
FROM positions p {_POINT_JOINS}
WHERE p.vehicle_id = $1 AND p.ts >= $2 AND p.ts <= $3
ORDER BY p.ts
"""


# Taken per shard; a vehicle queued several times is re-derived once from its earliest ts.
# Entries for points in the future of this cycle's `now` (tests run cycles at set times)
# stay queued.
_TAKE_BACKLOG_SQL = """
WITH taken AS (
    DELETE FROM derive_backlog
    WHERE vehicle_id % $1 = $2 AND from_ts <= $3
    RETURNING vehicle_id, from_ts
)
SELECT vehicle_id, min(from_ts) AS from_ts FROM taken GROUP BY vehicle_id
"""


@dataclass
class CycleReport:
    ran: bool = True
    points: int = 0
    vehicles: int = 0
    backlog: int = 0  # vehicles taken from derive_backlog
    reprocessed: int = 0
    segments: int = 0
    alerts_new: int = 0
    status_changes: int = 0
    cursor: datetime | None = None
    events: list[tuple[str, str | None, dict[str, Any]]] = field(default_factory=list)


@dataclass
class _MileageDelta:
    track_m: float = 0.0
    odo_min: float | None = None
    odo_max: float | None = None
    points: int = 0


class Deriver:
    def __init__(self, cfg: DeriveSettings, *, shard: tuple[int, int] = (0, 1)) -> None:
        self.cfg = cfg
        self.shard = shard
        self.tz = ZoneInfo(cfg.timezone)
        self.segmenter = Segmenter(
            motion_speed_kmh=cfg.motion_speed_kmh,
            stop_min_s=cfg.stop_min_s,
            trip_min_distance_m=cfg.trip_min_distance_m,
        )
        self.rules = point_rules(cfg)

    @property
    def cursor_name(self) -> str:
        i, n = self.shard
        return "received_at" if n == 1 else f"received_at:{i}/{n}"

    # ---- one cycle ------------------------------------------------------------------------

    async def cycle(self, conn: asyncpg.Connection, *, now: datetime | None = None) -> CycleReport:
        """One cycle in one transaction; events are returned, to publish after commit."""
        now = now or datetime.now(UTC)
        rep = CycleReport()
        async with conn.transaction():
            i, n = self.shard
            if not await conn.fetchval(
                "SELECT pg_try_advisory_xact_lock(hashtext('fleet.derive'), $1)", i
            ):
                rep.ran = False
                return rep
            # the rules' working calendar: one single-row read, a reload only after a change
            await calendar.refresh(conn)
            floor = now - timedelta(hours=self.cfg.lookback_h)
            cursor = await conn.fetchval(
                "SELECT position FROM derive_cursors WHERE name = $1 FOR UPDATE", self.cursor_name
            )
            cursor = cursor or floor
            upto = min(
                now - timedelta(seconds=self.cfg.settle_s),
                cursor + timedelta(seconds=self.cfg.window_s),
            )
            # Rows the cursor cannot see (committed late, or older than the floor), queued by
            # the ingest; taken in this transaction, so a failed cycle leaves them queued.
            backlog: dict[int, datetime] = {}
            for r in await conn.fetch(_TAKE_BACKLOG_SQL, n, i, now):
                backlog[r["vehicle_id"]] = r["from_ts"]
            rep.backlog = len(backlog)
            if upto > cursor:
                rows = await conn.fetch(_NEW_POINTS_SQL, cursor, upto, floor, now, n, i)
                await self._process(conn, rows, now, rep, backlog)
                await conn.execute(
                    "INSERT INTO derive_cursors (name, position) VALUES ($1, $2)"
                    " ON CONFLICT (name) DO UPDATE SET position = EXCLUDED.position,"
                    " updated_at = now()",
                    self.cursor_name,
                    upto,
                )
                rep.cursor = upto
            else:
                await self._process(conn, [], now, rep, backlog)
                rep.cursor = cursor
            await self._offline(conn, now, rep)
            await self._offline_in_service(conn, now, rep)
            await self._depot(conn, now, rep)
        return rep

    async def _process(
        self,
        conn: asyncpg.Connection,
        rows: list[asyncpg.Record],
        now: datetime,
        rep: CycleReport,
        backlog: dict[int, datetime] | None = None,
    ) -> None:
        by_vehicle: dict[int, list[asyncpg.Record]] = defaultdict(list)
        for r in rows:
            by_vehicle[r["vehicle_id"]].append(r)
        rep.points = len(rows)
        rep.vehicles = len(by_vehicle)
        # Queued vehicles are re-derived from their earliest queued point (which covers any
        # of their rows read by the cursor in this cycle too).
        redo: dict[int, datetime] = dict(backlog or {})
        if not by_vehicle and not redo:
            return
        ids = [v for v in by_vehicle if v not in redo]
        states = {
            r["vehicle_id"]: (r["last_ts"], orjson.loads(r["state"]))
            for r in await conn.fetch(
                "SELECT vehicle_id, last_ts, state::text AS state FROM derive_state"
                " WHERE vehicle_id = ANY($1::bigint[])",
                ids,
            )
        }
        segments: list[tuple[int, Segment]] = []
        drafts: list[AlertDraft] = []
        new_states: list[dict[str, Any]] = []
        mileage: dict[tuple[int, date], _MileageDelta] = {}
        for vid, vrows in by_vehicle.items():
            if vid in redo:
                redo[vid] = min(redo[vid], vrows[0]["ts"])
                continue
            last_ts, raw = states.get(vid, (None, {}))
            if last_ts is not None and vrows[0]["ts"] <= last_ts:
                redo[vid] = vrows[0]["ts"]
                continue
            seg_state = SegState.from_json(raw.get("seg"))
            episodes: dict[str, Any] = raw.get("episodes", {})
            segs, dr = self._feed(vid, seg_state, episodes, vrows, mileage)
            segments.extend((vid, s) for s in segs)
            drafts.extend(dr)
            new_states.append(self._state_row(vid, seg_state, episodes, vrows[-1]["ts"]))
        for vid, since in redo.items():
            segs, dr, st = await self.reprocess_vehicle(conn, vid, since, now, write=False)
            segments.extend((vid, s) for s in segs)
            drafts.extend(dr)
            if st is not None:
                new_states.append(st)
        rep.reprocessed = len(redo)
        rep.segments = len(segments)
        await self._write_segments(conn, segments)
        await self._write_mileage(conn, mileage)
        await self._write_states(conn, new_states)
        await self._write_alerts(conn, drafts, rep)
        await self._moving_parked(conn, new_states, now, rep)

    def _feed(
        self,
        vid: int,
        seg_state: SegState,
        episodes: dict[str, Any],
        vrows: list[asyncpg.Record],
        mileage: dict[tuple[int, date], _MileageDelta] | None,
    ) -> tuple[list[Segment], list[AlertDraft]]:
        usable = [r for r in vrows if not (r["flags"] or 0) & UNRELIABLE]
        pts = [
            Pt(r["ts"], r["lat"], r["lon"], r["speed_kmh"], r["acc"], r["odometer_km"])
            for r in usable
        ]
        if mileage is not None:
            prev = (seg_state.last_lat, seg_state.last_lon) if seg_state.last_ts else None
            for r in usable:
                day = r["ts"].astimezone(self.tz).date()
                m = mileage.setdefault((vid, day), _MileageDelta())
                if prev is not None:
                    m.track_m += haversine_m(prev[0], prev[1], r["lat"], r["lon"])
                prev = (r["lat"], r["lon"])
                m.points += 1
                odo = r["odometer_km"]
                if odo is not None:
                    m.odo_min = odo if m.odo_min is None else min(m.odo_min, odo)
                    m.odo_max = odo if m.odo_max is None else max(m.odo_max, odo)
        rule_pts = [
            RulePoint(
                ts=r["ts"],
                lat=r["lat"],
                lon=r["lon"],
                speed_kmh=r["speed_kmh"],
                acc=r["acc"],
                moving=self.segmenter.moving(p),
                body_type=r["body_type"],
                zone_limit_kmh=r["limit_kmh"],
                inside_allowed=r["inside"],
                allowed_ids=list(r["ids"] or []),
            )
            for r, p in zip(usable, pts, strict=True)
        ]
        segs = self.segmenter.feed(seg_state, pts)
        drafts = run_point_rules(self.rules, vid, episodes, rule_pts)
        return segs, drafts

    def _state_row(
        self, vid: int, seg_state: SegState, episodes: dict[str, Any], last_ts: datetime
    ) -> dict[str, Any]:
        return {
            "vehicle_id": vid,
            "last_ts": last_ts.isoformat(),
            "state": {"seg": seg_state.to_json(), "episodes": episodes},
            "mode": seg_state.mode,
            "since": datetime.fromtimestamp(seg_state.start_ts, UTC).isoformat()
            if seg_state.mode
            else None,
        }

    # ---- re-processing ------------------------------------------------------------------

    async def reprocess_vehicle(
        self,
        conn: asyncpg.Connection,
        vid: int,
        since: datetime,
        until: datetime,
        *,
        write: bool = True,
    ) -> tuple[list[Segment], list[AlertDraft], dict[str, Any] | None]:
        """Re-derive a vehicle from the segment that contains ``since`` up to ``until``.

        Deletes the vehicle's trips and stops from that segment's start, runs the segmenter
        and the point rules from a clean state over the stored positions, and recomputes the
        affected days' mileage with PostGIS. Alerts are upserted by dedup key, so episodes that
        were already reported are not reported twice.
        """
        # Start from a stop: a stop begins on a standing point, exactly where a clean state
        # begins too, so the re-run reproduces the boundaries before the late points.
        anchor = await conn.fetchval(
            "SELECT coalesce((SELECT max(started_at) FROM vehicle_stops"
            " WHERE vehicle_id = $1 AND started_at <= $2),"
            " least((SELECT min(started_at) FROM vehicle_trips WHERE vehicle_id = $1), $2))",
            vid,
            since,
        )
        await conn.execute(
            "DELETE FROM vehicle_trips WHERE vehicle_id = $1 AND started_at >= $2", vid, anchor
        )
        await conn.execute(
            "DELETE FROM vehicle_stops WHERE vehicle_id = $1 AND started_at >= $2", vid, anchor
        )
        rows = await conn.fetch(_VEHICLE_POINTS_SQL, vid, anchor, until)
        seg_state = SegState()
        episodes: dict[str, Any] = {}
        segs, drafts = self._feed(vid, seg_state, episodes, rows, None)
        first_day = anchor.astimezone(self.tz).date()
        last_day = (rows[-1]["ts"] if rows else until).astimezone(self.tz).date()
        await self.recompute_mileage(conn, vid, first_day, last_day)
        state = self._state_row(vid, seg_state, episodes, rows[-1]["ts"]) if rows else None
        if write:
            await self._write_segments(conn, [(vid, s) for s in segs])
            if state is not None:
                await self._write_states(conn, [state])
            await self._write_alerts(conn, drafts, CycleReport())
        return segs, drafts, state

    async def recompute_mileage(
        self, conn: asyncpg.Connection, vid: int, first: date, last: date
    ) -> None:
        """Exact daily mileage from stored positions: odometer span, else ST_Length."""
        await conn.execute(
            """
            WITH days AS (
                SELECT d::date AS day FROM generate_series($2::date, $3::date, '1 day') d
            ), m AS (
                SELECT days.day, count(p.ts) AS n,
                       coalesce(ST_Length(ST_MakeLine(p.geom ORDER BY p.ts)::geography), 0)
                           / 1000.0 AS track_km,
                       min(p.odometer_km) AS odo_min, max(p.odometer_km) AS odo_max
                FROM days
                LEFT JOIN positions p ON p.vehicle_id = $1
                    AND p.ts >= (days.day::timestamp AT TIME ZONE $4)
                    AND p.ts < ((days.day + 1)::timestamp AT TIME ZONE $4)
                    AND (p.flags & $5) = 0
                GROUP BY days.day
            )
            INSERT INTO vehicle_daily_mileage AS t (vehicle_id, day, distance_km, source,
                track_km, odometer_first_km, odometer_last_km, points, updated_at)
            SELECT $1, day,
                   CASE WHEN odo_max > odo_min THEN odo_max - odo_min ELSE track_km END,
                   CASE WHEN odo_max > odo_min THEN 'odometer' ELSE 'track' END,
                   track_km, odo_min, odo_max, n, now()
            FROM m WHERE n > 0
            ON CONFLICT (vehicle_id, day) DO UPDATE SET distance_km = EXCLUDED.distance_km,
                source = EXCLUDED.source, track_km = EXCLUDED.track_km,
                odometer_first_km = EXCLUDED.odometer_first_km,
                odometer_last_km = EXCLUDED.odometer_last_km, points = EXCLUDED.points,
                updated_at = now()
            """,
            vid,
            first,
            last,
            self.cfg.timezone,
            int(UNRELIABLE),
        )

    # ---- writes ---------------------------------------------------------------------------

    async def _write_segments(
        self, conn: asyncpg.Connection, segments: list[tuple[int, Segment]]
    ) -> None:
        trips = [_seg_json(vid, s) for vid, s in segments if s.kind == "trip"]
        stops = [_seg_json(vid, s) for vid, s in segments if s.kind == "stop"]
        if trips:
            await conn.execute(
                """
                INSERT INTO vehicle_trips AS t (vehicle_id, started_at, ended_at, start_geom,
                    end_geom, distance_m, max_speed_kmh, points, odometer_start_km,
                    odometer_end_km, updated_at)
                SELECT vehicle_id, started_at, ended_at, ST_SetSRID(ST_MakePoint(lon, lat), 4326),
                       CASE WHEN end_lat IS NULL THEN NULL
                            ELSE ST_SetSRID(ST_MakePoint(end_lon, end_lat), 4326) END,
                       distance_m, max_speed_kmh, points, odometer_start_km, odometer_end_km,
                       now()
                FROM jsonb_to_recordset($1::jsonb) AS d(vehicle_id bigint, started_at timestamptz,
                    ended_at timestamptz, lat float8, lon float8, end_lat float8, end_lon float8,
                    distance_m float8, max_speed_kmh real, points int, odometer_start_km float8,
                    odometer_end_km float8)
                ON CONFLICT (vehicle_id, started_at) DO UPDATE SET ended_at = EXCLUDED.ended_at,
                    end_geom = EXCLUDED.end_geom, distance_m = EXCLUDED.distance_m,
                    max_speed_kmh = EXCLUDED.max_speed_kmh, points = EXCLUDED.points,
                    odometer_end_km = EXCLUDED.odometer_end_km, updated_at = now()
                """,
                orjson.dumps(trips).decode(),
            )
        if stops:
            await conn.execute(
                """
                INSERT INTO vehicle_stops AS t (vehicle_id, started_at, ended_at, geom,
                    ignition_off, updated_at)
                SELECT vehicle_id, started_at, ended_at, ST_SetSRID(ST_MakePoint(lon, lat), 4326),
                       ignition_off, now()
                FROM jsonb_to_recordset($1::jsonb) AS d(vehicle_id bigint, started_at timestamptz,
                    ended_at timestamptz, lat float8, lon float8, ignition_off boolean)
                ON CONFLICT (vehicle_id, started_at) DO UPDATE SET ended_at = EXCLUDED.ended_at,
                    ignition_off = EXCLUDED.ignition_off, updated_at = now()
                """,
                orjson.dumps(stops).decode(),
            )

    async def _write_mileage(
        self, conn: asyncpg.Connection, mileage: dict[tuple[int, date], _MileageDelta]
    ) -> None:
        if not mileage:
            return
        rows = [
            {
                "vehicle_id": vid,
                "day": day.isoformat(),
                "track_km": m.track_m / 1000.0,
                "odo_min": m.odo_min,
                "odo_max": m.odo_max,
                "points": m.points,
            }
            for (vid, day), m in mileage.items()
        ]
        await conn.execute(
            """
            WITH d AS (
                SELECT * FROM jsonb_to_recordset($1::jsonb) AS d(vehicle_id bigint, day date,
                    track_km float8, odo_min float8, odo_max float8, points int)
            ), merged AS (
                SELECT d.vehicle_id, d.day,
                       coalesce(t.track_km, 0) + d.track_km AS track_km,
                       least(t.odometer_first_km, d.odo_min) AS odo_first,
                       greatest(t.odometer_last_km, d.odo_max) AS odo_last,
                       coalesce(t.points, 0) + d.points AS points
                FROM d LEFT JOIN vehicle_daily_mileage t
                    ON t.vehicle_id = d.vehicle_id AND t.day = d.day
            )
            INSERT INTO vehicle_daily_mileage AS t (vehicle_id, day, distance_km, source,
                track_km, odometer_first_km, odometer_last_km, points, updated_at)
            SELECT vehicle_id, day,
                   CASE WHEN odo_last > odo_first THEN odo_last - odo_first ELSE track_km END,
                   CASE WHEN odo_last > odo_first THEN 'odometer' ELSE 'track' END,
                   track_km, odo_first, odo_last, points, now()
            FROM merged
            ON CONFLICT (vehicle_id, day) DO UPDATE SET distance_km = EXCLUDED.distance_km,
                source = EXCLUDED.source, track_km = EXCLUDED.track_km,
                odometer_first_km = EXCLUDED.odometer_first_km,
                odometer_last_km = EXCLUDED.odometer_last_km, points = EXCLUDED.points,
                updated_at = now()
            """,
            orjson.dumps(rows).decode(),
        )

    async def _write_states(self, conn: asyncpg.Connection, states: list[dict[str, Any]]) -> None:
        if not states:
            return
        await conn.execute(
            """
            INSERT INTO derive_state (vehicle_id, last_ts, state, updated_at)
            SELECT vehicle_id, last_ts, state, now()
            FROM jsonb_to_recordset($1::jsonb) AS d(vehicle_id bigint, last_ts timestamptz,
                state jsonb)
            ON CONFLICT (vehicle_id) DO UPDATE SET last_ts = EXCLUDED.last_ts,
                state = EXCLUDED.state, updated_at = now()
            """,
            orjson.dumps(states).decode(),
        )

    async def _write_alerts(
        self, conn: asyncpg.Connection, drafts: list[AlertDraft], rep: CycleReport
    ) -> None:
        if not drafts:
            return
        unique = {d.dedup_key: d for d in drafts}
        payload = [
            {
                "kind": d.kind,
                "severity": d.severity,
                "vehicle_id": d.vehicle_id,
                "started_at": d.started_at.isoformat(),
                "ended_at": d.ended_at.isoformat() if d.ended_at else None,
                "lat": d.lat,
                "lon": d.lon,
                "message": d.message,
                "evidence": d.evidence,
                "dedup_key": d.dedup_key,
            }
            for d in unique.values()
        ]
        rows = await conn.fetch(
            """
            INSERT INTO alerts AS a (kind, severity, vehicle_id, org_id, started_at, ended_at,
                location, message, evidence, dedup_key)
            SELECT d.kind, d.severity, d.vehicle_id, v.unit_id, d.started_at, d.ended_at,
                   ST_SetSRID(ST_MakePoint(d.lon, d.lat), 4326), d.message, d.evidence,
                   d.dedup_key
            FROM jsonb_to_recordset($1::jsonb) AS d(kind text, severity text, vehicle_id bigint,
                started_at timestamptz, ended_at timestamptz, lat float8, lon float8,
                message text, evidence jsonb, dedup_key text)
            JOIN vehicles v ON v.id = d.vehicle_id
            ON CONFLICT (dedup_key) DO UPDATE SET ended_at = EXCLUDED.ended_at,
                message = EXCLUDED.message, evidence = EXCLUDED.evidence
            RETURNING a.id, a.kind, a.severity, a.vehicle_id, a.started_at, a.message,
                ST_Y(a.location) AS lat, ST_X(a.location) AS lon, (xmax = 0) AS inserted,
                (SELECT o.path::text FROM orgs o WHERE o.id = a.org_id) AS org_path
            """,
            orjson.dumps(payload).decode(),
        )
        for r in rows:
            if r["inserted"]:
                await record(
                    conn,
                    DERIVE,
                    "alert.create",
                    "alert",
                    r["id"],
                    to_state="open",
                    data={
                        "kind": r["kind"],
                        "severity": r["severity"],
                        "vehicle_id": r["vehicle_id"],
                    },
                )
        self._alert_events(rows, rep)

    def _alert_events(self, rows: list[asyncpg.Record], rep: CycleReport) -> None:
        for r in rows:
            if not r.get("inserted", True):
                continue
            rep.alerts_new += 1
            rep.events.append(
                (
                    "alert",
                    r["org_path"],
                    {
                        "id": r["id"],
                        "kind": r["kind"],
                        "severity": r["severity"],
                        "vehicle_id": r["vehicle_id"],
                        "started_at": r["started_at"].isoformat(),
                        "message": r["message"],
                        "lat": r["lat"],
                        "lon": r["lon"],
                    },
                )
            )

    # ---- status ---------------------------------------------------------------------------

    async def _moving_parked(
        self,
        conn: asyncpg.Connection,
        states: list[dict[str, Any]],
        now: datetime,
        rep: CycleReport,
    ) -> None:
        wanted = [
            {
                "vehicle_id": s["vehicle_id"],
                "status": "moving" if s["mode"] == "trip" else "parked",
                "since": s["since"],
            }
            for s in states
            if s["mode"] is not None
        ]
        if not wanted:
            return
        rows = await conn.fetch(
            """
            WITH w AS (
                SELECT * FROM jsonb_to_recordset($1::jsonb)
                    AS w(vehicle_id bigint, status text, since timestamptz)
            ), old AS (
                SELECT lp.vehicle_id, lp.status AS previous FROM latest_positions lp
                JOIN w ON w.vehicle_id = lp.vehicle_id
                WHERE lp.status <> w.status AND lp.ts >= $2
                FOR UPDATE OF lp
            )
            UPDATE latest_positions lp SET status = w.status, status_since = w.since
            FROM w, old, vehicles v, orgs o
            WHERE lp.vehicle_id = w.vehicle_id AND old.vehicle_id = lp.vehicle_id
              AND v.id = lp.vehicle_id AND o.id = v.unit_id
            RETURNING lp.vehicle_id, lp.status, old.previous, lp.status_since, lp.ts,
                ST_Y(lp.geom) AS lat, ST_X(lp.geom) AS lon, o.path::text AS org_path
            """,
            orjson.dumps(wanted).decode(),
            now - timedelta(seconds=self.cfg.offline_after_s),
        )
        self._status_events(rows, rep)

    async def _offline(self, conn: asyncpg.Connection, now: datetime, rep: CycleReport) -> None:
        i, n = self.shard
        rows = await conn.fetch(
            """
            WITH old AS (
                SELECT vehicle_id, status AS previous FROM latest_positions
                WHERE status <> 'offline' AND ts < $1 AND vehicle_id % $2 = $3
                FOR UPDATE
            )
            UPDATE latest_positions lp SET status = 'offline', status_since = lp.ts
            FROM old, vehicles v, orgs o
            WHERE old.vehicle_id = lp.vehicle_id AND v.id = lp.vehicle_id AND o.id = v.unit_id
            RETURNING lp.vehicle_id, lp.status, old.previous, lp.status_since, lp.ts,
                ST_Y(lp.geom) AS lat, ST_X(lp.geom) AS lon, o.path::text AS org_path
            """,
            now - timedelta(seconds=self.cfg.offline_after_s),
            n,
            i,
        )
        self._status_events(rows, rep)

    def _status_events(self, rows: list[asyncpg.Record], rep: CycleReport) -> None:
        for r in rows:
            rep.status_changes += 1
            rep.events.append(
                (
                    "status",
                    r["org_path"],
                    {
                        "vehicle_id": r["vehicle_id"],
                        "status": r["status"],
                        "previous": r["previous"],
                        "since": r["status_since"].isoformat(),
                        "ts": r["ts"].isoformat(),
                        "lat": r["lat"],
                        "lon": r["lon"],
                    },
                )
            )

    # ---- fleet-wide rules -------------------------------------------------------------------

    async def _offline_in_service(
        self, conn: asyncpg.Connection, now: datetime, rep: CycleReport
    ) -> None:
        i, n = self.shard
        # a terminal that reports again closes its offline alert at its first ping back
        await conn.execute(
            """
            UPDATE alerts a SET ended_at = (
                SELECT min(p.ts) FROM positions p
                WHERE p.vehicle_id = a.vehicle_id AND p.ts > a.started_at AND p.ts <= $1)
            FROM latest_positions lp
            WHERE a.kind = 'terminal_offline' AND a.ended_at IS NULL
              AND lp.vehicle_id = a.vehicle_id AND lp.ts > a.started_at
            """,
            now,
        )
        if not in_working_hours(now, self.cfg):
            return
        minutes = self.cfg.offline_in_service_min
        rows = await conn.fetch(
            """
            INSERT INTO alerts AS a (kind, severity, vehicle_id, org_id, started_at, location,
                message, evidence, dedup_key)
            SELECT 'terminal_offline', 'warning', v.id, v.unit_id, lp.ts, lp.geom,
                   format('终端离线 terminal offline while in service: no ping since %s'
                          ' (> %s min, during working hours)',
                          to_char(lp.ts AT TIME ZONE $4, 'YYYY-MM-DD HH24:MI'), $2::float8),
                   jsonb_build_object(
                       'type', 'FeatureCollection', 'rule', 'terminal_offline',
                       'vehicle_id', v.id,
                       'thresholds', jsonb_build_object('offline_min', $2::float8,
                           'vehicle_status', v.status, 'checked_at', $1::timestamptz),
                       'features', jsonb_build_array(jsonb_build_object(
                           'type', 'Feature', 'geometry', ST_AsGeoJSON(lp.geom, 6)::jsonb,
                           'properties', jsonb_build_object('ts', lp.ts, 'terminal_id',
                               lp.terminal_id, 'last_known', true)))),
                   'terminal_offline:' || v.id || ':' || floor(extract(epoch FROM lp.ts))::bigint
            FROM latest_positions lp JOIN vehicles v ON v.id = lp.vehicle_id
            WHERE v.status = 'in_service' AND lp.ts < $1 - make_interval(secs => $2 * 60)
              AND v.id % $3 = $5
            ON CONFLICT (dedup_key) DO NOTHING
            RETURNING a.id, a.kind, a.severity, a.vehicle_id, a.started_at, a.message,
                ST_Y(a.location) AS lat, ST_X(a.location) AS lon,
                (SELECT o.path::text FROM orgs o WHERE o.id = a.org_id) AS org_path
            """,
            now,
            minutes,
            n,
            self.cfg.timezone,
            i,
        )
        self._alert_events(rows, rep)

    async def _depot(self, conn: asyncpg.Connection, now: datetime, rep: CycleReport) -> None:
        local = now.astimezone(self.tz)
        if local.time() < self.cfg.depot_check_at:
            return
        i, n = self.shard
        name = "depot_check" if n == 1 else f"depot_check:{i}/{n}"
        day_start = datetime.combine(local.date(), self.cfg.depot_check_at, self.tz)
        done = await conn.fetchval("SELECT position FROM derive_cursors WHERE name = $1", name)
        if done is not None and done >= day_start:
            return
        rows = await conn.fetch(
            """
            INSERT INTO alerts AS a (kind, severity, vehicle_id, org_id, started_at, location,
                message, evidence, dedup_key)
            SELECT 'not_at_depot', 'warning', v.id, v.unit_id, $1, lp.geom,
                   format('夜间未入库 not back at the depot at %s: %s m away (radius %s m)',
                          $5::text, round(ST_Distance(lp.geom::geography, v.depot::geography)),
                          $2::float8),
                   jsonb_build_object(
                       'type', 'FeatureCollection', 'rule', 'not_at_depot', 'vehicle_id', v.id,
                       'thresholds', jsonb_build_object('radius_m', $2::float8,
                           'checked_at', $1::timestamptz, 'local_check_time', $5::text),
                       'distance_m', round(ST_Distance(lp.geom::geography, v.depot::geography)),
                       'features', jsonb_build_array(
                           jsonb_build_object('type', 'Feature',
                               'geometry', ST_AsGeoJSON(v.depot, 6)::jsonb,
                               'properties', jsonb_build_object('role', 'depot',
                                   'radius_m', $2::float8)),
                           jsonb_build_object('type', 'Feature',
                               'geometry', ST_AsGeoJSON(lp.geom, 6)::jsonb,
                               'properties', jsonb_build_object('role', 'last_position',
                                   'ts', lp.ts, 'status', lp.status)))),
                   'not_at_depot:' || v.id || ':' || $3::text
            FROM vehicles v JOIN latest_positions lp ON lp.vehicle_id = v.id
            WHERE v.status = 'in_service' AND v.id % $4 = $6
              AND NOT ST_DWithin(lp.geom::geography, v.depot::geography, $2)
            ON CONFLICT (dedup_key) DO NOTHING
            RETURNING a.id, a.kind, a.severity, a.vehicle_id, a.started_at, a.message,
                ST_Y(a.location) AS lat, ST_X(a.location) AS lon,
                (SELECT o.path::text FROM orgs o WHERE o.id = a.org_id) AS org_path
            """,
            now,
            self.cfg.depot_radius_m,
            local.date().isoformat(),
            n,
            f"{self.cfg.depot_check_at:%H:%M}",
            i,
        )
        self._alert_events(rows, rep)
        await conn.execute(
            "INSERT INTO derive_cursors (name, position) VALUES ($1, $2) ON CONFLICT (name)"
            " DO UPDATE SET position = EXCLUDED.position, updated_at = now()",
            name,
            now,
        )


def _seg_json(vid: int, s: Segment) -> dict[str, Any]:
    return {
        "vehicle_id": vid,
        "started_at": s.started_at.isoformat(),
        "ended_at": s.ended_at.isoformat() if s.ended_at else None,
        "lat": s.lat,
        "lon": s.lon,
        "end_lat": s.end_lat,
        "end_lon": s.end_lon,
        "distance_m": s.distance_m,
        "max_speed_kmh": s.max_speed_kmh,
        "points": s.points,
        "odometer_start_km": s.odometer_start_km,
        "odometer_end_km": s.odometer_end_km,
        "ignition_off": s.ignition_off,
    }


async def publish(redis: Redis, rep: CycleReport) -> None:
    for type_, org_path, data in rep.events:
        await bus.publish_event(redis, type_, data, org_path=org_path)


async def run_forever(
    dsn: str,
    redis_url: str,
    cfg: DeriveSettings,
    *,
    shard: tuple[int, int] = (0, 1),
    once: bool = False,
    stop: asyncio.Event | None = None,
) -> None:
    """The worker loop: a cycle every ``cycle_s``; a failed cycle is logged and retried."""
    deriver = Deriver(cfg, shard=shard)
    redis = bus.redis_client(redis_url)
    stop = stop or asyncio.Event()
    conn: asyncpg.Connection | None = None
    checked = False  # the start-up check of the holidays calendar, once per process
    try:
        while not stop.is_set():
            behind = False
            started = asyncio.get_running_loop().time()
            try:
                if conn is None or conn.is_closed():
                    conn = await asyncpg.connect(
                        dsn, server_settings={"application_name": "derive"}
                    )
                    if not checked:
                        cal = await calendar.load(conn)
                        calendar.warn_missing(cal, datetime.now(deriver.tz).date(), "derive")
                        checked = True
                rep = await deriver.cycle(conn)
                await publish(redis, rep)
                behind = (
                    rep.ran
                    and rep.cursor is not None
                    and rep.cursor
                    < datetime.now(UTC) - timedelta(seconds=cfg.settle_s + cfg.cycle_s)
                )
                if rep.points or rep.events or rep.backlog:
                    log.info(
                        "derive.cycle",
                        points=rep.points,
                        vehicles=rep.vehicles,
                        backlog=rep.backlog,
                        reprocessed=rep.reprocessed,
                        segments=rep.segments,
                        alerts=rep.alerts_new,
                        status=rep.status_changes,
                        cursor=rep.cursor.isoformat() if rep.cursor else None,
                        seconds=round(asyncio.get_running_loop().time() - started, 3),
                    )
            except (
                OSError,
                asyncpg.PostgresError,
                asyncpg.InterfaceError,
                asyncpg.InternalClientError,
            ) as exc:
                log.warning("derive.cycle_failed", error=repr(exc)[:300])
                if conn is not None and not conn.is_closed():
                    await conn.close()
                conn = None
            if once:
                break
            if behind:
                continue  # catching up: the next window at once
            elapsed = asyncio.get_running_loop().time() - started
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), timeout=max(0.5, cfg.cycle_s - elapsed))
    finally:
        if conn is not None and not conn.is_closed():
            await conn.close()
        await redis.aclose()
