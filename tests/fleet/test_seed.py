"""The seeded region matches the divisions package and the requested fleet."""

from __future__ import annotations

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection

from dispatch.seed import SeedConfig, build_fleet, build_orgs, vin_check_digit
from fleet.divisions import province_divisions
from tests.conftest import TEST_VEHICLES


async def _scalar(conn: AsyncConnection, sql: str) -> object:
    return (await conn.execute(text(sql))).scalar_one()


async def test_every_city_and_county_of_guangxi_is_present(conn: AsyncConnection) -> None:
    divisions = province_divisions("45")
    cities = {d.code: d.name for d in divisions if d.level == "city"}
    counties = {d.code: d.name for d in divisions if d.level == "county"}
    assert len(cities) == 14
    assert len(counties) > 100
    rows = (await conn.execute(text("SELECT code, name, kind FROM orgs"))).all()
    got = {(r.code, r.name) for r in rows}
    assert {(c, n) for c, n in cities.items()} <= got
    assert {(c, n) for c, n in counties.items()} <= got
    assert await _scalar(conn, "SELECT count(*) FROM orgs WHERE kind = 'city'") == 14
    assert await _scalar(conn, "SELECT count(*) FROM orgs WHERE kind = 'county'") == len(counties)
    # every division has a location inside Guangxi's bounding box
    assert (
        await _scalar(
            conn,
            "SELECT count(*) FROM orgs WHERE kind IN ('city','county') AND NOT"
            " ST_Within(location, ST_MakeEnvelope(104.2, 20.8, 112.2, 26.5, 4326))",
        )
        == 0
    )
    # counties hang under their city in the tree
    assert (
        await _scalar(
            conn,
            "SELECT count(*) FROM orgs c JOIN orgs p ON p.id = c.parent_id"
            " WHERE c.kind = 'county' AND (p.kind <> 'city' OR NOT c.path <@ p.path)",
        )
        == 0
    )


async def test_fleet_counts_and_mix(conn: AsyncConnection) -> None:
    assert await _scalar(conn, "SELECT count(*) FROM vehicles") == TEST_VEHICLES
    assert (
        await _scalar(conn, "SELECT count(*) FROM terminals WHERE vehicle_id IS NOT NULL")
        == TEST_VEHICLES
    )
    assert await _scalar(conn, "SELECT count(DISTINCT body_type) FROM vehicles") == 5
    nev = await _scalar(conn, "SELECT avg((energy <> 'ice')::int) FROM vehicles")
    assert 0.1 < float(nev) < 0.5  # type: ignore[arg-type]
    # provisioning standard: courier sedans within the price/engine cap
    assert (
        await _scalar(
            conn,
            "SELECT count(*) FROM vehicles WHERE category = 'courier'"
            " AND (price_cny > 120000 OR engine_l > 1.6)",
        )
        == 0
    )
    assert await _scalar(conn, "SELECT count(*) FROM users") >= 9


def test_seed_is_deterministic_and_vins_are_valid() -> None:
    import random

    divisions = province_divisions("45")
    cfg = SeedConfig(vehicles=300, seed=3)
    a = build_fleet(build_orgs(divisions, random.Random(3)), cfg, random.Random(4))
    b = build_fleet(build_orgs(divisions, random.Random(3)), cfg, random.Random(4))
    assert a == b
    vins = [v[2] for v in a[0]]
    assert len(set(vins)) == 300
    assert all(vin_check_digit(v) == v[8] for v in vins)  # type: ignore[index,arg-type]
    assert vin_check_digit("1M8GDM9AXKP042788") == "X"  # textbook example
