"""Helpers for dispatch tests: places, vehicles, drivers, trips driven over HTTP."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import orjson
import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession

from fleet.config import get_settings
from telematics import bus
from tests.conftest import DEMO_PASSWORD, Login, bearer

API = "/api/v1"


@dataclass
class World:
    """Ids of the demo region the dispatch tests use (青秀区, Nanning)."""

    requester_unit: int  # 450103-02 青秀区人民政府办公室
    pool_unit: int  # 450103-03 青秀区机关事务管理局
    county: int  # 450103 青秀区
    city: int  # 450100 南宁市
    here: tuple[float, float]  # near the county seat (lat, lon)
    xingning: tuple[float, float]  # another county of the same city
    guilin: tuple[float, float]  # another city
    driver_id: int  # the demo driver (driver.qingxiu)
    users: dict[str, int]


async def _org(session: AsyncSession, code: str) -> tuple[int, float, float]:
    row = (
        await session.execute(
            text("SELECT id, ST_Y(location), ST_X(location) FROM orgs WHERE code = :c"), {"c": code}
        )
    ).one()
    return int(row[0]), float(row[1]), float(row[2])


@pytest.fixture
async def world(session: AsyncSession) -> World:
    unit, *_ = await _org(session, "450103-02")
    pool, *_ = await _org(session, "450103-03")
    county, lat, lon = await _org(session, "450103")
    city, *_ = await _org(session, "450100")
    _, xlat, xlon = await _org(session, "450102")
    _, glat, glon = await _org(session, "450300")
    users = {
        r[0]: int(r[1])
        for r in (await session.execute(text("SELECT username, id FROM users"))).all()
    }
    driver = await session.scalar(
        text("SELECT id FROM drivers WHERE user_id = :u"), {"u": users["driver.qingxiu"]}
    )
    # The demo driver holds an A1 licence here so any body type fits unless a test says otherwise.
    await session.execute(
        text(
            "UPDATE drivers SET licence_class = 'A1', status = 'active', licence_expires = NULL"
            " WHERE id = :d"
        ),
        {"d": driver},
    )
    # Commit (to the test's outer transaction): a refused request rolls back to here, not further.
    await session.commit()
    return World(
        requester_unit=unit,
        pool_unit=pool,
        county=county,
        city=city,
        here=(lat + 0.01, lon + 0.01),
        xingning=(xlat, xlon),
        guilin=(glat, glon),
        driver_id=int(driver),
        users=users,
    )


_VIN_SEQ = iter(range(1, 10_000))


async def make_vehicle(
    session: AsyncSession,
    unit_id: int,
    *,
    body_type: str = "sedan",
    seats: int = 5,
    energy: str = "ice",
    nev_range_km: int | None = None,
    status: str = "in_service",
    shared_pool: str = "none",
) -> int:
    n = next(_VIN_SEQ)
    engine = None if energy == "bev" else 1.5
    if energy != "ice" and nev_range_km is None:
        nev_range_km = 400
    vid = await session.scalar(
        text(
            "INSERT INTO vehicles (plate, vin, category, body_type, seats, energy, nev_range_km,"
            " engine_l, price_cny, purchase_date, unit_id, depot, status, shared_pool) VALUES"
            " (:plate, :vin, 'pool', :body, :seats, :energy, :range, :engine, 150000,"
            " '2024-01-01', :unit, ST_SetSRID(ST_MakePoint(108.38, 22.82), 4326), :status,"
            " :pool) RETURNING id"
        ),
        {
            "plate": f"桂AT{n:05d}",
            "vin": f"LTEST{n:012d}",
            "body": body_type,
            "seats": seats,
            "energy": energy,
            "range": nev_range_km,
            "engine": engine,
            "unit": unit_id,
            "status": status,
            "pool": shared_pool,
        },
    )
    await session.commit()
    return int(vid)


async def make_driver(
    session: AsyncSession, unit_id: int, licence: str = "C1", user_id: int | None = None
) -> int:
    n = next(_VIN_SEQ)
    did = await session.scalar(
        text(
            "INSERT INTO drivers (name, licence_class, licence_no, unit_id, user_id)"
            " VALUES (:name, :lic, :no, :unit, :user) RETURNING id"
        ),
        {
            "name": f"测试驾驶员{n}",
            "lic": licence,
            "no": f"T{n:010d}",
            "unit": unit_id,
            "user": user_id,
        },
    )
    await session.commit()
    return int(did)


def trip_body(
    world: World,
    *,
    dest: tuple[float, float] | None = None,
    passengers: int = 3,
    start_in_h: float = 24,
    hours: float = 3,
    **extra: Any,
) -> dict[str, Any]:
    start = datetime.now(UTC) + timedelta(hours=start_in_h)
    lat, lon = world.here
    dlat, dlon = dest or (lat + 0.03, lon + 0.02)
    return {
        "passengers": passengers,
        "passenger_names": ["张伟"],
        "nature": "official",
        "purpose": "到区政务中心开会",
        "origin": {"lat": lat, "lon": lon, "address": "青秀区人民政府"},
        "destination": {"lat": dlat, "lon": dlon, "address": "政务服务中心"},
        "departure_at": start.isoformat(),
        "return_at": (start + timedelta(hours=hours)).isoformat(),
        "round_trip": True,
        **extra,
    }


async def approved_trip(
    client: httpx.AsyncClient, login: Login, world: World, **kw: Any
) -> dict[str, Any]:
    """A trip filed by requester.qingxiu and approved by approver.qingxiu."""
    req = await login("requester.qingxiu")
    r = await client.post(
        f"{API}/trips", json={**trip_body(world, **kw), "submit": True}, headers=req
    )
    assert r.status_code == 201, r.text
    trip = r.json()
    r = await client.post(
        f"{API}/trips/{trip['id']}/approve", json={}, headers=await login("approver.qingxiu")
    )
    assert r.status_code == 200, r.text
    assert r.json()["state"] == "approved"
    return r.json()  # type: ignore[no-any-return]


class EventTap:
    """A real Redis subscription to the live bus's event channel."""

    def __init__(self) -> None:
        self.redis = bus.redis_client(get_settings().redis.url)
        self.pubsub = self.redis.pubsub()
        self.events: list[dict[str, Any]] = []

    async def start(self) -> None:
        await self.pubsub.subscribe(bus.events_channel())
        # Wait for the subscription confirmation so no later publication is missed.
        for _ in range(50):
            m = await self.pubsub.get_message(timeout=0.1)
            if m and m["type"] == "subscribe":
                return

    async def wait_for(self, pred: Any, timeout_s: float = 5.0) -> dict[str, Any]:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout_s

        def matches(e: dict[str, Any]) -> bool:
            # The channel is shared (other processes publish too): a foreign shape is no match.
            try:
                return bool(pred(e))
            except (KeyError, TypeError):
                return False

        for e in self.events:
            if matches(e):
                return e
        while loop.time() < deadline:
            m = await self.pubsub.get_message(ignore_subscribe_messages=True, timeout=0.2)
            if m and m["type"] == "message":
                e = orjson.loads(m["data"])
                self.events.append(e)
                if matches(e):
                    return e
        raise AssertionError(f"no matching event within {timeout_s}s; saw {self.events[-5:]}")

    async def close(self) -> None:
        await self.pubsub.unsubscribe()
        await self.pubsub.aclose()
        await self.redis.aclose()


@pytest.fixture
async def events() -> AsyncIterator[EventTap]:
    tap = EventTap()
    await tap.start()
    try:
        yield tap
    finally:
        await tap.close()


_TOKENS: dict[str, dict[str, str]] = {}
_DEMO = {
    "admin",
    "auditor",
    "dispatcher.nanning",
    "dispatcher.qingxiu",
    "dispatcher.xingning",
    "approver.qingxiu",
    "requester.qingxiu",
    "driver.qingxiu",
}


@pytest.fixture
def login(login: Login, client: httpx.AsyncClient) -> Login:
    """The root `login`, with demo users' tokens reused across tests (password hashing is slow).

    A login's server-side session lives in the test's transaction and is rolled back with it,
    so the token reused across tests is a sessionless one (`bearer`, admitted in tests only)."""

    async def _login(username: str, password: str | None = None) -> dict[str, str]:
        if username in _DEMO and password is None:
            if username not in _TOKENS:
                r = await client.post(
                    f"{API}/auth/login", json={"username": username, "password": DEMO_PASSWORD}
                )
                assert r.status_code == 200, r.text
                _TOKENS[username] = bearer(get_settings(), int(r.json()["user"]["id"]))
            return _TOKENS[username]
        return await login(username) if password is None else await login(username, password)

    return _login
