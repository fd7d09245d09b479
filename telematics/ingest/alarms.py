"""Terminal alarm bits -> platform alerts, for every transport (an ingest hook).

A JT/T 808 terminal reports its alarms as bits of each location's alarm field (MQTT pings
carry the same field as `alarm`). A bit stays set while the condition lasts, so each bit
is an episode: an alert opens at the first point with the bit set (dedup key
``alarm:<kind>:<vehicle>:<start ms>``, so a redelivered point is harmless) and ends
(``ended_at``) at the first later point without it. The emergency bit (0, the driver's SOS
button) is a `critical` alert of kind ``sos``, pushed to every console in scope right after
the batch commits (the console sounds it); overspeed, fatigue, main power cut and GNSS
antenna faults are recorded as `warning` alerts and pushed the same way.

Runs inside the batch's transaction (the alerts commit with the positions that raised them),
with the episodes still open held in memory (loaded once from the alerts table) and updated
only after the commit, so a retried batch sees the same state. Several ingest processes for
one terminal would each hold their own view: a terminal's pings normally reach one process.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import asyncpg
import orjson

from fleet.audit import Actor, record
from fleet.logging import get_logger
from telematics.ingest.pipeline import Item

log = get_logger("telematics.alarms")


@dataclass(frozen=True)
class Alarm:
    bit: int
    kind: str
    severity: str
    message: str  # shown to Chinese users as it is


# JT/T 808-2013 table 24 (alarm flags) — the bits the platform raises alerts for.
ALARMS: tuple[Alarm, ...] = (
    Alarm(0, "sos", "critical", "紧急报警：驾驶员触发求助按钮"),
    Alarm(1, "terminal_overspeed", "warning", "终端超速报警"),
    Alarm(2, "fatigue_driving", "warning", "疲劳驾驶报警"),
    Alarm(5, "gnss_antenna_fault", "warning", "GNSS 天线未接或被剪断"),
    Alarm(6, "gnss_antenna_fault", "warning", "GNSS 天线短路"),
    Alarm(8, "power_cut", "warning", "终端主电源掉电"),
)
KINDS: dict[str, int] = {}
for _a in ALARMS:
    KINDS[_a.kind] = KINDS.get(_a.kind, 0) | (1 << _a.bit)
MASK = sum(1 << a.bit for a in ALARMS)
_FIRST = {k: next(a for a in ALARMS if a.kind == k) for k in KINDS}

_INSERT = """
INSERT INTO alerts AS a (kind, severity, vehicle_id, org_id, started_at, location, message,
                         evidence, dedup_key)
SELECT d.kind, d.severity, d.vehicle_id, v.unit_id, d.started_at,
       ST_SetSRID(ST_MakePoint(d.lon, d.lat), 4326), d.message, d.evidence, d.dedup_key
FROM jsonb_to_recordset($1::jsonb) AS d(kind text, severity text, vehicle_id bigint,
    started_at timestamptz, lat float8, lon float8, message text, evidence jsonb,
    dedup_key text)
JOIN vehicles v ON v.id = d.vehicle_id
ON CONFLICT (dedup_key) DO NOTHING
RETURNING a.id, a.kind, a.severity, a.vehicle_id, a.started_at, a.message, a.dedup_key
"""
_CLOSE = """
UPDATE alerts a SET ended_at = d.ended_at
FROM unnest($1::text[], $2::timestamptz[]) AS d(dedup_key, ended_at)
WHERE a.dedup_key = d.dedup_key AND a.ended_at IS NULL
"""
_LOAD = """
SELECT vehicle_id, kind, dedup_key, extract(epoch FROM started_at)::float8 AS started
FROM alerts WHERE dedup_key LIKE 'alarm:%' AND ended_at IS NULL
"""

Episode = tuple[float, str]  # (started epoch s, dedup key)


def dedup_key(kind: str, vehicle_id: int, started: float) -> str:
    return f"alarm:{kind}:{vehicle_id}:{round(started * 1000)}"


def _draft(kind: str, item: Item) -> dict[str, Any]:
    p = item.ping
    assert p is not None
    a = _FIRST[kind]
    bits = [b.bit for b in ALARMS if b.kind == kind and (p.alarm or 0) >> b.bit & 1]
    message = next((b.message for b in ALARMS if b.bit in bits), a.message)
    return {
        "kind": kind,
        "severity": a.severity,
        "vehicle_id": item.vehicle_id,
        "started_at": p.ts.isoformat(),
        "lat": p.lat,
        "lon": p.lon,
        "message": message,
        "evidence": {
            "type": "FeatureCollection",
            "rule": "terminal_alarm",
            "alarm": p.alarm,
            "bits": bits,
            "terminal_id": item.terminal_id,
            "features": [
                {
                    "type": "Feature",
                    "geometry": {"type": "Point", "coordinates": [p.lon, p.lat]},
                    "properties": {"ts": p.ts.isoformat(), "speed_kmh": p.speed_kmh},
                }
            ],
        },
        "dedup_key": dedup_key(kind, item.vehicle_id, item.epoch),
    }


@dataclass
class _Pending:
    items: Sequence[Item]
    opened: dict[tuple[int, str], Episode]
    closed: list[tuple[int, str]]
    events: list[tuple[str | None, dict[str, Any]]]


class AlarmAlerts:
    """The hook pair: `in_transaction` writes alerts, `post_commit` keeps state and publishes."""

    def __init__(self, actor: str, redis: Any = None) -> None:
        self.actor = Actor(actor)
        self.redis = redis
        self.open: dict[int, dict[str, Episode]] | None = None
        self._pending: _Pending | None = None

    async def _load(self, conn: asyncpg.Connection) -> dict[int, dict[str, Episode]]:
        state: dict[int, dict[str, Episode]] = {}
        for r in await conn.fetch(_LOAD):
            state.setdefault(r["vehicle_id"], {})[r["kind"]] = (r["started"], r["dedup_key"])
        return state

    async def in_transaction(self, conn: asyncpg.Connection, items: Sequence[Item]) -> None:
        self._pending = None
        if self.open is None:
            self.open = await self._load(conn)
        state = self.open
        opened: dict[tuple[int, str], Episode] = {}
        closed: list[tuple[int, str]] = []
        drafts: list[dict[str, Any]] = []
        ends: dict[str, datetime] = {}
        local: dict[int, dict[str, Episode | None]] = {}  # in-batch view over `state`
        for item in items:  # sorted by (vehicle, ts) by the flag stage
            p = item.ping
            bits = (p.alarm or 0) & MASK if p is not None else 0
            vid = item.vehicle_id
            if not bits and vid not in state and vid not in local:
                continue
            view = local.setdefault(vid, dict(state.get(vid, {})))
            for kind, mask in KINDS.items():
                episode = view.get(kind)
                if bits & mask:
                    if episode is None:
                        d = _draft(kind, item)
                        drafts.append(d)
                        view[kind] = opened[(vid, kind)] = (item.epoch, d["dedup_key"])
                elif episode is not None and item.epoch > episode[0]:
                    ends[episode[1]] = item.ts
                    view[kind] = None
                    closed.append((vid, kind))
                    opened.pop((vid, kind), None)
        if not drafts and not ends:
            return
        events: list[tuple[str | None, dict[str, Any]]] = []
        if drafts:
            paths = {i.vehicle_id: i.org_path for i in items}
            for r in await conn.fetch(_INSERT, orjson.dumps(drafts).decode()):
                await record(
                    conn,
                    self.actor,
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
                d = next(x for x in drafts if x["dedup_key"] == r["dedup_key"])
                events.append(
                    (
                        paths.get(r["vehicle_id"]),
                        {
                            "id": r["id"],
                            "kind": r["kind"],
                            "severity": r["severity"],
                            "vehicle_id": r["vehicle_id"],
                            "started_at": r["started_at"].isoformat(),
                            "message": r["message"],
                            "lat": d["lat"],
                            "lon": d["lon"],
                        },
                    )
                )
        if ends:
            await conn.execute(_CLOSE, list(ends), list(ends.values()))
        self._pending = _Pending(items, opened, closed, events)

    async def post_commit(self, items: Sequence[Item]) -> None:
        pending, self._pending = self._pending, None
        if pending is None or pending.items is not items or self.open is None:
            return  # nothing raised, or the batch was stored another way (no hooks ran)
        for vid, kind in pending.closed:
            kinds = self.open.get(vid)
            if kinds is not None:
                kinds.pop(kind, None)
                if not kinds:
                    del self.open[vid]
        for (vid, kind), episode in pending.opened.items():
            self.open.setdefault(vid, {})[kind] = episode
        for org_path, data in pending.events:
            log.info("alarm.alert", kind=data["kind"], vehicle=data["vehicle_id"], id=data["id"])
            if self.redis is not None:
                from telematics.bus import publish_event

                await publish_event(self.redis, "alert", data, org_path=org_path)
