"""The vehicle visibility rule's three forms agree: the SQLAlchemy clause, the SQL text and
the Python predicate (all built from fleet/registry/visibility.py `REACHES`), on every
principal × vehicle of the seeded region."""

from __future__ import annotations

import random

import pytest
from sqlalchemy import select, text
from sqlalchemy.ext.asyncio import AsyncSession

from fleet.errors import Forbidden
from fleet.identity.principal import Principal
from fleet.registry.models import Vehicle
from fleet.registry.visibility import (
    TRACK_READ,
    VEHICLE_READ,
    UnitOrg,
    VehicleRef,
    vehicle_visibility,
    visibility_sql,
    visible,
)

ROLE_SETS: tuple[tuple[str, ...], ...] = (
    VEHICLE_READ,
    TRACK_READ,
    ("dispatcher",),
    ("admin", "auditor"),
    ("approver",),
)

_ALL = text(
    "SELECT v.id, v.plate, v.unit_id, o.path::text AS unit_path,"
    " o.system_path::text AS system_path, v.shared_pool, v.status,"
    " ST_Y(v.depot) AS depot_lat, ST_X(v.depot) AS depot_lon"
    " FROM vehicles v JOIN orgs o ON o.id = v.unit_id"
)


async def _principals(session: AsyncSession) -> list[Principal]:
    """Every user of the seed with their real bindings, plus one principal per role and org
    for a sample of orgs of every level (units, counties, cities, the region, vertical
    systems), and a few holding two roles at different places."""
    out: list[Principal] = []
    rows = await session.execute(
        text(
            "SELECT u.id, u.username, u.org_id, b.role, o.path::text AS path FROM users u"
            " JOIN role_bindings b ON b.user_id = u.id JOIN orgs o ON o.id = b.org_id"
            " ORDER BY u.id"
        )
    )
    users: dict[int, Principal] = {}
    for r in rows.mappings():
        p = users.setdefault(r["id"], Principal(r["id"], r["username"], r["org_id"], {}))
        p.bindings[r["role"]] = (*p.bindings.get(r["role"], ()), r["path"])
    out.extend(users.values())
    orgs = (
        await session.execute(text("SELECT id, kind, path::text FROM orgs ORDER BY path"))
    ).all()
    rng = random.Random(10)
    by_kind: dict[str, list[tuple[int, str]]] = {}
    for org_id, kind, path in orgs:
        by_kind.setdefault(kind, []).append((org_id, path))
    sample = [o for group in by_kind.values() for o in rng.sample(group, min(6, len(group)))]
    for org_id, path in sample:
        for role in ("admin", "dispatcher", "auditor", "approver"):
            out.append(Principal(0, f"{role}@{path}", org_id, {role: (path,)}))
    for (a_id, a), (_, b) in zip(sample, reversed(sample), strict=True):
        out.append(Principal(0, "two", a_id, {"dispatcher": (a,), "auditor": (b,)}))
    return out


async def test_sql_and_python_forms_agree(session: AsyncSession) -> None:
    vehicles = [VehicleRef(**dict(r)) for r in (await session.execute(_ALL)).mappings()]
    assert len(vehicles) > 100
    principals = await _principals(session)
    checked = pooled_only = 0
    for principal in principals:
        for roles in ROLE_SETS:
            by_python = {v.id for v in vehicles if visible(principal, roles, v)}
            if not principal.paths(roles):
                assert not by_python
                with pytest.raises(Forbidden):
                    visibility_sql(principal, roles)
                with pytest.raises(Forbidden):
                    vehicle_visibility(principal, roles)
                continue
            clause, params = visibility_sql(principal, roles, org="o", vehicle="v")
            by_text = {
                int(r[0])
                for r in await session.execute(
                    text(
                        f"SELECT v.id FROM vehicles v JOIN orgs o ON o.id = v.unit_id WHERE {clause}"
                    ),
                    params,
                )
            }
            by_orm = set(
                (
                    await session.execute(
                        select(Vehicle.id)
                        .join(UnitOrg, UnitOrg.id == Vehicle.unit_id)
                        .where(vehicle_visibility(principal, roles))
                    )
                ).scalars()
            )
            assert by_text == by_python, (principal, roles)
            assert by_orm == by_python, (principal, roles)
            checked += 1
            own = {v.id for v in vehicles if principal.covers(roles, v.unit_path, v.system_path)}
            pooled_only += len(by_python - own)
    # the matrix reaches every row of the rule: own scope and the dispatchers' shared pools
    assert checked > 200
    assert pooled_only > 0
