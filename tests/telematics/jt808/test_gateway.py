"""The gateway as a terminal meets it: a real `fleet jt808` process, real PostgreSQL.

Frames come from the independent encoder (frames.py) and, where they exist, from Traccar's
published test vectors (test_codec.py cites them). Each refusal of the contract is here:
bad check code or body (result 2, the connection lives on), unknown message (3), anything
before authentication (1, nothing stored), a frame for another SIM number (1).
"""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

import asyncpg

from fleet.config import Settings
from telematics.broker.credentials import hash_secret
from tests.telematics.jt808 import frames as F
from tests.telematics.jt808.test_codec import (
    AUTHENTICATE,
    BATCH_BLIND,
    HEARTBEAT,
    LOCATION_BAD,
    LOCATION_SOS_WEST,
    REGISTER_2011,
    REGISTER_2013,
)

CODE = "code-0123456789"


def now_s() -> datetime:
    return datetime.now(UTC).replace(microsecond=0) - timedelta(seconds=5)


async def q(settings: Settings, sql: str, *args: object) -> list[asyncpg.Record]:
    conn = await asyncpg.connect(settings.db.dsn())
    try:
        return list(await conn.fetch(sql, *args))
    finally:
        await conn.close()


async def bind_phone(settings: Settings, tid: str, phone: str, secret: str | None = None) -> None:
    """Give a fresh terminal a published vector's SIM number (and a pre-shared secret)."""
    await q(
        settings,
        "UPDATE terminals SET protocol = 'jt808', phone = $2, auth_code_hash = NULL,"
        " secret_hash = coalesce($3, secret_hash) WHERE id = $1",
        tid,
        phone,
        hash_secret(secret) if secret else None,
    )
    await q(settings, "SELECT pg_notify('fleet_terminal_changed', $1)", tid)
    await asyncio.sleep(0.3)


async def test_2013_and_2019_locations_stored_like_mqtt_and_answered_after_commit(
    gateway, connect, jt808_terminals, mq_settings
) -> None:
    a, b = await jt808_terminals(2)
    when = now_s()
    for t, v2019 in ((a, False), (b, True)):
        c = await connect()
        assert await c.auth(t.phone, CODE, v2019=v2019) == 0
        body = F.location(when, 22.817, 108.366, alarm=0, alt=76, speed01=523, direction=181,
                          mileage01=1234567, sats=12)  # fmt: skip
        await c.send(F.frame(0x0200, t.phone, 0x7E7D, body, v2019=v2019))
        (r,) = await c.read()
        assert (r.msg_id, r.answers, r.result, r.v2019) == (0x8001, (0x7E7D, 0x0200), 0, v2019)
        assert r.phone.lstrip("0") == t.phone.lstrip("0")
        # answered only after commit: the row is there the moment the answer is
        rows = await q(
            mq_settings,
            "SELECT ts, ST_Y(geom) lat, ST_X(geom) lon, speed_kmh, heading_deg, alt_m,"
            " odometer_km, sats, acc, fix, alarm, terminal_id, seq FROM positions"
            " WHERE vehicle_id = $1",
            t.vehicle_id,
        )
        assert len(rows) == 1
        p = rows[0]
        assert (p["ts"], p["lat"], p["lon"]) == (when, 22.817, 108.366)
        assert (round(p["speed_kmh"], 3), p["heading_deg"], p["alt_m"]) == (52.3, 181.0, 76.0)
        assert (p["odometer_km"], p["sats"], p["acc"], p["fix"]) == (123456.7, 12, True, True)
        assert (p["alarm"], p["terminal_id"], p["seq"]) == (0, t.id, 0x7E7D)
        latest = await q(
            mq_settings, "SELECT ts FROM latest_positions WHERE vehicle_id = $1", t.vehicle_id
        )
        assert latest[0]["ts"] == when


async def test_escaped_bytes_split_packets_and_blind_area_batches(
    gateway, connect, jt808_terminals, mq_settings
) -> None:
    (t,) = await jt808_terminals(1)
    c = await connect()
    assert await c.auth(t.phone, CODE) == 0
    start = now_s() - timedelta(minutes=30)
    # 0x7E / 0x7D inside the body (mileage) and the serial: escaped both ways
    await c.send(
        F.frame(0x0200, t.phone, 0x7D7E, F.location(start, 22.8, 108.3, mileage01=0x007E7D7D))
    )
    (r,) = await c.read()
    assert (r.answers, r.result) == ((0x7D7E, 0x0200), 0)
    # 40 backlog points in one 0x0704 split into packets of 300 bytes, 2013 then 2019
    for v2019, first in ((False, 100), (True, 200)):
        base = start + timedelta(minutes=1 if not v2019 else 10)
        locs = [
            F.location(base + timedelta(seconds=10 * k), 22.8 + k * 1e-4, 108.3) for k in range(40)
        ]
        packets = F.split(0x0704, t.phone, first, F.batch(locs, kind=1), 300, v2019=v2019)
        assert len(packets) > 3
        await c.send(*packets)
        replies = await c.read(len(packets))
        assert sorted(r.answers for r in replies) == [
            (first + k, 0x0704) for k in range(len(packets))
        ]
        assert {r.result for r in replies} == {0}
    n = await q(
        mq_settings,
        "SELECT count(*) n, max(odometer_km) m FROM positions WHERE vehicle_id = $1",
        t.vehicle_id,
    )
    assert n[0]["n"] == 81
    assert n[0]["m"] == 0x007E7D7D / 10


async def test_refusals(gateway, connect, jt808_terminals, mq_settings) -> None:
    a, b = await jt808_terminals(2)
    when = now_s()
    c = await connect()
    # before authentication: refused (1), nothing stored, not even as rejected
    await c.send(F.frame(0x0200, a.phone, 1, F.location(when, 22.8, 108.3)))
    await c.send(F.frame(0x0002, a.phone, 2))
    await c.send(F.frame(0x0704, a.phone, 3, F.batch([F.location(when, 22.8, 108.3)])))
    assert [(r.answers, r.result) for r in await c.read(3)] == [
        ((1, 0x0200), 1), ((2, 0x0002), 1), ((3, 0x0704), 1)]  # fmt: skip
    # a wrong code: refused, the connection lives on
    assert await c.auth(a.phone, "wrong-code") == 1
    assert await c.auth(a.phone, CODE, serial=4) == 0
    # bad check code, bad body, wrong length: result 2, connection lives on
    await c.send(F.frame(0x0200, a.phone, 5, F.location(when, 22.8, 108.3), corrupt_check=True))
    await c.send(F.frame(0x0200, a.phone, 6, b"\x00" * 10))
    await c.send(F.frame(0x0704, a.phone, 7, F.word(3) + b"\x01" + F.word(28) + b"\x00" * 28))
    # an unknown message id: 3
    await c.send(F.frame(0x0F01, a.phone, 8, b"\x01\x02"))
    # a frame for another terminal's SIM number on this authenticated connection: 1
    await c.send(F.frame(0x0200, b.phone, 9, F.location(when, 22.8, 108.3)))
    got = [(r.answers, r.result) for r in await c.read(5)]
    assert got == [
        ((5, 0x0200), 2),
        ((6, 0x0200), 2),
        ((7, 0x0704), 2),
        ((8, 0x0F01), 3),
        ((9, 0x0200), 1),
    ]
    # the connection still works
    await c.send(F.frame(0x0002, a.phone, 10))
    (r,) = await c.read()
    assert (r.answers, r.result) == ((10, 0x0002), 0)
    for t in (a, b):
        n = await q(mq_settings, "SELECT (SELECT count(*) FROM positions WHERE vehicle_id = $1)"
                    " + (SELECT count(*) FROM rejected_pings WHERE terminal_id = $2) n", t.vehicle_id, t.id)  # fmt: skip
        assert n[0]["n"] == 0
    # a point outside the contract is answered 0 and stored as rejected with its reason
    await c.send(F.frame(0x0200, a.phone, 11, F.location(when, 95.5, 108.3)))
    (r,) = await c.read()
    assert (r.answers, r.result) == ((11, 0x0200), 0)
    rej = await q(
        mq_settings,
        "SELECT reason, topic, convert_from(payload, 'UTF8') p FROM rejected_pings WHERE terminal_id = $1",
        a.id,
    )
    assert [x["reason"] for x in rej] == ["out_of_range_coordinates"]
    assert (
        rej[0]["topic"] == f"jt808/{a.id}/0200"
        and '"lat":95.5' in rej[0]["p"]
        and '"jt808"' in rej[0]["p"]
    )


async def test_published_frames_register_authenticate_heartbeat(
    gateway, connect, terminals, mq_settings
) -> None:
    """Traccar's frames, replayed: registration and authentication of 013511221122 (the
    authentication code "authentication" provisioned as the terminal's secret), heartbeat of
    043048325465, the 0x0200 with a wrong length (result 2), a location with the SOS bit
    and a blind-area batch from 2013/2016 (answered, stored as rejected: too old)."""
    reg_tid, hb_tid, loc_tid, batch_tid = terminals(4)
    await bind_phone(mq_settings, reg_tid, "013511221122", secret="authentication")
    await bind_phone(mq_settings, hb_tid, "043048325465", secret="heartbeat-secret-1")
    await bind_phone(mq_settings, loc_tid, "094027587492", secret="location-secret-1")
    await bind_phone(mq_settings, batch_tid, "013567777777", secret="batch-secret-0001")
    c = await connect()
    await c.send(bytes.fromhex(REGISTER_2013))
    (r,) = await c.read()
    assert (r.msg_id, r.phone, r.body[:3]) == (0x8100, "013511221122", b"\x00\x05\x00")
    issued = r.body[3:].decode()
    assert len(issued) >= 16
    stored = await q(
        mq_settings, "SELECT auth_code_hash, registration FROM terminals WHERE id = $1", reg_tid
    )
    assert stored[0]["auth_code_hash"] and issued not in stored[0]["auth_code_hash"]  # hashed
    assert '"plate": "苏BA6860"' in stored[0]["registration"]
    await c.send(bytes.fromhex(AUTHENTICATE))
    (r,) = await c.read()
    assert (r.msg_id, r.answers, r.result) == (0x8001, (6, 0x0102), 0)
    await c.send(bytes.fromhex(LOCATION_BAD))
    (r,) = await c.read()
    assert (r.answers, r.result) == ((7, 0x0200), 2)
    # the issued code works too, on a new connection
    c2 = await connect()
    assert await c2.auth("013511221122", issued) == 0
    # heartbeat vector
    h = await connect()
    assert await h.auth("043048325465", "heartbeat-secret-1") == 0
    await h.send(bytes.fromhex(HEARTBEAT))
    (r,) = await h.read()
    assert (r.answers, r.result) == ((0xB7, 0x0002), 0)
    # location and batch vectors: answered 0, stored as rejected (stale_ts) with the frame
    for tid, phone, secret, vector, msg, n in (
        (loc_tid, "094027587492", "location-secret-1", LOCATION_SOS_WEST, 0x0200, 1),
        (batch_tid, "013567777777", "batch-secret-0001", BATCH_BLIND, 0x0704, 8),
    ):
        x = await connect()
        assert await x.auth(phone, secret) == 0
        await x.send(bytes.fromhex(vector))
        (r,) = await x.read()
        assert r.answers[1] == msg and r.result == 0
        rej = await q(mq_settings, "SELECT reason FROM rejected_pings WHERE terminal_id = $1", tid)
        assert [x["reason"] for x in rej] == ["stale_ts"] * n


async def test_registration_results(gateway, connect, jt808_terminals, mq_settings) -> None:
    a, b, c_ = await jt808_terminals(3, code=None)
    plate_b = (await q(mq_settings, "SELECT plate FROM vehicles WHERE id = $1", b.vehicle_id))[0][
        "plate"
    ]
    plate_a = (await q(mq_settings, "SELECT plate FROM vehicles WHERE id = $1", a.vehicle_id))[0][
        "plate"
    ]
    c = await connect()

    async def register(
        phone: str, serial: int, body: bytes, v2019: bool = False
    ) -> tuple[int, str]:
        await c.send(F.frame(0x0100, phone, serial, body, v2019=v2019))
        (r,) = await c.read()
        assert r.msg_id == 0x8100 and r.body[:2] == F.word(serial)
        return r.body[2], r.body[3:].decode()

    # 4: no such terminal (a published 2011-layout frame from an unknown SIM number)
    await c.send(bytes.fromhex(REGISTER_2011))
    (r,) = await c.read()
    assert (r.msg_id, r.body) == (0x8100, F.word(15) + b"\x04")
    # 1: the plate is another vehicle's, which has a terminal of its own
    assert (await register(a.phone, 1, F.register_2013(plate_b)))[0] == 1
    # 2: the terminal is bound to no vehicle
    await q(mq_settings, "UPDATE terminals SET vehicle_id = NULL WHERE id = $1", c_.id)
    assert (await register(c_.phone, 2, F.register_2019("桂A00000"), v2019=True))[0] == 2
    # 0: its own plate (2019 frame), with a code that then authenticates
    result, code = await register(a.phone, 3, F.register_2019(plate_a), v2019=True)
    assert result == 0 and code
    # 3: registered already
    assert (await register(a.phone, 4, F.register_2013(plate_a)))[0] == 3
    assert await c.auth(a.phone, code, serial=5, v2019=True) == 0
    audit = await q(
        mq_settings,
        "SELECT actor FROM audit_log WHERE action = 'terminal.register' AND entity_id = $1",
        a.id,
    )
    assert len(audit) == 1
    # this connection now speaks for a only: b's registration on it is refused (1)
    await c.send(F.frame(0x0100, b.phone, 6, F.register_2013("粤B12345")))
    (r,) = await c.read()
    assert (r.msg_id, r.answers, r.result) == (0x8001, (6, 0x0100), 1)
    # a placeholder plate naming no vehicle is not an error: the registry's binding counts
    c = await connect()
    assert (await register(b.phone, 7, F.register_2013("粤B12345")))[0] == 0


async def test_unregister_then_the_old_code_is_refused(
    gateway, connect, jt808_terminals, mq_settings
) -> None:
    (t,) = await jt808_terminals(1)
    c = await connect()
    assert await c.auth(t.phone, CODE) == 0
    await c.send(F.frame(0x0003, t.phone, 2))
    (r,) = await c.read()
    assert (r.answers, r.result) == ((2, 0x0003), 0)
    assert await c.closed()
    row = await q(mq_settings, "SELECT auth_code_hash FROM terminals WHERE id = $1", t.id)
    assert row[0]["auth_code_hash"] is None
    c2 = await connect()
    assert await c2.auth(t.phone, CODE) == 1


async def test_deactivated_terminal_is_cut_at_once_and_refused(
    gateway, connect, jt808_terminals, mq_settings
) -> None:
    (t,) = await jt808_terminals(1)
    c = await connect()
    assert await c.auth(t.phone, CODE) == 0
    await q(mq_settings, "UPDATE terminals SET active = false WHERE id = $1", t.id)
    await q(mq_settings, "SELECT pg_notify('fleet_terminal_changed', $1)", t.id)
    assert await c.closed(within_s=3.0)
    c2 = await connect()
    assert await c2.auth(t.phone, CODE) == 1
    link = await q(
        mq_settings, "SELECT online, reason FROM terminal_links WHERE terminal_id = $1", t.id
    )
    for _ in range(20):
        if link and not link[0]["online"]:
            break
        await asyncio.sleep(0.25)
        link = await q(
            mq_settings, "SELECT online, reason FROM terminal_links WHERE terminal_id = $1", t.id
        )
    assert link, "\n".join(gateway.lines[-30:])
    assert (link[0]["online"], link[0]["reason"]) == (False, "deactivated")


async def test_a_missed_notification_is_caught_by_the_recheck(
    gateways, jt808_terminals, mq_settings
) -> None:
    from tests.telematics.jt808.conftest import Client

    gw = gateways.start(FLEET_JT808__RECHECK_S="1")
    (t,) = await jt808_terminals(1)
    c = await Client.open(gw.port)
    try:
        assert await c.auth(t.phone, CODE) == 0
        await q(mq_settings, "UPDATE terminals SET active = false WHERE id = $1", t.id)  # no NOTIFY
        assert await c.closed(within_s=5.0)
    finally:
        await c.close()


def test_zz_no_worker_failed(gateway) -> None:
    bad = [
        x for x in gateway.lines if "worker_failed" in x or "Traceback" in x or "task_failed" in x
    ]
    assert not bad, "\n".join(bad)
