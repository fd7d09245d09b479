"""HTTP routes for usage and provisioning standards (admin edits, everyone in a role reads)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Response

from dispatch.standards import schemas, service
from fleet.deps import CurrentPrincipal, Session
from fleet.schemas import ERROR_RESPONSES, Id, Page, PageParams, page_params

router = APIRouter(responses=ERROR_RESPONSES, tags=["standards"])
Paging = Annotated[PageParams, Depends(page_params)]


@router.get("/standards/usage", response_model=list[schemas.UsageStandardOut])
async def list_usage(
    session: Session, principal: CurrentPrincipal
) -> list[schemas.UsageStandardOut]:
    """Which body types a trip may use, by passenger count and trip nature."""
    rows = await service.list_usage(session, principal)
    return [schemas.UsageStandardOut.model_validate(r) for r in rows]


@router.post("/standards/usage", response_model=schemas.UsageStandardOut, status_code=201)
async def create_usage(
    body: schemas.UsageStandardIn, session: Session, principal: CurrentPrincipal
) -> schemas.UsageStandardOut:
    return schemas.UsageStandardOut.model_validate(
        await service.create_usage(session, principal, body)
    )


@router.put("/standards/usage/{standard_id}", response_model=schemas.UsageStandardOut)
async def replace_usage(
    standard_id: Id, body: schemas.UsageStandardIn, session: Session, principal: CurrentPrincipal
) -> schemas.UsageStandardOut:
    return schemas.UsageStandardOut.model_validate(
        await service.replace_usage(session, principal, standard_id, body)
    )


@router.delete("/standards/usage/{standard_id}", status_code=204)
async def delete_usage(standard_id: Id, session: Session, principal: CurrentPrincipal) -> Response:
    await service.delete_usage(session, principal, standard_id)
    return Response(status_code=204)


@router.get("/standards/provisioning", response_model=list[schemas.ProvisioningStandardOut])
async def list_provisioning(
    session: Session, principal: CurrentPrincipal
) -> list[schemas.ProvisioningStandardOut]:
    """Price and engine caps per vehicle category (配备标准)."""
    rows = await service.list_provisioning(session, principal)
    return [schemas.ProvisioningStandardOut.model_validate(r) for r in rows]


@router.put("/standards/provisioning", response_model=schemas.ProvisioningStandardOut)
async def upsert_provisioning(
    body: schemas.ProvisioningStandardIn, session: Session, principal: CurrentPrincipal
) -> schemas.ProvisioningStandardOut:
    """Create or replace the caps of one (category, body type) pair."""
    return schemas.ProvisioningStandardOut.model_validate(
        await service.upsert_provisioning(session, principal, body)
    )


@router.delete("/standards/provisioning/{standard_id}", status_code=204)
async def delete_provisioning(
    standard_id: Id, session: Session, principal: CurrentPrincipal
) -> Response:
    await service.delete_provisioning(session, principal, standard_id)
    return Response(status_code=204)


@router.get("/standards/provisioning/violations", response_model=Page[schemas.ViolationOut])
async def violations(
    session: Session, principal: CurrentPrincipal, paging: Paging
) -> Page[schemas.ViolationOut]:
    """Vehicles in scope over their category's price or engine cap."""
    items, total = await service.provisioning_violations(
        session, principal, limit=paging.limit, offset=paging.offset
    )
    return Page(items=items, total=total, **paging.model_dump())
