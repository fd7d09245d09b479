"""`fleet simulate --protocol jt808`: JT/T 808 terminals driving over TCP to the gateway.

The vehicles move as in the MQTT simulator (telematics/simulator.py `Vehicle`). Each terminal
connects to the gateway, registers on its first connection (0x0100; a terminal registered
before logs in with its pre-shared code, the secret derived from FLEET_SEED__TERMINAL_KEY),
authenticates (0x0102), then reports a location (0x0200) every interval on the second (the
standard's time has one-second resolution, so reports leave on the second and their age
on a console is measured from when they left). A share of terminals drive through blind
areas: the connection goes down, points are buffered, and on reconnecting the backlog goes
up as 0x0704 type 1 (25 points per frame) before live reports resume. Unanswered messages
are re-sent after each login (telematics/jt808/terminal.py). Some alarms on request.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import random
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import partial

import asyncpg

from fleet.audit import Actor, record
from fleet.config import Settings
from fleet.logging import get_logger
from telematics.broker.credentials import derived_secret
from telematics.jt808 import messages as M
from telematics.jt808.config import Jt808Settings
from telematics.jt808.repository import TERMINAL_CHANGED
from telematics.jt808.terminal import Terminal, Unanswered
from telematics.simulator import Counters, Place, SimConfig, Vehicle, _nearby

log = get_logger("jt808.simulate")

BACKLOG_PER_FRAME = 25  # 25 locations of 39 bytes fit one 0x0704 body (max 1,023 bytes)
ALARM_BITS = (0, 1, 2, 8)  # SOS, overspeed, fatigue, main power cut


@dataclass(frozen=True)
class Jt808Sim:
    host: str
    port: int
    alarm_share: float = 0.0  # chance per report that an alarm episode starts
    reply_timeout_s: float = 10.0
    heartbeat_s: float = 60.0
    gap_chance: float = 0.01  # chance per report that a gappy terminal enters a blind area
    gap_s: tuple[float, float] = (60.0, 300.0)  # how long a blind area lasts


def demo_phone(vehicle_id: int) -> str:
    return f"0144{vehicle_id:08d}"


async def provision_demo(settings: Settings, n: int, seed: int) -> int:
    """Demo data: make sure `n` terminals of the demo fleet speak JT/T 808.

    Taken from the far end of the MQTT simulator's order (`md5(id || seed)` descending), so
    the two simulators never drive the same vehicle; audited; the gateways are notified.
    """
    conn = await asyncpg.connect(settings.db.dsn(), server_settings={"application_name": "cli"})
    try:
        async with conn.transaction():
            have = await conn.fetchval(
                "SELECT count(*) FROM terminals WHERE protocol = 'jt808' AND active"
            )
            if have >= n:
                return 0
            rows = await conn.fetch(
                "SELECT id, vehicle_id FROM terminals WHERE protocol = 'mqtt-json' AND active"
                " AND vehicle_id IS NOT NULL ORDER BY md5(id || $2::text) DESC LIMIT $1",
                n - have,
                str(seed),
            )
            for r in rows:
                phone = demo_phone(r["vehicle_id"])
                await conn.execute(
                    "UPDATE terminals SET protocol = 'jt808', phone = $2, updated_at = now()"
                    " WHERE id = $1",
                    r["id"],
                    phone,
                )
                await record(
                    conn,
                    Actor("simulator"),
                    "terminal.update",
                    "terminal",
                    r["id"],
                    data={"protocol": "jt808", "phone": phone, "why": "demo"},
                )
                await conn.execute("SELECT pg_notify($1, $2)", TERMINAL_CHANGED, r["id"])
            return len(rows)
    finally:
        await conn.close()


async def load_fleet(
    settings: Settings, n: int, seed: int
) -> tuple[list[tuple[str, str, str, Place]], list[Place]]:
    """(terminal id, phone, plate, home) of up to n active JT/T 808 terminals, and places."""
    conn = await asyncpg.connect(
        settings.db.dsn(), server_settings={"application_name": "simulator"}
    )
    try:
        rows = await conn.fetch(
            "SELECT t.id, t.phone, v.plate, ST_X(v.depot) AS lon, ST_Y(v.depot) AS lat,"
            " o.path::text AS path FROM terminals t JOIN vehicles v ON v.id = t.vehicle_id"
            " JOIN orgs o ON o.id = v.unit_id WHERE t.active AND t.protocol = 'jt808'"
            " ORDER BY md5(t.id || $2::text) LIMIT $1",
            n,
            str(seed),
        )
        places = await conn.fetch(
            "SELECT ST_X(location) AS lon, ST_Y(location) AS lat, path::text AS path FROM orgs"
            " WHERE location IS NOT NULL AND kind IN ('city', 'county', 'unit')"
        )
    finally:
        await conn.close()
    fleet = [(r["id"], r["phone"], r["plate"], Place(r["lon"], r["lat"], r["path"])) for r in rows]
    return fleet, [Place(p["lon"], p["lat"], p["path"]) for p in places]


def _location(v: Vehicle, now: float, alarm: int) -> bytes:
    return M.location_body(
        datetime.fromtimestamp(math.floor(now), UTC),
        v.lat,
        v.lon,
        speed_kmh=v.speed_kmh,
        heading_deg=v.heading_deg,
        alt_m=80 + 40 * math.sin(v.lon * 50),
        acc=v.acc,
        fix=True,
        alarm=alarm,
        odometer_km=v.odometer_km,
        sats=v.rng.randint(7, 14),
    )


async def run_terminal(
    sim: Jt808Sim,
    cfg: SimConfig,
    v: Vehicle,
    phone: str,
    plate: str,
    key: str,
    counters: Counters,
    slots: asyncio.Semaphore,
    stop: asyncio.Event,
) -> None:
    """One terminal's life: connect, register or log in, report, drive through blind areas."""
    rng = v.rng
    t = Terminal(sim.host, sim.port, phone, v2019=rng.random() < 0.3,
                 reply_timeout_s=sim.reply_timeout_s)  # fmt: skip
    t.position = lambda: _location(v, time.time(), 0)
    code = derived_secret(key, v.terminal_id)
    tried_register = False
    gappy = rng.random() < cfg.gap_share
    alarm: int = 0
    alarm_until: float = 0.0
    await asyncio.sleep(rng.uniform(0, cfg.interval_s))
    last = time.time()
    v.start(last)

    def done(fut: asyncio.Future[int]) -> None:
        if not fut.cancelled() and fut.exception() is None and fut.result() == M.OK:
            counters.acked += 1

    while not stop.is_set():
        try:
            async with slots:
                await t.connect()
            if not tried_register:
                tried_register = True
                reg = M.Registration(45, 100, "FLEET", "JT808-SIM", v.terminal_id[-7:], 1, plate)
                result, issued = await t.register(reg)
                if result == M.REG_OK:
                    code = issued
            if await t.authenticate(code) != M.OK:
                counters.errors += 1
                raise Unanswered("authentication refused")
            counters.connected += 1
            try:
                t.resend_unanswered()
                backlog, v.buffered = v.buffered, []
                for k in range(0, len(backlog), BACKLOG_PER_FRAME):
                    locs = [b["body"] for b in backlog[k : k + BACKLOG_PER_FRAME]]
                    fut = t.submit(M.BATCH, M.batch_body(locs, 1))
                    fut.add_done_callback(partial(_done_many, len(locs), counters))
                    counters.buffered_uploads += 1
                next_at: float = math.ceil(time.time())
                quiet_since = time.monotonic()
                while not stop.is_set() and t.connected:
                    await asyncio.sleep(max(0.0, next_at - time.time()))  # cheap: no task
                    if stop.is_set():
                        break
                    now = time.time()
                    next_at += cfg.interval_s
                    v.step(now, now - last)
                    last = now
                    if alarm and now > alarm_until:
                        alarm = 0
                    elif not alarm and sim.alarm_share and rng.random() < sim.alarm_share:
                        alarm, alarm_until = 1 << rng.choice(ALARM_BITS), now + rng.uniform(30, 120)
                    body = _location(v, now, alarm)
                    if gappy and not v.gap_until and rng.random() < sim.gap_chance:
                        v.gap_until = now + rng.uniform(*sim.gap_s)  # a blind area: link down
                    if v.gap_until and now < v.gap_until:
                        v.buffered.append({"body": body})
                        t.drop()
                        break
                    v.gap_until = 0.0
                    counters.published += 1
                    t.submit(M.LOCATION, body).add_done_callback(done)
                    if time.monotonic() - quiet_since > sim.heartbeat_s:
                        quiet_since = time.monotonic()
                        t.submit(M.HEARTBEAT, b"")
            finally:
                counters.connected -= 1
            while v.gap_until and time.time() < v.gap_until and not stop.is_set():
                now = time.time()  # still in the blind area: keep driving and buffering
                v.step(now, now - last)
                last = now
                v.buffered.append({"body": _location(v, now, alarm)})
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stop.wait(), cfg.interval_s)
        except (OSError, Unanswered, TimeoutError) as exc:
            counters.errors += 1
            log.debug("simulate.reconnect", terminal=v.terminal_id, error=repr(exc))
            t.drop()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), rng.uniform(2, 6))
    await t.close()


def _done_many(n: int, counters: Counters, fut: asyncio.Future[int]) -> None:
    if not fut.cancelled() and fut.exception() is None and fut.result() == M.OK:
        counters.acked += n


async def run_simulation(
    settings: Settings, cfg: SimConfig, *, provision: bool = False, alarm_share: float = 0.0
) -> Counters:
    key = settings.seed.terminal_key.get_secret_value()
    if not key:
        raise SystemExit("FLEET_SEED__TERMINAL_KEY is not set (scripts/setup.sh writes it)")
    if provision:
        made = await provision_demo(settings, cfg.vehicles, cfg.seed)
        if made:
            log.info("simulate.provisioned", jt808_terminals=made)
    gw = Jt808Settings()
    sim = Jt808Sim(gw.host, gw.port, alarm_share=alarm_share)
    fleet, places = await load_fleet(settings, cfg.vehicles, cfg.seed)
    counters = Counters()
    stop = asyncio.Event()
    if not fleet:  # keep running (a demo process that exits stops the demo)
        log.warning("simulate.no_jt808_terminals", hint="run with --provision or add terminals")
    vehicles = []
    for tid, phone, plate, home in fleet:
        vrng = random.Random(f"{cfg.seed}:{tid}")
        near = _nearby(home, places, vrng) or [home]
        vehicles.append((Vehicle(tid, home, near, vrng, epoch_ms=False), phone, plate))
    slots = asyncio.Semaphore(max(1, cfg.connect_rate // 5))
    log.info(
        "simulate.start",
        protocol="jt808",
        terminals=len(vehicles),
        gateway=f"{sim.host}:{sim.port}",
    )
    tasks = [
        asyncio.create_task(run_terminal(sim, cfg, v, phone, plate, key, counters, slots, stop))
        for v, phone, plate in vehicles
    ]
    started = time.monotonic()
    try:
        while True:
            left = cfg.duration_s - (time.monotonic() - started) if cfg.duration_s else 10.0
            if left <= 0:
                break
            await asyncio.sleep(min(10.0, left))
            log.info("simulate.stats", protocol="jt808", **counters.__dict__)
    finally:
        stop.set()
        if tasks:
            await asyncio.wait(tasks, timeout=15)
        for task in tasks:
            task.cancel()
        log.info("simulate.stopped", protocol="jt808", **counters.__dict__)
    return counters
