"""What the broker refuses, made visible: `fleet broker monitor` reads Mosquitto's log.

Some refusals never reach the ingest: a `/positions` array larger than the broker's
`max_packet_size` makes Mosquitto disconnect the terminal (which then re-sends the same
upload forever), a login with the wrong client id or a subscription is refused by
fleet_guard. Mosquitto writes each of these to its log, naming the client id — a terminal's
is its terminal id (fleet_guard enforces it). The monitor follows the log, counts each
refusal per client id and reason in `broker_refusals` (the log cursor is committed with the
counts, so a line counts once), and when a terminal keeps failing — `alert_after` refusals
of one reason within `window_s` — raises a `terminal_refused` alert on its vehicle
(audited, pushed to the consoles like every supervision alert).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import asyncpg
import orjson
from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

from fleet.audit import Actor, record
from fleet.config import ROOT, Settings
from fleet.logging import get_logger

log = get_logger("telematics.refusals")
MONITOR = Actor("broker-monitor")

# reason -> how an operator reads it (alert messages are shown to Chinese users as they are)
REASONS: dict[str, str] = {
    "oversize_packet": "上传数据包超过代理上限（缓存上传未拆分）",
    "malformed_packet": "数据包格式错误",
    "protocol_error": "MQTT 协议错误",
    "bad_client_id": "客户端标识不是终端编号",
    "subscribe_refused": "试图订阅主题（终端不得订阅）",
    "not_authorised": "登录认证失败",
    "queue_full": "代理队列已满，消息被丢弃",
}
# Refusals that say a terminal's data is not getting in, or that it probes the broker: a
# terminal that keeps producing them is an alert. (`not_authorised` names no client:
# Mosquitto logs "<unknown>"; `queue_full` concerns the ingest's own session.)
ALERTING = frozenset(
    {"oversize_packet", "malformed_packet", "protocol_error", "bad_client_id", "subscribe_refused"}
)

_LINE = re.compile(r"^(?P<at>\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(?:[+-]\d{4})?): (?P<msg>.*)$")
_DISCONNECT = r"^Client (?P<id>\S+) disconnected"
_MESSAGES: tuple[tuple[re.Pattern[str], str], ...] = tuple(
    (re.compile(pattern), reason)
    for pattern, reason in (
        (_DISCONNECT + r" due to oversize packet\.$", "oversize_packet"),
        (_DISCONNECT + r" due to malformed packet\.$", "malformed_packet"),
        (_DISCONNECT + r" due to protocol error\.$", "protocol_error"),
        (_DISCONNECT + r", not authorised\.$", "not_authorised"),
        (
            r'^fleet_guard: refused terminal (?P<id>\S+): client id "(?P<detail>.*)" is',
            "bad_client_id",
        ),
        (
            r"^fleet_guard: refused subscription of (?P<id>\S+) to (?P<detail>.*)$",
            "subscribe_refused",
        ),
        (r"^Outgoing messages are being dropped for client (?P<id>\S+)\.$", "queue_full"),
    )
)


class MonitorSettings(BaseSettings):
    """`fleet broker monitor` tuning (env FLEET_BROKER_MONITOR__*)."""

    model_config = SettingsConfigDict(
        env_prefix="FLEET_BROKER_MONITOR__", env_file=str(ROOT / ".env"), extra="ignore"
    )

    alert_after: int = Field(3, ge=1)  # refusals of one reason within window_s: an alert
    window_s: float = Field(3600.0, gt=0)
    poll_s: float = Field(2.0, gt=0)
    read_max_bytes: int = Field(4 << 20, ge=4096)  # log read per scan at most


@dataclass(frozen=True, slots=True)
class Refusal:
    at: datetime
    client_id: str
    reason: str
    detail: str | None


def parse_line(line: str) -> Refusal | None:
    """One broker log line -> the refusal it records, or None."""
    m = _LINE.match(line.rstrip("\r\n"))
    if m is None:
        return None
    msg = m["msg"]
    for pattern, reason in _MESSAGES:
        r = pattern.match(msg)
        if r is not None:
            at = m["at"]
            when = (
                datetime.strptime(at, "%Y-%m-%dT%H:%M:%S%z")
                if len(at) > 19
                else datetime.strptime(at, "%Y-%m-%dT%H:%M:%S").astimezone()  # local time
            )
            detail = r.groupdict().get("detail")
            return Refusal(when, r["id"], reason, detail[:200] if detail else None)
    return None


@dataclass
class _Count:
    n: int
    first_at: datetime
    last_at: datetime
    detail: str | None


def aggregate(refusals: Iterable[Refusal]) -> dict[tuple[str, str], _Count]:
    out: dict[tuple[str, str], _Count] = {}
    for r in refusals:
        c = out.get((r.client_id, r.reason))
        if c is None:
            out[(r.client_id, r.reason)] = _Count(1, r.at, r.at, r.detail)
        else:
            c.n += 1
            c.first_at = min(c.first_at, r.at)
            c.last_at = max(c.last_at, r.at)
            c.detail = r.detail or c.detail
    return out


@dataclass
class ScanReport:
    lines: int = 0
    refusals: int = 0
    alerts_new: int = 0
    # alert events to publish after commit: (org_path, data)
    events: list[tuple[str | None, dict[str, Any]]] = field(default_factory=list)


def _read_new(path: Path, inode: int, offset: int, max_bytes: int) -> tuple[int, int, list[str]]:
    """Complete lines appended since (inode, offset); starts over on a new or shorter file."""
    try:
        f = path.open("rb")
    except FileNotFoundError:
        return inode, offset, []
    with f:
        st = os.fstat(f.fileno())
        if st.st_ino != inode or st.st_size < offset:
            inode, offset = st.st_ino, 0  # rotated or truncated
        f.seek(offset)
        chunk = f.read(max_bytes)
    end = chunk.rfind(b"\n")
    if end < 0:
        return inode, offset, []
    text = chunk[: end + 1].decode("utf-8", errors="replace")
    return inode, offset + end + 1, text.splitlines()


_UPSERT = """
INSERT INTO broker_refusals AS r (client_id, reason, count, first_at, last_at, window_start,
                                  window_count, detail)
SELECT c, reason, n, f, l, f, n, d
FROM unnest($1::text[], $2::text[], $3::bigint[], $4::timestamptz[], $5::timestamptz[],
            $6::text[]) AS u(c, reason, n, f, l, d)
ON CONFLICT (client_id, reason) DO UPDATE SET
    count = r.count + EXCLUDED.count,
    first_at = least(r.first_at, EXCLUDED.first_at),
    last_at = greatest(r.last_at, EXCLUDED.last_at),
    detail = coalesce(EXCLUDED.detail, r.detail),
    window_start = CASE WHEN EXCLUDED.last_at - r.window_start > make_interval(secs => $7)
                        THEN EXCLUDED.first_at ELSE r.window_start END,
    window_count = CASE WHEN EXCLUDED.last_at - r.window_start > make_interval(secs => $7)
                        THEN EXCLUDED.count ELSE r.window_count + EXCLUDED.count END
RETURNING client_id, reason, count, window_start, window_count, last_at, detail
"""

_ALERT = """
INSERT INTO alerts AS a (kind, severity, vehicle_id, org_id, started_at, location, message,
                         evidence, dedup_key)
SELECT 'terminal_refused', 'warning', v.id, v.unit_id, d.window_start, lp.geom,
       format('终端上传被拒 %s：%s，%s 次（%s 起）', t.id, d.label, d.window_count,
              to_char(d.window_start AT TIME ZONE $2, 'YYYY-MM-DD HH24:MI')),
       jsonb_build_object(
           'type', 'FeatureCollection', 'rule', 'terminal_refused', 'vehicle_id', v.id,
           'terminal_id', t.id, 'reason', d.reason, 'detail', d.detail,
           'count_in_window', d.window_count, 'count_total', d.count,
           'window_start', d.window_start, 'last_at', d.last_at,
           'thresholds', jsonb_build_object('alert_after', $3::int, 'window_s', $4::float8),
           'features', CASE WHEN lp.geom IS NULL THEN '[]'::jsonb ELSE jsonb_build_array(
               jsonb_build_object('type', 'Feature', 'geometry', ST_AsGeoJSON(lp.geom, 6)::jsonb,
                   'properties', jsonb_build_object('ts', lp.ts, 'last_known', true))) END),
       'terminal_refused:' || t.id || ':' || d.reason || ':'
           || floor(extract(epoch FROM d.window_start))::bigint
FROM jsonb_to_recordset($1::jsonb) AS d(client_id text, reason text, label text, detail text,
    count bigint, window_start timestamptz, window_count bigint, last_at timestamptz)
JOIN terminals t ON t.id = d.client_id
JOIN vehicles v ON v.id = t.vehicle_id
LEFT JOIN latest_positions lp ON lp.vehicle_id = v.id
ON CONFLICT (dedup_key) DO UPDATE SET message = EXCLUDED.message, evidence = EXCLUDED.evidence
RETURNING a.id, a.kind, a.severity, a.vehicle_id, a.started_at, a.message,
    ST_Y(a.location) AS lat, ST_X(a.location) AS lon, (xmax = 0) AS inserted,
    (SELECT o.path::text FROM orgs o WHERE o.id = a.org_id) AS org_path
"""


async def scan(
    conn: asyncpg.Connection, path: Path, cfg: MonitorSettings, *, timezone: str
) -> ScanReport:
    """Read what the broker logged since the last scan; count and alert in one transaction."""
    rep = ScanReport()
    key = str(path)  # callers pass it absolute
    async with conn.transaction():
        row = await conn.fetchrow(
            'SELECT inode, "offset" FROM broker_log_cursor WHERE path = $1 FOR UPDATE', key
        )
        inode, offset = (int(row["inode"]), int(row["offset"])) if row else (-1, 0)
        inode2, offset2, lines = _read_new(path, inode, offset, cfg.read_max_bytes)
        if (inode2, offset2) == (inode, offset):
            return rep
        rep.lines = len(lines)
        counts = aggregate(r for r in map(parse_line, lines) if r is not None)
        rep.refusals = sum(c.n for c in counts.values())
        if counts:
            keys = list(counts)
            rows = await conn.fetch(
                _UPSERT,
                [k[0] for k in keys],
                [k[1] for k in keys],
                [counts[k].n for k in keys],
                [counts[k].first_at for k in keys],
                [counts[k].last_at for k in keys],
                [counts[k].detail for k in keys],
                cfg.window_s,
            )
            await _alerts(conn, rows, cfg, timezone, rep)
        await conn.execute(
            'INSERT INTO broker_log_cursor (path, inode, "offset") VALUES ($1, $2, $3)'
            " ON CONFLICT (path) DO UPDATE SET inode = EXCLUDED.inode,"
            ' "offset" = EXCLUDED."offset", updated_at = now()',
            key,
            inode2,
            offset2,
        )
    return rep


async def _alerts(
    conn: asyncpg.Connection,
    rows: list[asyncpg.Record],
    cfg: MonitorSettings,
    timezone: str,
    rep: ScanReport,
) -> None:
    due = [
        {
            "client_id": r["client_id"],
            "reason": r["reason"],
            "label": REASONS.get(r["reason"], r["reason"]),
            "detail": r["detail"],
            "count": r["count"],
            "window_start": r["window_start"].isoformat(),
            "window_count": r["window_count"],
            "last_at": r["last_at"].isoformat(),
        }
        for r in rows
        if r["reason"] in ALERTING and r["window_count"] >= cfg.alert_after
    ]
    if not due:
        return
    alerts = await conn.fetch(
        _ALERT, orjson.dumps(due).decode(), timezone, cfg.alert_after, cfg.window_s
    )
    for a in alerts:
        if not a["inserted"]:
            continue
        rep.alerts_new += 1
        await record(
            conn,
            MONITOR,
            "alert.create",
            "alert",
            a["id"],
            to_state="open",
            data={"kind": a["kind"], "severity": a["severity"], "vehicle_id": a["vehicle_id"]},
        )
        rep.events.append(
            (
                a["org_path"],
                {
                    "id": a["id"],
                    "kind": a["kind"],
                    "severity": a["severity"],
                    "vehicle_id": a["vehicle_id"],
                    "started_at": a["started_at"].isoformat(),
                    "message": a["message"],
                    "lat": a["lat"],
                    "lon": a["lon"],
                },
            )
        )


async def summary(conn: asyncpg.Connection, limit: int = 50) -> list[dict[str, Any]]:
    """The counters, most recent first (for `fleet broker refusals`)."""
    rows = await conn.fetch(
        "SELECT client_id, reason, count, first_at, last_at, window_start, window_count, detail"
        " FROM broker_refusals ORDER BY last_at DESC, client_id LIMIT $1",
        limit,
    )
    return [dict(r) for r in rows]


async def run_forever(
    settings: Settings,
    path: Path,
    cfg: MonitorSettings,
    stop: asyncio.Event,
    *,
    at_least_once: bool = False,
) -> None:
    """Scan every `poll_s` until `stop` (with `at_least_once`, scan even if already set);
    alert events go out on the live bus after commit."""
    from telematics.bus import publish_event, redis_client

    redis = redis_client(settings.redis.url)
    conn: asyncpg.Connection | None = None
    log.info("refusals.monitor_started", log=str(path), alert_after=cfg.alert_after)
    first = at_least_once
    try:
        while first or not stop.is_set():
            first = False
            try:
                if conn is None or conn.is_closed():
                    conn = await asyncpg.connect(
                        settings.db.dsn(), server_settings={"application_name": "broker-monitor"}
                    )
                rep = await scan(conn, path, cfg, timezone=settings.timezone)
                if rep.refusals:
                    log.info(
                        "refusals.scanned",
                        lines=rep.lines,
                        refusals=rep.refusals,
                        alerts_new=rep.alerts_new,
                    )
                for org_path, data in rep.events:
                    with contextlib.suppress(Exception):  # the bus is best effort
                        await publish_event(redis, "alert", data, org_path=org_path)
            except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError) as exc:
                log.warning("refusals.scan_failed", error=repr(exc)[:200])
                if conn is not None:
                    with contextlib.suppress(Exception):
                        await conn.close()
                conn = None
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), cfg.poll_s)
    finally:
        if conn is not None:
            await conn.close()
        await redis.aclose()
