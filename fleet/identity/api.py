"""HTTP routes: login, me, organisations, users."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Query, Request

from fleet.config import Settings, get_settings
from fleet.deps import CurrentPrincipal, Session
from fleet.identity import schemas, service, users
from fleet.schemas import ERROR_RESPONSES, Id, Page, PageParams, page_params

router = APIRouter(responses=ERROR_RESPONSES)
Paging = Annotated[PageParams, Depends(page_params)]


@router.post("/auth/login", response_model=schemas.TokenOut, tags=["auth"])
async def login(
    body: schemas.LoginIn,
    session: Session,
    settings: Annotated[Settings, Depends(get_settings)],
    request: Request,
) -> schemas.TokenOut:
    """Exchange username and password for a bearer token."""
    source = request.client.host if request.client else None
    return await service.login(session, settings.auth, body, source=source)


@router.get("/auth/me", response_model=schemas.MeOut, tags=["auth"])
async def me(session: Session, principal: CurrentPrincipal) -> schemas.MeOut:
    """The caller and their roles."""
    user = await users.read_user_self(session, principal.user_id)
    return service.me_out(user)


@router.get("/orgs", response_model=Page[schemas.OrgOut], tags=["orgs"])
async def list_orgs(
    session: Session,
    principal: CurrentPrincipal,
    paging: Paging,
    kind: schemas.OrgKind | None = None,
    parent_id: Id | None = None,
    under: Annotated[Id | None, Query(description="only this org's subtree")] = None,
    q: Annotated[str | None, Query(max_length=100, description="name or code contains")] = None,
) -> Page[schemas.OrgOut]:
    """Organisations in the caller's scope, in tree order."""
    orgs, total = await service.list_orgs(
        session,
        principal,
        kind=kind,
        parent_id=parent_id,
        under=under,
        q=q,
        limit=paging.limit,
        offset=paging.offset,
    )
    return Page(items=[service.org_out(o) for o in orgs], total=total, **paging.model_dump())


@router.get("/orgs/{org_id}", response_model=schemas.OrgOut, tags=["orgs"])
async def get_org(org_id: Id, session: Session, principal: CurrentPrincipal) -> schemas.OrgOut:
    return service.org_out(await service.read_org(session, principal, org_id))


@router.post("/orgs", response_model=schemas.OrgOut, status_code=201, tags=["orgs"])
async def create_org(
    body: schemas.OrgIn, session: Session, principal: CurrentPrincipal
) -> schemas.OrgOut:
    return service.org_out(await service.create_org(session, principal, body))


@router.patch("/orgs/{org_id}", response_model=schemas.OrgOut, tags=["orgs"])
async def update_org(
    org_id: Id, body: schemas.OrgPatch, session: Session, principal: CurrentPrincipal
) -> schemas.OrgOut:
    return service.org_out(await service.update_org(session, principal, org_id, body))


@router.get("/users", response_model=Page[schemas.UserOut], tags=["users"])
async def list_users(
    session: Session,
    principal: CurrentPrincipal,
    paging: Paging,
    q: Annotated[str | None, Query(max_length=100)] = None,
    org_id: Id | None = None,
) -> Page[schemas.UserOut]:
    found, total = await users.list_users(
        session, principal, q=q, org_id=org_id, limit=paging.limit, offset=paging.offset
    )
    items = [await users.user_out(session, u) for u in found]
    return Page(items=items, total=total, **paging.model_dump())


@router.get("/users/{user_id}", response_model=schemas.UserOut, tags=["users"])
async def get_user(user_id: Id, session: Session, principal: CurrentPrincipal) -> schemas.UserOut:
    return await users.user_out(session, await users.read_user(session, principal, user_id))


@router.post("/users", response_model=schemas.UserOut, status_code=201, tags=["users"])
async def create_user(
    body: schemas.UserIn, session: Session, principal: CurrentPrincipal
) -> schemas.UserOut:
    return await users.user_out(session, await users.create_user(session, principal, body))


@router.patch("/users/{user_id}", response_model=schemas.UserOut, tags=["users"])
async def update_user(
    user_id: Id, body: schemas.UserPatch, session: Session, principal: CurrentPrincipal
) -> schemas.UserOut:
    user = await users.update_user(session, principal, user_id, body)
    return await users.user_out(session, user)
