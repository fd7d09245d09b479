"""What a login holds beyond one request: single-use websocket tickets, and account-change
events that end or re-scope what is already open.

A browser cannot put a bearer token in a websocket handshake except in the URL, and URLs end
up in access logs, proxies and histories. So the console trades its bearer token (over HTTP,
in a header) for a **ticket**: 32 random bytes, valid for ``FLEET_AUTH__LIVE_TICKET_TTL_S``
(30 s), redeemable once. Tickets live in Redis (only their SHA-256 is a key), so a ticket
issued by one API process is redeemed by whichever process the websocket reaches.

When an account changes (deactivated, roles or bindings, password) the change publishes an
``account`` event after commit on ``<prefix>.accounts.v1``; every API process closes that
user's open websockets (web/live.py). Server-side sessions (issue 11: logout, revocation,
idle timeout) extend this module: a session id in the ticket's claims, more reasons.
"""

from __future__ import annotations

import hashlib
import secrets
import time
from dataclasses import dataclass
from typing import Literal

import orjson
from redis.asyncio import Redis
from sqlalchemy.ext.asyncio import AsyncSession

from fleet import pubsub

AccountChange = Literal["deactivated", "roles", "password"]
# Changes after which the credential no longer admits the user: their connections end and a
# new ticket is refused (today a deactivated user's token is refused by load_principal; the
# password reason is for issue 11, which revokes the sessions of a changed password).
ENDS_SESSION: frozenset[str] = frozenset({"deactivated", "password"})
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
