"""The live contract through the real pipeline: terminal → broker → `fleet ingest` → Redis →
`fleet serve` websocket, all real processes.

The defect (issue 9, item 4): after a buffered upload one frame carried 12 positions of one
vehicle, all two hours older than its live position. The contract (DESIGN §2, live
updates): at most one position per vehicle per second per console, never one older than the
last sent for that vehicle, nor older than the vehicle's live position.
"""

from __future__ import annotations

import asyncio
import itertools
import time
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg
import orjson
from websockets.asyncio.client import ClientConnection, connect

from fleet.config import Settings
from fleet.identity.security import issue_token

from .conftest import IngestProcs, ServeProcess
from .test_ingest import now, ping


async def _ids(settings: Settings, terminal: str) -> tuple[int, int]:
    conn = await asyncpg.connect(settings.db.dsn())
    try:
        vid = await conn.fetchval("SELECT vehicle_id FROM terminals WHERE id = $1", terminal)
        admin = await conn.fetchval("SELECT id FROM users WHERE username = 'admin'")
        return int(vid), int(admin)
    finally:
        await conn.close()


async def open_console(serve: ServeProcess, token: str) -> ClientConnection:
    """A console authenticated by its first message (no token in the URL)."""
    ws = await connect(serve.live_url, open_timeout=15, max_size=None)
    await ws.send(orjson.dumps({"type": "auth", "token": token}).decode())
    hello = orjson.loads(await asyncio.wait_for(ws.recv(), 15))
    assert hello["type"] == "hello", hello
    return ws


async def frames_of(
    ws: ClientConnection, vehicle_id: int, seconds: float
) -> list[tuple[float, list[dict[str, Any]]]]:
    """(server sent_at, this vehicle's items) of every positions frame within `seconds`."""
    out: list[tuple[float, list[dict[str, Any]]]] = []
    deadline = time.monotonic() + seconds
    while (left := deadline - time.monotonic()) > 0:
        try:
            raw = await asyncio.wait_for(ws.recv(), left)
        except TimeoutError:
            break
        msg = orjson.loads(raw)
        if msg.get("type") != "positions":
            continue
        mine = [i for i in msg["items"] if i.get("vehicle_id") == vehicle_id]
        if mine:
            out.append((float(msg["sent_at"]), mine))
    return out


async def _wait_live(
    settings: Settings, vehicle_id: int, ts: datetime, bound_s: float = 30.0
) -> None:
    """Until the vehicle's live position is `ts` (committed by the ingest), within a bound."""
    conn = await asyncpg.connect(settings.db.dsn())
    try:
        deadline = time.monotonic() + bound_s
        while time.monotonic() < deadline:
            got = await conn.fetchval(
                "SELECT ts FROM latest_positions WHERE vehicle_id = $1", vehicle_id
            )
            if got is not None and got >= ts:
                return
            await asyncio.sleep(0.2)
        raise AssertionError(f"the live ping of vehicle {vehicle_id} was not stored in {bound_s} s")
    finally:
        await conn.close()


def _ts(item: dict[str, Any]) -> datetime:
    return datetime.fromisoformat(str(item["ts"]).replace("Z", "+00:00"))


async def test_buffered_upload_never_reaches_a_console_as_stale_positions(
    mq_settings: Settings,
    ingest_procs: IngestProcs,
    serve_proc: ServeProcess,
    terminals: Any,
    publisher: Any,
) -> None:
    (tid,) = terminals(1)
    vid, admin = await _ids(mq_settings, tid)
    token = issue_token(mq_settings.auth, admin).access_token
    ingest_procs.start()
    pub = publisher(tid)
    t_live = now() - timedelta(seconds=5)
    assert pub.send("position", [ping(t_live, 0)]) == 1  # the vehicle's live position
    # The live ping has come and gone before the test proper: stored, and any frame of it that
    # reaches the fresh console (a loaded box may publish it after the console opened) drained.
    await _wait_live(mq_settings, vid, t_live.replace(microsecond=0))
    ws = await open_console(serve_proc, token)
    try:
        await frames_of(ws, vid, 1.5)
        # Back in coverage: two hours of buffered pings as one array, then live pings again.
        old = t_live - timedelta(hours=2)
        backlog = [ping(old + timedelta(seconds=10 * k), k) for k in range(12)]
        assert pub.send("positions", [backlog]) == 1
        live = [ping(t_live + timedelta(seconds=k), k) for k in range(1, 4)]
        for p in live:
            assert pub.send("position", [p]) == 1
            await asyncio.sleep(0.3)
        frames = await frames_of(ws, vid, 4.0)
    finally:
        await ws.close()

    assert frames, "no live position reached the console"
    sent = [(at, _ts(i)) for at, items in frames for i in items]
    assert all(len(items) == 1 for _, items in frames), (
        f"a frame carried several positions of vehicle {vid}: {[len(i) for _, i in frames]}"
    )
    stale = [ts for _, ts in sent if ts <= t_live]
    assert not stale, f"positions at or before the live one ({t_live}) were sent: {stale}"
    tss = [ts for _, ts in sent]
    assert tss == sorted(set(tss)), f"a position older than one already sent: {tss}"
    times = [at for at, _ in sent]
    assert all(b - a >= 0.95 for a, b in itertools.pairwise(times)), times
    assert tss[-1] == datetime.fromisoformat(str(live[-1]["ts"])).astimezone(UTC)
