"""Approval chains (configuration): the most specific chain for a unit, listing, saving."""

from __future__ import annotations

from sqlalchemy import cast, func, or_, select
from sqlalchemy.ext.asyncio import AsyncSession

from dispatch.approvals import schemas
from dispatch.approvals.models import ApprovalChain
from fleet import audit
from fleet.identity.models import Org
from fleet.identity.principal import Principal
from fleet.identity.service import config_org
from fleet.types import Ltree


async def resolve_chain(session: AsyncSession, unit: Org, kind: str) -> ApprovalChain | None:
    """The most specific active chain for the unit's subtree and kind (NULL org = default)."""
    return (
        await session.execute(
            select(ApprovalChain)
            .outerjoin(Org, Org.id == ApprovalChain.org_id)
            .where(
                ApprovalChain.active,
                ApprovalChain.kind == kind,
                or_(
                    ApprovalChain.org_id.is_(None),
                    Org.path.op("@>")(cast(unit.path, Ltree())),
                ),
            )
            .order_by(func.coalesce(func.nlevel(Org.path), 0).desc())
            .limit(1)
        )
    ).scalar_one_or_none()


async def list_chains(session: AsyncSession, principal: Principal) -> list[ApprovalChain]:
    principal.require(("admin", "approver", "dispatcher", "auditor"))
    rows = await session.execute(select(ApprovalChain).order_by(ApprovalChain.id))
    return list(rows.scalars())


async def upsert_chain(
    session: AsyncSession, principal: Principal, body: schemas.ChainIn
) -> ApprovalChain:
    """Create or replace the chain of (org, kind), as an admin at that org or above (NULL, the
    region default: a region admin); the most specific chain wins for its subtree."""
    await config_org(session, principal, body.org_id)
    cond = (
        ApprovalChain.org_id.is_(None)
        if body.org_id is None
        else ApprovalChain.org_id == body.org_id
    )
    chain = (
        await session.execute(select(ApprovalChain).where(cond, ApprovalChain.kind == body.kind))
    ).scalar_one_or_none()
    if chain is None:
        chain = ApprovalChain(org_id=body.org_id, kind=body.kind)
        session.add(chain)
    chain.dispatch_first = body.dispatch_first
    chain.steps = [s.model_dump() for s in body.steps]
    chain.active = body.active
    await session.flush()
    await session.refresh(chain)
    await audit.record(
        session,
        principal.actor,
        "approval_chain.save",
        "approval_chain",
        chain.id,
        data=body.model_dump(mode="json"),
    )
    return chain
