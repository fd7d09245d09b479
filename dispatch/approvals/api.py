"""HTTP routes: approval chains (admin), the approver's inbox and decisions."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends
from pydantic import Field

from dispatch.approvals import chains, progress, reading, schemas, service
from dispatch.trips import schemas as trip_schemas
from dispatch.trips.schemas import trip_out
from dispatch.trips.service import read_trip
from fleet.deps import CurrentPrincipal, Session
from fleet.schemas import ERROR_RESPONSES, Id, Out, Page, PageParams, page_params

router = APIRouter(responses=ERROR_RESPONSES, tags=["approvals"])
Paging = Annotated[PageParams, Depends(page_params)]


class InboxItem(Out):
    step: schemas.StepOut
    trip: trip_schemas.TripOut
    requester: str = Field(description="the requester's display name")


@router.get("/approval-chains", response_model=list[schemas.ChainOut])
async def list_chains(session: Session, principal: CurrentPrincipal) -> list[schemas.ChainOut]:
    """Approval chains per org and request kind (most specific org wins)."""
    return [
        schemas.ChainOut.model_validate(c) for c in await chains.list_chains(session, principal)
    ]


@router.put("/approval-chains", response_model=schemas.ChainOut)
async def save_chain(
    body: schemas.ChainIn, session: Session, principal: CurrentPrincipal
) -> schemas.ChainOut:
    """Create or replace the chain of one (org, kind)."""
    return schemas.ChainOut.model_validate(await chains.upsert_chain(session, principal, body))


@router.get("/approvals/inbox", response_model=Page[InboxItem])
async def inbox(session: Session, principal: CurrentPrincipal, paging: Paging) -> Page[InboxItem]:
    """Requests waiting for the caller's decision, oldest deadline first."""
    rows, total = await reading.inbox(session, principal, limit=paging.limit, offset=paging.offset)
    names = await progress.display_names(session, {t.requester_id for _, t in rows})
    items = [
        InboxItem(
            step=schemas.StepOut.model_validate(s),
            trip=trip_out(t),
            requester=names.get(t.requester_id, ""),
        )
        for s, t in rows
    ]
    return Page(items=items, total=total, **paging.model_dump())


@router.get("/trips/{trip_id}/approvals", response_model=list[schemas.StepOut])
async def trip_steps(
    trip_id: Id, session: Session, principal: CurrentPrincipal
) -> list[schemas.StepOut]:
    """Every approval step of the trip, all rounds."""
    await read_trip(session, principal, trip_id)
    return [schemas.StepOut.model_validate(s) for s in await reading.steps_of(session, trip_id)]


@router.get("/trips/{trip_id}/approval-chain", response_model=schemas.ChainProgressOut)
async def approval_chain(
    trip_id: Id, session: Session, principal: CurrentPrincipal
) -> schemas.ChainProgressOut:
    """The trip's chain: its levels, the one deciding now and who can decide each (by name)."""
    return await progress.chain_of(session, principal, trip_id)


@router.post("/trips/{trip_id}/approve", response_model=trip_schemas.TripOut)
async def approve(
    trip_id: Id, body: schemas.DecisionIn, session: Session, principal: CurrentPrincipal
) -> trip_schemas.TripOut:
    return trip_out(await service.approve(session, principal, trip_id, body.comment))


@router.post("/trips/{trip_id}/reject", response_model=trip_schemas.TripOut)
async def reject(
    trip_id: Id, body: schemas.ReasonIn, session: Session, principal: CurrentPrincipal
) -> trip_schemas.TripOut:
    return trip_out(await service.reject(session, principal, trip_id, body.reason))


@router.post("/trips/{trip_id}/return", response_model=trip_schemas.TripOut)
async def return_for_changes(
    trip_id: Id, body: schemas.ReasonIn, session: Session, principal: CurrentPrincipal
) -> trip_schemas.TripOut:
    """Send the request back to the requester as a draft."""
    return trip_out(await service.return_for_changes(session, principal, trip_id, body.reason))


@router.post("/trips/{trip_id}/delegate", response_model=schemas.StepOut)
async def delegate(
    trip_id: Id, body: schemas.DelegateIn, session: Session, principal: CurrentPrincipal
) -> schemas.StepOut:
    """Hand the pending step to another approver covering the unit."""
    return schemas.StepOut.model_validate(await service.delegate(session, principal, trip_id, body))
