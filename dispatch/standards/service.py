"""Standards: which body types a trip may use; admin edits; vehicles over the caps."""

from __future__ import annotations

from sqlalchemy import and_, or_, select
from sqlalchemy.ext.asyncio import AsyncSession

from dispatch.registry.models import Vehicle
from dispatch.registry.service import UnitOrg, vehicle_visibility
from dispatch.standards import schemas
from dispatch.standards.models import ProvisioningStandard, UsageStandard
from fleet import audit
from fleet.errors import Invalid, NotFound
from fleet.identity.principal import Principal

READ = ("admin", "dispatcher", "auditor", "approver", "requester")
WRITE = ("admin",)
BODY_ORDER = ("sedan", "suv", "mpv", "minibus", "bus")


async def allowed_body_types(session: AsyncSession, nature: str, passengers: int) -> list[str]:
    """Body types the standards allow; rows for the nature win over the general (NULL) rows."""
    rows = (
        await session.execute(
            select(UsageStandard).where(
                UsageStandard.active,
                or_(UsageStandard.nature == nature, UsageStandard.nature.is_(None)),
            )
        )
    ).scalars()
    specific: set[str] = set()
    general: set[str] = set()
    has_specific = False
    for row in rows:
        fits = row.min_passengers <= passengers and (
            row.max_passengers is None or passengers <= row.max_passengers
        )
        if row.nature is not None:
            has_specific = True
            if fits:
                specific.update(row.body_types)
        elif fits:
            general.update(row.body_types)
    chosen = specific if has_specific else general
    return [b for b in BODY_ORDER if b in chosen]


async def list_usage(session: AsyncSession, principal: Principal) -> list[UsageStandard]:
    principal.require(READ)
    rows = await session.execute(select(UsageStandard).order_by(UsageStandard.id))
    return list(rows.scalars())


async def create_usage(
    session: AsyncSession, principal: Principal, body: schemas.UsageStandardIn
) -> UsageStandard:
    principal.require(WRITE)
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
    before = {"body_types": row.body_types, "min": row.min_passengers, "max": row.max_passengers}
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
    """One cap per (category, body type): creating an existing pair replaces its caps."""
    principal.require(WRITE)
    if body.max_price_cny is None and body.max_engine_l is None:
        raise Invalid("give max_price_cny, max_engine_l or both", field="max_price_cny")
    cond = and_(
        ProvisioningStandard.category == body.category,
        ProvisioningStandard.body_type.is_(None)
        if body.body_type is None
        else ProvisioningStandard.body_type == body.body_type,
    )
    row = (await session.execute(select(ProvisioningStandard).where(cond))).scalar_one_or_none()
    action = "standard.provisioning.update"
    if row is None:
        row = ProvisioningStandard(category=body.category, body_type=body.body_type)
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
    await session.delete(row)
    await session.flush()
    await audit.record(
        session, principal.actor, "standard.provisioning.delete", "provisioning_standard", sid
    )


async def provisioning_violations(
    session: AsyncSession, principal: Principal, *, limit: int, offset: int
) -> tuple[list[schemas.ViolationOut], int]:
    """Vehicles in scope whose price or engine exceeds their category's cap."""
    std = ProvisioningStandard
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
        .where(vehicle_visibility(principal, ("admin", "auditor", "dispatcher")))
        .where(Vehicle.status != "scrapped", or_(over_price, over_engine))
        .order_by(Vehicle.id)
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
