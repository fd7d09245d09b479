"""`fleet ingest`: MQTT -> pipeline -> PostGIS, at least once, acknowledged after commit.

The MQTT side is paho-mqtt 2.x with `manual_ack=True` (aiomqtt does not expose manual
acknowledgements): paho's network loop runs in its own thread and appends deliveries to a
deque; the asyncio side takes batches (size or time), runs the pipeline, commits, then
sends the PUBACKs. A delivery is never acknowledged before its batch is committed, so a
crash at any point makes the broker redeliver, and idempotent storage absorbs the repeats.

The session is persistent (MQTT v5 clean_start=False with a session expiry and a stable
client id per instance) and the subscription shared (`$share/<group>/...`), so several
ingest processes split the load, and pings published while an instance is away are queued
for it by the broker. Acks are tagged with the connection generation: after a reconnect the
broker resends every unacknowledged message, so acks from an older connection are dropped
rather than risk acknowledging a different message that reused the packet id.
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
import threading
import time
from collections import Counter, deque
from dataclasses import dataclass, field
from typing import Any

import asyncpg
import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties
from paho.mqtt.reasoncodes import ReasonCode

from fleet.config import Settings
from fleet.logging import get_logger
from telematics import store
from telematics.pipeline import Batch, Context, Delivery, Hooks, Item, position_message, prepare
from telematics.schemas import IngestSettings

log = get_logger("telematics.ingest")


def subscriptions(topic_prefix: str, group: str) -> list[str]:
    base = topic_prefix.rstrip("/")
    return [f"$share/{group}/{base}/+/position", f"$share/{group}/{base}/+/positions"]


class MqttSource:
    """paho client in its own thread; deliveries bridged into asyncio in batches."""

    def __init__(
        self,
        settings: Settings,
        ingest: IngestSettings,
        loop: asyncio.AbstractEventLoop,
        *,
        client_id: str | None = None,
    ) -> None:
        self._settings = settings
        self._ingest = ingest
        self._loop = loop
        self._buf: deque[Delivery] = deque()
        self._wake = asyncio.Event()
        self._want = 1
        self._signalled = False
        self._gen = 0
        self._lock = threading.Lock()
        self.subscribed = asyncio.Event()
        self.connected = False
        self.client = mqtt.Client(
            CallbackAPIVersion.VERSION2,
            client_id=client_id or ingest.client_id,
            protocol=mqtt.MQTTv5,
            manual_ack=True,
        )
        m = settings.mqtt
        self.client.username_pw_set(m.service_user, m.service_password.get_secret_value())
        self.client.reconnect_delay_set(min_delay=1, max_delay=2)
        self.client.on_connect = self._on_connect
        self.client.on_disconnect = self._on_disconnect
        self.client.on_subscribe = self._on_subscribe
        self.client.on_message = self._on_message

    # paho thread ---------------------------------------------------------------------------

    def _on_connect(
        self, client: mqtt.Client, _u: Any, flags: Any, rc: ReasonCode, _p: Any
    ) -> None:
        if rc.is_failure:
            log.error("ingest.mqtt_refused", reason=str(rc))
            return
        with self._lock:
            self._gen += 1
            gen = self._gen
        self.connected = True
        log.info("ingest.mqtt_connected", session_present=flags.session_present, generation=gen)
        subs = subscriptions(self._settings.mqtt.topic_prefix, self._ingest.share_group)
        client.subscribe([(t, 1) for t in subs])

    def _on_disconnect(self, _c: mqtt.Client, _u: Any, _f: Any, rc: ReasonCode, _p: Any) -> None:
        self.connected = False
        log.warning("ingest.mqtt_disconnected", reason=str(rc))

    def _on_subscribe(self, _c: mqtt.Client, _u: Any, _mid: int, rcs: Any, _p: Any) -> None:
        if any(r.is_failure for r in rcs):
            log.error("ingest.subscribe_refused", reasons=[str(r) for r in rcs])
            return
        self._loop.call_soon_threadsafe(self.subscribed.set)

    def _on_message(self, _c: mqtt.Client, _u: Any, msg: mqtt.MQTTMessage) -> None:
        buf = self._buf
        buf.append(Delivery(msg.topic, msg.payload, time.time(), msg.mid, self._gen))
        if len(buf) >= self._want and not self._signalled:
            self._signalled = True
            self._loop.call_soon_threadsafe(self._wake.set)

    # asyncio side ---------------------------------------------------------------------------

    def start(self) -> None:
        props = Properties(PacketTypes.CONNECT)  # type: ignore[no-untyped-call]
        props.SessionExpiryInterval = self._ingest.session_expiry_s
        m = self._settings.mqtt
        self.client.connect_async(m.host, m.port, keepalive=30, clean_start=False, properties=props)
        self.client.loop_start()

    def stop(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()

    async def _wait_for(self, n: int, wait_s: float | None) -> bool:
        self._want = n
        self._signalled = False
        self._wake.clear()
        if len(self._buf) >= n:
            return True
        try:
            await asyncio.wait_for(self._wake.wait(), wait_s)
        except TimeoutError:
            return False
        return True

    async def take(self, max_n: int, wait_s: float, idle_s: float = 1.0) -> list[Delivery]:
        """Up to max_n deliveries, waiting at most wait_s after the first one arrived."""
        if not self._buf and not await self._wait_for(1, idle_s):
            return []
        deadline = time.monotonic() + max(0.0, wait_s - (time.time() - self._buf[0].received_at))
        while len(self._buf) < max_n:
            remaining = deadline - time.monotonic()
            if remaining <= 0 or not await self._wait_for(max_n, remaining):
                break
        n = min(max_n, len(self._buf))
        return [self._buf.popleft() for _ in range(n)]

    def ack(self, deliveries: list[Delivery]) -> int:
        """PUBACK the deliveries of the current connection; returns how many were sent."""
        gen = self._gen
        sent = 0
        for d in deliveries:
            if d.gen == gen:
                self.client.ack(d.mid, 1)
                sent += 1
        return sent


@dataclass
class Stats:
    totals: Counter[str] = field(default_factory=Counter)
    last_log: float = field(default_factory=time.monotonic)


class Ingest:
    """One ingest worker: pool, terminal directory, MQTT source, the batch loop."""

    def __init__(
        self,
        settings: Settings,
        ingest: IngestSettings | None = None,
        *,
        hooks: Hooks | None = None,
        client_id: str | None = None,
    ) -> None:
        self.settings = settings
        self.ingest = ingest or IngestSettings()
        self.hooks = hooks or Hooks()
        self.client_id = client_id or self.ingest.client_id
        self.stats = Stats()
        self._stopping = asyncio.Event()

    def request_stop(self) -> None:
        self._stopping.set()

    async def _connect_pool(self) -> asyncpg.Pool:
        delay = 0.5
        while True:
            try:
                return await store.create_pool(self.settings.db.dsn())
            except store.TRANSIENT_DB_ERRORS as exc:
                log.warning("ingest.db_unavailable", error=str(exc), retry_s=delay)
                await asyncio.sleep(delay)
                delay = min(delay * 2, 5.0)

    async def run(self) -> None:
        loop = asyncio.get_running_loop()
        pool = await self._connect_pool()
        partitions = asyncio.create_task(self._partitions_daily(pool))
        directory = store.TerminalDirectory(pool, ttl_s=self.ingest.terminal_cache_s)
        n = await directory.load_all()
        ctx = Context(
            self.ingest,
            directory,
            topic_prefix=self.settings.mqtt.topic_prefix,
            probe_id=self.settings.mqtt.service_user,
        )
        redis = _redis(self.settings)
        if redis is not None:
            self.hooks.post_commit.insert(0, _publisher(redis))
        source = MqttSource(self.settings, self.ingest, loop, client_id=self.client_id)
        source.start()
        while not source.subscribed.is_set():
            try:
                await asyncio.wait_for(source.subscribed.wait(), 30)
            except TimeoutError:
                m = self.settings.mqtt
                log.warning("ingest.waiting_for_broker", host=m.host, port=m.port)
        log.info(
            "ingest.ready",
            client_id=self.client_id,
            terminals=n,
            batch_max=self.ingest.batch_max,
            batch_wait_ms=self.ingest.batch_wait_ms,
        )
        wait_s = self.ingest.batch_wait_ms / 1000
        # Two-stage pipeline: batch N+1 is taken and validated while batch N commits. At
        # most one commit is in flight, so batches commit (and are acknowledged) in order.
        committing: asyncio.Task[None] | None = None
        try:
            while not self._stopping.is_set():
                deliveries = await source.take(self.ingest.batch_max, wait_s, idle_s=0.5)
                if deliveries:
                    t0 = time.monotonic()
                    batch = await self._prepare_retrying(deliveries, ctx)
                    if committing is not None:
                        await committing
                    committing = asyncio.create_task(self._commit(pool, source, batch, t0))
                elif committing is not None and committing.done():
                    await committing
                    committing = None
                self._maybe_log()
            if committing is not None:
                await committing
        finally:
            if committing is not None and not committing.done():
                committing.cancel()
            partitions.cancel()
            source.stop()
            await pool.close()
            if redis is not None:
                await redis.aclose()
            self._maybe_log(force=True)
            log.info("ingest.stopped", **dict(self.stats.totals))

    async def _commit(
        self, pool: asyncpg.Pool, source: MqttSource, batch: Batch, t0: float
    ) -> None:
        """Store the batch (retrying), then acknowledge it, then run post-commit hooks."""
        await self._store_retrying(pool, batch)
        t_commit = time.monotonic()
        acked = source.ack(batch.deliveries)
        batch.stats["acked"] += acked
        for hook in self.hooks.post_commit:
            try:
                await hook(batch.items)
            except Exception as exc:  # a hook never stops the ingest
                log.error("ingest.hook_failed", hook=_name(hook), error=repr(exc))
        self.stats.totals.update(batch.stats)
        self.stats.totals["batches"] += 1
        log.debug(
            "ingest.batch",
            commit_ms=round((t_commit - t0) * 1000, 1),
            **dict(batch.stats),
        )
        if batch.rejected:
            log.info(
                "ingest.rejected",
                **{k: v for k, v in batch.stats.items() if k.startswith("rejected.")},
            )

    async def _prepare_retrying(self, deliveries: list[Delivery], ctx: Context) -> Batch:
        delay = 0.2
        while True:
            try:
                return await prepare(deliveries, ctx)
            except store.TRANSIENT_DB_ERRORS as exc:  # terminal lookups need the DB
                log.warning("ingest.db_retry", stage="identify", error=repr(exc), retry_s=delay)
                await asyncio.sleep(delay)
                delay = min(delay * 2, 5.0)
            except Exception as exc:  # nothing is acknowledged yet: retry, never crash
                log.error("ingest.unexpected_retry", stage="identify", error=repr(exc))
                await asyncio.sleep(delay)
                delay = min(delay * 2, 5.0)

    async def _store_retrying(self, pool: asyncpg.Pool, batch: Batch) -> None:
        delay = 0.2
        while True:
            try:
                await store.write_batch(pool, batch, self.hooks.in_transaction)
                return
            except store.TRANSIENT_DB_ERRORS as exc:
                log.warning("ingest.db_retry", stage="store", error=repr(exc), retry_s=delay)
                await asyncio.sleep(delay)
                delay = min(delay * 2, 5.0)
            except asyncpg.PostgresError as exc:
                log.error("ingest.batch_refused", error=repr(exc), pings=len(batch.items))
                try:
                    await store.write_items_one_by_one(pool, batch)
                    return
                except store.TRANSIENT_DB_ERRORS as exc2:
                    log.warning("ingest.db_retry", stage="isolate", error=repr(exc2))
                    await asyncio.sleep(delay)
            except Exception as exc:  # nothing is acknowledged yet: retry, never crash
                log.error("ingest.unexpected_retry", stage="store", error=repr(exc))
                await asyncio.sleep(delay)
                delay = min(delay * 2, 5.0)

    async def _partitions_daily(self, pool: asyncpg.Pool) -> None:
        while True:
            try:
                made = await store.ensure_partitions(pool)
                log.info("ingest.partitions", created=made)
                await asyncio.sleep(24 * 3600)
            except store.TRANSIENT_DB_ERRORS as exc:
                log.warning("ingest.partitions_retry", error=repr(exc))
                await asyncio.sleep(30)

    def _maybe_log(self, *, force: bool = False) -> None:
        now = time.monotonic()
        if force or now - self.stats.last_log >= 10:
            self.stats.last_log = now
            if self.stats.totals:
                log.info("ingest.totals", **dict(self.stats.totals))


def _name(hook: Any) -> str:
    return getattr(hook, "__qualname__", repr(hook))


def _redis(settings: Settings) -> Any:
    from telematics.bus import redis_client

    try:
        return redis_client(settings.redis.url)
    except Exception as exc:  # bad URL: run without live publishing
        log.error("ingest.redis_unavailable", error=repr(exc))
        return None


def _publisher(redis: Any) -> Any:
    from telematics.bus import publish_positions

    async def publish(items: list[Item]) -> None:
        """Post-commit: one `fleet.positions.v1` message per batch (new rows only)."""
        fresh = [position_message(i) for i in items if i.new]
        if fresh:
            await asyncio.wait_for(publish_positions(redis, fresh), 2.0)

    return publish


def load_hooks(settings: Settings) -> Hooks:
    """Derived-state hooks: `telematics.derive.ingest_hooks(settings) -> Hooks` if present."""
    import importlib
    import importlib.util

    hooks = Hooks()
    if importlib.util.find_spec("telematics.derive") is not None:
        mod = importlib.import_module("telematics.derive")
        factory = getattr(mod, "ingest_hooks", None)
        if factory is not None:
            extra: Hooks = factory(settings)
            hooks.in_transaction.extend(extra.in_transaction)
            hooks.post_commit.extend(extra.post_commit)
    return hooks


def run(settings: Settings, ingest: IngestSettings, *, client_id: str | None = None) -> None:
    """Run one ingest worker until SIGTERM/SIGINT (the current batch is finished first)."""

    async def main() -> None:
        worker = Ingest(settings, ingest, hooks=load_hooks(settings), client_id=client_id)
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, worker.request_stop)
        await worker.run()

    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(main())
