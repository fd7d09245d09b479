"""JT/T 808 gateway fixtures: a real `fleet jt808` process on `mq_db`, raw TCP clients, and
terminals of the seeded fleet turned into JT/T 808 terminals with SIM numbers.

- `gateway` (module): one gateway process on a free port, shared by a module's tests.
- `gateways` (per test): start gateways with their own settings (`.start(**env)`); killed
  at teardown.
- `jt808_terminals(n, code=...)`: n fresh terminals of the seed (each bound to its vehicle)
  made JT/T 808 with phone `0139<vehicle id:08>`; with `code`, that authentication code is
  stored (hashed) as if the terminal had registered. The gateway is notified.
- `Client`: raw frames over TCP (tests/telematics/jt808/frames.py encodes them).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import subprocess
import threading
import time
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass

import asyncpg
import pytest

from fleet.config import Settings
from telematics.broker.credentials import hash_code
from tests.telematics.conftest import FLEET_BIN, free_port
from tests.telematics.jt808 import frames as F


class GatewayProcess:
    def __init__(self, settings: Settings, port: int | None = None, **env: str) -> None:
        self.port = port or free_port()
        self.name = f"gw-{self.port}"
        full = {
            **os.environ,
            "FLEET_DB__NAME": settings.db.name,
            "FLEET_DB__HOST": settings.db.host,
            "FLEET_DB__PORT": str(settings.db.port),
            "FLEET_JT808__HOST": "127.0.0.1",
            "FLEET_JT808__PORT": str(self.port),
            "FLEET_JT808__NAME": self.name,
            **env,
        }
        self.lines: list[str] = []
        self.proc = subprocess.Popen(
            [FLEET_BIN, "jt808"], env=full, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
            text=True,
        )  # fmt: skip
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        assert self.proc.stderr is not None
        for line in self.proc.stderr:
            self.lines.append(line.rstrip())

    def wait_for(self, text: str, timeout: float = 30.0, *, after: int = 0) -> str:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for line in self.lines[after:]:
                if text in line:
                    return line
            if self.proc.poll() is not None:
                raise AssertionError(f"gateway exited {self.proc.returncode}:\n{self.log()}")
            time.sleep(0.05)
        raise AssertionError(f"gateway: no {text!r} within {timeout}s:\n{self.log()}")

    def wait_ready(self) -> GatewayProcess:
        self.wait_for("event='jt808.ready'", 60)
        return self

    def log(self, last: int = 60) -> str:
        return "\n".join(self.lines[-last:])

    def kill9(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait(10)

    def terminate(self) -> int:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        return self.proc.returncode


class Gateways:
    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.procs: list[GatewayProcess] = []

    def start(self, *, ready: bool = True, port: int | None = None, **env: str) -> GatewayProcess:
        p = GatewayProcess(self.settings, port, **env)
        self.procs.append(p)
        return p.wait_ready() if ready else p

    def close(self) -> None:
        for p in self.procs:
            p.kill9()


@pytest.fixture
def gateways(mq_settings: Settings) -> Iterator[Gateways]:
    g = Gateways(mq_settings)
    yield g
    g.close()


@pytest.fixture(scope="module")
def gateway(mq_settings: Settings) -> Iterator[GatewayProcess]:
    g = Gateways(mq_settings)
    yield g.start(FLEET_JT808__COMMAND_POLL_S="1")
    g.close()


@dataclass
class Jt808Terminal:
    id: str
    vehicle_id: int
    phone: str
    code: str | None


def phone_of(vehicle_id: int) -> str:
    return f"0139{vehicle_id:08d}"


async def make_jt808(
    dsn: str, terminal_ids: list[str], code: str | None = None
) -> list[Jt808Terminal]:
    conn = await asyncpg.connect(dsn)
    try:
        out = []
        for tid in terminal_ids:
            vid = int(tid[2:])
            await conn.execute(
                "UPDATE terminals SET protocol = 'jt808', phone = $2, auth_code_hash = $3,"
                " registered_at = CASE WHEN $3::text IS NULL THEN NULL ELSE now() END"
                " WHERE id = $1",
                tid,
                phone_of(vid),
                hash_code(code) if code else None,
            )
            await conn.execute("SELECT pg_notify('fleet_terminal_changed', $1)", tid)
            out.append(Jt808Terminal(tid, vid, phone_of(vid), code))
        return out
    finally:
        await conn.close()


@pytest.fixture
def jt808_terminals(
    mq_settings: Settings, terminals: Callable[[int], list[str]]
) -> Callable[..., list[Jt808Terminal]]:
    async def make(n: int, code: str | None = "code-0123456789") -> list[Jt808Terminal]:
        made = await make_jt808(mq_settings.db.dsn(), terminals(n), code)
        await asyncio.sleep(0.3)  # the gateway hears the notification
        return made

    return make


class Client:
    """A raw TCP connection to the gateway; frames in, replies out (bounded waits)."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader, self.writer = reader, writer
        self.buf = b""
        self.replies: list[F.Reply] = []

    @classmethod
    async def open(cls, port: int) -> Client:
        r, w = await asyncio.wait_for(asyncio.open_connection("127.0.0.1", port), 10)
        return cls(r, w)

    async def send(self, *frames: bytes) -> None:
        self.writer.write(b"".join(frames))
        await self.writer.drain()

    async def read(self, n: int = 1, within_s: float = 10.0) -> list[F.Reply]:
        """The next n frames from the gateway."""
        deadline = time.monotonic() + within_s
        while len(self.replies) < n:
            left = deadline - time.monotonic()
            if left <= 0:
                raise AssertionError(f"{len(self.replies)}/{n} replies within {within_s}s")
            try:
                data = await asyncio.wait_for(self.reader.read(65536), left)
            except TimeoutError:
                continue
            if not data:
                raise ConnectionError(f"closed by the gateway after {len(self.replies)}/{n}")
            got, self.buf = F.read_frames(self.buf + data)
            self.replies.extend(got)
        out, self.replies = self.replies[:n], self.replies[n:]
        return out

    async def closed(self, within_s: float = 5.0) -> bool:
        """Whether the gateway closes the connection within timeout (frames are dropped)."""
        deadline = time.monotonic() + within_s
        while time.monotonic() < deadline:
            try:
                data = await asyncio.wait_for(self.reader.read(65536), deadline - time.monotonic())
            except TimeoutError:
                return False
            except ConnectionError:
                return True
            if not data:
                return True
        return False

    async def auth(self, phone: str, code: str, serial: int = 1, *, v2019: bool = False) -> int:
        body = F.auth_2019(code) if v2019 else code.encode()
        await self.send(F.frame(0x0102, phone, serial, body, v2019=v2019))
        (r,) = await self.read()
        assert r.msg_id == 0x8001 and r.answers == (serial, 0x0102), r
        return r.result

    async def close(self) -> None:
        self.writer.close()
        with contextlib.suppress(Exception):
            await self.writer.wait_closed()


@pytest.fixture
async def connect(gateway: GatewayProcess) -> Callable[..., object]:
    opened: list[Client] = []

    async def make(port: int | None = None) -> Client:
        c = await Client.open(port or gateway.port)
        opened.append(c)
        return c

    yield make
    for c in opened:
        await c.close()


_TERMINAL_COLUMNS = "id, secret_hash, vehicle_id, model, protocol, active, phone, auth_code_hash, registered_at, registration"


@pytest.fixture(autouse=True)
async def restore_terminals(mq_settings: Settings) -> AsyncIterator[None]:
    """The session's shared database gets its terminals back as they were (the MQTT tests
    count them and pick them by id): terminals added here are removed, changed ones reset."""
    conn = await asyncpg.connect(mq_settings.db.dsn())
    try:
        before = await conn.fetch(f"SELECT {_TERMINAL_COLUMNS} FROM terminals")
    finally:
        await conn.close()
    yield
    conn = await asyncpg.connect(mq_settings.db.dsn())
    try:
        async with conn.transaction():
            ids = [r["id"] for r in before]
            await conn.execute("DELETE FROM terminals WHERE NOT (id = ANY($1::text[]))", ids)
            await conn.execute("UPDATE terminals SET vehicle_id = NULL, active = false")
            await conn.executemany(
                "UPDATE terminals SET secret_hash = $2, vehicle_id = $3, model = $4, protocol = $5,"
                " active = $6, phone = $7, auth_code_hash = $8, registered_at = $9,"
                " registration = $10 WHERE id = $1",
                [tuple(r.values()) for r in before],
            )
    finally:
        await conn.close()
