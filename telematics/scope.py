"""Which vehicles a principal may see, decided from the vehicles and orgs tables directly.

Telematics must not import dispatch, so the rule of dispatch's ``vehicle_visibility`` is
restated here on plain SQL: a vehicle is visible when its unit (or the unit's vertical
system) lies under one of the caller's role paths, or, for dispatchers, when the vehicle
sits in a pool shared with a county/city that contains the dispatcher's scope.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession

from fleet.errors import NotFound
from fleet.identity.principal import Principal, hidden

TRACK_READ = ("admin", "dispatcher", "auditor")
# ltree depth of the org that owns a shared pool (region = 1, city = 2, county = 3)
POOL_DEPTH = {"city": 2, "county": 3}


@dataclass(frozen=True)
class VehicleRef:
    id: int
    plate: str
    unit_id: int
    unit_path: str
    system_path: str | None
    shared_pool: str
    status: str
    depot_lat: float
    depot_lon: float


_VEHICLE_SQL = text(
    "SELECT v.id, v.plate, v.unit_id, o.path::text AS unit_path,"
    " o.system_path::text AS system_path, v.shared_pool, v.status,"
    " ST_Y(v.depot) AS depot_lat, ST_X(v.depot) AS depot_lon"
    " FROM vehicles v JOIN orgs o ON o.id = v.unit_id WHERE v.id = :vid"
)


def _under(path: str, ancestor: str) -> bool:
    return path == ancestor or path.startswith(ancestor + ".")


def _ancestor(path: str, depth: int) -> str:
    return ".".join(path.split(".")[:depth])


def visible(principal: Principal, roles: tuple[str, ...], v: VehicleRef) -> bool:
    if principal.covers(roles, v.unit_path, v.system_path):
        return True
    if "dispatcher" not in roles or v.shared_pool not in POOL_DEPTH:
        return False
    owner = _ancestor(v.unit_path, POOL_DEPTH[v.shared_pool])
    return any(_under(p, owner) for p in principal.paths(("dispatcher",)))


async def load_vehicle(session: AsyncSession, vehicle_id: int) -> VehicleRef:
    row = (await session.execute(_VEHICLE_SQL, {"vid": vehicle_id})).mappings().first()
    if row is None:
        raise NotFound(f"vehicle {vehicle_id} not found", field="vehicle_id")
    return VehicleRef(**dict(row))


async def visible_vehicle(
    session: AsyncSession,
    principal: Principal,
    vehicle_id: int,
    roles: tuple[str, ...] = TRACK_READ,
) -> VehicleRef:
    """The vehicle if the caller may see it through `roles`; 403 without the roles, else 404
    for one they cannot see, the same answer as for one that does not exist."""
    principal.require(roles)
    row = (await session.execute(_VEHICLE_SQL, {"vid": vehicle_id})).mappings().first()
    v = VehicleRef(**dict(row)) if row is not None else None
    if v is None or not visible(principal, roles, v):
        raise hidden("vehicle", vehicle_id, field="vehicle_id")
    return v


def visibility_sql(
    principal: Principal, roles: tuple[str, ...], *, org: str = "o", vehicle: str = "v"
) -> tuple[str, dict[str, Any]]:
    """A SQL predicate on ``{vehicle}`` joined to its unit ``{org}``, plus bind parameters."""
    paths = list(principal.require(roles))
    clause = (
        f"({org}.path <@ CAST(:scope_paths AS ltree[])"
        f" OR ({org}.system_path IS NOT NULL"
        f" AND {org}.system_path <@ CAST(:scope_paths AS ltree[])))"
    )
    params: dict[str, Any] = {"scope_paths": paths}
    disp = list(principal.paths(("dispatcher",)))
    if "dispatcher" in roles and disp:
        pooled = " OR ".join(
            f"({vehicle}.shared_pool = '{pool}' AND CASE WHEN nlevel({org}.path) >= {depth}"
            f" THEN subpath({org}.path, 0, {depth}) @> CAST(:scope_disp AS ltree[])"
            f" ELSE false END)"
            for pool, depth in POOL_DEPTH.items()
        )
        clause = f"({clause} OR {pooled})"
        params["scope_disp"] = disp
    return clause, params
