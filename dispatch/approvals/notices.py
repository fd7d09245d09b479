"""Who hears about an approval step: its deciders, the requester, admins, dispatchers."""

from __future__ import annotations

from sqlalchemy.ext.asyncio import AsyncSession

from dispatch import notify
from dispatch.approvals.levels import LEVEL_NAMES
from dispatch.approvals.models import ApprovalStep
from dispatch.trips.models import TripRequest
from fleet.identity.models import Org


async def step_waiting(
    session: AsyncSession, trip: TripRequest, step: ApprovalStep, deciders: list[int]
) -> None:
    """A step opened: its deciders, the requester (past the first level), admins if nobody."""
    notify.notify_users(
        session,
        deciders,
        "approval_needed",
        f"用车申请 #{trip.id} 待审批",
        trip_id=trip.id,
        step_id=step.id,
        level=step.level,
    )
    if step.seq > 1:
        # An earlier level approved: the requester learns where the request waits now.
        notify.notify_users(
            session,
            [trip.requester_id],
            "approval_next_level",
            f"用车申请 #{trip.id} 已通过上一级审批，待{LEVEL_NAMES[step.level]}审批",
            trip_id=trip.id,
            level=step.level,
        )
    await undecidable(session, trip, step, deciders)


async def undecidable(
    session: AsyncSession, trip: TripRequest, step: ApprovalStep, deciders: list[int]
) -> None:
    """A level nobody can decide would wait unseen: tell the requester and the admins."""
    if deciders:
        return
    unit = await session.get(Org, trip.unit_id)
    assert unit is not None
    admins = await notify.users_with_role_covering(session, "admin", unit.path)
    notify.notify_users(
        session,
        sorted({trip.requester_id, *admins}),
        "approval_no_decider",
        f"用车申请 #{trip.id} 待{LEVEL_NAMES[step.level]}审批，但没有可审批的人员，"
        "请管理员指定审批人",
        trip_id=trip.id,
        step_id=step.id,
        level=step.level,
    )


async def dispatch_waiting(session: AsyncSession, trip: TripRequest) -> None:
    """An approved trip waits for a vehicle: tell the dispatchers covering its unit."""
    unit = await session.get(Org, trip.unit_id)
    assert unit is not None
    notify.notify_users(
        session,
        await notify.users_with_role_covering(session, "dispatcher", unit.path),
        "dispatch_waiting",
        f"用车申请 #{trip.id} 已批准，待派车",
        trip_id=trip.id,
    )
