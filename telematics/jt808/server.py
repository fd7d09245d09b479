"""`fleet jt808`: the gateway process — TCP server, terminal directory, and its workers.

It holds every JT/T 808 connection of its terminals and feeds their points into the shared
pipeline (telematics/jt808/batcher.py -> pipeline checks -> store -> hooks: live publish,
alarm alerts), like the MQTT ingest does after decoding. Besides serving connections it:

- keeps the active JT/T 808 terminals in memory (SIM number -> terminal), loaded at start,
  refreshed one by one on the registry's PostgreSQL notification (`fleet_terminal_changed`,
  sent when a terminal is created, changed or deactivated — a deactivated terminal's
  connection is closed at once) and re-read in full every `recheck_s`, which also closes
  any connection whose terminal is no longer active (a missed notification);
- closes connections silent for `heartbeat_timeout_s` and marks the terminal offline
  (`terminal_links`, and its vehicle's live status, pushed to the consoles);
- records each terminal's link (online, last seen, why it went away) in bulk
  (telematics/jt808/links.py);
- relays console commands (telematics/jt808/commands.py).
"""

from __future__ import annotations

import asyncio
import contextlib
import resource
import signal
import time
from collections import Counter
from collections.abc import Awaitable, Callable, Coroutine
from datetime import UTC, datetime
from typing import Any

import asyncpg

from fleet.audit import Actor
from fleet.config import Settings
from fleet.logging import get_logger
from telematics.broker.credentials import hash_code, new_code, verify_code, verify_secret
from telematics.ingest import store
from telematics.ingest.commit import Committer, redis_or_none, transport_hooks
from telematics.ingest.pipeline import Context
from telematics.ingest.schemas import IngestSettings
from telematics.jt808 import messages as M
from telematics.jt808 import repository as repo
from telematics.jt808.batcher import Batcher
from telematics.jt808.codec import Header
from telematics.jt808.commands import CommandRelay
from telematics.jt808.config import Jt808Settings
from telematics.jt808.links import LinkBook
from telematics.jt808.session import Connection

log = get_logger("jt808")


def raise_fd_limit() -> int:
    """Soft limit of open files up to the hard limit (10,000 terminals = 10,000 sockets)."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    return hard


class Gateway:
    def __init__(self, settings: Settings, cfg: Jt808Settings, ingest: IngestSettings) -> None:
        self.settings = settings
        self.cfg = cfg
        self.ingest = ingest
        self.actor = Actor(cfg.name)
        self.stats: Counter[str] = Counter()
        self.connections: set[Connection] = set()
        self.sessions: dict[str, Connection] = {}
        self.by_key: dict[str, repo.TerminalRecord] = {}  # SIM number without leading zeros
        self.by_id: dict[str, repo.TerminalRecord] = {}
        self.commands = CommandRelay(self)
        self.stopping = asyncio.Event()
        self.ready = asyncio.Event()
        self.port = cfg.port
        self._tasks: set[asyncio.Task[Any]] = set()
        self.links = LinkBook(cfg.name)
        self.redis: Any = None

    # ---- helpers used by sessions ------------------------------------------------------------

    def spawn(self, coro: Coroutine[Any, Any, Any]) -> None:
        task = asyncio.get_running_loop().create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def publish(self, type_: str, org_path: str | None, data: dict[str, Any]) -> None:
        if self.redis is None:
            return
        from telematics.bus import publish_event

        try:
            await publish_event(self.redis, type_, data, org_path=org_path)
        except Exception as exc:  # the bus is best effort
            log.warning("jt808.publish_failed", type=type_, error=repr(exc))

    def _remember(self, rec: repo.TerminalRecord | None, terminal_id: str) -> None:
        old = self.by_id.pop(terminal_id, None)
        if old is not None and self.by_key.get(old.key) is old:
            del self.by_key[old.key]
        if rec is not None and rec.active:
            self.by_id[rec.id] = rec
            self.by_key[rec.key] = rec

    def attach(self, c: Connection) -> None:
        tid = c.terminal_id
        assert tid is not None
        old = self.sessions.get(tid)
        if old is not None and old is not c:
            old.close("replaced")
            self.links.down(old)
        self.sessions[tid] = c
        self.links.up(c)
        self.commands.wanted(tid)

    def detach(self, c: Connection) -> None:
        tid = c.terminal_id
        if tid is not None and self.sessions.get(tid) is c:
            del self.sessions[tid]
            self.links.down(c)

    # ---- registration and authentication ------------------------------------------------------

    async def register(self, c: Connection, h: Header, reg: M.Registration) -> None:
        code = new_code()
        key = h.phone.lstrip("0")
        result, tid = await repo.register(self.ctl, key, reg, hash_code(code), self.actor)
        c.send(M.REGISTER_REPLY, M.register_reply(h.serial, result, code), h.phone_raw, h.version)
        self.stats[f"register.{result}"] += 1
        log.info("jt808.register", phone=h.phone, terminal=tid, result=result, plate=reg.plate)
        if tid is not None:
            self._remember(await repo.terminal_by_id(self.ctl, tid), tid)

    def authenticate(self, c: Connection, h: Header, code: str) -> None:
        rec = self.by_key.get(h.phone.lstrip("0"))
        if rec is not None and rec.active and verify_code(rec.auth_code_hash, code):
            self._auth_ok(c, h, rec)
        else:  # memory cannot decide: a new terminal, a newer code, or the pre-shared secret
            c.run_task(lambda: self._authenticate_slow(c, h, code))

    async def _authenticate_slow(self, c: Connection, h: Header, code: str) -> None:
        rec = await repo.terminal_by_phone(self.ctl, h.phone.lstrip("0"))
        if rec is not None:
            self._remember(rec, rec.id)
        ok = rec is not None and (
            verify_code(rec.auth_code_hash, code)
            or await asyncio.to_thread(verify_secret, rec.secret_hash, code)
        )
        if rec is not None and ok:
            self._auth_ok(c, h, rec)
            return
        c.auth_failures += 1
        self.stats["auth_failed"] += 1
        log.info("jt808.auth_failed", phone=h.phone, known=rec is not None, peer=c.peer)
        c.reply(h, M.FAILURE)
        if c.auth_failures >= self.cfg.auth_failures_max:
            c.close("auth_failed")

    def _auth_ok(self, c: Connection, h: Header, rec: repo.TerminalRecord) -> None:
        c.reply(h, M.OK)
        c.authenticated(rec, h)
        self.stats["authenticated"] += 1

    async def unregister(self, c: Connection, h: Header) -> None:
        tid = c.terminal_id
        assert tid is not None
        if self.sessions.get(tid) is c:  # no longer the terminal's link: the change
            del self.sessions[tid]  # notification that follows leaves it alone
        c.reason = "unregistered"
        self.links.down(c)
        await repo.unregister(self.ctl, tid, self.actor)
        c.reply(h, M.OK)
        c.close("unregistered")
        self._remember(await repo.terminal_by_id(self.ctl, tid), tid)

    # ---- terminal changes -----------------------------------------------------------------

    def _notified(self, _conn: Any, _pid: int, channel: str, payload: object) -> None:
        if channel == repo.COMMAND_QUEUED:
            self.commands.wanted(str(payload))
        else:
            self.spawn(self.refresh(str(payload)))

    async def refresh(self, terminal_id: str) -> None:
        """Re-read one terminal; cut its connection if it may no longer be connected."""
        rec = await repo.terminal_by_id(self.ctl, terminal_id)
        old = self.by_id.get(terminal_id)
        self._remember(rec, terminal_id)
        self.directory.forget(terminal_id)
        c = self.sessions.get(terminal_id)
        if c is None:
            return
        if rec is None or not rec.active:
            c.close("deactivated")
        elif rec.key != c.phone_key:
            c.close("phone_changed")
        elif old is not None and (
            rec.secret_hash != old.secret_hash
            or (old.auth_code_hash is not None and rec.auth_code_hash != old.auth_code_hash)
        ):
            c.close("revoked")
        else:
            return
        log.info("jt808.cut", terminal=terminal_id, reason=c.reason)

    async def _recheck(self) -> None:
        """Full reload of the directory; closes connections of terminals no longer active."""
        records = await repo.active_terminals(self.ctl)
        self.by_id = {r.id: r for r in records}
        self.by_key = {r.key: r for r in records}
        for tid in await repo.inactive_among(self.ctl, list(self.sessions)):
            c = self.sessions.get(tid)
            if c is not None:
                c.close("deactivated")
                self.directory.forget(tid)
                log.info("jt808.cut", terminal=tid, reason="deactivated", by="recheck")

    # ---- workers --------------------------------------------------------------------------

    async def _listen(self) -> None:
        """LISTEN for terminal changes and queued commands; reconnect and re-check if lost."""
        dsn = self.settings.db.dsn()
        while not self.stopping.is_set():
            conn: asyncpg.Connection | None = None
            try:
                conn = await asyncpg.connect(dsn, server_settings={"application_name": "jt808"})
                await conn.add_listener(repo.TERMINAL_CHANGED, self._notified)
                await conn.add_listener(repo.COMMAND_QUEUED, self._notified)
                await self._recheck()  # whatever changed while we were not listening
                while not self.stopping.is_set() and not conn.is_closed():
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(self.stopping.wait(), self.cfg.recheck_s)
                    if not self.stopping.is_set():
                        await self._recheck()
            except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError) as exc:
                log.warning("jt808.listen_retry", error=repr(exc))
                await asyncio.sleep(2.0)
            finally:
                if conn is not None and not conn.is_closed():
                    await conn.close()

    async def _sweep(self) -> None:
        """Idle connections out; stale split packets out; links written in bulk."""
        cfg = self.cfg
        last_seen_flush = time.monotonic()
        while not self.stopping.is_set():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.stopping.wait(), min(cfg.sweep_s, 0.5))
            now = time.monotonic()
            for c in list(self.connections):
                if now - c.last_seen > cfg.heartbeat_timeout_s:
                    c.close("heartbeat_timeout")
                    self.stats["heartbeat_timeout"] += 1
                elif c.parts:
                    c.expire_parts(now, cfg.reassembly_timeout_s)
            seen: list[tuple[str, datetime]] = []
            if now - last_seen_flush >= cfg.seen_flush_s:
                last_seen_flush = now
                wall = time.time()
                seen = [
                    (tid, datetime.fromtimestamp(wall - (now - c.last_seen), UTC))
                    for tid, c in self.sessions.items()
                ]
            try:
                await self.links.flush(self.ctl, self.publish, seen)
            except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError) as exc:
                log.warning("jt808.links_retry", error=repr(exc))
            self._maybe_log()

    _last_log = 0.0

    def _maybe_log(self, *, force: bool = False) -> None:
        now = time.monotonic()
        if force or now - self._last_log >= 10:
            self._last_log = now
            log.info(
                "jt808.totals",
                connections=len(self.connections),
                sessions=len(self.sessions),
                **{**self.stats, **self.committer.totals},
            )

    async def _guarded(self, name: str, work: Callable[[], Awaitable[None]]) -> None:
        """A worker that fails is logged and started again (the gateway never loses one)."""
        while not self.stopping.is_set():
            try:
                await work()
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                log.error("jt808.worker_failed", worker=name, error=repr(exc))
                await asyncio.sleep(1.0)

    async def _partitions_daily(self) -> None:
        while True:
            try:
                await store.ensure_partitions(self.pool)
                await asyncio.sleep(24 * 3600)
            except store.TRANSIENT_DB_ERRORS as exc:
                log.warning("jt808.partitions_retry", error=repr(exc))
                await asyncio.sleep(30)

    # ---- the process ------------------------------------------------------------------------

    async def run(self) -> None:
        raise_fd_limit()
        dsn = self.settings.db.dsn()
        delay = 0.5
        while True:
            try:
                self.pool = await store.create_pool(dsn, application_name="jt808")
                self.ctl = await asyncpg.create_pool(
                    dsn, min_size=1, max_size=4, server_settings={"application_name": "jt808"}
                )
                break
            except store.TRANSIENT_DB_ERRORS as exc:
                log.warning("jt808.db_unavailable", error=str(exc), retry_s=delay)
                await asyncio.sleep(delay)
                delay = min(delay * 2, 5.0)
        self.directory = store.TerminalDirectory(self.pool, ttl_s=self.ingest.terminal_cache_s)
        await self.directory.load_all()
        await repo.links_reset(self.ctl, self.cfg.name)
        await self._recheck()
        self.redis = redis_or_none(self.settings, "jt808")
        self.committer = Committer(
            self.pool,
            transport_hooks(self.redis, self.cfg.name),
            store.BacklogPolicy(
                late_commit_s=self.ingest.derive_late_commit_s,
                old_ping_s=self.ingest.derive_old_ping_h * 3600.0,
            ),
            name="jt808",
        )
        ctx = Context(self.ingest, self.directory, topic_prefix="jt808", probe_id="")
        self.batcher = Batcher(
            self.committer, ctx, self.ingest, pending_max=self.cfg.pending_max, stats=self.stats
        )
        loop = asyncio.get_running_loop()
        server = await loop.create_server(
            lambda: Connection(self),
            self.cfg.host,
            self.cfg.port,
            backlog=self.cfg.listen_backlog,
            reuse_address=True,
        )
        self.port = server.sockets[0].getsockname()[1]
        batching = asyncio.create_task(self.batcher.run(self.stopping))
        workers = [
            asyncio.create_task(self._guarded(name, w))
            for name, w in (
                ("listen", self._listen),
                ("sweep", self._sweep),
                ("commands", lambda: self.commands.run(self.stopping)),
            )
        ]
        partitions = asyncio.create_task(self._partitions_daily())
        log.info(
            "jt808.ready",
            host=self.cfg.host,
            port=self.port,
            terminals=len(self.by_id),
            batch_max=self.ingest.batch_max,
            batch_wait_ms=self.ingest.batch_wait_ms,
        )
        self.ready.set()
        try:
            await self.stopping.wait()
            server.close()  # no new connections; what was received is committed and answered
            await batching
            for c in list(self.connections):
                c.close("gateway_stopped")
            await asyncio.sleep(0)
            await asyncio.gather(*workers, return_exceptions=True)
            with contextlib.suppress(Exception):
                await self.links.flush(self.ctl, self.publish, [])
        finally:
            partitions.cancel()
            for t in [batching, *workers, *self._tasks]:
                t.cancel()
            self._maybe_log(force=True)
            log.info("jt808.stopped", **{**self.stats, **self.committer.totals})
            await self.ctl.close()
            await self.pool.close()
            if self.redis is not None:
                await self.redis.aclose()


def run(settings: Settings, cfg: Jt808Settings, ingest: IngestSettings) -> None:
    """Run the gateway until SIGTERM/SIGINT (what it received is committed and answered)."""

    async def main() -> None:
        gw = Gateway(settings, cfg, ingest)
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, gw.stopping.set)
        await gw.run()

    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(main())
