"""HTTP routes for vehicles and drivers."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Query

from fleet.deps import CurrentPrincipal, Session
from fleet.registry import schemas, service
from fleet.schemas import ERROR_RESPONSES, Id, Page, PageParams, page_params

router = APIRouter(responses=ERROR_RESPONSES)
Paging = Annotated[PageParams, Depends(page_params)]
Under = Annotated[Id | None, Query(description="only vehicles/drivers of this org's subtree")]


@router.get("/vehicles", response_model=Page[schemas.VehicleOut], tags=["vehicles"])
async def list_vehicles(
    session: Session,
    principal: CurrentPrincipal,
    paging: Paging,
    under: Under = None,
    unit_id: Id | None = None,
    status: schemas.VehicleStatus | None = None,
    body_type: schemas.BodyType | None = None,
    category: schemas.Category | None = None,
    energy: schemas.Energy | None = None,
    shared_pool: schemas.Pool | None = None,
    q: Annotated[str | None, Query(max_length=32, description="plate or VIN contains")] = None,
) -> Page[schemas.VehicleOut]:
    """Vehicles in the caller's scope (dispatchers also see pools shared with their scope)."""
    filters = {
        "unit_id": unit_id,
        "status": status,
        "body_type": body_type,
        "category": category,
        "energy": energy,
        "shared_pool": shared_pool,
    }
    rows, total = await service.list_vehicles(
        session,
        principal,
        filters=filters,
        under=under,
        q=q,
        limit=paging.limit,
        offset=paging.offset,
    )
    return Page(items=[service.vehicle_out(v) for v in rows], total=total, **paging.model_dump())


@router.get("/vehicles/{vehicle_id}", response_model=schemas.VehicleOut, tags=["vehicles"])
async def get_vehicle(
    vehicle_id: Id, session: Session, principal: CurrentPrincipal
) -> schemas.VehicleOut:
    return service.vehicle_out(await service.read_vehicle(session, principal, vehicle_id))


@router.post("/vehicles", response_model=schemas.VehicleOut, status_code=201, tags=["vehicles"])
async def create_vehicle(
    body: schemas.VehicleIn, session: Session, principal: CurrentPrincipal
) -> schemas.VehicleOut:
    return service.vehicle_out(await service.create_vehicle(session, principal, body))


@router.patch("/vehicles/{vehicle_id}", response_model=schemas.VehicleOut, tags=["vehicles"])
async def update_vehicle(
    vehicle_id: Id, body: schemas.VehiclePatch, session: Session, principal: CurrentPrincipal
) -> schemas.VehicleOut:
    return service.vehicle_out(await service.update_vehicle(session, principal, vehicle_id, body))


@router.post("/vehicles/{vehicle_id}/status", response_model=schemas.VehicleOut, tags=["vehicles"])
async def change_vehicle_status(
    vehicle_id: Id, body: schemas.StatusChange, session: Session, principal: CurrentPrincipal
) -> schemas.VehicleOut:
    """Lifecycle change (in service, under repair, sealed, awaiting disposal, scrapped), audited."""
    return service.vehicle_out(await service.change_status(session, principal, vehicle_id, body))


@router.get("/drivers", response_model=Page[schemas.DriverOut], tags=["drivers"])
async def list_drivers(
    session: Session,
    principal: CurrentPrincipal,
    paging: Paging,
    under: Under = None,
    licence_class: schemas.LicenceClass | None = None,
    status: str | None = Query(default=None, pattern="^(active|on_leave|inactive)$"),
    q: Annotated[str | None, Query(max_length=50, description="name or licence number")] = None,
) -> Page[schemas.DriverOut]:
    rows, total = await service.list_drivers(
        session,
        principal,
        under=under,
        q=q,
        licence_class=licence_class,
        status=status,
        limit=paging.limit,
        offset=paging.offset,
    )
    return Page(items=[service.driver_out(d) for d in rows], total=total, **paging.model_dump())


@router.get("/drivers/{driver_id}", response_model=schemas.DriverOut, tags=["drivers"])
async def get_driver(
    driver_id: Id, session: Session, principal: CurrentPrincipal
) -> schemas.DriverOut:
    return service.driver_out(await service.read_driver(session, principal, driver_id))


@router.post("/drivers", response_model=schemas.DriverOut, status_code=201, tags=["drivers"])
async def create_driver(
    body: schemas.DriverIn, session: Session, principal: CurrentPrincipal
) -> schemas.DriverOut:
    return service.driver_out(await service.create_driver(session, principal, body))


@router.patch("/drivers/{driver_id}", response_model=schemas.DriverOut, tags=["drivers"])
async def update_driver(
    driver_id: Id, body: schemas.DriverPatch, session: Session, principal: CurrentPrincipal
) -> schemas.DriverOut:
    return service.driver_out(await service.update_driver(session, principal, driver_id, body))
