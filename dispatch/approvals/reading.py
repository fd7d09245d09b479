"""What approvers read: a trip's steps and the inbox of steps the caller may decide."""

from __future__ import annotations

from sqlalchemy import and_, or_, select
from sqlalchemy.ext.asyncio import AsyncSession

from dispatch.approvals.levels import approvers
from dispatch.approvals.models import ApprovalStep
from dispatch.trips.models import TripRequest
from fleet.identity.models import Org
from fleet.identity.principal import Principal
from fleet.paging import count_rows

APPROVE = ("approver",)


async def steps_of(session: AsyncSession, trip_id: int) -> list[ApprovalStep]:
    rows = await session.execute(
        select(ApprovalStep)
        .where(ApprovalStep.trip_id == trip_id)
        .order_by(ApprovalStep.round, ApprovalStep.seq)
    )
    return list(rows.scalars())


async def inbox(
    session: AsyncSession, principal: Principal, *, limit: int, offset: int
) -> tuple[list[tuple[ApprovalStep, TripRequest]], int]:
    """Pending steps the caller may act on: delegated to them, or at a level they hold."""
    principal.require(APPROVE)
    unit = Org.__table__.alias("trip_unit")
    holds = approvers(unit.c.path, ApprovalStep.level, user_id=principal.user_id).exists()
    stmt = (
        select(ApprovalStep, TripRequest)
        .join(TripRequest, TripRequest.id == ApprovalStep.trip_id)
        .join(unit, unit.c.id == TripRequest.unit_id)
        .where(
            ApprovalStep.state == "pending",
            ApprovalStep.round == TripRequest.approval_round,
            TripRequest.requester_id != principal.user_id,
            or_(
                ApprovalStep.assignee_id == principal.user_id,
                and_(ApprovalStep.assignee_id.is_(None), holds),
            ),
        )
    )
    total = await count_rows(session, stmt)
    rows = await session.execute(stmt.order_by(ApprovalStep.due_at).limit(limit).offset(offset))
    return [(s, t) for s, t in rows.all()], total
