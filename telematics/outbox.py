"""Events after commit: queued on the session, published on the live bus once it commits.

Services call :func:`queue` inside the boundary's transaction (an HTTP request, a worker
round); the messages go out on ``fleet.events.v1`` only when that transaction commits —
nothing is announced for work that was rolled back. The bus is best effort: a Redis failure
is logged and never breaks the request. Used by telematics (alert acknowledgements) and
dispatch (trips, approvals, notifications, trip-aware alerts) alike.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import Any

from redis.asyncio import Redis
from sqlalchemy import event
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import Session as SyncSession

from fleet.config import get_settings
from fleet.logging import get_logger
from telematics import bus

log = get_logger("telematics.outbox")

_OUTBOX = "fleet.live.outbox"
_clients: dict[int, Redis] = {}  # one client per event loop (tests run several loops)
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
    except Exception as exc:  # the bus is best effort: a lost event never fails work
        log.warning("outbox.publish_failed", error=repr(exc), messages=len(messages))


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


async def flush_pending(timeout_s: float = 5.0) -> None:
    """Wait for publications in flight (workers and tests call this before exiting)."""
    if _pending:
        await asyncio.wait(list(_pending), timeout=timeout_s)
