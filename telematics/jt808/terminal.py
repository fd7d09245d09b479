"""A JT/T 808 terminal's side of the conversation (the simulator and the benchmarks use it).

It behaves as the standard asks of a terminal: every message it sends waits for the
platform's answer; unanswered after the reply timeout T it is sent again, the n-th time
waiting T_{n} = T_{n-1} × (n+1); after `retries` the connection is taken as broken and
dropped. What was never answered is kept and sent again after the next login — so a
gateway killed mid-burst loses nothing a terminal still holds. Text messages (0x8300) are
answered 0x0001 and kept; position queries (0x8201) are answered 0x0201 with `position()`.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from telematics.jt808 import messages as M
from telematics.jt808.codec import FrameError, Header, Splitter, build, parse, phone_bcd


class Unanswered(ConnectionError):
    """The platform did not answer (connection lost or retries exhausted)."""


@dataclass(eq=False)
class _Out:
    msg_id: int
    body: bytes
    future: asyncio.Future[int]
    serial: int = 0
    attempt: int = 0
    timeout: float = 0.0
    deadline: float = 0.0


@dataclass
class Terminal:
    host: str
    port: int
    phone: str
    v2019: bool = False
    reply_timeout_s: float = 10.0
    retries: int = 3
    position: Callable[[], bytes] | None = None  # current location body, for 0x8201
    texts: list[str] = field(default_factory=list)
    unanswered: dict[int, _Out] = field(default_factory=dict)
    resends: int = 0

    def __post_init__(self) -> None:
        self._raw = phone_bcd(self.phone, v2019=self.v2019)
        self._serial = 0
        self._writer: asyncio.StreamWriter | None = None
        self._reader_task: asyncio.Task[None] | None = None
        self._timer: asyncio.Task[None] | None = None
        self._registered: asyncio.Future[tuple[int, str]] | None = None
        self._gen = 0  # connection generation: a task of an older connection changes nothing
        self._kick = asyncio.Event()  # wakes the retransmission timer (new message, drop)
        self.lost = asyncio.Event()
        self.lost.set()

    @property
    def connected(self) -> bool:
        return not self.lost.is_set()

    def _version(self) -> int | None:
        return 1 if self.v2019 else None

    def _frame(self, msg_id: int, body: bytes, serial: int) -> bytes:
        return build(msg_id, self._raw, serial, body, version=self._version())

    def _next(self) -> int:
        self._serial = (self._serial + 1) & 0xFFFF
        return self._serial

    async def connect(self, timeout_s: float = 10.0) -> None:
        for task in (self._reader_task, self._timer):
            if task is not None:
                task.cancel()
        reader, writer = await asyncio.wait_for(
            asyncio.open_connection(self.host, self.port), timeout_s
        )
        self._gen += 1
        self._writer = writer
        self.lost.clear()
        self._reader_task = asyncio.create_task(self._read(reader, self._gen))

    def drop(self) -> None:
        """Close the connection (what is unanswered stays for the next login)."""
        if self._writer is not None:
            self._writer.close()
        self.lost.set()
        self._kick.set()

    async def close(self) -> None:
        self.drop()
        for t in (self._reader_task, self._timer):
            if t is not None:
                t.cancel()
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await t

    # ---- requests --------------------------------------------------------------------------

    def submit(self, msg_id: int, body: bytes) -> asyncio.Future[int]:
        """Send; the future gets the 0x8001 result whenever it comes (across reconnects)."""
        out = _Out(msg_id, body, asyncio.get_running_loop().create_future())
        self._transmit(out)
        return out.future

    async def request(self, msg_id: int, body: bytes) -> int:
        fut = self.submit(msg_id, body)
        lost = asyncio.create_task(self.lost.wait())
        try:
            both: list[asyncio.Future[Any]] = [fut, lost]
            await asyncio.wait(both, return_when=asyncio.FIRST_COMPLETED)
        finally:
            lost.cancel()
        if not fut.done():
            raise Unanswered(f"no answer to {msg_id:04x}")
        return fut.result()

    def _transmit(self, out: _Out) -> None:
        if out.serial:
            self.unanswered.pop(out.serial, None)
        out.serial = self._next()
        out.attempt = 0
        out.timeout = self.reply_timeout_s
        out.deadline = time.monotonic() + out.timeout
        self.unanswered[out.serial] = out
        self._kick.set()
        if self.connected and self._writer is not None:
            self._writer.write(self._frame(out.msg_id, out.body, out.serial))

    def resend_unanswered(self) -> int:
        """After a new login: everything never answered goes out again (new serials)."""
        pending = [o for o in self.unanswered.values() if not o.future.done()]
        for o in sorted(pending, key=lambda o: o.deadline):
            self._transmit(o)
        self.resends += len(pending)
        return len(pending)

    async def register(self, reg: M.Registration) -> tuple[int, str]:
        """0x0100 -> (result, authentication code or "")."""
        self._registered = asyncio.get_running_loop().create_future()
        assert self._writer is not None
        self._writer.write(
            self._frame(M.REGISTER, M.register_body(reg, v2019=self.v2019), self._next())
        )
        return await asyncio.wait_for(self._registered, self.reply_timeout_s)

    async def authenticate(self, code: str) -> int:
        """0x0102 -> result; once logged in, unanswered messages are timed for retransmission
        (not before: the platform refuses everything before authentication)."""
        body = M.auth_body(code, v2019=self.v2019, imei="860000000000000", software="fleet-sim")
        result = await asyncio.wait_for(
            self.request(M.AUTHENTICATE, body), self.reply_timeout_s * 4
        )
        if result == M.OK:
            if self._timer is not None:
                self._timer.cancel()
            self._timer = asyncio.create_task(self._retransmit(self._gen))
        return result

    # ---- the connection ----------------------------------------------------------------------

    async def _retransmit(self, gen: int) -> None:
        """Sleeps until the earliest reply deadline (or a new message): no polling, so
        thousands of simulated terminals cost nothing while their answers come in time."""
        while self.connected and gen == self._gen:
            waiting = [o for o in self.unanswered.values() if not o.future.done()]
            now = time.monotonic()
            due = min((o.deadline for o in waiting), default=None)
            if due is None or due > now:
                self._kick.clear()
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._kick.wait(), None if due is None else due - now)
                continue
            for out in waiting:
                if now < out.deadline:
                    continue
                if out.attempt >= self.retries:
                    self.drop()  # the link is taken as broken; the owner reconnects
                    return
                out.attempt += 1
                out.timeout *= out.attempt + 1  # T(n+1) = T(n) x (n+1)
                out.deadline = now + out.timeout
                self.resends += 1
                if self._writer is not None:
                    self._writer.write(self._frame(out.msg_id, out.body, out.serial))

    async def _read(self, reader: asyncio.StreamReader, gen: int) -> None:
        splitter = Splitter()
        try:
            while data := await reader.read(65536):
                for raw in splitter.feed(data):
                    with contextlib.suppress(FrameError, M.BodyError):
                        self._handle(*parse(raw))
        except (OSError, FrameError):
            pass
        finally:
            if gen == self._gen:
                self.lost.set()

    def _handle(self, h: Header, body: bytes) -> None:
        if h.msg_id == M.PLATFORM_REPLY and len(body) == 5:
            serial = int.from_bytes(body[:2], "big")
            out = self.unanswered.pop(serial, None)
            if out is not None and not out.future.done():
                out.future.set_result(body[4])
        elif h.msg_id == M.REGISTER_REPLY and len(body) >= 3:
            if self._registered is not None and not self._registered.done():
                code = body[3:].decode("gbk", errors="replace")
                self._registered.set_result((body[2], code))
        elif h.msg_id == M.TEXT and body:
            text = body[2:] if self.v2019 else body[1:]
            self.texts.append(text.decode("gbk", errors="replace"))
            self._answer(M.GENERAL_REPLY, M.general_reply(h.serial, h.msg_id, M.OK))
        elif h.msg_id == M.POSITION_QUERY:
            if self.position is None:
                self._answer(M.GENERAL_REPLY, M.general_reply(h.serial, h.msg_id, M.UNSUPPORTED))
            else:
                self._answer(M.QUERY_REPLY, h.serial.to_bytes(2, "big") + self.position())

    def _answer(self, msg_id: int, body: bytes) -> None:
        if self._writer is not None and self.connected:
            self._writer.write(self._frame(msg_id, body, self._next()))
