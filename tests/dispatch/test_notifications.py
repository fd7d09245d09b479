"""Notifications are stored with the work that caused them: an inbox, unread count, mark read."""

from __future__ import annotations

import httpx

from tests.conftest import Login
from tests.dispatch.conftest import API, World, trip_body


async def test_inbox_unread_and_mark_read(
    client: httpx.AsyncClient, login: Login, world: World
) -> None:
    req = await login("requester.qingxiu")
    appr = await login("approver.qingxiu")

    r = await client.get(f"{API}/me/notifications", headers=appr)
    assert r.status_code == 200, r.text
    before = r.json()["unread"]

    # Submitting a request notifies the approver; the row is there even if nobody listened.
    r = await client.post(f"{API}/trips", json={**trip_body(world), "submit": True}, headers=req)
    assert r.status_code == 201, r.text
    tid = r.json()["id"]
    r = await client.get(f"{API}/me/notifications", params={"unread": True}, headers=appr)
    page = r.json()
    assert page["unread"] == before + 1 and page["total"] == page["unread"]
    mine = [n for n in page["items"] if n["data"].get("trip_id") == tid]
    assert len(mine) == 1 and mine[0]["kind"] == "approval_needed" and mine[0]["read_at"] is None
    assert str(tid) in mine[0]["message"]
    nid = mine[0]["id"]

    # Another user can neither see it nor mark it read.
    r = await client.get(f"{API}/me/notifications", headers=req)
    assert nid not in [n["id"] for n in r.json()["items"]]
    r = await client.post(f"{API}/me/notifications/read", json={"ids": [nid]}, headers=req)
    assert r.status_code == 200 and r.json()["marked"] == 0

    # The approver marks it read; a second time changes nothing.
    r = await client.post(f"{API}/me/notifications/read", json={"ids": [nid]}, headers=appr)
    assert r.status_code == 200 and r.json() == {"marked": 1, "unread": before}
    r = await client.post(f"{API}/me/notifications/read", json={"ids": [nid]}, headers=appr)
    assert r.json()["marked"] == 0
    r = await client.get(
        f"{API}/me/notifications", params={"kind": "approval_needed"}, headers=appr
    )
    hit = next(n for n in r.json()["items"] if n["id"] == nid)
    assert hit["read_at"] is not None

    # Approving notifies the requester; `all: true` clears their inbox.
    r = await client.post(f"{API}/trips/{tid}/approve", json={"comment": "同意"}, headers=appr)
    assert r.status_code == 200, r.text
    r = await client.get(f"{API}/me/notifications", params={"unread": True}, headers=req)
    assert any(n["kind"] == "approved" and n["data"]["trip_id"] == tid for n in r.json()["items"])
    r = await client.post(f"{API}/me/notifications/read", json={"all": True}, headers=req)
    assert r.status_code == 200 and r.json()["marked"] >= 1 and r.json()["unread"] == 0


async def test_mark_read_refuses_bad_bodies(client: httpx.AsyncClient, login: Login) -> None:
    h = await login("approver.qingxiu")
    for body, field in (
        ({}, ""),
        ({"ids": [1], "all": True}, ""),
        ({"ids": ["x"]}, "ids.0"),
        ({"ids": [1], "extra": 1}, "extra"),
    ):
        r = await client.post(f"{API}/me/notifications/read", json=body, headers=h)
        assert r.status_code == 422, (body, r.text)
        err = r.json()["error"]
        assert err["code"] and err["message"]
        if field:
            assert err["field"] == field, (body, err)
    r = await client.get(f"{API}/me/notifications", params={"limit": 0}, headers=h)
    assert r.status_code == 422 and r.json()["error"]["field"] == "limit"
    r = await client.get(f"{API}/me/notifications")
    assert r.status_code == 401
