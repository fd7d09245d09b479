"""Who may open the live websocket, and how, without a secret in any URL.

``POST /api/v1/live/ticket`` (bearer token in the ``Authorization`` header) returns a ticket:
single use, valid ``FLEET_AUTH__LIVE_TICKET_TTL_S`` (30 s), stored in Redis so any API process
redeems it (fleet/identity/sessions.py). The console connects with
``/api/v1/live?ticket=…`` — harmless in an access log, since it is spent on connect — and
fetches a new ticket for every reconnect. A client that is not a browser may instead send
``{"type": "auth", "token": <bearer>}`` (or ``"ticket"``) as its first frame.

``?token=`` is **refused** (close 4401, ``token_in_url``): a bearer token in a URL is written
to access logs, proxy logs and browser history, and stays valid for hours. The log scrubber
(fleet/logging.py) redacts it anyway, so a client that still sends one leaks nothing.

Close codes the console understands: **4401** the credential no longer admits the user
(ticket unknown/used/expired, token expired, account deactivated, password changed): get a
new ticket — if that is refused too (401) the console shows the login page. **4403** the
user's roles or bindings changed: reload, so the page and the stream take the new scope.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Annotated, Protocol

import orjson
from fastapi import APIRouter, Depends, FastAPI, WebSocket, WebSocketDisconnect
from pydantic import BaseModel
from redis.exceptions import RedisError

from fleet import pubsub
from fleet.config import Settings, get_settings
from fleet.deps import CurrentCredential, load_principal
from fleet.errors import Busy, FleetError, Unauthenticated
from fleet.identity import sessions
from fleet.identity.principal import Principal
from fleet.identity.security import read_claims
from fleet.identity.sessions import check_session
from fleet.schemas import ERROR_RESPONSES

router = APIRouter(responses=ERROR_RESPONSES)

AUTH_TIMEOUT_S = 5.0
REFRESH_S = 300.0  # an open connection reloads its account (and scope) this often
CLOSE_UNAUTHENTICATED = 4401
CLOSE_SCOPE_CHANGED = 4403


class LiveTicketOut(BaseModel):
    ticket: str
    expires_at: datetime
    ttl_s: float


@router.post("/live/ticket", response_model=LiveTicketOut, tags=["live"])
async def live_ticket(
    credential: CurrentCredential, settings: Annotated[Settings, Depends(get_settings)]
) -> LiveTicketOut:
    """A single-use ticket for ``/api/v1/live?ticket=…``, valid for 30 seconds."""
    ttl_s = settings.auth.live_ticket_ttl_s
    try:
        ticket = await sessions.issue_ticket(
            pubsub.client(),
            credential.principal.user_id,
            ttl_s=ttl_s,
            credential_expires_at=credential.expires_at,
        )
    except RedisError as exc:
        raise Busy(
            "the live service is unavailable; retry shortly",
            code="live_unavailable",
            retry_after_s=5,
        ) from exc
    return LiveTicketOut(
        ticket=ticket.value, expires_at=datetime.fromtimestamp(ticket.expires_at, UTC), ttl_s=ttl_s
    )


@dataclass(frozen=True)
class Grant:
    """An authenticated websocket: who, and until when (epoch s) their credential holds."""

    principal: Principal
    expires_at: int | None


async def authenticate(ws: WebSocket) -> Grant | None:
    """The connection's user from ``?ticket=`` or a first ``auth`` frame; None (after
    refusing the connection with 4401) when there is none or it is not valid."""
    query = ws.query_params
    if "token" in query:
        await refuse(
            ws,
            "token_in_url",
            "a token in the URL is refused (it would be logged): connect with a ticket from"
            ' POST /api/v1/live/ticket, or send {"type": "auth", "token": …} first',
        )
        return None
    ticket = query.get("ticket")
    token: str | None = None
    if ticket is None:
        try:
            first = orjson.loads(await asyncio.wait_for(ws.receive_text(), AUTH_TIMEOUT_S))
        except (TimeoutError, orjson.JSONDecodeError, WebSocketDisconnect):
            first = None
        if isinstance(first, dict) and first.get("type") == "auth":
            token = first.get("token") if isinstance(first.get("token"), str) else None
            ticket = first.get("ticket") if isinstance(first.get("ticket"), str) else None
        if not token and not ticket:
            await refuse(ws, "token_missing", 'use ?ticket= or send {"type": "auth", …} first')
            return None
    try:
        if ticket is not None:
            claims = await sessions.redeem_ticket(pubsub.client(), ticket)
            if claims is None:
                await refuse(ws, "ticket_invalid", "unknown, used or expired ticket")
                return None
            user_id, expires_at = claims.user_id, claims.credential_expires_at
        else:
            assert token is not None
            token_claims = read_claims(ws.app.state.settings.auth, token)
            user_id, expires_at = token_claims.user_id, token_claims.expires_at
        async with ws.app.state.sessionmaker() as session:
            auth = ws.app.state.settings.auth
            if token is not None and ticket is None:
                # A token in the first frame: its server-side session must still be open (a
                # ticket was checked when it was issued).
                if token_claims.sid is not None:
                    await check_session(session, auth, token_claims.sid, user_id)
                elif not auth.accept_sessionless_tokens:
                    raise Unauthenticated("token without a session", code="token_invalid")
            principal = await load_principal(session, user_id, auth)
            await session.commit()
        if principal.password_change is not None:
            await refuse(ws, "password_change_required", "change your password first")
            return None
    except FleetError as exc:
        await refuse(ws, exc.code, exc.message)
        return None
    except RedisError:
        await refuse(ws, "live_unavailable", "the live service is unavailable; retry shortly")
        return None
    if expires_at is not None and expires_at <= time.time():
        await refuse(ws, "token_expired", "token expired")
        return None
    return Grant(principal, expires_at)


async def refuse(ws: WebSocket, code: str, message: str) -> None:
    with contextlib.suppress(Exception):
        await ws.send_text(
            orjson.dumps({"type": "error", "code": code, "message": message}).decode()
        )
        await ws.close(code=CLOSE_UNAUTHENTICATED, reason=code)


class Followed(Protocol):
    """What :func:`follow` needs of an open connection (web/live.py's Console)."""

    principal: Principal
    expires_at: int | None

    def end(self, code: int, reason: str) -> None: ...


async def follow(c: Followed, app: FastAPI, refresh: Callable[[], Awaitable[None]]) -> None:
    """The connection follows its account: it ends when its credential expires; every
    REFRESH_S it runs `refresh` (new vehicles, changed pools) after reloading the account,
    which ends it if an account event was lost on the way (disabled: 4401, roles: 4403)."""
    refresh_at = time.time() + REFRESH_S
    while True:
        until = refresh_at if c.expires_at is None else min(refresh_at, c.expires_at)
        await asyncio.sleep(max(0.0, until - time.time()))
        if c.expires_at is not None and time.time() >= c.expires_at:
            c.end(CLOSE_UNAUTHENTICATED, "credential_expired")
            return
        refresh_at = time.time() + REFRESH_S
        try:
            async with app.state.sessionmaker() as session:
                now = await load_principal(session, c.principal.user_id)
        except Unauthenticated:
            c.end(CLOSE_UNAUTHENTICATED, "deactivated")
            return
        except Exception:  # the database is restarting: keep streaming, retry next time
            continue
        if _scope(now) != _scope(c.principal):
            c.end(CLOSE_SCOPE_CHANGED, "roles")
            return
        await refresh()


def _scope(p: Principal) -> dict[str, tuple[str, ...]]:
    return {role: tuple(sorted(paths)) for role, paths in p.bindings.items()}
