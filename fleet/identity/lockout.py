"""Failed logins: per username a lock after consecutive failures, per source address a budget.

**Per username** (the table ``login_failures``, keyed by the name as typed, known or not, so
an unknown name behaves exactly like a known one and the lock is no oracle of which accounts
exist): each failure adds one; the ``FLEET_AUTH__LOCKOUT_THRESHOLD``-th (default 5) in a row
locks the name for ``FLEET_AUTH__LOCKOUT_S`` (default 900 s) and is audited
(``auth.locked``). While locked, every login of it — the right password too — is refused
with 429 ``account_locked`` and ``Retry-After``, before any hashing. A success clears the
count; so does a lock that has run out (the next failure counts from one). A security
administrator unlocks at once (``POST /api/v1/users/{id}/unlock``, audited ``auth.unlock``).

**Per source address** (Redis, shared by every API process): each failure counts in a window
of ``FLEET_AUTH__SOURCE_WINDOW_S`` (600 s); past ``FLEET_AUTH__SOURCE_FAILURES`` (20) the
address's logins are refused with 429 ``source_throttled`` until the window ends — one
address cannot walk through many usernames 4 at a time. When Redis is down this budget is
not enforced (logged); the per-username lock, in the database, still is.

The failure is committed before the 401 goes out: the request's own transaction would be
rolled back by the error.
"""

from __future__ import annotations

import hashlib
import math
from datetime import UTC, datetime, timedelta

from redis.exceptions import RedisError
from sqlalchemy import delete, select, text
from sqlalchemy.ext.asyncio import AsyncSession

from fleet import audit, pubsub
from fleet.config import AuthSettings
from fleet.errors import TooManyAttempts
from fleet.identity.models import LoginFailure
from fleet.logging import get_logger

log = get_logger("fleet.identity.lockout")
SYSTEM = audit.Actor("auth")


def _retry_after(until: datetime) -> int:
    return max(1, math.ceil((until - datetime.now(UTC)).total_seconds()))


def _source_key(source: str) -> str:
    return pubsub.name("login-src." + hashlib.sha256(source.encode()).hexdigest()[:32])


async def check_source(auth: AuthSettings, source: str | None) -> None:
    """429 ``source_throttled`` when this address has used up its failure budget."""
    if not source:
        return
    redis = pubsub.client()
    key = _source_key(source)
    try:
        failures = await redis.get(key)
        if failures is None or int(failures) < auth.source_failures:
            return
        ttl = await redis.ttl(key)
    except RedisError as exc:
        log.warning("login.source_check_unavailable", error=repr(exc)[:200])
        return
    raise TooManyAttempts(
        "too many failed logins from this address; try again later",
        code="source_throttled",
        retry_after_s=max(1, int(ttl)),
    )


async def count_source(auth: AuthSettings, source: str | None) -> None:
    if not source:
        return
    redis = pubsub.client()
    key = _source_key(source)
    try:
        n = await redis.incr(key)
        if n == 1:
            await redis.expire(key, auth.source_window_s)
    except RedisError as exc:
        log.warning("login.source_count_unavailable", error=repr(exc)[:200])


async def check_account(session: AsyncSession, username: str) -> None:
    """429 ``account_locked`` while the username is locked."""
    until = await session.scalar(
        select(LoginFailure.locked_until).where(LoginFailure.username == username)
    )
    if until is not None and until > datetime.now(UTC):
        raise TooManyAttempts(
            "this account is locked after repeated failed logins; try again later or ask a "
            "security administrator to unlock it",
            code="account_locked",
            field="username",
            retry_after_s=_retry_after(until),
        )


_FAIL = text(
    """
    INSERT INTO login_failures AS f (username, failures, last_failed_at)
    VALUES (:u, 1, now())
    ON CONFLICT (username) DO UPDATE SET
        failures = CASE WHEN f.locked_until IS NOT NULL AND f.locked_until <= now() THEN 1
                        ELSE f.failures + 1 END,
        locked_until = CASE WHEN f.locked_until IS NOT NULL AND f.locked_until <= now()
                            THEN NULL ELSE f.locked_until END,
        last_failed_at = now()
    RETURNING failures
    """
)


async def record_failure(
    session: AsyncSession, auth: AuthSettings, username: str, *, source: str | None
) -> None:
    """Count one failure of `username` (locking it at the threshold, audited); the caller
    commits."""
    failures = int((await session.execute(_FAIL, {"u": username})).scalar_one())
    if failures < auth.lockout_threshold:
        return
    until = datetime.now(UTC) + timedelta(seconds=auth.lockout_s)
    await session.execute(
        text("UPDATE login_failures SET locked_until = :t WHERE username = :u"),
        {"t": until, "u": username},
    )
    await audit.record(
        session, SYSTEM, "auth.locked", "user", username,
        data={"source": source, "failures": failures, "until": until.isoformat()},
    )  # fmt: skip
    log.warning("login.locked", username=username, source=source, failures=failures)


async def clear(session: AsyncSession, username: str) -> bool:
    """Forget the failures of `username` (a success, or an unlock); True if it was locked."""
    row = await session.execute(
        delete(LoginFailure)
        .where(LoginFailure.username == username)
        .returning(LoginFailure.locked_until)
    )
    until = row.scalar_one_or_none()
    return until is not None and until > datetime.now(UTC)


async def locked_until(session: AsyncSession, username: str) -> datetime | None:
    until = await session.scalar(
        select(LoginFailure.locked_until).where(LoginFailure.username == username)
    )
    return until if until is not None and until > datetime.now(UTC) else None
