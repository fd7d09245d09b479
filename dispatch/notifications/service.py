"""Store notifications with the work that caused them; list and mark them read."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import orjson
from sqlalchemy import func, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from dispatch.notifications.models import Notification
from fleet import audit
from fleet.identity.principal import Principal
from fleet.paging import fetch_page


def store(
    session: AsyncSession, user_ids: Sequence[int], kind: str, message: str, data: dict[str, Any]
) -> None:
    """Add one row per user to the caller's transaction (rolled back with it)."""
    payload = orjson.loads(orjson.dumps(data, default=str))
    session.add_all(
        Notification(user_id=u, kind=kind, message=message, data=payload)
        for u in sorted(set(user_ids))
    )


async def unread_count(session: AsyncSession, user_id: int) -> int:
    n = await session.scalar(
        select(func.count())
        .select_from(Notification)
        .where(Notification.user_id == user_id, Notification.read_at.is_(None))
    )
    return int(n or 0)


async def list_mine(
    session: AsyncSession,
    principal: Principal,
    *,
    unread_only: bool,
    kind: str | None,
    limit: int,
    offset: int,
) -> tuple[list[Notification], int, int]:
    """The caller's own notifications, newest first; plus their unread count."""
    stmt = select(Notification).where(Notification.user_id == principal.user_id)
    if unread_only:
        stmt = stmt.where(Notification.read_at.is_(None))
    if kind:
        stmt = stmt.where(Notification.kind == kind)
    rows, total = await fetch_page(
        session, stmt, Notification.id.desc(), limit=limit, offset=offset
    )
    return rows, total, await unread_count(session, principal.user_id)


async def mark_read(
    session: AsyncSession, principal: Principal, ids: Sequence[int], *, everything: bool
) -> tuple[int, int]:
    """Mark the caller's own notifications read (others' ids are ignored); audited."""
    stmt = (
        update(Notification)
        .where(Notification.user_id == principal.user_id, Notification.read_at.is_(None))
        .values(read_at=func.now())
        .returning(Notification.id)
    )
    if not everything:
        stmt = stmt.where(Notification.id.in_(list(ids)))
    marked = list((await session.execute(stmt)).scalars())
    if marked:
        await audit.record(
            session,
            principal.actor,
            "notification.read",
            "user",
            principal.user_id,
            data={"notifications": len(marked), "ids": marked[:50]},
        )
    return len(marked), await unread_count(session, principal.user_id)
