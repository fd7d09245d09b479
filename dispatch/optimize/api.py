"""HTTP routes: auto-assign proposals (create -> poll -> edit -> accept | discard)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Annotated

from fastapi import APIRouter, Depends, FastAPI, Query, Request

from dispatch.optimize import schemas, service
from dispatch.optimize import suggestions as suggestions_service
from fleet.deps import CurrentPrincipal, Session
from fleet.schemas import ERROR_RESPONSES, Id, Page, PageParams, page_params

router = APIRouter(prefix="/dispatch/proposals", responses=ERROR_RESPONSES, tags=["auto-assign"])
Paging = Annotated[PageParams, Depends(page_params)]


@router.post("", response_model=schemas.ProposalOut, status_code=202)
async def create(
    body: schemas.ProposalCreate, session: Session, principal: CurrentPrincipal
) -> schemas.ProposalOut:
    """Auto-assign: queue an optimizer run for the waiting requests of an org subtree.

    Returns at once (202) with the run's id and counts; the optimizer worker solves it.
    Poll `GET /dispatch/proposals/{id}` for state and progress."""
    return service.proposal_out(await service.create(session, principal, body))


@router.get("", response_model=Page[schemas.ProposalSummary])
async def list_proposals(
    session: Session,
    principal: CurrentPrincipal,
    paging: Paging,
    org_id: Id | None = None,
    state: schemas.RunState | None = None,
) -> Page[schemas.ProposalSummary]:
    """Proposals in the caller's scope, newest first."""
    rows, total = await service.list_runs(
        session, principal, org_id=org_id, state=state, limit=paging.limit, offset=paging.offset
    )
    items = [schemas.ProposalSummary.model_validate(r) for r in rows]
    return Page(items=items, total=total, **paging.model_dump())


@router.get("/{proposal_id}", response_model=schemas.ProposalOut)
async def read(
    proposal_id: Id, session: Session, principal: CurrentPrincipal
) -> schemas.ProposalOut:
    """State (queued, running, done, failed, accepted, discarded), progress (elapsed, time
    limit, objective), proposed items with the optimizer's explanation, unserved with reasons."""
    return service.proposal_out(await service.read(session, principal, proposal_id))


@router.patch("/{proposal_id}", response_model=schemas.ProposalOut)
async def edit(
    proposal_id: Id, body: schemas.ProposalEdit, session: Session, principal: CurrentPrincipal
) -> schemas.ProposalOut:
    """Edit items before accepting: another vehicle or driver, drop/restore, or assign a
    request the optimizer left out. Vehicle and driver are checked at once."""
    return service.proposal_out(await service.edit(session, principal, proposal_id, body))


@router.post("/{proposal_id}/accept", response_model=schemas.AcceptOut)
async def accept(
    proposal_id: Id, session: Session, principal: CurrentPrincipal
) -> schemas.AcceptOut:
    """Book every kept item through the manual assignment checks, each on its own: a refused
    item comes back with its reason while the others commit."""
    return await service.accept(session, principal, proposal_id)


@router.post("/{proposal_id}/discard", response_model=schemas.ProposalOut)
async def discard(
    proposal_id: Id, session: Session, principal: CurrentPrincipal
) -> schemas.ProposalOut:
    """Throw the proposal away (a queued or running one is not stored when it finishes)."""
    return service.proposal_out(await service.discard(session, principal, proposal_id))


def suggestion_pool(app: FastAPI) -> suggestions_service.SuggestionPool:
    """The app's ranking process holder (its child starts on the first suggestion)."""
    pool = getattr(app.state, "suggestion_pool", None)
    if pool is None:
        pool = app.state.suggestion_pool = suggestions_service.SuggestionPool()
    return pool


@asynccontextmanager
async def lifespan(app: FastAPI) -> AsyncIterator[None]:
    """Starts the suggestion process with the app and shuts it down with it (entered by
    `dispatch.api.lifespan`)."""
    suggestion_pool(app).start()
    try:
        yield
    finally:
        pool = getattr(app.state, "suggestion_pool", None)
        if pool is not None:
            pool.shutdown()


suggestions_router = APIRouter(
    prefix="/dispatch/trips", responses=ERROR_RESPONSES, tags=["auto-assign"]
)


@suggestions_router.get("/{trip_id}/suggestions", response_model=schemas.SuggestionsOut)
async def suggestions(
    trip_id: Id,
    request: Request,
    session: Session,
    principal: CurrentPrincipal,
    limit: Annotated[int, Query(ge=1, le=20, description="suggestions to return")] = 5,
) -> schemas.SuggestionsOut:
    """Urgent dispatch (推荐车辆): the best vehicles and drivers for one waiting trip now.

    Ranks every vehicle you can send (incl. shared pools) by the cheapest insertion around
    its bookings (added km, lateness), in a child process; returns the best `limit` with
    the reason, the number that could take it and the others counted by why not. Nothing is
    booked: assign one with `POST /trips/{trip_id}/assign`. 409 if the trip is not waiting."""
    return await suggestions_service.suggest_for_trip(
        session, principal, trip_id, limit=limit, pool=suggestion_pool(request.app)
    )
