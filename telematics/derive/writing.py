"""What a derive cycle writes: trips and stops, per-vehicle state, alerts (all upserts).

Every write is keyed (segments by (vehicle, started_at), state by vehicle, alerts by
dedup_key), so re-running a window — a retried cycle, a re-processed vehicle — rewrites the
same rows instead of adding new ones. A new alert is audited and becomes a live event.
"""

from __future__ import annotations

from typing import Any

import asyncpg
import orjson

from fleet.audit import Actor, record
from telematics.derive.report import CycleReport, alert_events
from telematics.derive.segment import Segment
from telematics.rules.base import AlertDraft

DERIVE = Actor("derive")


async def write_segments(conn: asyncpg.Connection, segments: list[tuple[int, Segment]]) -> None:
    trips = [seg_json(vid, s) for vid, s in segments if s.kind == "trip"]
    stops = [seg_json(vid, s) for vid, s in segments if s.kind == "stop"]
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


async def write_states(conn: asyncpg.Connection, states: list[dict[str, Any]]) -> None:
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


async def write_alerts(
    conn: asyncpg.Connection, drafts: list[AlertDraft], rep: CycleReport
) -> None:
    """Upsert the point rules' alerts by dedup key; the new ones are audited and announced."""
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
    alert_events(rows, rep)


def seg_json(vid: int, s: Segment) -> dict[str, Any]:
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
