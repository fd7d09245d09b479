"""One terminal's TCP connection: frames in, answers out, nothing trusted before authentication.

An `asyncio.Protocol` (no stream objects: 10,000 of these must be cheap). Each read is cut
into frames; each frame is checked (escapes, check code, length) and answered:

- a frame that cannot be read: 0x8001 result 2 when its header could be read, and the
  connection lives on; an unknown message id: result 3;
- before authentication only 0x0100 (register) and 0x0102 (authenticate) are taken;
  anything else is answered result 1 and nothing of it is stored;
- locations (0x0200, 0x0704, split or not) go to the gateway's batcher and are answered
  result 0 only once every point of the message is committed (or stored as rejected);
- heartbeats are answered at once; any frame counts as a sign of life.

Work that needs the database (registration, a login the memory cannot decide) runs as a
task; the frames that arrived behind it wait (and reading pauses) so that answers keep the
order of the questions.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from fleet.logging import get_logger
from telematics.ingest.pipeline import Encoded, Item
from telematics.jt808 import messages as M
from telematics.jt808.codec import ENCRYPTION, FrameError, Header, Splitter, build, parse
from telematics.jt808.repository import TerminalRecord

if TYPE_CHECKING:
    from telematics.jt808.server import Gateway

log = get_logger("jt808.session")

Ack = tuple[int, int]  # (serial, message id) of a frame to answer with result 0


@dataclass(frozen=True, slots=True)
class LocationRaw(Encoded):
    """A location still in its frame (`payload[index:end]`); rebuilt as the ping contract's
    fields, plus the location's bytes in hex, only if the point is rejected."""

    end: int = 0

    def value(self) -> Any:
        start = self.index or 0
        d = M.location_fields(bytes(self.payload), start, self.end)
        d["jt808"] = bytes(self.payload[start : self.end]).hex()
        return d


class Connection(asyncio.Protocol):
    __slots__ = (
        "acks_out",
        "auth_failures",
        "connected_at",
        "gw",
        "last_seen",
        "out",
        "parts",
        "paused",
        "peer",
        "pending_commands",
        "phone_key",
        "phone_raw",
        "reason",
        "serial",
        "splitter",
        "terminal",
        "topics",
        "transport",
        "version",
        "waiting",
    )

    def __init__(self, gw: Gateway) -> None:
        self.gw = gw
        self.transport: asyncio.Transport | None = None
        self.splitter = Splitter()
        self.terminal: TerminalRecord | None = None
        self.phone_key = ""
        self.phone_raw = b""
        self.version: int | None = None
        self.serial = 0
        self.last_seen = time.monotonic()
        self.connected_at = 0.0
        self.out: list[bytes] = []
        self.acks_out: list[bytes] = []
        self.parts: dict[tuple[int, int, int], tuple[float, dict[int, tuple[Header, bytes]]]] = {}
        self.pending_commands: dict[int, tuple[int, str]] = {}
        self.waiting: list[bytes] | None = None  # frames held behind a database task
        self.auth_failures = 0
        self.paused = False
        self.peer = ""
        self.reason = "closed"
        self.topics: tuple[str, str, str] = ("", "", "")

    # ---- asyncio.Protocol ------------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport
        peer = transport.get_extra_info("peername")
        self.peer = f"{peer[0]}:{peer[1]}" if peer else ""
        self.gw.connections.add(self)

    def connection_lost(self, exc: Exception | None) -> None:
        self.gw.connections.discard(self)
        self.gw.detach(self)

    def data_received(self, data: bytes) -> None:
        self.last_seen = time.monotonic()
        try:
            frames = self.splitter.feed(data)
        except FrameError:
            self.close("garbage")
            return
        if self.waiting is not None:
            self.waiting.extend(frames)
            return
        self._frames(frames)

    def pause_reading(self) -> None:  # back-pressure from the batcher
        if not self.paused and self.transport is not None and not self.transport.is_closing():
            self.paused = True
            self.transport.pause_reading()

    def resume(self) -> None:
        if self.paused and self.waiting is None and self.transport is not None:
            self.paused = False
            if not self.transport.is_closing():
                self.transport.resume_reading()

    # ---- frames ----------------------------------------------------------------------------

    def _frames(self, frames: list[bytes]) -> None:
        for k, raw in enumerate(frames):
            self._frame(raw)
            if self.waiting is not None:  # a database task started: the rest waits for it
                self.waiting.extend(frames[k + 1 :])
                break
        self.flush()

    def flush(self) -> None:
        if self.out and self.transport is not None:
            self.transport.write(b"".join(self.out))
        self.out.clear()

    def next_serial(self) -> int:
        self.serial = (self.serial + 1) & 0xFFFF
        return self.serial

    def send(self, msg_id: int, body: bytes, phone_raw: bytes, version: int | None) -> int:
        serial = self.next_serial()
        self.out.append(build(msg_id, phone_raw, serial, body, version=version))
        return serial

    def reply(self, h: Header, result: int, msg_id: int | None = None) -> None:
        """0x8001 to one frame, in the frame's own version and phone."""
        body = M.general_reply(h.serial, h.msg_id if msg_id is None else msg_id, result)
        self.send(M.PLATFORM_REPLY, body, h.phone_raw, h.version)

    def ack_frames(self, acks: list[Ack]) -> None:
        """Result 0 for frames whose points are committed (called by the batcher)."""
        if self.transport is None or self.transport.is_closing():
            return  # the terminal will re-send them after it reconnects
        pr, v = self.phone_raw, self.version
        out = [
            build(M.PLATFORM_REPLY, pr, self.next_serial(), M.general_reply(s, m, M.OK), version=v)
            for s, m in acks
        ]
        self.transport.write(b"".join(out) if len(out) > 1 else out[0])

    def _frame(self, raw: bytes) -> None:
        stats = self.gw.stats
        stats["frames"] += 1
        try:
            h, body = parse(raw)
        except FrameError as exc:
            stats[f"bad_frame.{exc.reason}"] += 1
            if exc.header is not None:
                self.reply(exc.header, M.BAD_MESSAGE)
            return
        mid = h.msg_id
        handler = _HANDLERS.get(mid)
        if handler is None:
            stats["unsupported"] += 1
            self.reply(h, M.UNSUPPORTED)
            return
        if h.props & ENCRYPTION:
            stats["unsupported"] += 1
            self.reply(h, M.UNSUPPORTED)
            return
        acks: list[Ack] = [(h.serial, mid)]
        if h.split:
            whole = self._reassemble(h, body)
            if whole is None:
                return
            body, acks = whole
        if self.terminal is None:
            if mid != M.REGISTER and mid != M.AUTHENTICATE:
                stats["refused_unauthenticated"] += 1
                self.reply(h, M.FAILURE)
                return
        elif h.phone_raw != self.phone_raw and h.phone.lstrip("0") != self.phone_key:
            stats["refused_other_phone"] += 1
            self.reply(h, M.FAILURE)
            return
        try:
            handler(self, h, body, acks)
        except M.BodyError as exc:
            stats["bad_body"] += 1
            log.debug("jt808.bad_body", msg=f"{mid:04x}", error=str(exc))
            for serial, m in acks:
                self.send(M.PLATFORM_REPLY, M.general_reply(serial, m, M.BAD_MESSAGE),
                          h.phone_raw, h.version)  # fmt: skip

    def _reassemble(self, h: Header, body: bytes) -> tuple[bytes, list[Ack]] | None:
        """Collect the packets of a split message; the whole body once all have come."""
        key = (h.msg_id, h.total, (h.serial - h.index + 1) & 0xFFFF)
        now = time.monotonic()
        entry = self.parts.get(key)
        if entry is None:
            if len(self.parts) >= 8:  # a terminal has one or two split uploads at a time
                oldest = min(self.parts, key=lambda k: self.parts[k][0])
                del self.parts[oldest]
            entry = self.parts[key] = (now, {})
        entry[1][h.index] = (h, body)
        if len(entry[1]) < h.total:
            return None
        del self.parts[key]
        packets = [entry[1][i] for i in range(1, h.total + 1)]
        return b"".join(b for _, b in packets), [(p.serial, p.msg_id) for p, _ in packets]

    def expire_parts(self, now: float, timeout_s: float) -> None:
        for key in [k for k, (t, _) in self.parts.items() if now - t > timeout_s]:
            del self.parts[key]
            self.gw.stats["split_expired"] += 1

    # ---- database tasks --------------------------------------------------------------------

    def run_task(self, work: Callable[[], Any]) -> None:
        """Run `work()` (a coroutine) with later frames held back until it is done."""
        self.waiting = []
        self.pause_reading()

        async def go() -> None:
            try:
                await work()
            except Exception as exc:  # a failing task must not wedge the connection
                log.error("jt808.task_failed", terminal=self.terminal_id, error=repr(exc))
                self.close("internal_error")
            finally:
                self.flush()
                held, self.waiting = self.waiting or [], None
                if held and self.transport is not None and not self.transport.is_closing():
                    self._frames(held)
                if self.waiting is None:
                    self.resume()

        self.gw.spawn(go())

    # ---- state -----------------------------------------------------------------------------

    @property
    def terminal_id(self) -> str | None:
        return self.terminal.id if self.terminal else None

    def authenticated(self, rec: TerminalRecord, h: Header) -> None:
        self.terminal = rec
        self.phone_key = rec.key
        self.phone_raw = h.phone_raw
        self.version = h.version
        self.connected_at = time.time()
        self.topics = (f"jt808/{rec.id}/0200", f"jt808/{rec.id}/0704", f"jt808/{rec.id}/0201")
        self.gw.attach(self)

    def close(self, reason: str) -> None:
        self.reason = reason
        if self.transport is not None and not self.transport.is_closing():
            self.flush()
            self.transport.close()


# ---- handlers ------------------------------------------------------------------------------


def _location(c: Connection, h: Header, body: bytes, acks: list[Ack]) -> None:
    item = _item(c, body, 0, len(body), c.topics[0], time.time(), h.serial)
    c.gw.batcher.submit(c, [item], acks)


def _batch(c: Connection, h: Header, body: bytes, acks: list[Ack]) -> None:
    kind, ranges = M.batch_ranges(body)
    now = time.time()
    topic = c.topics[1]
    items = [_item(c, body, s, e, topic, now, None) for s, e in ranges]
    c.gw.stats["backlog_points" if kind == 1 else "batch_points"] += len(items)
    c.gw.batcher.submit(c, items, acks)


def _item(
    c: Connection, body: bytes, start: int, end: int, topic: str, now: float, seq: int | None
) -> Item:
    tid = c.terminal_id
    assert tid is not None
    p = M.location_ping(body, start, end, seq)
    if p is None:  # outside the contract: `validate` refuses it with the reason
        fields = M.location_fields(body, start, end)
        fields["jt808"] = body[start:end].hex()
        return Item(tid, topic, fields, now)
    return Item(tid, topic, LocationRaw(body, start, end), now, p, epoch=p.ts.timestamp())


def _heartbeat(c: Connection, h: Header, body: bytes, acks: list[Ack]) -> None:
    c.gw.stats["heartbeats"] += 1
    c.reply(h, M.OK)


def _register(c: Connection, h: Header, body: bytes, acks: list[Ack]) -> None:
    reg = M.parse_register(body, v2019=h.version is not None)
    c.run_task(lambda: c.gw.register(c, h, reg))


def _authenticate(c: Connection, h: Header, body: bytes, acks: list[Ack]) -> None:
    code = M.parse_auth(body, v2019=h.version is not None)
    c.gw.authenticate(c, h, code)


def _unregister(c: Connection, h: Header, body: bytes, acks: list[Ack]) -> None:
    c.run_task(lambda: c.gw.unregister(c, h))


def _general_reply(c: Connection, h: Header, body: bytes, acks: list[Ack]) -> None:
    serial, msg_id, result = M.parse_general_reply(body)
    c.gw.commands.on_reply(c, serial, msg_id, result)


def _query_reply(c: Connection, h: Header, body: bytes, acks: list[Ack]) -> None:
    if len(body) < 30:
        raise M.BodyError("position reply shorter than a location")
    serial = int.from_bytes(body[:2], "big")
    item = _item(c, body, 2, len(body), c.topics[2], time.time(), None)
    c.gw.commands.on_position(c, serial, item)
    c.gw.batcher.submit(c, [item], [])  # a reply: stored, never answered


_HANDLERS: dict[int, Callable[[Connection, Header, bytes, list[Ack]], None]] = {
    M.LOCATION: _location,
    M.BATCH: _batch,
    M.HEARTBEAT: _heartbeat,
    M.REGISTER: _register,
    M.AUTHENTICATE: _authenticate,
    M.UNREGISTER: _unregister,
    M.GENERAL_REPLY: _general_reply,
    M.QUERY_REPLY: _query_reply,
}
