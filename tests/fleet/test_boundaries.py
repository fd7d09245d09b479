"""The drawn city and county borders in PostGIS: the same polygons as the map, one per org."""

from __future__ import annotations

import json

import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection

from fleet import boundaries
from fleet.config import ROOT
from tests.telematics.test_derive import raw

BUNDLE = ROOT / "web" / "frontend" / "public" / "geo"


async def test_every_city_and_county_has_its_border(conn: AsyncConnection) -> None:
    missing = (
        await conn.execute(
            text(
                "SELECT o.code, o.name FROM orgs o LEFT JOIN division_boundaries b"
                " ON b.org_id = o.id WHERE o.kind IN ('city', 'county') AND b.org_id IS NULL"
            )
        )
    ).all()
    assert missing == []
    # Renamed since the source was drawn: matched by name within the city, source kept.
    renamed = dict(
        (
            await conn.execute(
                text(
                    "SELECT o.name, b.source_name FROM division_boundaries b"
                    " JOIN orgs o ON o.id = b.org_id WHERE o.name <> b.source_name"
                )
            )
        ).all()
    )
    assert renamed["横州市"] == "横县" and renamed["宜州区"] == "宜州市"
    # Every county seat lies inside its own county's border and no other.
    wrong = (
        await conn.execute(
            text(
                "SELECT o.name, array_agg(c.name ORDER BY c.code) FROM orgs o"
                " JOIN division_boundaries b ON ST_Covers(b.geom, o.location)"
                " JOIN orgs c ON c.id = b.org_id AND c.kind = 'county'"
                " WHERE o.kind = 'county' GROUP BY o.id, o.name"
                " HAVING array_agg(c.id) <> ARRAY[o.id]"
            )
        )
    ).all()
    assert wrong == []


async def test_reload_replaces_and_repairs(conn: AsyncConnection) -> None:
    apg = await raw(conn)
    async with apg.transaction():
        report = await boundaries.load(apg)
    assert (report.cities, report.counties) == (14, 111)
    assert report.unmatched_features == [] and report.orgs_without_boundary == []
    # Simplified rings that touch themselves are repaired, not refused.
    assert await apg.fetchval("SELECT bool_and(ST_IsValid(geom)) FROM division_boundaries")
    assert await apg.fetchval("SELECT count(*) FROM division_boundaries") == 125


def test_server_borders_are_the_ones_the_map_draws() -> None:
    """The committed copy equals what the front-end build made from the npm package."""
    if not (BUNDLE / "guangxi-counties.geojson").is_file():
        pytest.fail("web/frontend/public/geo is not built: run scripts/setup.sh (npm run build)")
    _, server = boundaries.vendored()
    drawn = {}
    for level, name in (("city", "cities"), ("county", "counties")):
        doc = json.loads((BUNDLE / f"guangxi-{name}.geojson").read_text(encoding="utf-8"))
        for f in doc["features"]:
            drawn[(level, f["properties"]["code"])] = (f["properties"]["name"], f["geometry"])
    assert {(b.level, b.code): (b.name, b.geometry) for b in server} == drawn
