"""Password policy: strength, history, expiry, and who must change their password.

A new password has at least 12 characters, or at least 8 with three of the four classes
(lower case, upper case, digit, other); does not contain the username (case-insensitively);
is not in the 30,000 most common passwords that the ``zxcvbn`` package ships (its
``passwords`` frequency list, matched case-insensitively: ``Password`` is as common as
``password``); and is not one of the user's last ``FLEET_AUTH__PASSWORD_HISTORY`` (5).
Hashing stays argon2id (fleet/identity/hashing.py).

A password set by someone else — an administrator creating a user or resetting one, the demo
seed — must be changed at the user's first login (``must_change_password``); so must one
older than ``FLEET_AUTH__ADMIN_PASSWORD_MAX_AGE_DAYS`` (90) for a user holding an
administrator role, ``FLEET_AUTH__PASSWORD_MAX_AGE_DAYS`` (0: never) for anyone else. Until
then the API admits only ``/auth/me``, ``/auth/password`` and ``/auth/logout`` (403
``password_change_required`` elsewhere; fleet/deps.py).
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from functools import lru_cache
from typing import Literal

from sqlalchemy import delete, select
from sqlalchemy.ext.asyncio import AsyncSession
from zxcvbn.frequency_lists import FREQUENCY_LISTS

from fleet.config import AuthSettings
from fleet.errors import Invalid
from fleet.identity import hashing
from fleet.identity.models import PasswordHistory, User

ADMIN_ROLES = frozenset({"admin"})  # roles whose passwords expire sooner (issue 11 item 4: three)
PasswordChange = Literal["initial", "expired"]


@lru_cache(maxsize=1)
def _common() -> frozenset[str]:
    return frozenset(p.lower() for p in FREQUENCY_LISTS["passwords"])


def _classes(password: str) -> int:
    return sum(
        (
            any(c.islower() for c in password),
            any(c.isupper() for c in password),
            any(c.isdigit() for c in password),
            any(not c.isalnum() for c in password),
        )
    )


def check_strength(password: str, username: str, *, field: str = "password") -> None:
    """422 on `field` with the first rule the password breaks."""
    if len(password) < 8 or (len(password) < 12 and _classes(password) < 3):
        raise Invalid(
            "a password needs at least 12 characters, or at least 8 with three of: lower "
            "case, upper case, digits, other characters",
            code="password_too_weak",
            field=field,
        )
    if username and username.lower() in password.lower():
        raise Invalid(
            "a password must not contain the username", code="password_has_username", field=field
        )
    if password.lower() in _common():
        raise Invalid(
            "this password is among the most common ones; choose another",
            code="password_common",
            field=field,
        )


async def check_history(
    session: AsyncSession, auth: AuthSettings, user: User, password: str, *, field: str
) -> None:
    """422 `password_reused` when `password` is the current one or among the last ones."""
    hashes = [user.password_hash]
    if auth.password_history > 1:
        hashes += list(
            await session.scalars(
                select(PasswordHistory.password_hash)
                .where(PasswordHistory.user_id == user.id)
                .order_by(PasswordHistory.set_at.desc(), PasswordHistory.id.desc())
                .limit(auth.password_history - 1)
            )
        )
    for h in hashes[: max(1, auth.password_history)]:
        if await hashing.verify_password(h, password):
            raise Invalid(
                f"this password was used recently; choose one not among your last "
                f"{max(1, auth.password_history)}",
                code="password_reused",
                field=field,
            )


async def set_password(
    session: AsyncSession, auth: AuthSettings, user: User, password: str, *, by_owner: bool
) -> None:
    """Hash and store `password` (checked already), keeping the old hash in the history.
    Set by anyone but its owner, it must be changed at the next login."""
    if user.id is not None and user.password_hash:
        session.add(PasswordHistory(user_id=user.id, password_hash=user.password_hash))
        await session.flush()
        keep = select(PasswordHistory.id).where(PasswordHistory.user_id == user.id)
        keep = keep.order_by(PasswordHistory.set_at.desc(), PasswordHistory.id.desc())
        keep = keep.limit(max(0, auth.password_history - 1))
        await session.execute(
            delete(PasswordHistory).where(
                PasswordHistory.user_id == user.id, PasswordHistory.id.not_in(keep)
            )
        )
    user.password_hash = await hashing.hash_password(password)
    user.password_changed_at = datetime.now(UTC)
    user.must_change_password = not by_owner


def change_required(
    auth: AuthSettings, user: User, roles: frozenset[str] | set[str]
) -> PasswordChange | None:
    """Why the user must change their password before anything else, if they must."""
    if user.must_change_password:
        return "initial"
    days = auth.admin_password_max_age_days if roles & ADMIN_ROLES else auth.password_max_age_days
    changed = user.password_changed_at
    if days and changed is not None and changed + timedelta(days=days) <= datetime.now(UTC):
        return "expired"
    return None
