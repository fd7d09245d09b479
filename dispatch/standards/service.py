"""Standards: which body types a trip may use; admin edits; vehicles over the caps.

Standards are configuration with a level: NULL org is the region's rule, edited only by an
admin bound at the region; a city, county or unit may add stricter rules of its own, edited
by an admin bound there or above. All levels apply together, so a lower level can narrow
what the region allows (fewer body types, lower caps), never widen it.
"""

from __future__ import annotations

from sqlalchemy import and_, cast, or_, select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import aliased

from dispatch.standards import schemas
from dispatch.standards.models import ProvisioningStandard, UsageStandard
from fleet import audit
from fleet.errors import NotFound
from fleet.identity.models import Org
from fleet.identity.principal import Principal
from fleet.identity.service import config_org, require_config_level
from fleet.registry.models import Vehicle
from fleet.registry.visibility import UnitOrg, vehicle_visibility
from fleet.types import Ltree

READ = ("admin", "dispatcher", "auditor", "approver", "requester")
WRITE = ("admin",)
BODY_ORDER = ("sedan", "suv", "mpv", "minibus", "bus")


def _fits(row: UsageStandard, passengers: int) -> bool:
    return row.min_passengers <= passengers and (
        row.max_passengers is None or passengers <= row.max_passengers
    )


async def allowed_body_types(
    session: AsyncSession, nature: str, passengers: int, unit_path: str | None = None
) -> list[str]:
    """Body types the standards allow for a trip of the unit at `unit_path` (None: the
    region's rules alone).

    The region's rules (org NULL) decide first: rows for the nature win over the general
    (NULL nature) rows. Then each lower level on the unit's path whose rules describe the trip
    (a row whose passenger range fits; its rows for the nature first, else its general ones)
    narrows the result to what it allows too. A level that says nothing leaves it as it is.
    """
    stmt = (
        select(UsageStandard, Org.path)
        .outerjoin(Org, Org.id == UsageStandard.org_id)
        .where(
            UsageStandard.active,
            or_(UsageStandard.nature == nature, UsageStandard.nature.is_(None)),
        )
    )
    if unit_path is None:
        stmt = stmt.where(UsageStandard.org_id.is_(None))
    else:
        stmt = stmt.where(
            or_(UsageStandard.org_id.is_(None), Org.path.op("@>")(cast(unit_path, Ltree())))
        )
    region: list[UsageStandard] = []
    levels: dict[str, list[UsageStandard]] = {}
    for row, path in (await session.execute(stmt)).all():
        if path is None:
            region.append(row)
        else:
            levels.setdefault(path, []).append(row)
    specific = [r for r in region if r.nature is not None]
    chosen = {b for r in (specific or region) if _fits(r, passengers) for b in r.body_types}
    for path in sorted(levels, key=lambda p: p.count(".")):
        fit = [r for r in levels[path] if _fits(r, passengers)]
        rules = [r for r in fit if r.nature is not None] or fit
        if rules:
            chosen &= {b for r in rules for b in r.body_types}
    return [b for b in BODY_ORDER if b in chosen]


async def _level_of(session: AsyncSession, org_id: int | None) -> Org | None:
    return None if org_id is None else await session.get(Org, org_id)


async def list_usage(session: AsyncSession, principal: Principal) -> list[UsageStandard]:
    principal.require(READ)
    rows = await session.execute(select(UsageStandard).order_by(UsageStandard.id))
    return list(rows.scalars())


async def create_usage(
    session: AsyncSession, principal: Principal, body: schemas.UsageStandardIn
) -> UsageStandard:
    await config_org(session, principal, body.org_id)
    row = UsageStandard(**body.model_dump())
    session.add(row)
    await session.flush()
    await session.refresh(row)
    await audit.record(
        session,
        principal.actor,
        "standard.usage.create",
        "usage_standard",
        row.id,
        data=body.model_dump(mode="json"),
    )
    return row


async def replace_usage(
    session: AsyncSession, principal: Principal, standard_id: int, body: schemas.UsageStandardIn
) -> UsageStandard:
    principal.require(WRITE)
    row = await session.get(UsageStandard, standard_id)
    if row is None:
        raise NotFound(f"usage standard {standard_id} not found", field="id")
    await require_config_level(session, principal, await _level_of(session, row.org_id))
    if body.org_id != row.org_id:
        await config_org(session, principal, body.org_id)
    before = {
        "org_id": row.org_id,
        "body_types": row.body_types,
        "min": row.min_passengers,
        "max": row.max_passengers,
    }
    for name, value in body.model_dump().items():
        setattr(row, name, value)
    await session.flush()
    await session.refresh(row)
    await audit.record(
        session,
        principal.actor,
        "standard.usage.update",
        "usage_standard",
        row.id,
        data={"before": before, "after": body.model_dump(mode="json")},
    )
    return row


async def delete_usage(session: AsyncSession, principal: Principal, standard_id: int) -> None:
    principal.require(WRITE)
    row = await session.get(UsageStandard, standard_id)
    if row is None:
        raise NotFound(f"usage standard {standard_id} not found", field="id")
    await require_config_level(session, principal, await _level_of(session, row.org_id))
    await session.delete(row)
    await session.flush()
    await audit.record(
        session, principal.actor, "standard.usage.delete", "usage_standard", standard_id
    )


async def list_provisioning(
    session: AsyncSession, principal: Principal
) -> list[ProvisioningStandard]:
    principal.require(READ)
    rows = await session.execute(select(ProvisioningStandard).order_by(ProvisioningStandard.id))
    return list(rows.scalars())


async def upsert_provisioning(
    session: AsyncSession, principal: Principal, body: schemas.ProvisioningStandardIn
) -> ProvisioningStandard:
    """One cap per (level, category, body type): creating an existing one replaces its caps."""
    await config_org(session, principal, body.org_id)
    # The body gives a price cap, an engine cap or both (its schema says so).
    cond = and_(
        ProvisioningStandard.org_id.is_(None)
        if body.org_id is None
        else ProvisioningStandard.org_id == body.org_id,
        ProvisioningStandard.category == body.category,
        ProvisioningStandard.body_type.is_(None)
        if body.body_type is None
        else ProvisioningStandard.body_type == body.body_type,
    )
    row = (await session.execute(select(ProvisioningStandard).where(cond))).scalar_one_or_none()
    action = "standard.provisioning.update"
    if row is None:
        row = ProvisioningStandard(
            org_id=body.org_id, category=body.category, body_type=body.body_type
        )
        session.add(row)
        action = "standard.provisioning.create"
    row.max_price_cny = body.max_price_cny
    row.max_engine_l = body.max_engine_l
    row.note = body.note
    await session.flush()
    await session.refresh(row)
    await audit.record(
        session,
        principal.actor,
        action,
        "provisioning_standard",
        row.id,
        data=body.model_dump(mode="json"),
    )
    return row


async def delete_provisioning(session: AsyncSession, principal: Principal, sid: int) -> None:
    principal.require(WRITE)
    row = await session.get(ProvisioningStandard, sid)
    if row is None:
        raise NotFound(f"provisioning standard {sid} not found", field="id")
    await require_config_level(session, principal, await _level_of(session, row.org_id))
    await session.delete(row)
    await session.flush()
    await audit.record(
        session, principal.actor, "standard.provisioning.delete", "provisioning_standard", sid
    )


async def provisioning_violations(
    session: AsyncSession, principal: Principal, *, limit: int, offset: int
) -> tuple[list[schemas.ViolationOut], int]:
    """Vehicles in scope over a cap of their category: the region's, or a stricter one of a
    level above their unit (every level's caps apply; one row per cap exceeded)."""
    std = ProvisioningStandard
    std_org = aliased(Org, name="std_org")
    over_price = and_(std.max_price_cny.is_not(None), Vehicle.price_cny > std.max_price_cny)
    over_engine = and_(
        std.max_engine_l.is_not(None),
        Vehicle.engine_l.is_not(None),
        Vehicle.engine_l > std.max_engine_l,
    )
    stmt = (
        select(Vehicle, std)
        .join(UnitOrg, UnitOrg.id == Vehicle.unit_id)
        .join(
            std,
            and_(
                std.category == Vehicle.category,
                or_(std.body_type.is_(None), std.body_type == Vehicle.body_type),
            ),
        )
        .outerjoin(std_org, std_org.id == std.org_id)
        .where(or_(std.org_id.is_(None), std_org.path.op("@>")(UnitOrg.path)))
        .where(vehicle_visibility(principal, ("admin", "auditor", "dispatcher")))
        .where(Vehicle.status != "scrapped", or_(over_price, over_engine))
        .order_by(Vehicle.id, std.id)
    )
    rows = (await session.execute(stmt)).all()
    out: list[schemas.ViolationOut] = []
    for v, s in rows:
        reasons = []
        if s.max_price_cny is not None and v.price_cny > s.max_price_cny:
            reasons.append(f"price {v.price_cny} > {s.max_price_cny} CNY")
        if s.max_engine_l is not None and v.engine_l is not None and v.engine_l > s.max_engine_l:
            reasons.append(f"engine {v.engine_l} L > {s.max_engine_l} L")
        out.append(
            schemas.ViolationOut(
                vehicle_id=v.id,
                plate=v.plate,
                category=v.category,
                body_type=v.body_type,
                price_cny=v.price_cny,
                engine_l=v.engine_l,
                standard_id=s.id,
                reasons=reasons,
            )
        )
    return out[offset : offset + limit], len(out)
