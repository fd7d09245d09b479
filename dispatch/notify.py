"""Notifications and events after commit: queued on the session, published on the live bus.

Services call :func:`queue` inside the request's transaction; the messages go out on
``fleet.events.v1`` only when that transaction commits (nothing is announced for work that
was rolled back). A Redis failure is logged and never breaks the request.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import Any

from redis.asyncio import Redis
from sqlalchemy import cast, event, select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import Session as SyncSession

from fleet.config import get_settings
from fleet.identity.models import Org, RoleBinding
from fleet.logging import get_logger
from fleet.types import Ltree
from telematics import bus

log = get_logger("dispatch.notify")

_OUTBOX = "fleet.dispatch.outbox"
_clients: dict[int, Redis] = {}
_pending: set[asyncio.Task[None]] = set()


def _client() -> Redis:
    loop = asyncio.get_running_loop()
    client = _clients.get(id(loop))
    if client is None:
        client = bus.redis_client(get_settings().redis.url)
        _clients[id(loop)] = client
    return client


async def _publish(messages: list[dict[str, Any]]) -> None:
    try:
        redis = _client()
        for m in messages:
            await bus.publish_event(
                redis, m["type"], m["data"], org_path=m["org_path"], user_ids=m["user_ids"]
            )
    except Exception as exc:  # the bus is best effort: a lost notification never fails work
        log.warning("notify.publish_failed", error=repr(exc), messages=len(messages))


def _after_commit(sync_session: SyncSession) -> None:
    messages = sync_session.info.pop(_OUTBOX, None)
    if not messages:
        return
    try:
        loop = asyncio.get_running_loop()
    except RuntimeError:
        return
    task = loop.create_task(_publish(messages))
    _pending.add(task)
    task.add_done_callback(_pending.discard)


def _after_rollback(sync_session: SyncSession, previous_transaction: object) -> None:
    # Only a rollback of the whole session transaction discards the queue.
    if not sync_session.in_transaction():
        sync_session.info.pop(_OUTBOX, None)


def queue(
    session: AsyncSession,
    type_: str,
    data: dict[str, Any],
    *,
    org_path: str | None = None,
    user_ids: Sequence[int] | None = None,
) -> None:
    """Publish an event on the bus once the session's transaction commits."""
    sync = session.sync_session
    if not event.contains(sync, "after_commit", _after_commit):
        event.listen(sync, "after_commit", _after_commit)
        event.listen(sync, "after_soft_rollback", _after_rollback)
    sync.info.setdefault(_OUTBOX, []).append(
        {
            "type": type_,
            "data": data,
            "org_path": org_path,
            "user_ids": sorted(set(user_ids)) if user_ids else None,
        }
    )


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


async def flush_pending(timeout_s: float = 5.0) -> None:
    """Wait for publications in flight (workers and tests call this before exiting)."""
    if _pending:
        await asyncio.wait(list(_pending), timeout=timeout_s)


async def users_with_role_covering(session: AsyncSession, role: str, unit_path: str) -> list[int]:
    """Users holding `role` on the unit or any of its ancestors (e.g. the county platform)."""
    rows = await session.execute(
        select(RoleBinding.user_id)
        .join(Org, Org.id == RoleBinding.org_id)
        .where(RoleBinding.role == role, Org.path.op("@>")(cast(unit_path, Ltree())))
        .distinct()
    )
    return [int(r) for r in rows.scalars()]
