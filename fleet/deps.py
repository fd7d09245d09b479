"""FastAPI dependencies every router uses: the request's session and the caller's identity."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Annotated

from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from fleet.config import AuthSettings, Settings, get_settings
from fleet.errors import Forbidden, Unauthenticated
from fleet.identity.models import Org, RoleBinding, User
from fleet.identity.passwords import change_required
from fleet.identity.principal import Principal
from fleet.identity.security import read_claims
from fleet.identity.sessions import check_session


async def get_session(request: Request) -> AsyncIterator[AsyncSession]:
    """One transaction per HTTP request: committed on success, rolled back on error."""
    factory = request.app.state.sessionmaker
    async with factory() as session:
        try:
            yield session
            await session.commit()
        except BaseException:
            await session.rollback()
            raise


Session = Annotated[AsyncSession, Depends(get_session)]
_bearer = HTTPBearer(auto_error=False, description="Token from POST /api/v1/auth/login")


async def load_principal(
    session: AsyncSession, user_id: int, auth: AuthSettings | None = None
) -> Principal:
    user = await session.get(User, user_id)
    if user is None or not user.active:
        raise Unauthenticated("user unknown or disabled", code="token_invalid")
    rows = await session.execute(
        select(RoleBinding.role, Org.path)
        .join(Org, Org.id == RoleBinding.org_id)
        .where(RoleBinding.user_id == user_id)
    )
    bindings: dict[str, list[str]] = {}
    for role, path in rows.all():
        bindings.setdefault(role, []).append(path)
    return Principal(
        user_id=user.id,
        username=user.username,
        org_id=user.org_id,
        bindings={r: tuple(p) for r, p in bindings.items()},
        password_change=change_required(auth or get_settings().auth, user, set(bindings)),
    )


@dataclass(frozen=True)
class Credential:
    """The caller and what admitted them: a bearer token, its expiry, and the server-side
    session it belongs to (None only for the tests' sessionless tokens)."""

    principal: Principal
    expires_at: int  # epoch seconds
    sid: str | None = None


async def pending_credential(
    request: Request,
    session: Session,
    settings: Annotated[Settings, Depends(get_settings)],
    creds: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
) -> Credential:
    """The caller, even one who must change their password first (only /auth/me,
    /auth/password and /auth/logout take this one)."""
    if creds is None or creds.scheme.lower() != "bearer":
        raise Unauthenticated("missing bearer token", code="token_missing")
    claims = read_claims(settings.auth, creds.credentials)
    if claims.sid is not None:
        await check_session(session, settings.auth, claims.sid, claims.user_id)
    elif not settings.auth.accept_sessionless_tokens:
        raise Unauthenticated("token without a session", code="token_invalid")
    principal = await load_principal(session, claims.user_id, settings.auth)
    # Who was refused, should this request end in a 403 (its audit entry names the actor).
    request.state.principal = principal
    return Credential(principal, claims.expires_at, claims.sid)


async def current_credential(
    credential: Annotated[Credential, Depends(pending_credential)],
) -> Credential:
    """The caller; 403 ``password_change_required`` while their password must be changed."""
    if credential.principal.password_change is not None:
        raise Forbidden(
            "change your password before anything else (POST /api/v1/auth/password)",
            code="password_change_required",
            reason=credential.principal.password_change,
        )
    return credential


async def current_principal(
    credential: Annotated[Credential, Depends(current_credential)],
) -> Principal:
    return credential.principal


CurrentCredential = Annotated[Credential, Depends(current_credential)]
PendingCredential = Annotated[Credential, Depends(pending_credential)]
CurrentPrincipal = Annotated[Principal, Depends(current_principal)]
