"""The kernel's access to Redis: namespaced names, one client per event loop, and publication
after commit.

Every process of one deployment shares one Redis. Channel and key names start with
``FLEET_REDIS__CHANNEL_PREFIX`` (pub/sub ignores database numbers), so a test run or a bench
beside a demo has a namespace of its own. The live bus (telematics/bus.py), the websocket
tickets and the account-change events (fleet/identity/sessions.py) all use this module.

:func:`publish_after_commit` queues a message on the boundary's session; it goes out only
when that transaction commits (nothing is announced for work that was rolled back). The bus
is best effort: a Redis failure is logged and never breaks the request.
"""

from __future__ import annotations

import asyncio
from typing import Any

import orjson
from redis.asyncio import Redis
from sqlalchemy import event
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import Session as SyncSession

from fleet.config import get_settings
from fleet.logging import get_logger

log = get_logger("fleet.pubsub")

_OUTBOX = "fleet.pubsub.outbox"
# One client per event loop (a client's connections belong to the loop that opened them).
# Tests swap a client for an unreachable one here to prove the bus is best effort.
_clients: dict[int, Redis] = {}
_pending: set[asyncio.Task[None]] = set()


def name(suffix: str) -> str:
    """A channel or key name in this deployment's namespace: ``<prefix>.<suffix>``."""
    return f"{get_settings().redis.channel_prefix}.{suffix}"


def connect(url: str) -> Redis:
    """A new client of its own (a subscriber needs one; everything else uses :func:`client`)."""
    return Redis.from_url(url)


def client() -> Redis:
    """The running loop's shared client, created on first use."""
    loop = asyncio.get_running_loop()
    redis = _clients.get(id(loop))
    if redis is None:
        redis = connect(get_settings().redis.url)
        _clients[id(loop)] = redis
    return redis


async def _publish(messages: list[tuple[str, dict[str, Any]]]) -> None:
    try:
        redis = client()
        for channel, body in messages:
            await redis.publish(channel, orjson.dumps(body, default=str))
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


def publish_after_commit(session: AsyncSession, channel: str, body: dict[str, Any]) -> None:
    """Publish `body` (JSON) on `channel` once the session's transaction commits."""
    sync = session.sync_session
    if not event.contains(sync, "after_commit", _after_commit):
        event.listen(sync, "after_commit", _after_commit)
        event.listen(sync, "after_soft_rollback", _after_rollback)
    sync.info.setdefault(_OUTBOX, []).append((channel, body))


async def flush_pending(timeout_s: float = 5.0) -> None:
    """Wait for publications in flight (workers and tests call this before exiting)."""
    if _pending:
        await asyncio.wait(list(_pending), timeout=timeout_s)
