"""Across processes, as a held-out client would do it: `fleet serve` (the API) and
`fleet jt808` (the gateway) are separate processes on one database.

Provision through POST /api/v1/terminals, register and authenticate over TCP, report, see
the vehicle on the API; a dispatcher's text (0x8300) and position query (0x8201) travel
API -> PostgreSQL -> the gateway holding the connection -> the terminal, and the terminal's
answers come back to the API; deactivating the terminal cuts it off at once.
"""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx

from tests.conftest import DEMO_PASSWORD
from tests.telematics.conftest import wait_rows
from tests.telematics.jt808 import frames as F
from tests.telematics.jt808.conftest import Client
from tests.telematics.jt808.test_gateway import q


async def _login(http: httpx.AsyncClient, user: str) -> dict[str, str]:
    r = await http.post("/auth/login", json={"username": user, "password": DEMO_PASSWORD})
    assert r.status_code == 200, r.text
    return {"Authorization": f"Bearer {r.json()['access_token']}"}


async def _status(
    http: httpx.AsyncClient, h: dict[str, str], vid: int, cmd: int, want: str
) -> dict[str, Any]:
    for _ in range(60):
        link = (await http.get(f"/vehicles/{vid}/terminal", headers=h)).json()
        c = next(x for x in link["commands"] if x["id"] == cmd)
        if c["status"] == want:
            return c
        await asyncio.sleep(0.25)
    raise AssertionError(f"command {cmd}: {c['status']}, not {want}")


async def test_provision_register_report_command_deactivate(
    serve_proc, gateway, terminals, mq_settings
) -> None:
    (old_tid,) = terminals(1)
    vid = int(old_tid[2:])
    phone = f"0137{vid:08d}"
    async with httpx.AsyncClient(
        base_url=f"http://127.0.0.1:{serve_proc.port}/api/v1", timeout=20
    ) as http:
        admin = await _login(http, "admin")
        # the vehicle's MQTT terminal gives way to a JT/T 808 one
        r = await http.patch(
            f"/terminals/{old_tid}", json={"vehicle_id": None, "active": False}, headers=admin
        )
        assert r.status_code == 200, r.text
        r = await http.post(
            "/terminals",
            json={"protocol": "jt808", "phone": phone, "vehicle_id": vid},
            headers=admin,
        )
        assert r.status_code == 201, r.text
        tid = r.json()["id"]
        plate = (await http.get(f"/vehicles/{vid}", headers=admin)).json()["plate"]

        c = await Client.open(gateway.port)
        try:
            await c.send(F.frame(0x0100, phone, 1, F.register_2013(plate)))
            (r8100,) = await c.read()
            assert (r8100.msg_id, r8100.body[:3]) == (0x8100, b"\x00\x01\x00")
            code = r8100.body[3:].decode()
            assert await c.auth(phone, code, serial=2) == 0
            when = datetime.now(UTC).replace(microsecond=0) - timedelta(seconds=2)
            await c.send(
                F.frame(0x0200, phone, 3, F.location(when, 22.8123, 108.3456, speed01=355))
            )
            (ack,) = await c.read()
            assert (ack.answers, ack.result) == ((3, 0x0200), 0)
            r = await http.get("/positions/latest", headers=admin)
            mine = [f for f in r.json()["features"] if f["id"] == vid]
            assert mine and mine[0]["geometry"]["coordinates"] == [108.3456, 22.8123]

            # a text from the console
            h = admin
            r = await http.post(
                f"/vehicles/{vid}/terminal/commands",
                json={"kind": "text", "text": "请回单位", "urgent": True},
                headers=h,
            )
            assert r.status_code == 202, r.text
            cmd = r.json()["id"]
            (text,) = await c.read()
            assert text.msg_id == 0x8300
            assert text.body[0] & 0x0D == 0x0D  # urgent, display, read aloud
            assert text.body[1:].decode("gbk") == "请回单位"
            await c.send(F.frame(0x0001, phone, 4, F.word(text.serial) + F.word(0x8300) + b"\x00"))
            done = await _status(http, h, vid, cmd, "acknowledged")
            assert done["result"] == 0 and done["replied_at"]

            # a position query, answered with 0x0201
            r = await http.post(
                f"/vehicles/{vid}/terminal/commands", json={"kind": "position_query"}, headers=h
            )
            cmd = r.json()["id"]
            (query,) = await c.read()
            assert (query.msg_id, query.body) == (0x8201, b"")
            now = datetime.now(UTC).replace(microsecond=0) - timedelta(seconds=1)
            await c.send(
                F.frame(0x0201, phone, 5, F.word(query.serial) + F.location(now, 22.9, 108.4))
            )
            done = await _status(http, h, vid, cmd, "answered")
            assert (done["reply"]["lat"], done["reply"]["lon"]) == (22.9, 108.4)
            sql = "SELECT count(*) FROM positions WHERE vehicle_id = $1 AND ts = $2"
            assert await wait_rows(mq_settings.db.dsn(), sql, (vid, now), 1, 10) == 1
            link = (await http.get(f"/vehicles/{vid}/terminal", headers=h)).json()
            assert (link["terminal_id"], link["online"]) == (tid, True)

            # deactivated: cut at once, refused after
            r = await http.patch(f"/terminals/{tid}", json={"active": False}, headers=admin)
            assert r.status_code == 200
            assert await c.closed(within_s=3.0)
        finally:
            await c.close()
        c = await Client.open(gateway.port)
        try:
            assert await c.auth(phone, code) == 1
        finally:
            await c.close()


async def test_a_command_waits_for_the_terminal_then_expires_unsent(
    gateways, jt808_terminals, mq_settings
) -> None:
    gw = gateways.start(FLEET_JT808__COMMAND_TTL_S="3", FLEET_JT808__COMMAND_POLL_S="0.5")
    a, b = await jt808_terminals(2)

    async def queue(vid: int, tid: str) -> int:
        rows = await q(mq_settings, "INSERT INTO terminal_commands (terminal_id, vehicle_id, kind, body)"
                       " VALUES ($1, $2, 'text', '{\"text\": \"上线后请回电\"}') RETURNING id", tid, vid)  # fmt: skip
        await q(mq_settings, "SELECT pg_notify('fleet_terminal_command', $1)", tid)
        return int(rows[0]["id"])

    waiting, expiring = await queue(a.vehicle_id, a.id), await queue(b.vehicle_id, b.id)
    await asyncio.sleep(0.5)
    c = await Client.open(gw.port)
    try:
        assert await c.auth(a.phone, "code-0123456789") == 0
        (text,) = await c.read()  # delivered when the terminal logged in
        assert text.msg_id == 0x8300 and text.body[1:].decode("gbk") == "上线后请回电"
        await asyncio.sleep(4.0)
        rows = await q(
            mq_settings,
            "SELECT id, status, serial FROM terminal_commands WHERE id = ANY($1) ORDER BY id",
            [waiting, expiring],
        )
        assert [(r["status"], r["serial"]) for r in rows] == [
            ("sent", text.serial),
            ("expired", None),
        ]
    finally:
        await c.close()
