"""HTTP routes: cost records, service records and due dates, ratings, cost-per-km report."""

from __future__ import annotations

from typing import Annotated, Literal
from zoneinfo import ZoneInfo

from fastapi import APIRouter, Depends, Query, Response

from dispatch.costs import schemas, service
from fleet.config import Settings, get_settings
from fleet.deps import CurrentPrincipal, Session
from fleet.fields import Month
from fleet.schemas import ERROR_RESPONSES, Id, Page, PageParams, page_params
from fleet.tabular import file_response

router = APIRouter(responses=ERROR_RESPONSES, tags=["costs"])
Paging = Annotated[PageParams, Depends(page_params)]


@router.post("/costs", response_model=schemas.CostOut, status_code=201)
async def add_cost(
    body: schemas.CostIn, session: Session, principal: CurrentPrincipal
) -> schemas.CostOut:
    """Book an expense (fuel/charging, toll, parking, repair, …) against a vehicle and trip."""
    return schemas.CostOut.model_validate(await service.add_cost(session, principal, body))


@router.get("/costs", response_model=Page[schemas.CostOut])
async def list_costs(
    session: Session,
    principal: CurrentPrincipal,
    paging: Paging,
    vehicle_id: Id | None = None,
    trip_id: Id | None = None,
) -> Page[schemas.CostOut]:
    """Costs of one vehicle, of one trip, or (neither given) of every vehicle in the caller's
    scope; newest first."""
    rows, total = await service.list_costs(
        session,
        principal,
        vehicle_id=vehicle_id,
        trip_id=trip_id,
        limit=paging.limit,
        offset=paging.offset,
    )
    return Page(
        items=[schemas.CostOut.model_validate(r) for r in rows], total=total, **paging.model_dump()
    )


@router.get("/vehicles/{vehicle_id}/cost-summary", response_model=schemas.VehicleCostSummary)
async def vehicle_summary(
    vehicle_id: Id, session: Session, principal: CurrentPrincipal
) -> schemas.VehicleCostSummary:
    return await service.vehicle_summary(session, principal, vehicle_id)


@router.post("/service-records", response_model=schemas.ServiceOut, status_code=201)
async def add_service(
    body: schemas.ServiceIn, session: Session, principal: CurrentPrincipal
) -> schemas.ServiceOut:
    """Repair, maintenance, insurance or annual inspection, with the next due date."""
    return schemas.ServiceOut.model_validate(await service.add_service(session, principal, body))


@router.get("/service-records/due", response_model=list[schemas.DueOut])
async def due(
    session: Session,
    principal: CurrentPrincipal,
    within_days: Annotated[int, Query(ge=0, le=366)] = 30,
) -> list[schemas.DueOut]:
    """Insurance, inspections and services due (or overdue) within the given days."""
    return await service.due_soon(session, principal, within_days=within_days)


@router.post("/trips/{trip_id}/ratings", response_model=schemas.RatingOut, status_code=201)
async def rate(
    trip_id: Id, body: schemas.RatingIn, session: Session, principal: CurrentPrincipal
) -> schemas.RatingOut:
    """A passenger (or the requester) rates a completed trip, once."""
    return schemas.RatingOut.model_validate(await service.rate(session, principal, trip_id, body))


@router.get("/trips/{trip_id}/ratings", response_model=list[schemas.RatingOut])
async def ratings(
    trip_id: Id, session: Session, principal: CurrentPrincipal
) -> list[schemas.RatingOut]:
    return [
        schemas.RatingOut.model_validate(r)
        for r in await service.ratings(session, principal, trip_id)
    ]


@router.get(
    "/reports/cost-per-km",
    response_model=list[schemas.CostPerKmRow],
    responses={200: {"content": {"text/csv": {}}}},
)
async def cost_per_km(
    session: Session,
    principal: CurrentPrincipal,
    settings: Annotated[Settings, Depends(get_settings)],
    month_from: Month,
    month_to: Annotated[
        Month, Query(description="not before month_from, at most 120 months from it")
    ],
    under: Annotated[Id | None, Query(description="only units under this org")] = None,
    format: Annotated[Literal["json", "csv"], Query()] = "json",
) -> list[schemas.CostPerKmRow] | Response:
    """Cost per km by owning unit and month (Asia/Shanghai months), at most 120 months
    (`limits.report_max_months`) from month_from to month_to; `format=csv` exports."""
    rows = await service.cost_per_km(
        session, principal, month_from=month_from, month_to=month_to, under=under
    )
    if format == "csv":
        return file_response(
            "csv",
            f"cost-per-km-{month_from}-{month_to}",
            service.REPORT_COLUMNS,
            (r.model_dump() for r in rows),
            ZoneInfo(settings.timezone),
        )
    return rows
