"""One trip's approval chain as the people involved see it.

The requester and the approvers both read the same view: every level of the current round
(or, before submission, the levels the configured chain will ask for), which level is
deciding now, and who can decide each level, by name and the org they approve for, never by
id. Who qualifies is `levels.kind_decides`, the rule `levels.approvers` puts in SQL, so the
view cannot promise a decider the API would refuse.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from sqlalchemy import cast, func, select
from sqlalchemy.ext.asyncio import AsyncSession

from dispatch.approvals import schemas
from dispatch.approvals.chains import resolve_chain
from dispatch.approvals.levels import BINDING_ORG, approvers, kind_decides
from dispatch.approvals.models import ApprovalStep
from dispatch.trips.models import TripRequest
from dispatch.trips.service import read_trip
from fleet.identity.models import Org, User
from fleet.identity.principal import Principal
from fleet.types import Ltree

MAX_DECIDERS = 20  # a region-level step could list many; the count says how many in all
OPEN = ("planned", "waiting", "pending")


@dataclass(frozen=True)
class _Binding:
    user_id: int
    name: str
    org: str
    org_kind: str


async def chain_of(
    session: AsyncSession, principal: Principal, trip_id: int
) -> schemas.ChainProgressOut:
    """The chain of a trip the caller may read (requester, passenger, approver in scope…)."""
    return await progress(session, await read_trip(session, principal, trip_id))


async def _ancestors(session: AsyncSession, unit: Org) -> list[Org]:
    """The unit and the orgs above it, most specific first."""
    rows = await session.execute(
        select(Org)
        .where(Org.path.op("@>")(cast(unit.path, Ltree())))
        .order_by(func.nlevel(Org.path).desc())
    )
    return list(rows.scalars())


async def _approvers(session: AsyncSession, unit: Org) -> list[_Binding]:
    """Active approvers bound to the unit or above it, most specific binding first."""
    org = BINDING_ORG
    rows = await session.execute(
        approvers(unit.path, None)
        .add_columns(User.display_name, org.name, org.kind)
        .order_by(func.nlevel(org.path).desc(), User.id)
    )
    return [_Binding(int(r[0]), r[1], r[2], r[3]) for r in rows.all()]


async def _people(
    session: AsyncSession, ids: set[int], known: dict[int, schemas.PersonOut]
) -> dict[int, schemas.PersonOut]:
    """Names of users not among the approvers in scope (e.g. a decider since unbound)."""
    missing = ids - known.keys()
    out = dict(known)
    if missing:
        rows = await session.execute(
            select(User.id, User.display_name, Org.name)
            .join(Org, Org.id == User.org_id)
            .where(User.id.in_(missing))
        )
        out.update({int(r[0]): schemas.PersonOut(name=r[1], org=r[2]) for r in rows.all()})
    return out


async def display_names(session: AsyncSession, user_ids: set[int]) -> dict[int, str]:
    """user id -> display name, for lists that show people (the inbox's requesters)."""
    if not user_ids:
        return {}
    rows = await session.execute(select(User.id, User.display_name).where(User.id.in_(user_ids)))
    return {int(r[0]): r[1] for r in rows.all()}


def _deciders(
    level: str, bindings: Sequence[_Binding], requester_id: int
) -> list[schemas.PersonOut]:
    seen: set[int] = set()
    out: list[schemas.PersonOut] = []
    for b in bindings:
        if kind_decides(level, b.org_kind) and b.user_id != requester_id and b.user_id not in seen:
            seen.add(b.user_id)
            out.append(schemas.PersonOut(name=b.name, org=b.org))
    return out


async def progress(session: AsyncSession, trip: TripRequest) -> schemas.ChainProgressOut:
    """Levels, the current one and who can decide each, for the trip's latest round."""
    unit = await session.get(Org, trip.unit_id)
    assert unit is not None
    ancestors = await _ancestors(session, unit)
    bindings = await _approvers(session, unit)
    steps: list[ApprovalStep] = []
    if trip.approval_round > 0:
        rows = await session.execute(
            select(ApprovalStep)
            .where(ApprovalStep.trip_id == trip.id, ApprovalStep.round == trip.approval_round)
            .order_by(ApprovalStep.seq)
        )
        steps = list(rows.scalars())
    planned: list[str] = []
    if not steps:
        chain = await resolve_chain(session, unit, trip.kind)
        planned = [str(s["level"]) for s in chain.steps] if chain is not None else []
    known: dict[int, schemas.PersonOut] = {}
    for b in bindings:
        known.setdefault(b.user_id, schemas.PersonOut(name=b.name, org=b.org))
    people = await _people(
        session,
        {i for s in steps for i in (s.acted_by, s.assignee_id) if i is not None},
        known,
    )

    def scope(level: str) -> str:
        return next((o.name for o in ancestors if kind_decides(level, o.kind)), unit.name)

    entries: list[tuple[int, str, ApprovalStep | None]] = [(s.seq, s.level, s) for s in steps]
    entries = entries or [(i, lv, None) for i, lv in enumerate(planned, 1)]
    levels: list[schemas.ChainLevelOut] = []
    for seq, level, step in entries:
        state = step.state if step is not None else "planned"
        deciders: list[schemas.PersonOut] = []
        if state in OPEN:
            if step is not None and step.assignee_id is not None:
                deciders = [people[step.assignee_id]]
            else:
                deciders = _deciders(level, bindings, trip.requester_id)
        levels.append(
            schemas.ChainLevelOut(
                seq=seq,
                level=level,
                scope=scope(level),
                state=state,
                current=state == "pending",
                due_at=step.due_at if step is not None and state == "pending" else None,
                escalations=step.escalations if step is not None else 0,
                delegated=step is not None and step.assignee_id is not None,
                deciders=deciders[:MAX_DECIDERS],
                deciders_total=len(deciders),
                decided_by=people.get(step.acted_by) if step and step.acted_by else None,
                decided_at=step.acted_at if step is not None else None,
                comment=step.comment if step is not None else None,
            )
        )
    current = next((lv for lv in levels if lv.current), None)
    dest = await session.get(Org, trip.destination_org_id) if trip.destination_org_id else None
    return schemas.ChainProgressOut(
        trip_id=trip.id,
        kind=trip.kind,
        dispatch_first=trip.dispatch_first,
        approval_status=trip.approval_status,
        round=trip.approval_round,
        unit=unit.name,
        destination_county=dest.name if dest is not None else None,
        current_seq=current.seq if current else None,
        current_level=current.level if current else None,
        levels=levels,
    )
