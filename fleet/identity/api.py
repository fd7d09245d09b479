"""HTTP routes: login, sessions and passwords, me, organisations, users."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Annotated

from fastapi import APIRouter, Depends, Header, Query, Request, Response

from fleet import audit
from fleet.config import Settings, get_settings
from fleet.deps import CurrentCredential, CurrentPrincipal, PendingCredential, Session
from fleet.errors import NotFound, Unauthenticated
from fleet.identity import schemas, service, sessions, users
from fleet.identity.models import AuthSession
from fleet.schemas import ERROR_RESPONSES, Id, Page, PageParams, page_params

router = APIRouter(responses=ERROR_RESPONSES)
Paging = Annotated[PageParams, Depends(page_params)]


REFRESH_COOKIE = "fleet_refresh"
CSRF_COOKIE = "fleet_csrf"
CSRF_HEADER = "X-CSRF-Token"


def _source(request: Request) -> str | None:
    return request.client.host if request.client else None


def _set_cookies(request: Request, response: Response, opened: sessions.Opened) -> None:
    """The refresh token in an HttpOnly cookie sent only to /api/v1/auth; the CSRF token in
    a cookie the page can read (it echoes it in X-CSRF-Token). Both SameSite=Strict, Secure
    when served over HTTPS, and gone when the session's absolute lifetime ends."""
    secure = request.url.scheme == "https"
    max_age = max(1, int((opened.expires_at - datetime.now(UTC)).total_seconds()))
    response.set_cookie(
        REFRESH_COOKIE, opened.refresh, max_age=max_age, path="/api/v1/auth",
        httponly=True, samesite="strict", secure=secure,
    )  # fmt: skip
    response.set_cookie(
        CSRF_COOKIE, opened.csrf, max_age=max_age, path="/",
        httponly=False, samesite="strict", secure=secure,
    )  # fmt: skip


def _clear_cookies(response: Response) -> None:
    response.delete_cookie(REFRESH_COOKIE, path="/api/v1/auth")
    response.delete_cookie(CSRF_COOKIE, path="/")


@router.post("/auth/login", response_model=schemas.TokenOut, tags=["auth"])
async def login(
    body: schemas.LoginIn,
    session: Session,
    settings: Annotated[Settings, Depends(get_settings)],
    request: Request,
    response: Response,
) -> schemas.TokenOut:
    """Exchange username and password for a short access token and a server-side session
    (refresh token in an HttpOnly cookie). 429 with Retry-After while the account is locked
    or the source address throttled."""
    out, opened = await service.login(
        session, settings.auth, body, source=_source(request),
        user_agent=request.headers.get("user-agent"),
    )  # fmt: skip
    _set_cookies(request, response, opened)
    return out


@router.post("/auth/refresh", response_model=schemas.TokenOut, tags=["auth"])
async def refresh(
    session: Session,
    settings: Annotated[Settings, Depends(get_settings)],
    request: Request,
    x_csrf_token: Annotated[str | None, Header(max_length=128)] = None,
) -> schemas.TokenOut:
    """A new access token for the session of the refresh cookie; needs the session's CSRF
    token in X-CSRF-Token (the cookie alone never authenticates)."""
    row = await sessions.refresh_session(
        session, settings.auth, request.cookies.get(REFRESH_COOKIE), x_csrf_token
    )
    user = await users.read_user_self(session, row.user_id)
    if not user.active:
        raise Unauthenticated("user unknown or disabled", code="token_invalid")
    return service.token_out(settings.auth, user, str(row.id))


@router.post("/auth/logout", status_code=204, tags=["auth"])
async def logout(session: Session, credential: PendingCredential, response: Response) -> Response:
    """End the caller's session: its access and refresh tokens stop working at once."""
    if credential.sid is not None:
        await sessions.end_session(session, uuid.UUID(credential.sid), "logout")
        # Close the user's open websockets; those of their other sessions reconnect.
        sessions.account_changed(session, credential.principal.user_id, "sessions")
        await audit.record(
            session, credential.principal.actor, "auth.logout", "session", credential.sid
        )
    response.status_code = 204
    _clear_cookies(response)
    return response


@router.get("/auth/me", response_model=schemas.MeOut, tags=["auth"])
async def me(
    session: Session,
    credential: PendingCredential,
    settings: Annotated[Settings, Depends(get_settings)],
) -> schemas.MeOut:
    """The caller and their roles (also while they must change their password)."""
    user = await users.read_user_self(session, credential.principal.user_id)
    out = service.me_out(user, settings.auth)
    # What admitted this request decides, so the page and the API never disagree.
    out.password_change_required = credential.principal.password_change  # type: ignore[assignment]
    return out


@router.post("/auth/password", response_model=schemas.MeOut, tags=["auth"])
async def change_password(
    body: schemas.PasswordChangeIn,
    session: Session,
    credential: PendingCredential,
    settings: Annotated[Settings, Depends(get_settings)],
) -> schemas.MeOut:
    """Change one's own password (the current one is required). Every other session of the
    user ends; this one continues."""
    user = await service.change_own_password(
        session, settings.auth, credential.principal, body, keep=credential.sid
    )
    return service.me_out(user, settings.auth)


def _session_out(row: AuthSession, current: str | None) -> schemas.SessionOut:
    return schemas.SessionOut(
        id=str(row.id),
        created_at=row.created_at,
        last_seen_at=row.last_seen_at,
        expires_at=row.expires_at,
        source=row.source,
        user_agent=row.user_agent,
        current=str(row.id) == current,
    )


@router.get("/auth/sessions", response_model=list[schemas.SessionOut], tags=["auth"])
async def my_sessions(
    session: Session,
    credential: CurrentCredential,
    settings: Annotated[Settings, Depends(get_settings)],
) -> list[schemas.SessionOut]:
    """The caller's open sessions, newest first."""
    rows = await sessions.open_sessions(session, settings.auth, credential.principal.user_id)
    return [_session_out(r, credential.sid) for r in rows]


@router.delete("/auth/sessions/{session_id}", status_code=204, tags=["auth"])
async def end_my_session(
    session_id: uuid.UUID, session: Session, credential: CurrentCredential
) -> Response:
    """End one of the caller's own sessions (404 for anyone else's, as for a missing one)."""
    row = await session.get(AuthSession, session_id)
    if row is None or row.user_id != credential.principal.user_id or row.ended_at is not None:
        raise NotFound(f"session {session_id} not found", field="session_id")
    await sessions.end_session(session, row.id, "ended_by_user")
    sessions.account_changed(session, row.user_id, "sessions")
    await audit.record(
        session, credential.principal.actor, "auth.session_ended", "session", str(row.id)
    )
    return Response(status_code=204)


@router.get("/users/{user_id}/sessions", response_model=list[schemas.SessionOut], tags=["users"])
async def user_sessions(
    user_id: Id, session: Session, principal: CurrentPrincipal
) -> list[schemas.SessionOut]:
    """A user's open sessions (security administrator)."""
    return [_session_out(r, None) for r in await users.user_sessions(session, principal, user_id)]


@router.delete("/users/{user_id}/sessions", status_code=204, tags=["users"])
async def end_user_sessions(user_id: Id, session: Session, principal: CurrentPrincipal) -> Response:
    """End every session of a user at once (security administrator)."""
    await users.end_sessions_of(session, principal, user_id)
    return Response(status_code=204)


@router.post("/users/{user_id}/unlock", status_code=204, tags=["users"])
async def unlock_user(user_id: Id, session: Session, principal: CurrentPrincipal) -> Response:
    """Clear a user's failed logins and lockout (security administrator)."""
    await users.unlock_user(session, principal, user_id)
    return Response(status_code=204)


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
