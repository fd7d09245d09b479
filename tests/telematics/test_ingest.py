"""The ingest end to end: real broker, real `fleet ingest` processes, real PostgreSQL."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg
import orjson

from fleet.config import Settings
from telematics.positions import flags as F

from .conftest import IngestProcs, wait_rows

BASE_LAT, BASE_LON = 22.817, 108.366  # Nanning


def ping(ts: datetime, i: int = 0, **over: Any) -> dict[str, Any]:
    p = {
        "ts": ts.isoformat(),
        "lat": BASE_LAT + i * 0.0005,
        "lon": BASE_LON + i * 0.0005,
        "speed_kmh": 40.0,
        "heading_deg": 45.0,
        "odometer_km": 1000 + i * 0.07,
        "acc": True,
        "fix": True,
        "sats": 9,
        "seq": i,
    }
    p.update(over)
    return p


def now() -> datetime:
    return datetime.now(UTC).replace(microsecond=0)


async def q(settings: Settings, sql: str, *args: Any) -> list[asyncpg.Record]:
    conn = await asyncpg.connect(settings.db.dsn())
    try:
        return await conn.fetch(sql, *args)
    finally:
        await conn.close()


async def test_pings_stored_once_and_latest_forward_only(
    mq_settings: Settings, ingest_procs: IngestProcs, terminals: Any, publisher: Any
) -> None:
    (tid,) = terminals(1)
    ingest_procs.start()
    pub = publisher(tid)
    t0 = now() - timedelta(minutes=30)
    live = [ping(t0 + timedelta(seconds=10 * i), i) for i in range(20)]
    assert pub.send("position", live) == 20
    # The same pings again (an at-least-once redelivery): still one row each.
    assert pub.send("position", live[:5]) == 5
    dsn = mq_settings.db.dsn()
    sql = "SELECT count(*) FROM positions WHERE terminal_id = $1"
    assert await wait_rows(dsn, sql, (tid,), 20) == 20
    # A late buffered array (older, any order, epoch-ms timestamps) fills history...
    late_t = t0 - timedelta(hours=2)
    late = [ping(late_t + timedelta(seconds=10 * i), i) for i in range(10)]
    late.reverse()
    for p in late[:5]:
        p["ts"] = int(datetime.fromisoformat(p["ts"]).timestamp() * 1000)
    assert pub.send("positions", [late]) == 1
    assert await wait_rows(dsn, sql, (tid,), 30) == 30
    rows = await q(
        mq_settings,
        "SELECT count(*) AS n, count(DISTINCT ts) AS d FROM positions WHERE terminal_id = $1",
        tid,
    )
    assert rows[0]["n"] == rows[0]["d"] == 30
    # ...but never drags the live position back.
    (lp,) = await q(
        mq_settings,
        "SELECT ts, ST_Y(geom) AS lat FROM latest_positions lp"
        " JOIN terminals t ON t.vehicle_id = lp.vehicle_id WHERE t.id = $1",
        tid,
    )
    assert lp["ts"] == t0 + timedelta(seconds=190)
    assert abs(lp["lat"] - (BASE_LAT + 19 * 0.0005)) < 1e-9


async def test_bad_pings_rejected_with_reason(
    mq_settings: Settings, ingest_procs: IngestProcs, terminals: Any, publisher: Any
) -> None:
    (tid,) = terminals(1)
    ingest = ingest_procs.start()
    pub = publisher(tid)
    t = now() - timedelta(minutes=5)
    bad: list[Any] = [
        b"{not json",
        orjson.dumps([1, 2]),  # an array on the single-ping topic
        ping(t, lat=91.0),
        ping(t, lon=-181.0),
        {k: v for k, v in ping(t).items() if k != "lat"},
        ping(t + timedelta(hours=1)),
        ping(t - timedelta(days=400)),
        ping(t, speed_kmh="fast"),
        {**ping(t), "ts": "2026-11-26T10:00:00"},  # no offset
    ]
    good = ping(t)
    assert pub.send("position", [*bad, good]) == len(bad) + 1
    dsn = mq_settings.db.dsn()
    n = await wait_rows(
        dsn, "SELECT count(*) FROM rejected_pings WHERE terminal_id = $1", (tid,), len(bad)
    )
    assert n == len(bad)
    assert (
        await wait_rows(dsn, "SELECT count(*) FROM positions WHERE terminal_id = $1", (tid,), 1)
        == 1
    )
    rows = await q(
        mq_settings,
        "SELECT reason, payload FROM rejected_pings WHERE terminal_id = $1 ORDER BY id",
        tid,
    )
    reasons = sorted(r["reason"] for r in rows)
    assert reasons == sorted(
        [
            "malformed_json",
            "malformed_json",
            "out_of_range_coordinates",
            "out_of_range_coordinates",
            "missing_field",
            "future_ts",
            "stale_ts",
            "invalid_field",
            "bad_timestamp",
        ]
    )
    assert any(r["payload"] == b"{not json" for r in rows)
    # An unknown terminal id on the topic (only the service user could publish it; the
    # worker must still survive and record it) — and the worker is alive afterwards.
    assert ingest.proc.poll() is None


async def test_unknown_and_inactive_terminal_rejected(
    mq_settings: Settings, ingest_procs: IngestProcs, terminals: Any, publisher: Any
) -> None:
    (tid,) = terminals(1)
    conn = await asyncpg.connect(mq_settings.db.dsn())
    try:
        await conn.execute("UPDATE terminals SET active = false WHERE id = $1", tid)
        ingest_procs.start()
        pub = publisher(tid)  # the broker still knows it (not re-synced): the ingest refuses
        assert pub.send("position", [ping(now())]) == 1
        n = await wait_rows(
            mq_settings.db.dsn(),
            "SELECT count(*) FROM rejected_pings WHERE terminal_id = $1 AND reason = 'inactive_terminal'",
            (tid,),
            1,
        )
        assert n == 1
    finally:
        await conn.execute("UPDATE terminals SET active = true WHERE id = $1", tid)
        await conn.close()


async def test_suspect_points_flagged_not_dropped(
    mq_settings: Settings, ingest_procs: IngestProcs, terminals: Any, publisher: Any
) -> None:
    (tid,) = terminals(1)
    ingest_procs.start()
    pub = publisher(tid)
    t = now() - timedelta(minutes=20)
    pts = [
        ping(t, 0),
        ping(t + timedelta(seconds=10), 1),
        # 10 s later, ~55 km away: ~20,000 km/h implied
        ping(t + timedelta(seconds=20), 2, lat=BASE_LAT + 0.5),
        ping(t + timedelta(seconds=30), 3),  # back on the road: not a jump
        ping(t + timedelta(seconds=40), 4, fix=False),
        ping(t + timedelta(seconds=50), 5, lat=0.0, lon=0.0),
        ping(t + timedelta(seconds=60), 6, sats=2),
    ]
    assert pub.send("positions", [pts]) == 1
    dsn = mq_settings.db.dsn()
    assert (
        await wait_rows(dsn, "SELECT count(*) FROM positions WHERE terminal_id = $1", (tid,), 7)
        == 7
    )
    rows = await q(
        mq_settings, "SELECT seq, flags FROM positions WHERE terminal_id = $1 ORDER BY ts", tid
    )
    flags = {r["seq"]: r["flags"] for r in rows}
    assert flags[0] == 0 and flags[1] == 0 and flags[3] == 0
    assert flags[2] == F.JUMP
    assert flags[4] & F.INVALID_FIX
    assert flags[5] & F.NULL_ISLAND
    assert flags[6] == F.LOW_SATS
    # (0, 0) never becomes the live position.
    (lp,) = await q(
        mq_settings,
        "SELECT ts FROM latest_positions lp JOIN terminals t ON t.vehicle_id = lp.vehicle_id"
        " WHERE t.id = $1",
        tid,
    )
    assert lp["ts"] == t + timedelta(seconds=60)


async def test_two_ingests_share_the_load(
    mq_settings: Settings, ingest_procs: IngestProcs, terminals: Any, publisher: Any
) -> None:
    tids = terminals(4)
    a = ingest_procs.start()
    b = ingest_procs.start()
    t0 = now() - timedelta(hours=3)
    sent = 0
    for k, tid in enumerate(tids):
        pub = publisher(tid)
        pings = [ping(t0 + timedelta(seconds=i), i + k) for i in range(500)]
        sent += pub.send("position", pings)
    assert sent == 2000
    dsn = mq_settings.db.dsn()
    sql = "SELECT count(*) FROM positions WHERE terminal_id = ANY($1::text[])"
    assert await wait_rows(dsn, sql, (tids,), 2000) == 2000
    rows = await q(
        mq_settings,
        "SELECT count(*) AS n, count(DISTINCT (terminal_id, ts)) AS d FROM positions"
        " WHERE terminal_id = ANY($1::text[])",
        tids,
    )
    assert rows[0]["n"] == rows[0]["d"] == 2000
    # Both processes took part.
    stored = []
    for p in (a, b):
        p.terminate()
        stopped = p.wait_for("ingest.stopped", 10)
        m = re.search(r"stored=(\d+)", stopped)
        assert m, stopped
        stored.append(int(m.group(1)))
    assert min(stored) > 0 and sum(stored) == 2000, stored


async def test_alarm_bits_in_mqtt_pings_become_alerts_too(
    mq_settings: Settings, ingest_procs: IngestProcs, terminals: Any, publisher: Any
) -> None:
    """The alarm hook is shared by every transport (telematics/ingest/alarms.py): an MQTT ping's
    `alarm` field (JT/T 808 bits) raises the same alerts as the JT/T 808 gateway."""
    (tid,) = terminals(1)
    ingest_procs.start()
    pub = publisher(tid)
    t0 = now() - timedelta(minutes=5)
    pings = [ping(t0, 0, alarm=1), ping(t0 + timedelta(seconds=10), 1, alarm=1 << 8),
             ping(t0 + timedelta(seconds=20), 2, alarm=0)]  # fmt: skip
    assert pub.send("position", pings) == 3
    sql = "SELECT count(*) FROM alerts a JOIN terminals t ON t.vehicle_id = a.vehicle_id WHERE t.id = $1"
    assert await wait_rows(mq_settings.db.dsn(), sql, (tid,), 2) == 2
    rows = await q(
        mq_settings,
        "SELECT a.kind, a.severity, a.started_at, a.ended_at FROM alerts a"
        " JOIN terminals t ON t.vehicle_id = a.vehicle_id WHERE t.id = $1 ORDER BY a.kind",
        tid,
    )
    assert [(r["kind"], r["severity"]) for r in rows] == [
        ("power_cut", "warning"),
        ("sos", "critical"),
    ]
    sos = rows[1]
    assert sos["started_at"] == t0
    sql_ended = (
        "SELECT count(*) FROM alerts a JOIN terminals t ON t.vehicle_id = a.vehicle_id"
        " WHERE t.id = $1 AND a.kind = 'sos' AND a.ended_at IS NOT NULL"
    )
    assert await wait_rows(mq_settings.db.dsn(), sql_ended, (tid,), 1) == 1
    ended = await q(mq_settings, sql_ended.replace("count(*)", "a.ended_at"), tid)
    assert ended[0]["ended_at"] == t0 + timedelta(seconds=10)  # the next point without bit 0
