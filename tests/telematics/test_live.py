"""Live websocket on a real uvicorn server, real Redis: auth, scope, coalescing, slow consoles.

The Redis channels are shared with everything else running on this machine (pub/sub
ignores database numbers), so every assertion looks only at this test's own messages,
marked by timestamps in 2031.
"""

from __future__ import annotations

import asyncio
import base64
import itertools
import os
import socket
import threading
import time
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg
import httpx
import orjson
import pytest
import uvicorn
from redis.asyncio import Redis
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed

from fleet.config import Settings
from fleet.identity.security import issue_token
from telematics import bus
from tests.telematics.conftest import free_port

MARK = datetime(2031, 1, 1, tzinfo=UTC)


class Server:
    def __init__(self, settings: Settings) -> None:
        from web.app import create_app

        self.app = create_app(settings)
        self.port = free_port()
        self.server = uvicorn.Server(
            uvicorn.Config(self.app, host="127.0.0.1", port=self.port, log_level="warning")
        )
        self.thread = threading.Thread(target=self.server.run, daemon=True)

    def start(self) -> None:
        self.thread.start()
        deadline = time.monotonic() + 30
        while not self.server.started:
            assert time.monotonic() < deadline, "uvicorn did not start"
            assert self.thread.is_alive(), "uvicorn died"
            time.sleep(0.05)

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(15)

    def ticket(self, token: str) -> str:
        """A single-use websocket ticket, bought with the bearer token over HTTP."""
        r = httpx.post(
            f"http://127.0.0.1:{self.port}/api/v1/live/ticket",
            headers={"Authorization": f"Bearer {token}"},
            timeout=10,
        )
        assert r.status_code == 200, r.text
        return str(r.json()["ticket"])

    def url(self, token: str | None = None) -> str:
        """The websocket URL, with a fresh ticket for `token` (no secret in the URL)."""
        q = f"?ticket={self.ticket(token)}" if token is not None else ""
        return f"ws://127.0.0.1:{self.port}/api/v1/live{q}"


@pytest.fixture(scope="module")
def live(mq_db: Settings) -> Iterator[Server]:
    s = Server(mq_db)
    s.start()
    yield s
    s.stop()


@pytest.fixture(scope="module")
def world(mq_db: Settings) -> dict[str, Any]:
    """User ids, tokens and a vehicle (id, unit path) per county of the throw-away DB."""

    async def load() -> dict[str, Any]:
        conn = await asyncpg.connect(mq_db.db.dsn())
        try:
            users = {
                r["username"]: r["id"] for r in await conn.fetch("SELECT id, username FROM users")
            }
            out: dict[str, Any] = {"users": users}
            for county in ("450103", "450102"):
                r = await conn.fetchrow(
                    "SELECT v.id, o.path::text AS path FROM vehicles v JOIN orgs o ON"
                    " o.id = v.unit_id WHERE o.path <@ (SELECT path FROM orgs WHERE code = $1)"
                    " AND v.shared_pool = 'none' ORDER BY v.id LIMIT 2",
                    county,
                )
                out[county] = (r["id"], r["path"])
            return out
        finally:
            await conn.close()

    w = asyncio.run(load())
    w["tokens"] = {
        name: issue_token(mq_db.auth, uid).access_token for name, uid in w["users"].items()
    }
    return w


@pytest.fixture
async def redis(mq_db: Settings) -> AsyncIterator[Redis]:
    r = bus.redis_client(mq_db.redis.url)
    yield r
    await r.aclose()


def item(vehicle_id: int, path: str, ts: datetime, **kw: Any) -> dict[str, Any]:
    return {
        "vehicle_id": vehicle_id,
        "org_path": path,
        "ts": ts.isoformat().replace("+00:00", "Z"),
        "lat": 22.8,
        "lon": 108.3,
        "speed_kmh": 30.0,
        "heading_deg": 90.0,
        "acc": True,
        "flags": 0,
        **kw,
    }


async def open_console(live: Server, token: str, **kw: Any) -> ClientConnection:
    ws = await connect(live.url(token), open_timeout=10, **kw)
    hello = orjson.loads(await asyncio.wait_for(ws.recv(), 10))
    assert hello["type"] == "hello"
    return ws


async def collect(
    ws: ClientConnection, seconds: float, *, first: bool = False
) -> list[tuple[float, dict[str, Any]]]:
    """Our (2031-marked) messages received within `seconds` (or the first), with arrival times."""
    out: list[tuple[float, dict[str, Any]]] = []
    deadline = time.monotonic() + seconds
    while (left := deadline - time.monotonic()) > 0:
        try:
            raw = await asyncio.wait_for(ws.recv(), left)
        except TimeoutError:
            break
        msg = orjson.loads(raw)
        if msg["type"] == "positions":
            mine = [i for i in msg["items"] if str(i.get("ts", "")).startswith("2031")]
            if mine:
                out.append((time.monotonic(), {**msg, "items": mine}))
        elif str((msg.get("data") or {}).get("mark", "")) == "2031":
            out.append((time.monotonic(), msg))
        if first and out:
            break
    return out


async def test_auth_refused(live: Server, world: dict[str, Any]) -> None:
    # a bearer token in the URL is refused, even a valid one (it would be logged)
    base = f"ws://127.0.0.1:{live.port}/api/v1/live"
    async with connect(f"{base}?token={world['tokens']['admin']}", open_timeout=10) as ws:
        err = orjson.loads(await asyncio.wait_for(ws.recv(), 10))
        assert err["type"] == "error" and err["code"] == "token_in_url"
        with pytest.raises(ConnectionClosed) as exc:
            await asyncio.wait_for(ws.recv(), 10)
        assert exc.value.rcvd is not None and exc.value.rcvd.code == 4401
    # a ticket nobody issued
    async with connect(f"{base}?ticket=not-a-ticket", open_timeout=10) as ws:
        err = orjson.loads(await asyncio.wait_for(ws.recv(), 10))
        assert err["type"] == "error" and err["code"] == "ticket_invalid"
        with pytest.raises(ConnectionClosed) as exc:
            await asyncio.wait_for(ws.recv(), 10)
        assert exc.value.rcvd is not None and exc.value.rcvd.code == 4401
    # no token; the first message is not an auth message
    async with connect(live.url(), open_timeout=10) as ws:
        await ws.send(orjson.dumps({"type": "subscribe"}).decode())
        err = orjson.loads(await asyncio.wait_for(ws.recv(), 10))
        assert err["code"] == "token_missing"
        with pytest.raises(ConnectionClosed):
            await asyncio.wait_for(ws.recv(), 10)
    # a forged token in the first message
    async with connect(live.url(), open_timeout=10) as ws:
        await ws.send(orjson.dumps({"type": "auth", "token": "x.y.z"}).decode())
        err = orjson.loads(await asyncio.wait_for(ws.recv(), 10))
        assert err["code"] == "token_invalid"
    # the right token in the first message works
    async with connect(live.url(), open_timeout=10) as ws:
        token = world["tokens"]["dispatcher.qingxiu"]
        await ws.send(orjson.dumps({"type": "auth", "token": token}).decode())
        hello = orjson.loads(await asyncio.wait_for(ws.recv(), 10))
        assert hello["type"] == "hello" and hello["user"] == "dispatcher.qingxiu"
        assert hello["vehicles"] > 0


async def test_scoped_delivery(live: Server, world: dict[str, Any], redis: Redis) -> None:
    qx_vid, qx_path = world["450103"]
    xn_vid, xn_path = world["450102"]
    qx = await open_console(live, world["tokens"]["dispatcher.qingxiu"])
    xn = await open_console(live, world["tokens"]["dispatcher.xingning"])
    city = await open_console(live, world["tokens"]["dispatcher.nanning"])
    try:
        ts = MARK + timedelta(seconds=1)
        await bus.publish_positions(redis, [item(qx_vid, qx_path, ts), item(xn_vid, xn_path, ts)])
        await bus.publish_event(
            redis,
            "status",
            {"vehicle_id": qx_vid, "status": "moving", "mark": "2031"},
            org_path=qx_path,
        )
        await bus.publish_event(
            redis,
            "notification",
            {"text": "派车单已送达", "mark": "2031"},
            user_ids=[world["users"]["dispatcher.xingning"]],
        )
        got = {
            name: await collect(ws, 2.0) for name, ws in (("qx", qx), ("xn", xn), ("city", city))
        }
    finally:
        for ws in (qx, xn, city):
            await ws.close()

    def vehicles(msgs: list[tuple[float, dict[str, Any]]]) -> set[int]:
        return {i["vehicle_id"] for _, m in msgs if m["type"] == "positions" for i in m["items"]}

    def types(msgs: list[tuple[float, dict[str, Any]]]) -> list[str]:
        return sorted(m["type"] for _, m in msgs if m["type"] != "positions")

    assert vehicles(got["qx"]) == {qx_vid}
    assert vehicles(got["xn"]) == {xn_vid}
    assert vehicles(got["city"]) == {qx_vid, xn_vid}
    assert types(got["qx"]) == ["status"]
    assert types(got["xn"]) == ["notification"]
    assert types(got["city"]) == ["status"]
    pos = next(m for _, m in got["qx"] if m["type"] == "positions")
    assert pos["items"][0]["ts"] == "2031-01-01T00:00:01Z"  # the ping's own ts, for latency


async def test_coalescing_and_bbox(live: Server, world: dict[str, Any], redis: Redis) -> None:
    qx_vid, qx_path = world["450103"]
    ws = await open_console(live, world["tokens"]["admin"])
    try:
        # 15 pings of one vehicle within ~0.7 s
        for k in range(15):
            ts = MARK + timedelta(minutes=1, seconds=k)
            await bus.publish_positions(redis, [item(qx_vid, qx_path, ts)])
            await asyncio.sleep(0.05)
        got = await collect(ws, 4.0)  # > 2 coalescing periods, with slack for a loaded box
        deliveries = [
            (m["sent_at"], i) for _, m in got for i in m["items"] if i["vehicle_id"] == qx_vid
        ]
        assert 1 <= len(deliveries) <= 3
        times = [t for t, _ in deliveries]  # server clock when each message was made
        assert all(b - a >= 0.95 for a, b in itertools.pairwise(times)), times
        assert deliveries[-1][1]["ts"] == "2031-01-01T00:01:14Z"  # the latest one wins

        # a bbox subscription hides what lies outside it
        await ws.send(orjson.dumps({"type": "subscribe", "bbox": [100, 20, 101, 21]}).decode())
        await asyncio.sleep(0.3)
        await bus.publish_positions(redis, [item(qx_vid, qx_path, MARK + timedelta(minutes=2))])
        assert await collect(ws, 1.5) == []
        await ws.send(orjson.dumps({"type": "subscribe", "bbox": [108, 22, 109, 23]}).decode())
        await asyncio.sleep(0.3)
        await bus.publish_positions(redis, [item(qx_vid, qx_path, MARK + timedelta(minutes=3))])
        assert len(await collect(ws, 1.5)) == 1
    finally:
        await ws.close()


async def test_slow_console_is_dropped_and_never_slows_a_fast_one(
    live: Server, world: dict[str, Any], redis: Redis, monkeypatch: pytest.MonkeyPatch
) -> None:
    import web.live as live_mod

    monkeypatch.setattr(live_mod, "MAX_LAG_S", 1.5)
    monkeypatch.setattr(live_mod, "SEND_TIMEOUT_S", 2.0)
    admin_id = world["users"]["admin"]
    qx_vid, qx_path = world["450103"]
    # the slow console: a raw websocket handshake on a socket with a tiny receive window,
    # then never a read
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)  # before connect: small window
    sock.settimeout(10)
    sock.connect(("127.0.0.1", live.port))
    key = base64.b64encode(os.urandom(16)).decode()
    sock.sendall(
        (
            f"GET /api/v1/live?ticket={live.ticket(world['tokens']['admin'])} HTTP/1.1\r\n"
            f"Host: 127.0.0.1:{live.port}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
            f"Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n"
        ).encode()
    )
    head = b""
    while b"\r\n\r\n" not in head:
        head += sock.recv(1)
    assert head.startswith(b"HTTP/1.1 101"), head
    fast = await open_console(live, world["tokens"]["auditor"])
    hub = live.app.state.live_hub
    deadline = time.monotonic() + 10
    while not any(c.principal.username == "admin" for c in hub.consoles):
        assert time.monotonic() < deadline, "the slow console never registered"
        await asyncio.sleep(0.05)
    try:
        pad = "x" * 100_000
        latencies: list[float] = []
        for k in range(100):
            # 100 KB notifications for the slow console's user only
            await bus.publish_event(redis, "notification", {"pad": pad}, user_ids=[admin_id])
            if k % 10 == 0:
                sent = time.monotonic()
                ts = MARK + timedelta(hours=1, seconds=k)
                await bus.publish_positions(redis, [item(qx_vid, qx_path, ts)])
                got = await collect(fast, 1.5, first=True)
                assert got, f"fast console starved at step {k}"
                latencies.append(got[0][0] - sent)
            await asyncio.sleep(0.02)
        deadline = time.monotonic() + 20
        while any(c.principal.username == "admin" for c in hub.consoles):
            assert time.monotonic() < deadline, "the slow console was never dropped"
            await asyncio.sleep(0.2)
        # the fast console still works after the drop
        await bus.publish_positions(redis, [item(qx_vid, qx_path, MARK + timedelta(hours=2))])
        assert await collect(fast, 2.0)
        assert max(latencies) < 1.2, latencies
    finally:
        await fast.close()
        sock.close()


async def _alert_events(
    ws: ClientConnection, alert_id: int, seconds: float
) -> list[dict[str, Any]]:
    """`alert` events about one alert received within `seconds`."""
    out: list[dict[str, Any]] = []
    deadline = time.monotonic() + seconds
    while (left := deadline - time.monotonic()) > 0:
        try:
            msg = orjson.loads(await asyncio.wait_for(ws.recv(), left))
        except TimeoutError:
            break
        if msg["type"] == "alert" and (msg.get("data") or {}).get("id") == alert_id:
            out.append(msg)
    return out


async def test_acknowledge_and_close_reach_other_consoles_in_scope(
    live: Server, world: dict[str, Any], mq_db: Settings
) -> None:
    """A dispatcher acknowledges through the real API; the city dispatcher's console hears it
    after commit, a neighbouring county's console never does; the same for closing."""
    import httpx

    qx_vid, _ = world["450103"]
    conn = await asyncpg.connect(mq_db.db.dsn())
    try:
        aid = await conn.fetchval(
            "INSERT INTO alerts (kind, vehicle_id, org_id, started_at, message, evidence,"
            " dedup_key) SELECT 'overspeed', v.id, v.unit_id, $2, '超速 2031', '{}', $3"
            " FROM vehicles v WHERE v.id = $1 RETURNING id",
            qx_vid,
            MARK + timedelta(days=3),
            f"live-ack:{qx_vid}:{time.time_ns()}",
        )
    finally:
        await conn.close()
    city = await open_console(live, world["tokens"]["dispatcher.nanning"])
    xn = await open_console(live, world["tokens"]["dispatcher.xingning"])
    headers = {"Authorization": f"Bearer {world['tokens']['dispatcher.qingxiu']}"}
    base = f"http://127.0.0.1:{live.port}/api/v1/alerts/{aid}"
    try:
        async with httpx.AsyncClient(timeout=10) as http:
            r = await http.post(
                f"{base}/acknowledge", json={"comment": "已电话提醒"}, headers=headers
            )
            assert r.status_code == 200, r.text
            got = await _alert_events(city, aid, 5.0)
            assert len(got) == 1, got
            d = got[0]["data"]
            assert d["status"] == "acknowledged" and d["from_status"] == "open"
            assert d["ack_comment"] == "已电话提醒" and d["by"] == "dispatcher.qingxiu"
            assert d["vehicle_id"] == qx_vid and d["ack_at"] is not None
            assert isinstance(d["vehicle_open_alerts"], int)

            r = await http.post(f"{base}/close", json={"comment": "已处理"}, headers=headers)
            assert r.status_code == 200, r.text
            got = await _alert_events(city, aid, 5.0)
            assert [m["data"]["status"] for m in got] == ["closed"]
            # a refused transition (409) was rolled back: nothing is announced
            r = await http.post(f"{base}/close", json={"comment": "again"}, headers=headers)
            assert r.status_code == 409
            assert await _alert_events(city, aid, 1.5) == []
        # the neighbouring county saw neither (its events would have queued by now)
        assert await _alert_events(xn, aid, 1.0) == []
    finally:
        await city.close()
        await xn.close()
