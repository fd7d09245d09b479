"""Who may see a vehicle: one definition, compiled to the forms SQL and Python need.

The rule is the table :data:`REACHES`: a vehicle is visible through the roles asked for when
one of its rows holds. Three forms are built from it, and nothing else states the rule:

- :func:`vehicle_visibility`, a SQLAlchemy clause on ``Vehicle`` joined to its unit
  ``UnitOrg`` (the registry, dispatch and the consoles' ORM queries);
- :func:`visibility_sql`, the same clause compiled to SQL text with named bind parameters,
  on any aliases of ``vehicles`` and ``orgs`` (telematics' and the live endpoint's raw SQL);
- :func:`visible`, a predicate on a loaded :class:`VehicleRef` (one vehicle id a request
  carries).

tests/fleet/test_visibility.py checks that the SQL and Python forms agree on every principal
× vehicle of a seeded region.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal

from sqlalchemy import (
    ColumnElement,
    SQLColumnExpression,
    and_,
    bindparam,
    cast,
    false,
    func,
    literal,
    literal_column,
    or_,
    text,
)
from sqlalchemy import column as sa_column
from sqlalchemy import table as sa_table
from sqlalchemy.dialects import postgresql
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import aliased

from fleet.identity.models import Org
from fleet.identity.principal import Principal, hidden, under
from fleet.registry.models import Vehicle
from fleet.types import Ltree

VEHICLE_READ = ("admin", "dispatcher", "auditor", "approver")
TRACK_READ = ("admin", "dispatcher", "auditor")

UnitOrg = aliased(Org, name="unit_org")


@dataclass(frozen=True)
class Reach:
    """One way a role's org scope reaches a vehicle (a row of :data:`REACHES`).

    ``anchor`` is an org path of the vehicle: its unit's path, or the unit's vertical system
    (may be null). ``depth`` cuts the anchor to that many labels (the org owning a shared
    pool: region 1, city 2, county 3). ``within``: the anchor lies under one of the scope
    paths; ``contains``: one of the scope paths lies under the anchor. ``pool`` limits the
    row to vehicles shared in that pool, ``role`` to the scope paths of that one role (and
    only when it is among the roles asked for); without it, the paths of every role asked.
    """

    anchor: Literal["unit", "system"]
    relation: Literal["within", "contains"]
    depth: int | None = None
    pool: str | None = None
    role: str | None = None


REACHES: tuple[Reach, ...] = (
    # the vehicle's unit lies in the caller's scope ...
    Reach("unit", "within"),
    # ... or the unit's vertical system (公安, 市场监管 …) does;
    Reach("system", "within"),
    # a dispatcher also sees the pools shared with the county or city containing their scope
    Reach("unit", "contains", depth=3, pool="county", role="dispatcher"),
    Reach("unit", "contains", depth=2, pool="city", role="dispatcher"),
)


def _scope(principal: Principal, roles: tuple[str, ...], reach: Reach) -> tuple[str, ...]:
    """The scope paths one row of the rule compares with (empty: the row cannot hold)."""
    if reach.role is None:
        return principal.paths(roles)
    return principal.paths((reach.role,)) if reach.role in roles else ()


def _param_name(reach: Reach) -> str:
    return "disp" if reach.role == "dispatcher" else reach.role or "paths"


# ---- Python ---------------------------------------------------------------------------


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


def _ancestor(path: str, depth: int) -> str:
    """ltree ``subpath(path, 0, depth)``: the first `depth` labels (all of a shorter path)."""
    return ".".join(path.split(".")[:depth])


def _holds(reach: Reach, scope: tuple[str, ...], v: VehicleRef) -> bool:
    if reach.pool is not None and v.shared_pool != reach.pool:
        return False
    anchor = v.unit_path if reach.anchor == "unit" else v.system_path
    if anchor is None:
        return False
    if reach.depth is not None:
        anchor = _ancestor(anchor, reach.depth)
    if reach.relation == "within":
        return any(under(anchor, p) for p in scope)
    return any(under(p, anchor) for p in scope)


def visible(principal: Principal, roles: tuple[str, ...], v: VehicleRef) -> bool:
    """True if `v` is visible to `principal` through `roles` (:data:`REACHES` in Python)."""
    return any(_holds(r, _scope(principal, roles, r), v) for r in REACHES)


# ---- SQL ------------------------------------------------------------------------------

Bind = Callable[[str, Any], ColumnElement[Any]]
_PATHS = ARRAY(Ltree())


def _clause(
    principal: Principal,
    roles: tuple[str, ...],
    *,
    unit_path: SQLColumnExpression[Any],
    system_path: SQLColumnExpression[Any],
    shared_pool: SQLColumnExpression[Any],
    bind: Bind,
) -> ColumnElement[bool]:
    """:data:`REACHES` as one SQL predicate; `bind` makes the parameter of a value."""
    parts: list[ColumnElement[bool]] = []
    for reach in REACHES:
        scope = _scope(principal, roles, reach)
        if not scope:
            continue
        arr = cast(bind(_param_name(reach), list(scope)), _PATHS)
        anchor = unit_path if reach.anchor == "unit" else system_path
        if reach.depth is not None:
            # literal integers from the table above: no bind parameter to collide with others
            depth: ColumnElement[int] = literal_column(str(reach.depth))
            anchor = func.subpath(anchor, literal_column("0"), depth, type_=Ltree())
        test = anchor.op("<@")(arr) if reach.relation == "within" else anchor.op("@>")(arr)
        conds: list[ColumnElement[bool]] = [test]
        if reach.anchor == "system":
            conds.insert(0, system_path.is_not(None))
        if reach.pool is not None:
            # a constant of the table above, written into the SQL like the depths
            conds.insert(0, shared_pool == literal_column(f"'{reach.pool}'"))
        parts.append(and_(*conds))
    return or_(*parts) if parts else false()


def vehicle_visibility(principal: Principal, roles: tuple[str, ...]) -> ColumnElement[bool]:
    """SQLAlchemy: ``Vehicle`` (joined to its unit as ``UnitOrg``) is visible through `roles`;
    403 without the roles."""
    principal.require(roles)
    return _clause(
        principal,
        roles,
        unit_path=UnitOrg.path,
        system_path=UnitOrg.system_path,
        shared_pool=Vehicle.shared_pool,
        bind=lambda _name, value: literal(value, _PATHS if isinstance(value, list) else None),
    )


_DIALECT = postgresql.dialect(paramstyle="named")  # type: ignore[no-untyped-call]


def visibility_sql(
    principal: Principal,
    roles: tuple[str, ...],
    *,
    org: str = "o",
    vehicle: str = "v",
    prefix: str = "scope",
) -> tuple[str, dict[str, Any]]:
    """SQL text: the vehicle ``{vehicle}`` joined to its unit ``{org}`` is visible through
    `roles`, with its bind parameters (named ``{prefix}_…``); 403 without the roles."""
    principal.require(roles)
    orgs = sa_table("orgs", sa_column("path"), sa_column("system_path")).alias(org)
    vehicles = sa_table("vehicles", sa_column("shared_pool")).alias(vehicle)
    clause = _clause(
        principal,
        roles,
        unit_path=orgs.c.path,
        system_path=orgs.c.system_path,
        shared_pool=vehicles.c.shared_pool,
        bind=lambda name, value: bindparam(f"{prefix}_{name}", value),
    )
    compiled = clause.compile(dialect=_DIALECT)
    return f"({compiled})", dict(compiled.params)


# ---- loading one vehicle --------------------------------------------------------------

_VEHICLE_SQL = text(
    "SELECT v.id, v.plate, v.unit_id, o.path::text AS unit_path,"
    " o.system_path::text AS system_path, v.shared_pool, v.status,"
    " ST_Y(v.depot) AS depot_lat, ST_X(v.depot) AS depot_lon"
    " FROM vehicles v JOIN orgs o ON o.id = v.unit_id WHERE v.id = :vid"
)


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
