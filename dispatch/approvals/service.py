"""Approval rules: chain resolution, steps, approve / reject / return / delegate, escalation.

A step names an approver *level*: `unit` (an approver bound to the requesting unit), `county`,
`city` or `region` (an approver bound to that platform, or above it, covering the unit). A
delegated step may be acted on only by its assignee. An overdue step escalates one level up.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from sqlalchemy import Select, and_, cast, func, or_, select
from sqlalchemy.ext.asyncio import AsyncSession

from dispatch import notify
from dispatch.approvals import schemas
from dispatch.approvals.models import ApprovalChain, ApprovalStep
from dispatch.assignments.booking import release_assignment
from dispatch.trips.access import load_trip
from dispatch.trips.models import TripRequest
from dispatch.trips.state import require_state, transition
from fleet import audit
from fleet.audit import Actor
from fleet.errors import Conflict, Forbidden, Invalid
from fleet.identity.models import Org, RoleBinding, User
from fleet.identity.principal import Principal
from fleet.identity.service import config_org
from fleet.paging import count_rows
from fleet.types import Ltree

APPROVE = ("approver",)
ADMIN = ("admin",)
LEVELS = ("unit", "county", "city", "region")
# Org kinds whose approvers may act on a step of each level.
LEVEL_KINDS: dict[str, tuple[str, ...]] = {
    "unit": ("unit",),
    "county": ("county", "city", "region"),
    "city": ("city", "region"),
    "region": ("region",),
}
# How notifications name a level (zh-CN, as every notification text is).
LEVEL_NAMES = {"unit": "单位", "county": "县（区）平台", "city": "市级平台", "region": "自治区平台"}
WORKER = Actor(name="dispatch-worker")


def _now() -> datetime:
    return datetime.now(UTC)


# ---- chains (configuration) ------------------------------------------------------------


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
    """Create or replace the chain of (org, kind): the org's level decides who may (an admin
    bound at that org or above; NULL, the region default: a region admin). A lower level's
    chain overrides the ones above it for its subtree (the most specific chain wins)."""
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


# ---- who may approve -------------------------------------------------------------------


def _approver_query(unit_path: str, level: str) -> Select[int]:
    return (
        select(RoleBinding.user_id)
        .join(Org, Org.id == RoleBinding.org_id)
        .join(User, User.id == RoleBinding.user_id)
        .where(
            RoleBinding.role == "approver",
            User.active,
            Org.kind.in_(LEVEL_KINDS[level]),
            Org.path.op("@>")(cast(unit_path, Ltree())),
        )
        .distinct()
    )


async def approvers_for(session: AsyncSession, trip: TripRequest, step: ApprovalStep) -> list[int]:
    if step.assignee_id is not None:
        return [step.assignee_id]
    unit = await session.get(Org, trip.unit_id)
    assert unit is not None
    rows = await session.execute(_approver_query(unit.path, step.level))
    return [int(u) for u in rows.scalars().all() if u != trip.requester_id]


async def _may_act(
    session: AsyncSession, principal: Principal, trip: TripRequest, step: ApprovalStep
) -> None:
    principal.require(APPROVE)
    if trip.requester_id == principal.user_id:
        raise Forbidden("a requester cannot approve their own request", code="own_request")
    if step.assignee_id is not None:
        if step.assignee_id != principal.user_id:
            raise Forbidden("this step was delegated to another approver", code="not_assignee")
        return
    unit = await session.get(Org, trip.unit_id)
    assert unit is not None
    ok = await session.scalar(
        _approver_query(unit.path, step.level).where(RoleBinding.user_id == principal.user_id)
    )
    if ok is None:
        raise Forbidden(
            f"this step needs an approver at {step.level} level covering the unit",
            code="out_of_scope",
        )


# ---- steps -----------------------------------------------------------------------------


async def _steps(session: AsyncSession, trip: TripRequest) -> list[ApprovalStep]:
    rows = await session.execute(
        select(ApprovalStep)
        .where(ApprovalStep.trip_id == trip.id, ApprovalStep.round == trip.approval_round)
        .order_by(ApprovalStep.seq)
        .with_for_update()
    )
    return list(rows.scalars())


async def _activate(session: AsyncSession, trip: TripRequest, step: ApprovalStep) -> None:
    step.state = "pending"
    step.due_at = _now() + timedelta(hours=step.timeout_hours)
    await session.flush()
    deciders = await approvers_for(session, trip, step)
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
    await _tell_if_undecidable(session, trip, step, deciders)


async def _tell_if_undecidable(
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


async def _notify_dispatchers(session: AsyncSession, trip: TripRequest) -> None:
    unit = await session.get(Org, trip.unit_id)
    assert unit is not None
    notify.notify_users(
        session,
        await notify.users_with_role_covering(session, "dispatcher", unit.path),
        "dispatch_waiting",
        f"用车申请 #{trip.id} 已批准，待派车",
        trip_id=trip.id,
    )


async def start(session: AsyncSession, trip: TripRequest, actor: Actor) -> None:
    """Open a new approval round for a just-submitted trip."""
    unit = await session.get(Org, trip.unit_id)
    assert unit is not None
    chain = await resolve_chain(session, unit, trip.kind)
    if chain is None:
        raise Conflict(f"no approval chain is configured for {trip.kind} requests", code="no_chain")
    trip.chain_id = chain.id
    trip.dispatch_first = chain.dispatch_first
    trip.approval_round += 1
    steps = [
        ApprovalStep(
            trip_id=trip.id,
            round=trip.approval_round,
            seq=i,
            level=s["level"],
            timeout_hours=float(s["timeout_hours"]),
            state="waiting",
        )
        for i, s in enumerate(chain.steps, start=1)
    ]
    session.add_all(steps)
    trip.approval_status = "pending" if steps else "approved"
    await session.flush()
    if steps:
        await _activate(session, trip, steps[0])
    if chain.dispatch_first or not steps:
        reason = (
            "emergency chain: dispatch first, approval follows"
            if chain.dispatch_first
            else "chain has no approval steps"
        )
        await transition(session, trip, "approved", actor, reason=reason)
        await _notify_dispatchers(session, trip)


async def close_open_steps(session: AsyncSession, trip_id: int) -> None:
    trip = await session.get(TripRequest, trip_id)
    assert trip is not None
    for step in await _steps(session, trip):
        if step.state in ("waiting", "pending"):
            step.state = "cancelled"
    if trip.approval_status == "pending":
        trip.approval_status = "none"
    await session.flush()


async def _trip_to_decide(session: AsyncSession, principal: Principal, trip_id: int) -> TripRequest:
    """Authorise before revealing: the approver role first (403 before any lookup), then the
    trip as the caller may see it (404 like a missing one), locked for the decision; only then
    its state (409) and the caller's right to decide this step (403)."""
    principal.require(APPROVE)
    return await load_trip(session, principal, trip_id, lock=True)


async def _current_step(
    session: AsyncSession, trip: TripRequest
) -> tuple[ApprovalStep, list[ApprovalStep]]:
    in_approval = trip.state == "submitted" or (
        trip.dispatch_first and trip.approval_status == "pending"
    )
    if not in_approval:
        require_state(trip, "submitted", action="decide on")
    steps = await _steps(session, trip)
    pending = next((s for s in steps if s.state == "pending"), None)
    if pending is None:
        raise Conflict("the request has no pending approval step", code="no_pending_step")
    return pending, steps


async def _record(
    session: AsyncSession,
    principal: Principal,
    action: str,
    trip: TripRequest,
    step: ApprovalStep,
    *,
    reason: str | None = None,
    data: dict[str, object] | None = None,
) -> None:
    await audit.record(
        session,
        principal.actor,
        f"approval.{action}",
        "trip",
        trip.id,
        reason=reason,
        data={"step_id": step.id, "level": step.level, "round": step.round, **(data or {})},
    )


async def approve(
    session: AsyncSession, principal: Principal, trip_id: int, comment: str | None
) -> TripRequest:
    trip = await _trip_to_decide(session, principal, trip_id)
    step, steps = await _current_step(session, trip)
    await _may_act(session, principal, trip, step)
    step.state = "approved"
    step.acted_by = principal.user_id
    step.acted_at = _now()
    step.comment = comment
    await session.flush()
    await _record(session, principal, "approve", trip, step, reason=comment)
    following = next((s for s in steps if s.state == "waiting"), None)
    if following is not None:
        await _activate(session, trip, following)
        return trip
    trip.approval_status = "approved"
    if trip.dispatch_first:
        await session.flush()
        notify.notify_users(
            session, [trip.requester_id], "approved", f"用车申请 #{trip.id} 已补批", trip_id=trip.id
        )
        return trip
    await transition(session, trip, "approved", principal.actor, reason=comment)
    notify.notify_users(
        session, [trip.requester_id], "approved", f"用车申请 #{trip.id} 已批准", trip_id=trip.id
    )
    await _notify_dispatchers(session, trip)
    return trip


async def reject(
    session: AsyncSession, principal: Principal, trip_id: int, reason: str
) -> TripRequest:
    trip = await _trip_to_decide(session, principal, trip_id)
    step, steps = await _current_step(session, trip)
    await _may_act(session, principal, trip, step)
    step.state = "rejected"
    step.acted_by = principal.user_id
    step.acted_at = _now()
    step.comment = reason
    for s in steps:
        if s.state == "waiting":
            s.state = "cancelled"
    trip.approval_status = "rejected"
    await session.flush()
    await _record(session, principal, "reject", trip, step, reason=reason)
    if not trip.dispatch_first:
        await transition(session, trip, "rejected", principal.actor, reason=reason)
    elif trip.state in ("approved", "assigned", "accepted", "reassigned"):
        # Dispatched first, refused afterwards: the trip must not go ahead.
        await release_assignment(session, trip.id, "cancelled")
        await transition(
            session, trip, "cancelled", principal.actor, reason=f"post-hoc rejection: {reason}"
        )
    notify.notify_users(
        session,
        [trip.requester_id],
        "rejected",
        f"用车申请 #{trip.id} 未获批准: {reason}",
        trip_id=trip.id,
        reason=reason,
    )
    return trip


async def return_for_changes(
    session: AsyncSession, principal: Principal, trip_id: int, reason: str
) -> TripRequest:
    trip = await _trip_to_decide(session, principal, trip_id)
    step, steps = await _current_step(session, trip)
    await _may_act(session, principal, trip, step)
    if trip.state != "submitted":
        raise Conflict(
            "a dispatched-first request can be approved or rejected, not returned",
            field="state",
            code="illegal_transition",
            current=trip.state,
        )
    step.state = "returned"
    step.acted_by = principal.user_id
    step.acted_at = _now()
    step.comment = reason
    for s in steps:
        if s.state == "waiting":
            s.state = "cancelled"
    trip.approval_status = "none"
    await session.flush()
    await _record(session, principal, "return", trip, step, reason=reason)
    await transition(session, trip, "draft", principal.actor, reason=reason)
    notify.notify_users(
        session,
        [trip.requester_id],
        "returned",
        f"用车申请 #{trip.id} 退回修改: {reason}",
        trip_id=trip.id,
        reason=reason,
    )
    return trip


async def delegate(
    session: AsyncSession, principal: Principal, trip_id: int, body: schemas.DelegateIn
) -> ApprovalStep:
    trip = await _trip_to_decide(session, principal, trip_id)
    step, _ = await _current_step(session, trip)
    await _may_act(session, principal, trip, step)
    if body.user_id in (trip.requester_id, principal.user_id):
        raise Invalid("cannot delegate to the requester or to yourself", field="user_id")
    unit = await session.get(Org, trip.unit_id)
    assert unit is not None
    # The delegate must be an approver covering the unit (at any level).
    target = await session.scalar(
        select(RoleBinding.user_id)
        .join(Org, Org.id == RoleBinding.org_id)
        .join(User, User.id == RoleBinding.user_id)
        .where(
            RoleBinding.user_id == body.user_id,
            RoleBinding.role == "approver",
            User.active,
            Org.path.op("@>")(cast(unit.path, Ltree())),
        )
        .limit(1)
    )
    if target is None:
        raise Invalid("the delegate must be an active approver covering the unit", field="user_id")
    before = step.assignee_id
    step.assignee_id = body.user_id
    await session.flush()
    await _record(
        session,
        principal,
        "delegate",
        trip,
        step,
        reason=body.reason,
        data={"from_user": before, "to_user": body.user_id},
    )
    notify.notify_users(
        session,
        [body.user_id],
        "approval_needed",
        f"用车申请 #{trip.id} 已转交您审批",
        trip_id=trip.id,
        step_id=step.id,
    )
    return step


async def escalate_overdue(session: AsyncSession, now: datetime | None = None) -> int:
    """Every overdue pending step moves one level up (a delegation lapses); returns the count."""
    now = now or _now()
    due = (
        await session.execute(
            select(ApprovalStep)
            .join(TripRequest, TripRequest.id == ApprovalStep.trip_id)
            .where(
                ApprovalStep.state == "pending",
                ApprovalStep.due_at < now,
                ApprovalStep.round == TripRequest.approval_round,
            )
            .order_by(ApprovalStep.id)
            .with_for_update(of=ApprovalStep, skip_locked=True)
        )
    ).scalars()
    count = 0
    for step in list(due):
        trip = await session.get(TripRequest, step.trip_id)
        assert trip is not None
        before = step.level
        i = LEVELS.index(step.level)
        step.level = LEVELS[min(i + 1, len(LEVELS) - 1)]
        step.assignee_id = None
        step.escalations += 1
        step.due_at = now + timedelta(hours=step.timeout_hours)
        await session.flush()
        await audit.record(
            session,
            WORKER,
            "approval.escalate",
            "trip",
            trip.id,
            reason=f"overdue since {now.isoformat()}",
            data={"step_id": step.id, "from_level": before, "to_level": step.level},
        )
        deciders = await approvers_for(session, trip, step)
        notify.notify_users(
            session,
            deciders,
            "approval_escalated",
            f"用车申请 #{trip.id} 审批超时，已上报",
            trip_id=trip.id,
            step_id=step.id,
            level=step.level,
        )
        await _tell_if_undecidable(session, trip, step, deciders)
        count += 1
    return count


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
    binding_org = Org.__table__.alias("binding_org")
    level_ok = or_(
        *(
            and_(ApprovalStep.level == level, binding_org.c.kind.in_(kinds))
            for level, kinds in LEVEL_KINDS.items()
        )
    )
    holds = (
        select(RoleBinding.id)
        .join(binding_org, binding_org.c.id == RoleBinding.org_id)
        .where(
            RoleBinding.user_id == principal.user_id,
            RoleBinding.role == "approver",
            binding_org.c.path.op("@>")(unit.c.path),
            level_ok,
        )
        .exists()
    )
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
