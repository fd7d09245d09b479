"""Provisioning JT/T 808 terminals and the console's commands, through the HTTP API."""

from __future__ import annotations

import httpx
import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession

from tests.conftest import Login


async def a_vehicle(session: AsyncSession, county: str = "450103", *, free: bool = False) -> int:
    """A vehicle of the county; with `free`, its terminal is unbound first."""
    vid = await session.scalar(
        text(
            "SELECT v.id FROM vehicles v JOIN orgs o ON o.id = v.unit_id"
            " WHERE o.path <@ (SELECT path FROM orgs WHERE code = :c) ORDER BY v.id LIMIT 1"
        ),
        {"c": county},
    )
    assert vid is not None
    if free:
        await session.execute(
            text("UPDATE terminals SET vehicle_id = NULL WHERE vehicle_id = :v"), {"v": vid}
        )
    return int(vid)


async def jt808_vehicle(session: AsyncSession, county: str = "450103") -> int:
    vid = await a_vehicle(session, county)
    await session.execute(
        text(
            "UPDATE terminals SET protocol = 'jt808', phone = '0138' || lpad(CAST(:v AS text), 8, '0') WHERE vehicle_id = :v"
        ),
        {"v": vid},
    )
    return vid


async def test_provisioning_a_jt808_terminal(
    client: httpx.AsyncClient, login: Login, session: AsyncSession
) -> None:
    admin = await login("admin")
    vid = await a_vehicle(session, free=True)
    r = await client.post(
        "/api/v1/terminals",
        json={"protocol": "jt808", "phone": "013912340001", "vehicle_id": vid},
        headers=admin,
    )
    assert r.status_code == 201, r.text
    body = r.json()
    assert (body["id"], body["phone"], body["protocol"], body["vehicle_id"]) == (
        "JT13912340001",
        "013912340001",
        "jt808",
        vid,
    )
    assert body["secret"] and body["registered_at"] is None
    # the same SIM number written the 2019 way is the same terminal
    r = await client.post(
        "/api/v1/terminals",
        json={"protocol": "jt808", "phone": "00000000013912340001", "id": "JT-OTHER"},
        headers=admin,
    )
    assert (r.status_code, r.json()["error"]["field"]) == (409, "phone")
    for bad, field in (
        ({"protocol": "jt808"}, "phone"),
        ({"protocol": "jt808", "phone": "000000000000"}, "phone"),
        ({"protocol": "jt808", "phone": "13912A40001"}, "phone"),
        ({"protocol": "jt808", "phone": "1" * 21}, "phone"),
        ({"id": "MQTT0001", "phone": "013912340002"}, "phone"),
        ({"model": "BSJ-A6"}, "id"),
    ):
        r = await client.post("/api/v1/terminals", json=bad, headers=admin)
        assert r.status_code == 422, (bad, r.text)
        assert r.json()["error"]["field"] == field, (bad, r.text)
    # registered (as the gateway would record it); rotating the secret revokes the registration
    await session.execute(
        text(
            "UPDATE terminals SET auth_code_hash = 'sha256$00', registered_at = now() WHERE id = 'JT13912340001'"
        )
    )
    r = await client.patch(
        "/api/v1/terminals/JT13912340001", json={"rotate_secret": True}, headers=admin
    )
    assert r.status_code == 200 and r.json()["registered_at"] is None and r.json()["secret"]
    # deactivated, its SIM number may be given to a new terminal; not back while taken
    r = await client.patch("/api/v1/terminals/JT13912340001", json={"active": False}, headers=admin)
    assert r.status_code == 200
    r = await client.post(
        "/api/v1/terminals",
        json={"protocol": "jt808", "phone": "13912340001", "id": "JT-NEW-SIM"},
        headers=admin,
    )
    assert r.status_code == 201, r.text
    r = await client.patch("/api/v1/terminals/JT13912340001", json={"active": True}, headers=admin)
    assert (r.status_code, r.json()["error"]["field"]) == (409, "phone")
    r = await client.get("/api/v1/terminals", params={"q": "1391234"}, headers=admin)
    assert {t["id"] for t in r.json()["items"]} == {"JT13912340001", "JT-NEW-SIM"}
    # a phone for an MQTT terminal is refused on PATCH too
    mqtt_id = (
        await client.get("/api/v1/terminals", params={"limit": 1, "q": "GX"}, headers=admin)
    ).json()["items"][0]["id"]
    r = await client.patch(
        f"/api/v1/terminals/{mqtt_id}", json={"phone": "013912340009"}, headers=admin
    )
    assert (r.status_code, r.json()["error"]["field"]) == (422, "phone")


async def test_commands_role_scope_and_validation(
    client: httpx.AsyncClient, login: Login, session: AsyncSession
) -> None:
    vid = await jt808_vehicle(session)
    url = f"/api/v1/vehicles/{vid}/terminal/commands"
    qingxiu = await login("dispatcher.qingxiu")
    r = await client.post(
        url, json={"kind": "text", "text": "请到北门接人，谢谢", "urgent": True}, headers=qingxiu
    )
    assert r.status_code == 202, r.text
    cmd = r.json()
    assert (cmd["kind"], cmd["text"], cmd["status"], cmd["created_by"]) == (
        "text",
        "请到北门接人，谢谢",
        "queued",
        "dispatcher.qingxiu",
    )
    r = await client.post(url, json={"kind": "position_query"}, headers=qingxiu)
    assert r.status_code == 202 and r.json()["status"] == "queued"
    audit = await session.execute(
        text(
            "SELECT data->>'text' FROM audit_log WHERE action = 'terminal_command.create' AND entity_id = :i"
        ),
        {"i": str(cmd["id"])},
    )
    assert audit.scalar_one() == "请到北门接人，谢谢"
    # read by auditors and dispatchers in scope; newest first
    for who in ("dispatcher.qingxiu", "auditor", "admin"):
        r = await client.get(f"/api/v1/vehicles/{vid}/terminal", headers=await login(who))
        assert r.status_code == 200, (who, r.text)
        link = r.json()
        assert (link["protocol"], link["online"], link["commands_supported"]) == (
            "jt808",
            False,
            True,
        )
        assert [c["kind"] for c in link["commands"]] == ["position_query", "text"]
    # outside the scope (404, as for a vehicle that does not exist), or without the role
    # (403): refused, nothing queued
    for who, status, code in (
        ("dispatcher.xingning", 404, "not_found"),
        ("auditor", 403, "role_required"),
        ("requester.qingxiu", 403, "role_required"),
    ):
        r = await client.post(url, json={"kind": "position_query"}, headers=await login(who))
        assert (r.status_code, r.json()["error"]["code"]) == (status, code), (who, r.text)
    r = await client.get(
        f"/api/v1/vehicles/{vid}/terminal", headers=await login("dispatcher.xingning")
    )
    assert r.status_code == 404
    # bad bodies
    for bad, field in (
        ({"kind": "text"}, None),
        ({"kind": "text", "text": "a\u0007b"}, "text"),
        ({"kind": "text", "text": "车🚗"}, "text"),
        ({"kind": "text", "text": "x" * 201}, "text"),
        ({"kind": "position_query", "text": "x"}, None),
        ({"kind": "reboot"}, "kind"),
    ):
        r = await client.post(url, json=bad, headers=qingxiu)
        assert r.status_code == 422, (bad, r.text)
        if field:
            assert r.json()["error"]["field"] == field, (bad, r.text)
    n = await session.scalar(
        text("SELECT count(*) FROM terminal_commands WHERE vehicle_id = :v"), {"v": vid}
    )
    assert n == 2


@pytest.mark.parametrize("case", ["mqtt", "none", "inactive", "unknown"])
async def test_commands_need_an_active_jt808_terminal(
    client: httpx.AsyncClient, login: Login, session: AsyncSession, case: str
) -> None:
    admin = await login("admin")
    vid = await a_vehicle(session, free=case == "none")
    if case == "inactive":
        vid = await jt808_vehicle(session)
        await session.execute(
            text("UPDATE terminals SET active = false WHERE vehicle_id = :v"), {"v": vid}
        )
    if case == "unknown":
        vid = 9_000_000
    r = await client.post(
        f"/api/v1/vehicles/{vid}/terminal/commands", json={"kind": "position_query"}, headers=admin
    )
    expected = {"mqtt": (409, "unsupported_protocol"), "none": (409, "no_terminal"),
                "inactive": (409, "terminal_inactive"), "unknown": (404, "not_found")}[case]  # fmt: skip
    assert (r.status_code, r.json()["error"]["code"]) == expected, r.text
