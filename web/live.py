"""Live fan-out: ``/api/v1/live`` pushes positions, status changes, alerts, trip changes and
notifications to authenticated consoles, each scoped to its user's orgs.

One Redis subscriber per API process (started in ``lifespan``) receives every committed
ingest batch and every event (telematics.bus) and hands them to the local consoles without
ever awaiting a console: each console has a bounded queue drained by its own writer task, so
a slow console can only fall behind itself. Positions are coalesced per console: a vehicle's
position is forwarded at once if that console has not had one for the vehicle within the
last second, otherwise it waits (latest wins) until the second is over — at most one
position per vehicle per second per console, with no added delay for the common case of a
ping every few seconds. A console whose queue stays full longer than ``MAX_LAG_S`` is
disconnected (close code 4008); while it is full, positions keep coalescing instead of
queueing, so nothing stale piles up.

Only live positions go out: of each bus message the hub keeps, per vehicle, the newest ping
and only if it is newer than every position this process has seen for that vehicle (seeded
from ``latest_positions`` at start). A buffered upload (old pings, any order, sent after a
coverage gap) is history for tracks, never a live position; and a console is never sent a
position older than, or as old as, the last one it got for that vehicle.

Authentication (web/live_auth.py): ``?ticket=`` from ``POST /api/v1/live/ticket``, or a first
frame ``{"type": "auth", "token": …}``; ``?token=`` is refused. A connection follows its
account: it ends with its credential's expiry, and at once on every API process when the user
is deactivated or their password changes (close 4401) or their roles change (close 4403),
announced on ``<prefix>.accounts.v1``; a reload every ``live_auth.REFRESH_S`` is the safety net.

Protocol (JSON text frames). Client → server: ``{"type": "subscribe", "bbox": [w, s, e, n] |
null}``; ``{"type": "ping"}``. Server → client: ``hello``, ``positions`` (``items`` each with
vehicle_id and the ping's ts), ``status``, ``alert``, ``trip``, ``notification``, ``pong``,
``error``.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

import orjson
from fastapi import APIRouter, FastAPI, WebSocket, WebSocketDisconnect
from redis.asyncio import Redis
from sqlalchemy import text

from fleet.identity.principal import Principal
from fleet.identity.sessions import ENDS_SESSION
from fleet.logging import get_logger
from fleet.registry.visibility import visibility_sql
from telematics import bus
from web.live_auth import CLOSE_SCOPE_CHANGED, CLOSE_UNAUTHENTICATED, authenticate, follow
from web.live_positions import LivePositions, Positioned

log = get_logger("live")
router = APIRouter()

LIVE_ROLES = ("admin", "dispatcher", "auditor")
COALESCE_S = 1.0  # at most one position per vehicle per console per this many seconds
TICK_S = 0.2  # how often held-back positions are checked
QUEUE_MAX = 32  # messages waiting for one console
MAX_LAG_S = 5.0  # a console whose queue stays full this long is dropped
SEND_TIMEOUT_S = 5.0
CLOSE_LAGGING = 4008


@dataclass(eq=False)
class Console:
    ws: WebSocket
    principal: Principal
    visible: frozenset[int]
    bbox: tuple[float, float, float, float] | None = None
    queue: asyncio.Queue[bytes] = field(default_factory=lambda: asyncio.Queue(QUEUE_MAX))
    # per vehicle: when (monotonic) a position last went out, and that position's ts (epoch)
    last_sent: dict[int, float] = field(default_factory=dict)
    sent_ts: dict[int, float] = field(default_factory=dict)
    # per vehicle: the newest position waiting for its second to be over, (ts epoch, item)
    held: dict[int, Positioned] = field(default_factory=dict)
    full_since: float | None = None
    dropped: int = 0
    closing: bool = False
    gone: asyncio.Event = field(default_factory=asyncio.Event)
    expires_at: int | None = None  # the credential's expiry (epoch s): the connection ends then
    close_code: int = CLOSE_LAGGING
    close_reason: str = "console too slow"

    def end(self, code: int, reason: str) -> None:
        """Close for an account reason (4401 / 4403 with `reason`); the endpoint closes."""
        if not self.closing:
            self.closing = True
            self.close_code, self.close_reason = code, reason
            log.info("live.console_ended", user=self.principal.username, why=reason, code=code)
        self.gone.set()

    def drop(self, why: str) -> None:
        """Mark for disconnection; the endpoint closes the socket and cleans up."""
        if not self.closing:
            self.closing = True
            log.info(
                "live.console_dropped", user=self.principal.username, why=why, dropped=self.dropped
            )
        self.gone.set()

    def wants_position(self, item: dict[str, Any]) -> bool:
        if item.get("vehicle_id") not in self.visible:
            return False
        if self.bbox is not None:
            w, s, e, n = self.bbox
            lat, lon = item.get("lat"), item.get("lon")
            if lat is None or lon is None or not (w <= lon <= e and s <= lat <= n):
                return False
        return True

    def wants_event(self, event: dict[str, Any]) -> bool:
        user_ids = event.get("user_ids") or ()
        if self.principal.user_id in user_ids:
            return True
        path = event.get("org_path")
        if path and self.principal.covers(LIVE_ROLES, str(path)):
            return True
        data = event.get("data") or {}
        vid = data.get("vehicle_id") if isinstance(data, dict) else None
        return vid is not None and vid in self.visible

    def offer(self, message: bytes, now: float) -> bool:
        """Queue without waiting; False (and lag bookkeeping) when the queue is full."""
        try:
            self.queue.put_nowait(message)
        except asyncio.QueueFull:
            self.dropped += 1
            if self.full_since is None:
                self.full_since = now
            return False
        self.full_since = None
        return True

    def lagging(self, now: float) -> bool:
        return self.full_since is not None and now - self.full_since > MAX_LAG_S

    def hold(self, vid: int, entry: Positioned) -> None:
        """Keep the newest position of a vehicle until its second is over."""
        prev = self.held.get(vid)
        if prev is None or entry[0] > prev[0]:
            self.held[vid] = entry

    def send_positions(self, entries: list[Positioned], now: float) -> None:
        """One frame with these positions (one per vehicle), or hold them if it cannot go."""
        fresh = [e for e in entries if e[0] > self.sent_ts.get(e[1]["vehicle_id"], -math.inf)]
        if not fresh:
            return
        if self.offer(_positions_message([item for _, item in fresh]), now):
            for ts, item in fresh:
                vid = item["vehicle_id"]
                self.last_sent[vid] = now
                self.sent_ts[vid] = ts
                held = self.held.get(vid)
                if held is not None and held[0] <= ts:
                    del self.held[vid]
        else:
            for e in fresh:
                self.hold(e[1]["vehicle_id"], e)


def _positions_message(items: list[dict[str, Any]]) -> bytes:
    return orjson.dumps({"type": "positions", "items": items, "sent_at": time.time()})


class Hub:
    """The process's one Redis subscriber and its consoles."""

    def __init__(self, redis_url: str) -> None:
        self.redis_url = redis_url
        self.consoles: set[Console] = set()
        self._tasks: list[asyncio.Task[None]] = []
        self.received = 0
        self.live = LivePositions()

    def add(self, c: Console) -> None:
        self.consoles.add(c)

    def remove(self, c: Console) -> None:
        self.consoles.discard(c)

    async def start(self) -> None:
        self._tasks = [
            asyncio.create_task(self._subscribe(), name="live.subscribe"),
            asyncio.create_task(self._tick(), name="live.tick"),
        ]

    async def stop(self) -> None:
        for t in self._tasks:
            t.cancel()
        for t in self._tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await t

    async def _subscribe(self) -> None:
        while True:
            redis: Redis | None = None
            try:
                redis = bus.redis_client(self.redis_url)
                pubsub = redis.pubsub(ignore_subscribe_messages=True)
                accounts = bus.accounts_channel().encode()
                await pubsub.subscribe(
                    bus.positions_channel(), bus.events_channel(), bus.accounts_channel()
                )
                log.info("live.subscribed")
                async for msg in pubsub.listen():
                    if msg.get("type") != "message":
                        continue
                    self.received += 1
                    try:
                        body = orjson.loads(msg["data"])
                    except orjson.JSONDecodeError:
                        log.warning("live.bad_message")
                        continue
                    if msg.get("channel") == accounts:
                        self.account_changed(body)
                    else:
                        self.dispatch(body)
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # Redis restarts must not end the fan-out
                log.warning("live.subscriber_error", error=repr(exc)[:200])
                await asyncio.sleep(1.0)
            finally:
                if redis is not None:
                    with contextlib.suppress(Exception):
                        await redis.aclose()

    def account_changed(self, body: dict[str, Any]) -> None:
        """An account event: end that user's consoles here (every process does the same)."""
        user_id, reason = body.get("user_id"), str(body.get("reason"))
        code = CLOSE_UNAUTHENTICATED if reason in ENDS_SESSION else CLOSE_SCOPE_CHANGED
        for c in list(self.consoles):
            if c.principal.user_id == user_id:
                c.end(code, reason)
                self.remove(c)

    def dispatch(self, body: dict[str, Any]) -> None:
        """Route one bus message to the consoles (never awaits)."""
        now = time.monotonic()
        if body.get("type") == "positions":
            live = self.live.newer(body.get("items") or ())
            if not live:
                return
            for c in list(self.consoles):
                out: list[Positioned] = []
                for vid, entry in live.items():
                    if not c.wants_position(entry[1]):
                        continue
                    if c.full_since is None and now - c.last_sent.get(vid, -1e9) >= COALESCE_S:
                        out.append(entry)
                    else:
                        c.hold(vid, entry)
                if out:
                    c.send_positions(out, now)
        else:
            message = orjson.dumps(body, default=str)
            for c in list(self.consoles):
                if c.wants_event(body):
                    c.offer(message, now)

    def flush_held(self, now: float) -> None:
        for c in list(self.consoles):
            if c.lagging(now):
                c.drop("lagging")
                self.remove(c)
                continue
            if not c.held:
                continue
            due = [
                entry
                for vid, entry in c.held.items()
                if now - c.last_sent.get(vid, -1e9) >= COALESCE_S
            ]
            if due:
                c.send_positions(due, now)

    async def _tick(self) -> None:
        while True:
            await asyncio.sleep(TICK_S)
            self.flush_held(time.monotonic())


async def _writer(c: Console) -> None:
    while True:
        message = await c.queue.get()
        try:
            await asyncio.wait_for(c.ws.send_text(message.decode()), SEND_TIMEOUT_S)
        except TimeoutError:
            c.drop("send_timeout")
            return
        except Exception:
            return


async def _visible_vehicles(app: FastAPI, principal: Principal) -> frozenset[int]:
    if not principal.has_any(LIVE_ROLES):
        return frozenset()
    clause, params = visibility_sql(principal, LIVE_ROLES, org="o", vehicle="v")
    async with app.state.sessionmaker() as session:
        rows = await session.execute(
            text(f"SELECT v.id FROM vehicles v JOIN orgs o ON o.id = v.unit_id WHERE {clause}"),
            params,
        )
        return frozenset(int(r[0]) for r in rows)


@router.websocket("/live")
async def live(ws: WebSocket) -> None:
    """Live updates for a console (see the module docstring for the protocol)."""
    hub: Hub = ws.app.state.live_hub
    await ws.accept()
    grant = await authenticate(ws)
    if grant is None:
        return
    principal = grant.principal
    console = Console(ws, principal, await _visible_vehicles(ws.app, principal))
    console.expires_at = grant.expires_at
    hub.add(console)
    writer = asyncio.create_task(_writer(console))
    refresher = asyncio.create_task(follow(console, ws.app, lambda: _refresh_visible(console)))
    console.offer(
        orjson.dumps(
            {
                "type": "hello",
                "user": principal.username,
                "vehicles": len(console.visible),
                "coalesce_s": COALESCE_S,
            }
        ),
        time.monotonic(),
    )
    log.info("live.connected", user=principal.username, vehicles=len(console.visible))
    reader = asyncio.create_task(_reader(console))
    gone = asyncio.create_task(console.gone.wait())
    tasks = (reader, writer, refresher, gone)
    try:
        await asyncio.wait((reader, writer, gone), return_when=asyncio.FIRST_COMPLETED)
    finally:
        hub.remove(console)
        for t in tasks:
            t.cancel()
        if console.closing:
            # a stalled peer never drains: do not wait for the close frame to go out
            with contextlib.suppress(Exception):
                await asyncio.wait_for(
                    ws.close(code=console.close_code, reason=console.close_reason),
                    SEND_TIMEOUT_S,
                )
        log.info("live.disconnected", user=principal.username, dropped=console.dropped)


async def _reader(console: Console) -> None:
    """Client messages: subscription filters and pings; returns when the client leaves."""
    with contextlib.suppress(WebSocketDisconnect, RuntimeError):
        while True:
            raw = await console.ws.receive_text()
            try:
                msg = orjson.loads(raw)
            except orjson.JSONDecodeError:
                continue
            if not isinstance(msg, dict):
                continue
            now = time.monotonic()
            if msg.get("type") == "subscribe":
                console.bbox = _bbox(msg.get("bbox"))
                console.offer(orjson.dumps({"type": "subscribed", "bbox": console.bbox}), now)
            elif msg.get("type") == "ping":
                console.offer(orjson.dumps({"type": "pong", "ts": time.time()}), now)


def _bbox(value: Any) -> tuple[float, float, float, float] | None:
    if not isinstance(value, list | tuple) or len(value) != 4:
        return None
    try:
        w, s, e, n = (float(x) for x in value)
    except (TypeError, ValueError):
        return None
    return (w, s, e, n) if w < e and s < n else None


async def _refresh_visible(c: Console) -> None:
    """New vehicles and changed pools reach an open console (every live_auth.REFRESH_S)."""
    with contextlib.suppress(Exception):
        c.visible = await _visible_vehicles(c.ws.app, c.principal)


async def _seed_live_positions(app: FastAPI, hub: Hub) -> None:
    """The vehicles' live positions, so that a buffered upload arriving before any live ping
    of its vehicle is still known to be old (26,638 rows: tens of milliseconds)."""
    try:
        async with app.state.sessionmaker() as session:
            rows = await session.execute(
                text("SELECT vehicle_id, extract(epoch FROM ts)::float8 FROM latest_positions")
            )
            hub.live.seed((int(vid), float(ts)) for vid, ts in rows)
    except Exception as exc:  # the database may still be starting: the bus fills it in
        log.warning("live.seed_failed", error=repr(exc)[:200])


@asynccontextmanager
async def lifespan(app: FastAPI) -> AsyncIterator[None]:
    hub = Hub(app.state.settings.redis.url)
    app.state.live_hub = hub
    await _seed_live_positions(app, hub)
    await hub.start()
    try:
        yield
    finally:
        await hub.stop()
