"""HTTP routes for terminals and geofences."""

from __future__ import annotations

from typing import Annotated, Literal

from fastapi import APIRouter, Depends, Query, Response

from fleet.config import Settings, get_settings
from fleet.deps import CurrentPrincipal, Session
from fleet.schemas import ERROR_RESPONSES, Id, Page, PageParams, page_params
from telematics.registry import schemas, service

router = APIRouter(responses=ERROR_RESPONSES)
Paging = Annotated[PageParams, Depends(page_params)]


@router.get("/terminals", response_model=Page[schemas.TerminalOut], tags=["terminals"])
async def list_terminals(
    session: Session,
    principal: CurrentPrincipal,
    paging: Paging,
    q: Annotated[str | None, Query(max_length=32)] = None,
    vehicle_id: Id | None = None,
    active: bool | None = None,
) -> Page[schemas.TerminalOut]:
    rows, total = await service.list_terminals(
        session,
        principal,
        q=q,
        vehicle_id=vehicle_id,
        active=active,
        limit=paging.limit,
        offset=paging.offset,
    )
    items = [schemas.TerminalOut.model_validate(t) for t in rows]
    return Page(items=items, total=total, **paging.model_dump())


@router.get("/terminals/{terminal_id}", response_model=schemas.TerminalOut, tags=["terminals"])
async def get_terminal(
    terminal_id: str, session: Session, principal: CurrentPrincipal
) -> schemas.TerminalOut:
    return schemas.TerminalOut.model_validate(
        await service.read_terminal(session, principal, terminal_id)
    )


@router.post(
    "/terminals", response_model=schemas.TerminalWithSecret, status_code=201, tags=["terminals"]
)
async def create_terminal(
    body: schemas.TerminalIn, session: Session, principal: CurrentPrincipal
) -> schemas.TerminalWithSecret:
    """Register a terminal. A generated secret is returned once; only its hash is stored."""
    return await service.create_terminal(session, principal, body)


@router.patch(
    "/terminals/{terminal_id}", response_model=schemas.TerminalWithSecret, tags=["terminals"]
)
async def update_terminal(
    terminal_id: str, body: schemas.TerminalPatch, session: Session, principal: CurrentPrincipal
) -> schemas.TerminalWithSecret:
    """Rebind, (de)activate or rotate the secret (the new one is returned once)."""
    return await service.update_terminal(session, principal, terminal_id, body)


@router.get("/geofences", response_model=schemas.GeofenceCollection, tags=["geofences"])
async def list_geofences(
    session: Session,
    principal: CurrentPrincipal,
    settings: Annotated[Settings, Depends(get_settings)],
    paging: Paging,
    purpose: schemas.Purpose | None = None,
    org_id: Id | None = None,
    active: bool | None = None,
    geometry: Annotated[
        Literal["simplified", "full"],
        Query(description="simplified outlines for display (default), or the stored geometry"),
    ] = "simplified",
) -> schemas.GeofenceCollection:
    """A GeoJSON FeatureCollection (with paging members) of geofences in scope. Outlines are
    simplified for display unless `geometry=full` (GET /geofences/{id} is always full)."""
    full = geometry == "full"
    rows, total = await service.list_geofences(
        session,
        principal,
        purpose=purpose,
        org_id=org_id,
        active=active,
        full=full,
        limit=paging.limit,
        offset=paging.offset,
    )
    if full:
        features = [service.geofence_out(g) for g in rows]
    else:
        outlines = await service.simplified_outlines(
            session, [g.id for g in rows], settings.limits.geofence_display_tolerance_deg
        )
        features = [service.geofence_out(g, outlines[g.id], simplified=True) for g in rows]
    return schemas.GeofenceCollection(features=features, total=total, **paging.model_dump())


@router.get("/geofences/{geofence_id}", response_model=schemas.GeofenceOut, tags=["geofences"])
async def get_geofence(
    geofence_id: Id, session: Session, principal: CurrentPrincipal
) -> schemas.GeofenceOut:
    return service.geofence_out(await service.read_geofence(session, principal, geofence_id))


@router.post("/geofences", response_model=schemas.GeofenceOut, status_code=201, tags=["geofences"])
async def create_geofence(
    body: schemas.GeofenceIn, session: Session, principal: CurrentPrincipal
) -> schemas.GeofenceOut:
    return service.geofence_out(await service.create_geofence(session, principal, body))


@router.patch("/geofences/{geofence_id}", response_model=schemas.GeofenceOut, tags=["geofences"])
async def update_geofence(
    geofence_id: Id, body: schemas.GeofencePatch, session: Session, principal: CurrentPrincipal
) -> schemas.GeofenceOut:
    return service.geofence_out(
        await service.update_geofence(session, principal, geofence_id, body)
    )


@router.delete("/geofences/{geofence_id}", status_code=204, tags=["geofences"])
async def delete_geofence(
    geofence_id: Id, session: Session, principal: CurrentPrincipal
) -> Response:
    """Delete a geofence (administrator of its org's scope; audited)."""
    await service.delete_geofence(session, principal, geofence_id)
    return Response(status_code=204)
