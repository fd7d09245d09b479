"""Notifications and events after commit, published on the live bus.

:func:`queue` and :func:`flush_pending` are fleet.outbox's (one after-commit outbox for
every package): messages go out on ``fleet.events.v1`` only when the caller's transaction
commits, and a Redis failure is logged and never breaks the request. This module adds the
personal notifications (stored inbox + live push) and the role lookups dispatch needs.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy import cast, select
from sqlalchemy.ext.asyncio import AsyncSession

from fleet.identity.models import Org, RoleBinding
from fleet.outbox import flush_pending, queue
from fleet.types import Ltree

__all__ = ["flush_pending", "notify_users", "queue", "users_with_role_covering"]


def notify_users(
    session: AsyncSession, user_ids: Sequence[int], kind: str, message: str, **data: Any
) -> None:
    """A personal notification (type "notification") to the listed users.

    Stored in the caller's transaction (the inbox, for users who were offline) and pushed
    live after commit.
    """
    if user_ids:
        from dispatch.notifications.service import store

        store(session, user_ids, kind, message, data)
        queue(
            session,
            "notification",
            {"kind": kind, "message": message, **data},
            user_ids=list(user_ids),
        )


async def users_with_role_covering(session: AsyncSession, role: str, unit_path: str) -> list[int]:
    """Users holding `role` on the unit or any of its ancestors (e.g. the county platform)."""
    rows = await session.execute(
        select(RoleBinding.user_id)
        .join(Org, Org.id == RoleBinding.org_id)
        .where(RoleBinding.role == role, Org.path.op("@>")(cast(unit_path, Ltree())))
        .distinct()
    )
    return [int(r) for r in rows.scalars()]
