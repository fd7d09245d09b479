"""Alarm bits become alerts (SOS pushed to the consoles at once), heartbeat timeout -> offline."""

from __future__ import annotations

import asyncio
import time
from datetime import UTC, datetime, timedelta

import orjson

from telematics import bus
from tests.telematics.jt808 import frames as F
from tests.telematics.jt808.conftest import Client
from tests.telematics.jt808.test_gateway import CODE, q


async def _events(redis_url: str, until: float, vehicle_id: int, out: list[dict]) -> None:
    redis = bus.redis_client(redis_url)
    pubsub = redis.pubsub(ignore_subscribe_messages=True)
    await pubsub.subscribe(bus.events_channel())
    try:
        while time.monotonic() < until:
            msg = await pubsub.get_message(timeout=0.2)
            if msg and msg.get("type") == "message":
                ev = orjson.loads(msg["data"])
                if ev["data"].get("vehicle_id") == vehicle_id:
                    out.append({**ev, "at": time.monotonic()})
    finally:
        await pubsub.aclose()
        await redis.aclose()


async def test_alarm_bits_become_alerts_and_sos_is_pushed_at_once(
    gateway, connect, jt808_terminals, mq_settings
) -> None:
    (t,) = await jt808_terminals(1)
    events: list[dict] = []
    listening = asyncio.create_task(
        _events(mq_settings.redis.url, time.monotonic() + 15, t.vehicle_id, events)
    )
    await asyncio.sleep(0.5)
    c = await connect()
    assert await c.auth(t.phone, CODE) == 0
    t0 = datetime.now(UTC).replace(microsecond=0) - timedelta(seconds=60)
    # SOS (bit 0) for two points, then cleared; overspeed (1), fatigue (2), antenna cut (5),
    # main power cut (8) together on one point
    frames = [
        F.location(t0, 22.8, 108.3, alarm=0b1),
        F.location(t0 + timedelta(seconds=10), 22.8001, 108.3, alarm=0b1),
        F.location(t0 + timedelta(seconds=20), 22.8002, 108.3, alarm=0),
        F.location(
            t0 + timedelta(seconds=30),
            22.8003,
            108.3,
            alarm=(1 << 1) | (1 << 2) | (1 << 5) | (1 << 8),
        ),
    ]
    sent = time.monotonic()
    await c.send(F.frame(0x0200, t.phone, 2, frames[0]))
    (r,) = await c.read()
    assert r.result == 0
    for k, body in enumerate(frames[1:], 3):
        await c.send(F.frame(0x0200, t.phone, k, body))
        assert (await c.read())[0].result == 0
    await asyncio.sleep(1.0)
    listening.cancel()
    alerts = await q(
        mq_settings,
        "SELECT kind, severity, started_at, ended_at, message FROM alerts WHERE vehicle_id = $1 ORDER BY id",
        t.vehicle_id,
    )
    kinds = {a["kind"]: a for a in alerts}
    assert set(kinds) == {
        "sos",
        "terminal_overspeed",
        "fatigue_driving",
        "gnss_antenna_fault",
        "power_cut",
    }
    assert len(alerts) == 5  # the second SOS point continues the first episode
    sos = kinds["sos"]
    assert (sos["severity"], sos["started_at"], sos["ended_at"]) == (
        "critical",
        t0,
        t0 + timedelta(seconds=20),
    )
    assert kinds["power_cut"]["ended_at"] is None
    audited = await q(
        mq_settings,
        "SELECT count(*) n FROM audit_log WHERE action = 'alert.create' AND (data->>'vehicle_id')::bigint = $1",
        t.vehicle_id,
    )
    assert audited[0]["n"] == 5
    sos_events = [e for e in events if e["type"] == "alert" and e["data"]["kind"] == "sos"]
    assert len(sos_events) == 1
    assert sos_events[0]["data"]["severity"] == "critical" and sos_events[0]["org_path"]
    assert sos_events[0]["at"] - sent < 3.0  # pushed within seconds of the report


async def test_heartbeat_timeout_closes_and_marks_offline(
    gateways, jt808_terminals, mq_settings
) -> None:
    gw = gateways.start(FLEET_JT808__HEARTBEAT_TIMEOUT_S="2", FLEET_JT808__SWEEP_S="0.5")
    a, b = await jt808_terminals(2)
    quiet, alive = await Client.open(gw.port), await Client.open(gw.port)
    try:
        for c, t in ((quiet, a), (alive, b)):
            assert await c.auth(t.phone, CODE) == 0
            when = datetime.now(UTC).replace(microsecond=0) - timedelta(seconds=3)
            await c.send(F.frame(0x0200, t.phone, 2, F.location(when, 22.8, 108.3)))
            assert (await c.read())[0].result == 0
        # b keeps sending heartbeats, a says nothing
        for k in range(6):
            await asyncio.sleep(0.5)
            await alive.send(F.frame(0x0002, b.phone, 10 + k))
            assert (await alive.read())[0].result == 0
        assert await quiet.closed(within_s=3.0)
        await asyncio.sleep(1.0)  # links are written in bulk
        link = await q(
            mq_settings,
            "SELECT terminal_id, online, reason FROM terminal_links WHERE terminal_id = ANY($1) ORDER BY terminal_id",
            [a.id, b.id],
        )
        assert [(x["online"], x["reason"]) for x in link] == [
            (False, "heartbeat_timeout"),
            (True, None),
        ]
        status = await q(
            mq_settings,
            "SELECT vehicle_id, status FROM latest_positions WHERE vehicle_id = ANY($1) ORDER BY vehicle_id",
            [a.vehicle_id, b.vehicle_id],
        )
        assert [x["status"] for x in status] == ["offline", "parked"]
    finally:
        await quiet.close()
        await alive.close()


async def test_a_second_connection_replaces_the_first(gateway, connect, jt808_terminals) -> None:
    (t,) = await jt808_terminals(1)
    first, second = await connect(), await connect()
    assert await first.auth(t.phone, CODE) == 0
    assert await second.auth(t.phone, CODE) == 0
    assert await first.closed(within_s=3.0)
    await second.send(F.frame(0x0002, t.phone, 9))
    assert (await second.read())[0].answers == (9, 0x0002)
