"""What a login holds beyond one request: single-use websocket tickets, and account-change
events that end or re-scope what is already open.

A browser cannot put a bearer token in a websocket handshake except in the URL, and URLs end
up in access logs, proxies and histories. So the console trades its bearer token (over HTTP,
in a header) for a **ticket**: 32 random bytes, valid for ``FLEET_AUTH__LIVE_TICKET_TTL_S``
(30 s), redeemable once. Tickets live in Redis (only their SHA-256 is a key), so a ticket
issued by one API process is redeemed by whichever process the websocket reaches.

When an account changes (deactivated, roles or bindings, password) the change publishes an
``account`` event after commit on ``<prefix>.accounts.v1``; every API process closes that
user's open websockets (web/live.py).

**Server-side sessions** (table ``auth_sessions``): a login opens one; its id is the access
token's ``sid`` claim, checked on every request (:func:`check_session`, one primary-key read;
the last use is written at most every ``FLEET_AUTH__SESSION_TOUCH_S``). A session ends on
logout, when its user ends it or a security administrator does, when its user's password,
roles or active flag change, after ``FLEET_AUTH__SESSION_IDLE_S`` (30 min) unused, and
``FLEET_AUTH__SESSION_ABSOLUTE_S`` (12 h) after login whatever happens. Access tokens are
short (``FLEET_AUTH__TOKEN_TTL_S``, 10 min); the browser renews them with the refresh token,
which lives only in an ``HttpOnly; SameSite=Strict`` cookie and is accepted only with the
session's CSRF token in the ``X-CSRF-Token`` header (fleet/identity/api.py).
"""

from __future__ import annotations

import hashlib
import secrets
import time
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Literal

import orjson
from redis.asyncio import Redis
from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession

from fleet import pubsub
from fleet.config import AuthSettings
from fleet.errors import Unauthenticated
from fleet.identity.models import AuthSession

AccountChange = Literal["deactivated", "roles", "password", "sessions"]
# Changes after which the credential no longer admits the user: their connections end (4401)
# and a new ticket needs a live session (deactivation, a password reset and ending sessions
# end them in auth_sessions; "roles" ends them too, but closes with 4403 so the page reloads).
ENDS_SESSION: frozenset[str] = frozenset({"deactivated", "password", "sessions"})
_MAX_TICKET_CHARS = 128


@dataclass(frozen=True)
class Ticket:
    value: str
    expires_at: float  # epoch seconds


@dataclass(frozen=True)
class TicketClaims:
    user_id: int
    # The bearer token's expiry (epoch s): a connection opened with the ticket ends with it.
    credential_expires_at: int | None


def _ticket_key(value: str) -> str:
    return pubsub.name("live-ticket." + hashlib.sha256(value.encode()).hexdigest())


async def issue_ticket(
    redis: Redis, user_id: int, *, ttl_s: float, credential_expires_at: int | None
) -> Ticket:
    """A new single-use ticket for `user_id`, stored in Redis for `ttl_s` seconds."""
    value = secrets.token_urlsafe(32)
    expires_at = time.time() + ttl_s
    claims = {"user_id": user_id, "credential_expires_at": credential_expires_at}
    await redis.set(_ticket_key(value), orjson.dumps(claims), px=max(1, int(ttl_s * 1000)))
    return Ticket(value=value, expires_at=expires_at)


async def redeem_ticket(redis: Redis, value: str | None) -> TicketClaims | None:
    """The ticket's claims, consuming it (GETDEL: two processes cannot both redeem it);
    None when it is unknown, already used or expired."""
    if not value or len(value) > _MAX_TICKET_CHARS:
        return None
    raw = await redis.getdel(_ticket_key(value))
    if raw is None:
        return None
    claims = orjson.loads(raw)
    exp = claims.get("credential_expires_at")
    return TicketClaims(
        user_id=int(claims["user_id"]), credential_expires_at=int(exp) if exp else None
    )


def accounts_channel() -> str:
    return pubsub.name("accounts.v1")


def account_changed(session: AsyncSession, user_id: int, reason: AccountChange) -> None:
    """Announce, once the session commits, that `user_id`'s account changed."""
    pubsub.publish_after_commit(
        session, accounts_channel(), {"type": "account", "user_id": user_id, "reason": reason}
    )


# ---- server-side sessions -------------------------------------------------------------


def _digest(value: str) -> bytes:
    return hashlib.sha256(value.encode()).digest()


@dataclass(frozen=True)
class Opened:
    """A new session: its id, and the two secrets the browser keeps in cookies."""

    id: uuid.UUID
    refresh: str
    csrf: str
    expires_at: datetime


async def open_session(
    session: AsyncSession,
    auth: AuthSettings,
    user_id: int,
    *,
    source: str | None,
    user_agent: str | None,
) -> Opened:
    refresh, csrf = secrets.token_urlsafe(32), secrets.token_urlsafe(24)
    expires_at = datetime.now(UTC) + timedelta(seconds=auth.session_absolute_s)
    row = AuthSession(
        user_id=user_id,
        expires_at=expires_at,
        refresh_hash=_digest(refresh),
        csrf_hash=_digest(csrf),
        source=(source or "")[:64] or None,
        user_agent=(user_agent or "")[:300] or None,
    )
    session.add(row)
    await session.flush()
    return Opened(row.id, refresh, csrf, expires_at)


def _live(row: AuthSession, auth: AuthSettings, now: datetime) -> str | None:
    """Why `row` no longer admits its user (None: it does)."""
    if row.ended_at is not None:
        return "session_ended"
    if row.expires_at <= now:
        return "session_expired"
    if row.last_seen_at + timedelta(seconds=auth.session_idle_s) <= now:
        return "session_idle"
    return None


async def check_session(
    session: AsyncSession, auth: AuthSettings, sid: str, user_id: int
) -> AuthSession:
    """The live session `sid` of `user_id`, its last use brought up to date; 401 when it
    ended, expired or idled out (`session_ended`, `session_expired`, `session_idle`)."""
    try:
        key = uuid.UUID(sid)
    except ValueError as exc:
        raise Unauthenticated("invalid token", code="token_invalid") from exc
    row = await session.get(AuthSession, key)
    now = datetime.now(UTC)
    if row is None or row.user_id != user_id:
        raise Unauthenticated("session unknown", code="session_ended")
    why = _live(row, auth, now)
    if why is not None:
        raise Unauthenticated("the session has ended; sign in again", code=why)
    if (now - row.last_seen_at).total_seconds() >= auth.session_touch_s:
        row.last_seen_at = now
        await session.flush()
    return row


async def refresh_session(
    session: AsyncSession, auth: AuthSettings, refresh: str | None, csrf: str | None
) -> AuthSession:
    """The live session whose refresh token this is, given its CSRF token too; 401 else."""
    if not refresh or len(refresh) > 128:
        raise Unauthenticated("no session cookie", code="session_missing")
    row = await session.scalar(
        select(AuthSession).where(AuthSession.refresh_hash == _digest(refresh))
    )
    if row is None:
        raise Unauthenticated("session unknown", code="session_ended")
    if not csrf or len(csrf) > 128 or not secrets.compare_digest(_digest(csrf), row.csrf_hash):
        raise Unauthenticated("missing or wrong CSRF token", code="csrf_failed")
    why = _live(row, auth, datetime.now(UTC))
    if why is not None:
        raise Unauthenticated("the session has ended; sign in again", code=why)
    row.last_seen_at = datetime.now(UTC)
    await session.flush()
    return row


async def end_session(session: AsyncSession, sid: uuid.UUID, reason: str) -> bool:
    """End one open session; True if it was open."""
    res = await session.execute(
        update(AuthSession)
        .where(AuthSession.id == sid, AuthSession.ended_at.is_(None))
        .values(ended_at=datetime.now(UTC), ended_reason=reason)
        .returning(AuthSession.id)
    )
    return res.first() is not None


async def end_user_sessions(
    session: AsyncSession, user_id: int, reason: str, *, keep: uuid.UUID | None = None
) -> int:
    """End every open session of `user_id` (but `keep`); how many were ended."""
    stmt = (
        update(AuthSession)
        .where(AuthSession.user_id == user_id, AuthSession.ended_at.is_(None))
        .values(ended_at=datetime.now(UTC), ended_reason=reason)
        .returning(AuthSession.id)
    )
    if keep is not None:
        stmt = stmt.where(AuthSession.id != keep)
    return len((await session.execute(stmt)).all())


async def open_sessions(
    session: AsyncSession, auth: AuthSettings, user_id: int
) -> list[AuthSession]:
    """The user's sessions that still admit them, newest first."""
    now = datetime.now(UTC)
    rows = await session.scalars(
        select(AuthSession)
        .where(
            AuthSession.user_id == user_id,
            AuthSession.ended_at.is_(None),
            AuthSession.expires_at > now,
            AuthSession.last_seen_at > now - timedelta(seconds=auth.session_idle_s),
        )
        .order_by(AuthSession.created_at.desc())
    )
    return list(rows)
