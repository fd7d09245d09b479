"""HTTP routes: dispatch (queue, assign, batch, reassign, settle) and the driver's phone flow."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Query, Response

from dispatch.assignments import booking, driver, planning, schemas
from dispatch.assignments.booking import assignment_out
from dispatch.trips import schemas as trip_schemas
from dispatch.trips.schemas import trip_out
from dispatch.trips.service import read_trip
from fleet.deps import CurrentPrincipal, Session
from fleet.fields import Instant
from fleet.schemas import ERROR_RESPONSES, JSON_INT_MAX, Id, Page, PageParams, page_params

router = APIRouter(responses=ERROR_RESPONSES)
Paging = Annotated[PageParams, Depends(page_params)]


@router.get("/dispatch/queue", response_model=list[trip_schemas.TripOut], tags=["dispatch"])
async def queue(
    session: Session,
    principal: CurrentPrincipal,
    response: Response,
    departure_from: Instant | None = None,
    departure_to: Instant | None = None,
    limit: Annotated[int, Query(ge=1, le=2000, description="page size")] = 500,
    offset: Annotated[int, Query(ge=0, le=JSON_INT_MAX, description="rows to skip")] = 0,
) -> list[trip_schemas.TripOut]:
    """Approved or reassigned requests in the caller's scope waiting for a vehicle, earliest
    departure first. A plain list (the console's contract); the queue's full length is in
    the `X-Total-Count` header, so a client sees when a page does not hold everything."""
    rows, total = await planning.queue_page(
        session,
        principal,
        departure_from=departure_from,
        departure_to=departure_to,
        limit=limit,
        offset=offset,
    )
    response.headers["X-Total-Count"] = str(total)
    return [trip_out(t) for t in rows]


@router.get("/dispatch/planning-input", response_model=schemas.PlanningInput, tags=["dispatch"])
async def planning_input(
    session: Session,
    principal: CurrentPrincipal,
    departure_from: Instant | None = None,
    departure_to: Instant | None = None,
) -> schemas.PlanningInput:
    """The optimizer's input: requests waiting, candidate vehicles (incl. shared pools), drivers."""
    return await planning.planning_input(
        session, principal, departure_from=departure_from, departure_to=departure_to
    )


@router.post(
    "/dispatch/assignments", response_model=list[schemas.ProposalResult], tags=["dispatch"]
)
async def apply_batch(
    body: schemas.BatchIn, session: Session, principal: CurrentPrincipal
) -> list[schemas.ProposalResult]:
    """Apply a list of (trip, vehicle, driver) proposals with the manual checks, item by item."""
    return await booking.apply_assignments(session, principal, body.items, source=body.source)


@router.post(
    "/trips/{trip_id}/assign",
    response_model=schemas.AssignmentOut,
    status_code=201,
    tags=["dispatch"],
)
async def assign(
    trip_id: Id, body: schemas.AssignIn, session: Session, principal: CurrentPrincipal
) -> schemas.AssignmentOut:
    """Book a vehicle and a driver for the trip (派车)."""
    a = await booking.assign(session, principal, trip_id, body.vehicle_id, body.driver_id)
    return assignment_out(a)


@router.get(
    "/trips/{trip_id}/assignments", response_model=list[schemas.AssignmentOut], tags=["dispatch"]
)
async def trip_assignments(
    trip_id: Id, session: Session, principal: CurrentPrincipal
) -> list[schemas.AssignmentOut]:
    await read_trip(session, principal, trip_id)
    return [assignment_out(a) for a in await booking.trip_assignments(session, trip_id)]


@router.post(
    "/trips/{trip_id}/vehicle-failed", response_model=trip_schemas.TripOut, tags=["dispatch"]
)
async def vehicle_failed(
    trip_id: Id, body: trip_schemas.ReasonIn, session: Session, principal: CurrentPrincipal
) -> trip_schemas.TripOut:
    """The booked vehicle cannot go: release it; the trip waits for reassignment."""
    return trip_out(await booking.vehicle_failed(session, principal, trip_id, body.reason))


@router.post("/trips/{trip_id}/settle", response_model=trip_schemas.TripOut, tags=["dispatch"])
async def settle(
    trip_id: Id, body: schemas.SettleIn, session: Session, principal: CurrentPrincipal
) -> trip_schemas.TripOut:
    """Close a completed trip's accounts (结算)."""
    return trip_out(await booking.settle(session, principal, trip_id, body.note))


@router.get("/me/assignments", response_model=Page[schemas.MyAssignmentOut], tags=["driver"])
async def my_assignments(
    session: Session,
    principal: CurrentPrincipal,
    paging: Paging,
    state: schemas.AssignmentState | None = None,
) -> Page[schemas.MyAssignmentOut]:
    """The calling driver's assignments, newest first."""
    items, total = await driver.list_mine(
        session, principal, state=state, limit=paging.limit, offset=paging.offset
    )
    return Page(items=items, total=total, **paging.model_dump())


@router.post(
    "/assignments/{assignment_id}/accept", response_model=schemas.AssignmentOut, tags=["driver"]
)
async def accept(
    assignment_id: Id, session: Session, principal: CurrentPrincipal
) -> schemas.AssignmentOut:
    return assignment_out(await driver.accept(session, principal, assignment_id))


@router.post(
    "/assignments/{assignment_id}/decline", response_model=schemas.AssignmentOut, tags=["driver"]
)
async def decline(
    assignment_id: Id, body: schemas.DeclineIn, session: Session, principal: CurrentPrincipal
) -> schemas.AssignmentOut:
    """Decline with a reason: the trip goes back to dispatch (state reassigned)."""
    return assignment_out(await driver.decline(session, principal, assignment_id, body.reason))


@router.post(
    "/assignments/{assignment_id}/depart", response_model=schemas.AssignmentOut, tags=["driver"]
)
async def depart(
    assignment_id: Id, body: schemas.DepartIn, session: Session, principal: CurrentPrincipal
) -> schemas.AssignmentOut:
    return assignment_out(await driver.depart(session, principal, assignment_id, body))


@router.post(
    "/assignments/{assignment_id}/arrive", response_model=schemas.AssignmentOut, tags=["driver"]
)
async def arrive(
    assignment_id: Id, body: schemas.ArriveIn, session: Session, principal: CurrentPrincipal
) -> schemas.AssignmentOut:
    return assignment_out(await driver.arrive(session, principal, assignment_id, body))


@router.post(
    "/assignments/{assignment_id}/complete", response_model=schemas.AssignmentOut, tags=["driver"]
)
async def complete(
    assignment_id: Id, body: schemas.CompleteIn, session: Session, principal: CurrentPrincipal
) -> schemas.AssignmentOut:
    """Return the vehicle (收车): odometer, tolls, parking, fuel/charging cost, notes."""
    return assignment_out(await driver.complete(session, principal, assignment_id, body))
