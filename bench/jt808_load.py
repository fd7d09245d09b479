"""JT/T 808 load for the benchmarks: many terminals on cheap asyncio protocols, a gateway
process to measure (CPU and memory from /proc), and provisioning in the rig's database.

The load side is built to cost the machine little next to the gateway: reports are encoded
before the clock starts and written in one write per terminal; answers are only counted
(and checked for result 0 and for the serial they answer).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import resource
import signal
import subprocess
import threading
import time
from collections import Counter
from datetime import datetime, timedelta
from pathlib import Path

import asyncpg

from bench.ingest_common import FLEET_BIN, free_port
from fleet.config import Settings
from telematics.broker.credentials import hash_code
from telematics.jt808 import messages as M
from telematics.jt808.codec import FrameError, Splitter, build, parse, phone_bcd


def raise_fd_limit() -> int:
    """10,000 client sockets here and 10,000 in the gateway (which inherits this limit)."""
    _soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    return hard


def phone(vehicle_id: int) -> str:
    return f"0135{vehicle_id:08d}"


def code(terminal_id: str) -> str:
    return f"bench-{terminal_id}"


async def provision(dsn: str, first: int, n: int) -> list[tuple[str, int, str]]:
    """Terminals GX<first>..GX<first+n-1> become registered JT/T 808 terminals."""
    ids = [f"GX{i:08d}" for i in range(first, first + n)]
    conn = await asyncpg.connect(dsn)
    try:
        await conn.executemany(
            "UPDATE terminals SET protocol = 'jt808', phone = $2, auth_code_hash = $3,"
            " registered_at = now() WHERE id = $1",
            [(tid, phone(int(tid[2:])), hash_code(code(tid))) for tid in ids],
        )
    finally:
        await conn.close()
    return [(tid, int(tid[2:]), phone(int(tid[2:]))) for tid in ids]


class GatewayProc:
    """`fleet jt808` against the rig; CPU seconds and resident memory read from /proc."""

    def __init__(self, settings: Settings, **env: str) -> None:
        self.port = free_port()
        full = {
            **os.environ,
            "FLEET_DB__NAME": settings.db.name,
            "FLEET_JT808__PORT": str(self.port),
            "FLEET_JT808__HEARTBEAT_TIMEOUT_S": "900",
            **env,
        }
        self.lines: list[str] = []
        self.proc = subprocess.Popen(
            [FLEET_BIN, "jt808"], env=full, stderr=subprocess.PIPE, text=True
        )
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        assert self.proc.stderr is not None
        for line in self.proc.stderr:
            self.lines.append(line.rstrip())

    def wait_for(self, text: str, timeout_s: float = 60) -> None:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if any(text in line for line in self.lines):
                return
            if self.proc.poll() is not None:
                raise RuntimeError("gateway exited:\n" + "\n".join(self.lines[-20:]))
            time.sleep(0.05)
        raise TimeoutError(f"gateway: no {text!r}")

    def cpu_s(self) -> float:
        fields = Path(f"/proc/{self.proc.pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    def rss_kib(self) -> int:
        for line in Path(f"/proc/{self.proc.pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
        return 0

    def stop(self) -> str:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(60)
            except subprocess.TimeoutExpired:
                self.proc.kill()
        return next((x for x in reversed(self.lines) if "jt808.stopped" in x), "")


class Term(asyncio.Protocol):
    """One terminal: counts answers (result 0 and the serials they answer)."""

    def __init__(self, phone_: str, v2019: bool) -> None:
        self.raw = phone_bcd(phone_, v2019=v2019)
        self.version = 1 if v2019 else None
        self.transport: asyncio.Transport | None = None
        self.splitter = Splitter()
        self.results: Counter[int] = Counter()
        self.answered: set[int] = set()
        self.want = 0
        self.done = asyncio.Event()
        self.auth: asyncio.Future[int] | None = None
        self.serial = 0

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport

    def data_received(self, data: bytes) -> None:
        try:
            frames = self.splitter.feed(data)
        except FrameError:
            return
        for raw in frames:
            with contextlib.suppress(FrameError):
                h, body = parse(raw)
                if h.msg_id != M.PLATFORM_REPLY or len(body) != 5:
                    continue
                serial, msg_id, result = M.parse_general_reply(body)
                if msg_id == M.AUTHENTICATE:
                    if self.auth is not None and not self.auth.done():
                        self.auth.set_result(result)
                    continue
                self.results[result] += 1
                self.answered.add(serial)
        if self.want and len(self.answered) >= self.want:
            self.done.set()

    def connection_lost(self, exc: Exception | None) -> None:
        self.done.set()
        if self.auth is not None and not self.auth.done():
            self.auth.set_exception(ConnectionError("closed"))

    def frame(self, msg_id: int, body: bytes) -> bytes:
        self.serial = (self.serial + 1) & 0xFFFF
        return build(msg_id, self.raw, self.serial, body, version=self.version)

    async def login(self, terminal_id: str) -> int:
        self.auth = asyncio.get_running_loop().create_future()
        body = M.auth_body(code(terminal_id), v2019=self.version is not None, imei="1" * 15)
        assert self.transport is not None
        self.transport.write(self.frame(M.AUTHENTICATE, body))
        return await asyncio.wait_for(self.auth, 60)


async def connect_all(
    port: int, fleet: list[tuple[str, int, str]], *, concurrency: int = 400
) -> list[Term]:
    """Connect and authenticate every terminal (a third of them speak 2019)."""
    loop = asyncio.get_running_loop()
    slots = asyncio.Semaphore(concurrency)

    async def one(k: int, tid: str, ph: str) -> Term:
        async with slots:
            for attempt in range(5):
                try:
                    _, term = await loop.create_connection(
                        lambda: Term(ph, k % 3 == 0), "127.0.0.1", port
                    )
                    if await term.login(tid) != 0:
                        raise RuntimeError(f"{tid}: authentication refused")
                    return term
                except (OSError, TimeoutError, ConnectionError):
                    await asyncio.sleep(0.5 * (attempt + 1))
            raise RuntimeError(f"{tid}: could not connect")

    return list(await asyncio.gather(*(one(k, t, p) for k, (t, _, p) in enumerate(fleet))))


def location_frames(term: Term, t0: datetime, n: int, j: int, *, per_frame: int = 1) -> bytes:
    """n reports 10 s apart, one 0x0200 each, or 0x0704 frames of `per_frame` reports."""
    bodies = [
        M.location_body(
            t0 + timedelta(seconds=10 * k),
            22.5 + j * 0.01 + k * 1e-4,
            108.0 + j * 0.01 + k * 1e-4,
            speed_kmh=40,
            heading_deg=45,
            odometer_km=1000 + k * 0.1,
            sats=10,
        )
        for k in range(n)
    ]
    if per_frame == 1:
        return b"".join(term.frame(M.LOCATION, b) for b in bodies)
    return b"".join(
        term.frame(M.BATCH, M.batch_body(bodies[i : i + per_frame], 1))
        for i in range(0, n, per_frame)
    )
