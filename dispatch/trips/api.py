"""HTTP routes for trip requests: file, edit, submit, cancel, read, history."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Query

from dispatch.trips import schemas, service
from fleet.deps import CurrentPrincipal, Session
from fleet.fields import Instant
from fleet.schemas import ERROR_RESPONSES, Id, Page, PageParams, page_params

router = APIRouter(responses=ERROR_RESPONSES, tags=["trips"])
Paging = Annotated[PageParams, Depends(page_params)]


@router.post("/trips", response_model=schemas.TripOut, status_code=201)
async def create_trip(
    body: schemas.TripIn, session: Session, principal: CurrentPrincipal
) -> schemas.TripOut:
    """File a trip request (用车申请) as a draft, or submit it at once with `submit: true`."""
    trip = await service.create_trip(session, principal, body)
    return schemas.trip_out(trip)


@router.get("/trips", response_model=Page[schemas.TripOut])
async def list_trips(
    session: Session,
    principal: CurrentPrincipal,
    paging: Paging,
    state: schemas.TripState | None = None,
    mine: Annotated[bool, Query(description="only requests I filed")] = False,
    unit_id: Id | None = None,
    departure_from: Instant | None = None,
    departure_to: Instant | None = None,
    vehicle_id: Annotated[Id | None, Query(description="trips assigned to this vehicle")] = None,
    driver_id: Annotated[Id | None, Query(description="trips assigned to this driver")] = None,
) -> Page[schemas.TripOut]:
    """Trips the caller may see: own, as passenger or driver, or units in their roles' scope."""
    rows, total = await service.list_trips(
        session,
        principal,
        state=state,
        mine=mine,
        unit_id=unit_id,
        departure_from=departure_from,
        departure_to=departure_to,
        vehicle_id=vehicle_id,
        driver_id=driver_id,
        limit=paging.limit,
        offset=paging.offset,
    )
    return Page(items=[schemas.trip_out(t) for t in rows], total=total, **paging.model_dump())


@router.get("/trips/{trip_id}", response_model=schemas.TripOut)
async def get_trip(trip_id: Id, session: Session, principal: CurrentPrincipal) -> schemas.TripOut:
    return schemas.trip_out(await service.read_trip(session, principal, trip_id))


@router.put("/trips/{trip_id}", response_model=schemas.TripOut)
async def update_trip(
    trip_id: Id, body: schemas.TripIn, session: Session, principal: CurrentPrincipal
) -> schemas.TripOut:
    """Replace a draft (e.g. after it was returned for changes)."""
    return schemas.trip_out(await service.update_draft(session, principal, trip_id, body))


@router.post("/trips/{trip_id}/submit", response_model=schemas.TripOut)
async def submit(trip_id: Id, session: Session, principal: CurrentPrincipal) -> schemas.TripOut:
    """Send a draft into its approval chain."""
    return schemas.trip_out(await service.submit(session, principal, trip_id))


@router.post("/trips/{trip_id}/cancel", response_model=schemas.TripOut)
async def cancel(
    trip_id: Id, body: schemas.ReasonIn, session: Session, principal: CurrentPrincipal
) -> schemas.TripOut:
    """Cancel before departure (requester, or a dispatcher/admin of the unit)."""
    return schemas.trip_out(await service.cancel(session, principal, trip_id, body.reason))


@router.get("/trips/{trip_id}/history", response_model=list[schemas.HistoryOut])
async def history(
    trip_id: Id, session: Session, principal: CurrentPrincipal
) -> list[schemas.HistoryOut]:
    """Every audited transition and decision of the trip, oldest first."""
    return await service.history(session, principal, trip_id)
