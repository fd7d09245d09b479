"""Platform -> terminal: the console's text (0x8300) and position query (0x8201), relayed.

The API process is not the gateway: it stores the command (`terminal_commands`, status
`queued`) and sends a PostgreSQL notification when its transaction commits. Every gateway
listens; the one holding the terminal's connection claims the command (`FOR UPDATE SKIP
LOCKED`, status `sent`), writes the frame, and records the terminal's answer: its 0x0001
general reply (result 0 `acknowledged`, 1/2 `failed`, 3 `unsupported`) or, for a position
query, the 0x0201 position reply (`answered`; the position is also stored like any other).
Commands for a terminal that is offline wait until it authenticates, and expire after
`command_ttl_s`. A poll every `command_poll_s` covers a notification that was missed. Each
status change is pushed on the live bus as a `terminal_command` event for the vehicle.
"""

from __future__ import annotations

import asyncio
import contextlib
from typing import TYPE_CHECKING, Any

import asyncpg

from fleet.logging import get_logger
from telematics.ingest.pipeline import Item
from telematics.jt808 import messages as M
from telematics.jt808 import repository as repo

if TYPE_CHECKING:
    from telematics.jt808.server import Gateway
    from telematics.jt808.session import Connection

log = get_logger("jt808.commands")

# Default 0x8300 flags: bit 2 show on the terminal's display, bit 3 read aloud (TTS).
DISPLAY, TTS, URGENT = 0x04, 0x08, 0x01
_STATUS = {M.OK: "acknowledged", M.FAILURE: "failed", M.BAD_MESSAGE: "failed"}


def frame_body(kind: str, body: dict[str, Any], *, v2019: bool) -> tuple[int, bytes]:
    if kind == "position_query":
        return M.POSITION_QUERY, b""
    flags = DISPLAY | (TTS if body.get("tts", True) else 0) | (URGENT if body.get("urgent") else 0)
    return M.TEXT, M.text_body(str(body.get("text", "")), flags, v2019=v2019)


class CommandRelay:
    def __init__(self, gw: Gateway) -> None:
        self.gw = gw
        self._wanted: set[str] = set()
        self._wake = asyncio.Event()

    def wanted(self, terminal_id: str) -> None:
        """A command may be queued for this terminal (notification, or it just logged in)."""
        if terminal_id in self.gw.sessions:
            self._wanted.add(terminal_id)
            self._wake.set()

    async def run(self, stopping: asyncio.Event) -> None:
        cfg = self.gw.cfg
        loop = asyncio.get_running_loop()
        next_poll = loop.time() + cfg.command_poll_s
        while not stopping.is_set():
            try:
                timeout = max(0.0, next_poll - loop.time())
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._wake.wait(), timeout)
                self._wake.clear()
                if loop.time() >= next_poll:
                    next_poll = loop.time() + cfg.command_poll_s
                    await self._expire()
                    if self.gw.sessions and await repo.any_queued(self.gw.ctl):
                        self._wanted.update(self.gw.sessions)
                if self._wanted:
                    ids, self._wanted = list(self._wanted), set()
                    await self._deliver(ids)
            except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError) as exc:
                log.warning("jt808.commands_retry", error=repr(exc))
                await asyncio.sleep(1.0)

    async def _expire(self) -> None:
        for r in await repo.expire_commands(self.gw.ctl, self.gw.cfg.command_ttl_s):
            await self.gw.publish("terminal_command", *repo.command_event(r))

    async def _deliver(self, terminal_ids: list[str]) -> None:
        gw = self.gw
        rows = await repo.claim_commands(gw.ctl, terminal_ids, gw.cfg.name, gw.cfg.command_ttl_s)
        sent: list[tuple[int, int]] = []
        lost: list[int] = []
        for r in rows:
            conn = gw.sessions.get(r["terminal_id"])
            if conn is None or conn.transport is None or conn.transport.is_closing():
                lost.append(r["id"])
                continue
            body = r["body"]
            body = body if isinstance(body, dict) else _json(body)
            msg_id, data = frame_body(r["kind"], body, v2019=conn.version is not None)
            serial = conn.send(msg_id, data, conn.phone_raw, conn.version)
            conn.flush()
            conn.pending_commands[serial] = (r["id"], r["kind"])
            sent.append((r["id"], serial))
            log.info("jt808.command_sent", id=r["id"], terminal=r["terminal_id"], kind=r["kind"])
            await gw.publish("terminal_command", *repo.command_event(r))
        if sent:
            await repo.command_sent(gw.ctl, sent)
        if lost:
            await repo.command_requeue(gw.ctl, lost)

    # ---- answers (from the session) --------------------------------------------------------

    def on_reply(self, conn: Connection, serial: int, msg_id: int, result: int) -> None:
        if msg_id not in (M.TEXT, M.POSITION_QUERY):
            return
        pending = conn.pending_commands.pop(serial, None)
        if pending is None:
            return
        status = _STATUS.get(result, "unsupported")
        self.gw.spawn(self._record(pending[0], status, result, {"result": result}))

    def on_position(self, conn: Connection, serial: int, item: Item) -> None:
        pending = conn.pending_commands.pop(serial, None)
        if pending is None:
            return
        p = item.ping
        reply: dict[str, Any] = {"message": "0201"}
        if p is not None:
            reply.update(
                ts=p.ts.isoformat(), lat=p.lat, lon=p.lon, speed_kmh=p.speed_kmh, fix=p.fix
            )
        self.gw.spawn(self._record(pending[0], "answered", M.OK, reply))

    async def _record(
        self, command_id: int, status: str, result: int, reply: dict[str, Any]
    ) -> None:
        r = await repo.command_replied(self.gw.ctl, command_id, status, result, reply)
        if r is not None:
            log.info("jt808.command_replied", id=command_id, status=status, result=result)
            await self.gw.publish("terminal_command", *repo.command_event(r))


def _json(raw: Any) -> dict[str, Any]:
    import orjson

    value = orjson.loads(raw) if isinstance(raw, str | bytes) else raw
    return value if isinstance(value, dict) else {}
