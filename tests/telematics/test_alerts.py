"""Alerts API: scope, filters, pagination, evidence, acknowledge/close with audit."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import orjson
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection

from tests.conftest import Login

T = datetime(2026, 11, 24, 2, 0, tzinfo=UTC)


async def make_alert(
    conn: AsyncConnection, county: str, kind: str, started: datetime, **kw: Any
) -> tuple[int, int]:
    vid = (
        await conn.execute(
            text(
                "SELECT v.id FROM vehicles v JOIN orgs o ON o.id = v.unit_id WHERE o.path <@"
                " (SELECT path FROM orgs WHERE code = :c) ORDER BY v.id LIMIT 1"
            ),
            {"c": county},
        )
    ).scalar_one()
    evidence = {"type": "FeatureCollection", "rule": kind, "features": []}
    aid = (
        await conn.execute(
            text(
                "INSERT INTO alerts (kind, vehicle_id, org_id, started_at, ended_at, location,"
                " message, evidence, dedup_key) SELECT :kind, v.id, v.unit_id, :started, :ended,"
                " ST_SetSRID(ST_MakePoint(108.3, 22.8), 4326), :msg, CAST(:ev AS jsonb), :key"
                " FROM vehicles v WHERE v.id = :vid RETURNING id"
            ),
            {
                "kind": kind,
                "started": started,
                "ended": kw.get("ended"),
                "msg": kw.get("message", f"{kind} test"),
                "ev": orjson.dumps(evidence).decode(),
                "key": f"{kind}:{vid}:{int(started.timestamp())}",
                "vid": vid,
            },
        )
    ).scalar_one()
    return int(aid), int(vid)


async def test_scope_filters_and_pagination(
    client: httpx.AsyncClient, conn: AsyncConnection, login: Login
) -> None:
    qx, qx_vid = await make_alert(conn, "450103", "overspeed", T, ended=T + timedelta(minutes=10))
    qx2, _ = await make_alert(conn, "450103", "geofence_exit", T + timedelta(hours=1))
    xn, xn_vid = await make_alert(conn, "450102", "overspeed", T + timedelta(hours=2))

    h = await login("dispatcher.qingxiu")
    r = await client.get("/api/v1/alerts", headers=h)
    assert r.status_code == 200, r.text
    ids = [a["id"] for a in r.json()["items"]]
    assert ids == [qx2, qx]  # newest first, Xingning's not visible
    assert r.json()["items"][0]["location"] == {"lat": 22.8, "lon": 108.3}

    auditor = await login("auditor")
    r = await client.get("/api/v1/alerts", params={"kind": "overspeed"}, headers=auditor)
    assert {a["id"] for a in r.json()["items"]} >= {qx, xn}
    r = await client.get(
        "/api/v1/alerts", params={"vehicle_id": xn_vid, "status": "open"}, headers=auditor
    )
    assert [a["id"] for a in r.json()["items"]] == [xn]
    r = await client.get(
        "/api/v1/alerts",
        params={
            "start": (T + timedelta(minutes=30)).isoformat(),
            "end": (T + timedelta(hours=1, minutes=30)).isoformat(),
        },
        headers=h,
    )
    assert [a["id"] for a in r.json()["items"]] == [qx2]
    r = await client.get("/api/v1/alerts", params={"limit": 1, "offset": 1}, headers=h)
    body = r.json()
    assert body["total"] == 2 and [a["id"] for a in body["items"]] == [qx]

    r = await client.get(f"/api/v1/vehicles/{qx_vid}/alerts", headers=h)
    assert {a["id"] for a in r.json()["items"]} == {qx, qx2}
    r = await client.get(f"/api/v1/vehicles/{xn_vid}/alerts", headers=h)
    assert r.status_code == 404

    r = await client.get(f"/api/v1/alerts/{qx}", headers=h)
    assert r.status_code == 200 and r.json()["evidence"]["type"] == "FeatureCollection"
    # Out of scope and unknown: the same answer (existence is no oracle).
    r = await client.get(f"/api/v1/alerts/{xn}", headers=h)
    assert r.status_code == 404 and r.json()["error"]["code"] == "not_found"
    r = await client.get("/api/v1/alerts/999999999", headers=h)
    assert r.status_code == 404 and r.json()["error"]["field"] == "id"
    r = await client.get("/api/v1/alerts", params={"status": "bogus"}, headers=h)
    assert r.status_code == 422 and r.json()["error"]["field"] == "status"
    r = await client.get("/api/v1/alerts")
    assert r.status_code == 401
    requester = await login("requester.qingxiu")
    r = await client.get("/api/v1/alerts", headers=requester)
    assert r.status_code == 403


async def test_acknowledge_and_close_are_audited(
    client: httpx.AsyncClient, conn: AsyncConnection, login: Login
) -> None:
    aid, _ = await make_alert(conn, "450103", "overspeed", T)
    auditor = await login("auditor")
    r = await client.post(
        f"/api/v1/alerts/{aid}/acknowledge", json={"comment": "seen"}, headers=auditor
    )
    assert r.status_code == 403  # auditors read, never write
    other = await login("dispatcher.xingning")
    r = await client.post(f"/api/v1/alerts/{aid}/acknowledge", json={"comment": "x"}, headers=other)
    assert r.status_code == 404
    h = await login("dispatcher.qingxiu")
    r = await client.post(f"/api/v1/alerts/{aid}/acknowledge", json={"comment": ""}, headers=h)
    assert r.status_code == 422 and r.json()["error"]["field"] == "comment"
    r = await client.post(
        f"/api/v1/alerts/{aid}/acknowledge", json={"comment": "驾驶员已提醒", "x": 1}, headers=h
    )
    assert r.status_code == 422
    r = await client.post(
        f"/api/v1/alerts/{aid}/acknowledge", json={"comment": "驾驶员已提醒"}, headers=h
    )
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["status"] == "acknowledged" and body["ack_comment"] == "驾驶员已提醒"
    assert body["ack_by"] is not None and body["ack_at"] is not None
    r = await client.post(f"/api/v1/alerts/{aid}/acknowledge", json={"comment": "again"}, headers=h)
    assert r.status_code == 409 and r.json()["error"]["code"] == "invalid_transition"
    r = await client.post(f"/api/v1/alerts/{aid}/close", json={"comment": "handled"}, headers=h)
    assert r.status_code == 200 and r.json()["status"] == "closed"

    rows = (
        await conn.execute(
            text(
                "SELECT action, from_state, to_state, reason, actor FROM audit_log"
                " WHERE entity = 'alert' AND entity_id = :id ORDER BY id"
            ),
            {"id": str(aid)},
        )
    ).all()
    assert [tuple(r) for r in rows] == [
        ("alert.acknowledge", "open", "acknowledged", "驾驶员已提醒", "dispatcher.qingxiu"),
        ("alert.close", "acknowledged", "closed", "handled", "dispatcher.qingxiu"),
    ]


async def test_acknowledge_succeeds_with_the_bus_down(
    client: httpx.AsyncClient, conn: AsyncConnection, login: Login
) -> None:
    """Redis unreachable: the acknowledgement still commits; the lost live event is logged."""
    import asyncio

    from structlog.testing import capture_logs

    from fleet import outbox
    from telematics import bus

    aid, _ = await make_alert(conn, "450103", "overspeed", T + timedelta(days=1))
    h = await login("dispatcher.qingxiu")
    loop_id = id(asyncio.get_running_loop())
    saved = outbox._clients.get(loop_id)
    dead = bus.redis_client("redis://127.0.0.1:1/0")  # nothing listens on port 1
    outbox._clients[loop_id] = dead
    try:
        with capture_logs() as logs:
            r = await client.post(
                f"/api/v1/alerts/{aid}/acknowledge", json={"comment": "已核实"}, headers=h
            )
            assert r.status_code == 200, r.text
            await outbox.flush_pending()
        assert any(e["event"] == "outbox.publish_failed" for e in logs), logs
    finally:
        if saved is None:
            outbox._clients.pop(loop_id, None)
        else:
            outbox._clients[loop_id] = saved
        await dead.aclose()
    r = await client.get(f"/api/v1/alerts/{aid}", headers=h)
    assert r.status_code == 200 and r.json()["status"] == "acknowledged"
