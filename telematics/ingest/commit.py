"""What every ingest transport does with a batch once it is decoded, written once.

`fleet ingest` (MQTT) and `fleet jt808` (TCP) both: run the pipeline's checks over the batch
(retrying while the database is away: identifying needs it), store it in one transaction
(retrying transient errors; isolating a row the database refuses, which is then rejected
with a reason), then run the post-commit hooks (the live publish, alarm alerts). Between
store and hooks each acknowledges to its sender in its own way: PUBACKs, 0x8001 replies.
Nothing is acknowledged before the batch is committed, so a crash anywhere before makes the
sender deliver again, and idempotent storage absorbs the repeat.
"""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

import asyncpg

from fleet.config import Settings
from fleet.logging import get_logger
from telematics.ingest import store
from telematics.ingest.pipeline import Batch, Hooks, Item, position_message

log = get_logger("telematics.commit")


class Committer:
    """Retrying check and store, then post-commit hooks; logs under `<name>.*` events."""

    def __init__(
        self,
        pool: asyncpg.Pool,
        hooks: Hooks,
        backlog: store.BacklogPolicy,
        *,
        name: str,
    ) -> None:
        self.pool = pool
        self.hooks = hooks
        self.backlog = backlog
        self.name = name
        self.totals: Counter[str] = Counter()

    async def prepare(self, make: Callable[[], Awaitable[Batch]]) -> Batch:
        """`make()` runs the pre-commit stages; retried until it succeeds (nothing is
        acknowledged yet, so waiting is safe; crashing would only redeliver)."""
        delay = 0.2
        while True:
            try:
                return await make()
            except store.TRANSIENT_DB_ERRORS as exc:  # terminal lookups need the DB
                log.warning(
                    f"{self.name}.db_retry", stage="identify", error=repr(exc), retry_s=delay
                )
            except Exception as exc:  # nothing is acknowledged yet: retry, never crash
                log.error(f"{self.name}.unexpected_retry", stage="identify", error=repr(exc))
            await asyncio.sleep(delay)
            delay = min(delay * 2, 5.0)

    async def store(self, batch: Batch) -> None:
        """Store the batch in one transaction, retrying until it is committed."""
        delay = 0.2
        while True:
            try:
                await store.write_batch(self.pool, batch, self.hooks.in_transaction, self.backlog)
                return
            except store.TRANSIENT_DB_ERRORS as exc:
                log.warning(f"{self.name}.db_retry", stage="store", error=repr(exc), retry_s=delay)
                await asyncio.sleep(delay)
                delay = min(delay * 2, 5.0)
            except asyncpg.PostgresError as exc:
                log.error(f"{self.name}.batch_refused", error=repr(exc), pings=len(batch.items))
                try:
                    await store.write_items_one_by_one(self.pool, batch, self.backlog)
                    return
                except store.TRANSIENT_DB_ERRORS as exc2:
                    log.warning(f"{self.name}.db_retry", stage="isolate", error=repr(exc2))
                    await asyncio.sleep(delay)
            except Exception as exc:  # nothing is acknowledged yet: retry, never crash
                log.error(f"{self.name}.unexpected_retry", stage="store", error=repr(exc))
                await asyncio.sleep(delay)
                delay = min(delay * 2, 5.0)

    async def after(self, batch: Batch) -> None:
        """Post-commit hooks (a failing hook is logged, never stops the transport); totals."""
        for hook in self.hooks.post_commit:
            try:
                await hook(batch.items)
            except Exception as exc:
                log.error(f"{self.name}.hook_failed", hook=_name(hook), error=repr(exc))
        self.totals.update(batch.stats)
        self.totals["batches"] += 1
        if batch.rejected:
            log.info(
                f"{self.name}.rejected",
                **{k: v for k, v in batch.stats.items() if k.startswith("rejected.")},
            )


def _name(hook: Any) -> str:
    return getattr(hook, "__qualname__", repr(hook))


def redis_or_none(settings: Settings, name: str) -> Any:
    """The live bus client, or None (logged) when its URL is unusable."""
    from telematics.bus import redis_client

    try:
        return redis_client(settings.redis.url)
    except Exception as exc:  # bad URL: run without live publishing
        log.error(f"{name}.redis_unavailable", error=repr(exc))
        return None


def publisher(redis: Any) -> Callable[[Sequence[Item]], Awaitable[None]]:
    from telematics.bus import publish_positions

    async def publish(items: Sequence[Item]) -> None:
        """Post-commit: one `fleet.positions.v1` message per batch (new rows only)."""
        fresh = [position_message(i) for i in items if i.new]
        if fresh:
            await asyncio.wait_for(publish_positions(redis, fresh), 2.0)

    return publish


def transport_hooks(redis: Any, actor: str) -> Hooks:
    """The hooks every transport runs: live publish first, then terminal alarms -> alerts."""
    from telematics.ingest.alarms import AlarmAlerts

    alarms = AlarmAlerts(actor, redis)
    hooks = Hooks(in_transaction=[alarms.in_transaction], post_commit=[alarms.post_commit])
    if redis is not None:
        hooks.post_commit.insert(0, publisher(redis))
    return hooks
