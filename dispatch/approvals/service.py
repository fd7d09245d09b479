"""Approval rules: steps, approve / reject / return / delegate, escalation.

A step names an approver *level*: `unit` (an approver bound to the requesting unit), `county`,
`city` or `region` (an approver bound to that platform, or above it, covering the unit). A
delegated step may be acted on only by its assignee. An overdue step escalates one level up.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from dispatch import notify
from dispatch.approvals import notices, schemas
from dispatch.approvals.chains import resolve_chain
from dispatch.approvals.levels import approvers, level_above
from dispatch.approvals.models import ApprovalStep
from dispatch.assignments.booking import release_assignment
from dispatch.trips.access import load_trip
from dispatch.trips.models import TripRequest
from dispatch.trips.state import require_state, transition
from fleet import audit
from fleet.audit import Actor
from fleet.errors import Conflict, Forbidden, Invalid
from fleet.identity.models import Org
from fleet.identity.principal import Principal

APPROVE = ("approver",)
ADMIN = ("admin",)
WORKER = Actor(name="dispatch-worker")


def _now() -> datetime:
    return datetime.now(UTC)


# ---- who may approve -------------------------------------------------------------------


async def approvers_for(session: AsyncSession, trip: TripRequest, step: ApprovalStep) -> list[int]:
    """Who may decide the step: its assignee, else its level's approvers but the requester."""
    if step.assignee_id is not None:
        return [step.assignee_id]
    unit = await session.get(Org, trip.unit_id)
    assert unit is not None
    rows = await session.execute(approvers(unit.path, step.level).distinct())
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
    ok = await session.scalar(approvers(unit.path, step.level, user_id=principal.user_id))
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
    await notices.step_waiting(session, trip, step, await approvers_for(session, trip, step))


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
        await notices.dispatch_waiting(session, trip)


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
    """Authorise before revealing: the role (403), then the trip as visible (404), locked;
    its state (409) and the caller's right to this step (403) come after."""
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


def _decide(
    principal: Principal,
    step: ApprovalStep,
    steps: list[ApprovalStep],
    state: str,
    comment: str | None,
) -> None:
    """Record the caller's decision on the step; a refusal cancels the steps still waiting."""
    step.state = state
    step.acted_by = principal.user_id
    step.acted_at = _now()
    step.comment = comment
    if state != "approved":
        for s in steps:
            if s.state == "waiting":
                s.state = "cancelled"


async def approve(
    session: AsyncSession, principal: Principal, trip_id: int, comment: str | None
) -> TripRequest:
    trip = await _trip_to_decide(session, principal, trip_id)
    step, steps = await _current_step(session, trip)
    await _may_act(session, principal, trip, step)
    _decide(principal, step, steps, "approved", comment)
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
    await notices.dispatch_waiting(session, trip)
    return trip


async def reject(
    session: AsyncSession, principal: Principal, trip_id: int, reason: str
) -> TripRequest:
    trip = await _trip_to_decide(session, principal, trip_id)
    step, steps = await _current_step(session, trip)
    await _may_act(session, principal, trip, step)
    _decide(principal, step, steps, "rejected", reason)
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
    _decide(principal, step, steps, "returned", reason)
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
    target = await session.scalar(approvers(unit.path, None, user_id=body.user_id).limit(1))
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
        step.level = level_above(step.level)
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
        await notices.undecidable(session, trip, step, deciders)
        count += 1
    return count
