"""`fleet simulate`: terminals driving plausible trips between real places of the region.

Every simulated terminal is a separate MQTT connection that logs in as itself (username =
terminal id, password derived from FLEET_SEED__TERMINAL_KEY) and publishes QoS 1 pings to
its own topic, exactly like a real one. One asyncio process multiplexes the connections
(aiomqtt on paho: one socket and a few small objects per terminal; 2,000 terminals use
~2,000 file descriptors, far below this machine's limit).

Movement: a vehicle parks at a place (its depot, its unit, a county seat...), then drives
to another along a road-like polyline (a meandering line with bends every ~1.5 km), at
speeds by road type: urban ~30-50 km/h near both ends, arterial ~50-70, highway ~80-110
in the middle of long trips, with the occasional stop at lights. Ignition (`acc`) is on
while driving, off while parked; the odometer accumulates the distance driven.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import random
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import aiomqtt
import asyncpg
import orjson

from fleet.config import Settings
from fleet.logging import get_logger
from telematics.broker.credentials import derived_secret
from telematics.ingest.schemas import MAX_ARRAY_PINGS, MAX_MESSAGE_BYTES

log = get_logger("telematics.simulator")

CST = timezone(timedelta(hours=8))
M_PER_DEG_LAT = 110_540.0


@dataclass(frozen=True)
class SimConfig:
    vehicles: int = 200
    interval_s: float = 10.0
    gap_share: float = 0.05  # share of terminals that go through a coverage gap
    bad_share: float = 0.0  # share of pings that are malformed / out of range
    duration_s: float = 0.0  # 0 = run until cancelled
    seed: int = 1
    connect_rate: int = 200  # new connections per second


@dataclass(frozen=True)
class Place:
    lon: float
    lat: float
    path: str  # org path (ltree text)


def _xy(lon: float, lat: float, lat0: float) -> tuple[float, float]:
    return lon * 111_320.0 * math.cos(math.radians(lat0)), lat * M_PER_DEG_LAT


def _dist_m(a: tuple[float, float], b: tuple[float, float]) -> float:
    lat0 = (a[1] + b[1]) / 2
    ax, ay = _xy(a[0], a[1], lat0)
    bx, by = _xy(b[0], b[1], lat0)
    return math.hypot(bx - ax, by - ay)


def road_path(
    rng: random.Random, a: tuple[float, float], b: tuple[float, float]
) -> list[tuple[float, float]]:
    """A road-like polyline from a to b: bends every ~1.5 km, a smooth random lateral drift."""
    d = _dist_m(a, b)
    n = max(2, int(d / 1_500))
    lat0 = (a[1] + b[1]) / 2
    kx = 111_320.0 * math.cos(math.radians(lat0))
    # unit normal to a->b in metres
    dx, dy = (b[0] - a[0]) * kx, (b[1] - a[1]) * M_PER_DEG_LAT
    norm = math.hypot(dx, dy) or 1.0
    nx, ny = -dy / norm, dx / norm
    amp = min(0.08 * d, 3_000.0)
    pts = [a]
    off = 0.0
    for i in range(1, n):
        f = i / n
        off = 0.7 * off + rng.gauss(0, amp / 2)
        taper = math.sin(math.pi * f)  # no drift at either end
        ox, oy = nx * off * taper, ny * off * taper
        pts.append(
            (a[0] + (b[0] - a[0]) * f + ox / kx, a[1] + (b[1] - a[1]) * f + oy / M_PER_DEG_LAT)
        )
    pts.append(b)
    return pts


def _bearing(a: tuple[float, float], b: tuple[float, float]) -> float:
    lat0 = (a[1] + b[1]) / 2
    dx = (b[0] - a[0]) * 111_320.0 * math.cos(math.radians(lat0))
    dy = (b[1] - a[1]) * M_PER_DEG_LAT
    return (math.degrees(math.atan2(dx, dy)) + 360) % 360


@dataclass
class Vehicle:
    """One simulated vehicle: position, route, ignition, odometer, coverage gap buffer."""

    terminal_id: str
    home: Place
    places: list[Place]  # where it may go (own county first)
    rng: random.Random
    epoch_ms: bool  # this terminal model reports ts as epoch milliseconds
    lon: float = 0.0
    lat: float = 0.0
    odometer_km: float = 0.0
    heading_deg: float = 0.0
    speed_kmh: float = 0.0
    acc: bool = False
    seq: int = 0
    route: list[tuple[float, float]] = field(default_factory=list)
    leg: int = 0  # index of the route point we are heading to
    total_m: float = 0.0
    done_m: float = 0.0
    parked_until: float = 0.0
    gap_until: float = 0.0
    buffered: list[dict[str, Any]] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.lon, self.lat = self.home.lon, self.home.lat
        self.odometer_km = round(self.rng.uniform(5_000, 150_000), 1)
        self.heading_deg = self.rng.uniform(0, 360)

    def start(self, now: float) -> None:
        if self.rng.random() < 0.5:
            self._depart()
        else:
            self.parked_until = now + self.rng.uniform(0, 600)

    def _depart(self) -> None:
        r = self.rng.random()
        local = [p for p in self.places if p.path.startswith(self.home.path.rsplit(".", 1)[0])]
        pool = local if (r < 0.75 and local) else self.places
        dest = self.rng.choice(pool)
        if _dist_m((self.lon, self.lat), (dest.lon, dest.lat)) < 300:
            dest = self.home
        self.route = road_path(self.rng, (self.lon, self.lat), (dest.lon, dest.lat))
        self.leg = 1
        self.total_m = sum(_dist_m(a, b) for a, b in zip(self.route, self.route[1:], strict=False))
        self.done_m = 0.0
        self.acc = True

    def _target_speed(self) -> float:
        to_end = self.total_m - self.done_m
        if self.done_m < 2_000 or to_end < 2_000:
            return self.rng.uniform(30, 50)  # urban
        if self.total_m > 15_000:
            return self.rng.uniform(80, 110)  # highway
        return self.rng.uniform(50, 70)  # arterial

    def step(self, now: float, dt: float) -> None:
        if not self.route:
            self.speed_kmh = 0.0
            if now >= self.parked_until:
                self._depart()
            return
        if self.rng.random() < 0.05 and self.done_m < 2_000:
            self.speed_kmh = 0.0  # waiting at lights
            return
        self.speed_kmh = 0.6 * self.speed_kmh + 0.4 * self._target_speed()
        move = self.speed_kmh / 3.6 * dt
        while move > 0 and self.leg < len(self.route):
            here, nxt = (self.lon, self.lat), self.route[self.leg]
            seg = _dist_m(here, nxt)
            self.heading_deg = _bearing(here, nxt) if seg > 1 else self.heading_deg
            if seg <= move:
                self.lon, self.lat = nxt
                self.leg += 1
                move -= seg
                self.done_m += seg
                self.odometer_km += seg / 1000
            else:
                f = move / seg
                self.lon += (nxt[0] - self.lon) * f
                self.lat += (nxt[1] - self.lat) * f
                self.done_m += move
                self.odometer_km += move / 1000
                move = 0
        if self.leg >= len(self.route):  # arrived: park a while, ignition off
            self.route = []
            self.speed_kmh = 0.0
            self.acc = False
            self.parked_until = now + self.rng.uniform(120, 1_800)

    def ping(self, now: float) -> dict[str, Any]:
        self.seq += 1
        ts: Any
        if self.epoch_ms:
            ts = int(now * 1000)
        else:
            ts = datetime.fromtimestamp(now, tz=CST).isoformat(timespec="milliseconds")
        return {
            "ts": ts,
            "lat": round(self.lat, 6),
            "lon": round(self.lon, 6),
            "speed_kmh": round(self.speed_kmh, 1),
            "heading_deg": round(self.heading_deg, 1),
            "alt_m": round(80 + 40 * math.sin(self.lon * 50), 1),
            "odometer_km": round(self.odometer_km, 3),
            "acc": self.acc,
            "fix": True,
            "sats": self.rng.randint(7, 14),
            "alarm": 0,
            "seq": self.seq,
        }


def backlog_arrays(pings: list[dict[str, Any]]) -> list[bytes]:
    """A backlog as `/positions` messages within the contract: at most MAX_ARRAY_PINGS pings
    and MAX_MESSAGE_BYTES each, oldest first (a larger one the broker refuses outright)."""
    out: list[bytes] = []
    for k in range(0, len(pings), MAX_ARRAY_PINGS):
        _encode_within(pings[k : k + MAX_ARRAY_PINGS], out)
    return out


def _encode_within(chunk: list[dict[str, Any]], out: list[bytes]) -> None:
    body = orjson.dumps(chunk)
    if len(body) <= MAX_MESSAGE_BYTES or len(chunk) == 1:
        out.append(body)
        return
    half = len(chunk) // 2
    _encode_within(chunk[:half], out)
    _encode_within(chunk[half:], out)


def spoil(rng: random.Random, ping: dict[str, Any]) -> bytes:
    """A bad ping of a random kind (the ingest must reject it with a reason)."""
    kind = rng.randrange(5)
    if kind == 0:
        return orjson.dumps(ping)[:-7]  # truncated JSON
    bad = dict(ping)
    if kind == 1:
        bad["lat"] = 95.0
    elif kind == 2:
        bad.pop("lon")
    elif kind == 3:
        bad["ts"] = (datetime.now(UTC) + timedelta(hours=2)).isoformat()
    else:
        bad["speed_kmh"] = "n/a"
    return orjson.dumps(bad)


@dataclass
class Counters:
    connected: int = 0
    published: int = 0
    acked: int = 0
    buffered_uploads: int = 0
    bad: int = 0
    errors: int = 0


async def load_fleet(
    settings: Settings, n: int, seed: int
) -> tuple[list[tuple[str, Place]], list[Place]]:
    conn = await asyncpg.connect(
        settings.db.dsn(), server_settings={"application_name": "simulator"}
    )
    try:
        rows = await conn.fetch(
            "SELECT t.id, ST_X(v.depot) AS lon, ST_Y(v.depot) AS lat, o.path::text AS path"
            " FROM terminals t JOIN vehicles v ON v.id = t.vehicle_id"
            " JOIN orgs o ON o.id = v.unit_id WHERE t.active AND t.protocol = 'mqtt-json'"
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
    fleet = [(r["id"], Place(r["lon"], r["lat"], r["path"])) for r in rows]
    return fleet, [Place(p["lon"], p["lat"], p["path"]) for p in places]


def _nearby(home: Place, places: list[Place], rng: random.Random) -> list[Place]:
    """Places in the vehicle's county, plus a few seats farther away in its city."""
    county = ".".join(home.path.split(".")[:3])
    city = ".".join(home.path.split(".")[:2])
    local = [p for p in places if p.path.startswith(county)]
    wider = [p for p in places if p.path.startswith(city) and p.path.count(".") <= 2]
    return local + rng.sample(wider, min(5, len(wider)))


async def run_terminal(
    settings: Settings,
    cfg: SimConfig,
    v: Vehicle,
    key: str,
    counters: Counters,
    connect_slots: asyncio.Semaphore,
    stop: asyncio.Event,
) -> None:
    """One terminal's life: connect as itself, ping every interval, reconnect on failure."""
    m = settings.mqtt
    topic = f"{m.topic_prefix}/{v.terminal_id}"
    rng = v.rng
    gappy = rng.random() < cfg.gap_share
    await asyncio.sleep(rng.uniform(0, cfg.interval_s))  # spread the fleet over the interval
    last = time.time()
    v.start(last)
    while not stop.is_set():
        try:
            async with connect_slots:
                client = aiomqtt.Client(
                    m.host,
                    m.port,
                    username=v.terminal_id,
                    password=derived_secret(key, v.terminal_id),
                    identifier=v.terminal_id,
                    keepalive=60,
                    timeout=30,
                )
                await client.__aenter__()
            counters.connected += 1
            try:
                while not stop.is_set():
                    now = time.time()
                    v.step(now, now - last)
                    last = now
                    ping = v.ping(now)
                    if gappy and not v.gap_until and rng.random() < 0.01:
                        v.gap_until = now + rng.uniform(60, 300)  # entering a dead zone
                    if v.gap_until and now < v.gap_until:
                        v.buffered.append(ping)
                    else:
                        if v.buffered:  # back in coverage: upload the buffer (in arrays
                            # within the contract's limits), then carry on live
                            batch = v.buffered
                            for body in backlog_arrays(batch):
                                await client.publish(f"{topic}/positions", body, qos=1)
                                counters.buffered_uploads += 1
                            v.buffered = []
                            counters.acked += len(batch)
                        v.gap_until = 0.0
                        bad = bool(cfg.bad_share) and rng.random() < cfg.bad_share
                        body = spoil(rng, ping) if bad else orjson.dumps(ping)
                        counters.bad += bad
                        counters.published += 1
                        await client.publish(f"{topic}/position", body, qos=1, timeout=30)
                        counters.acked += 1
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(stop.wait(), cfg.interval_s)
            finally:
                counters.connected -= 1
                await client.__aexit__(None, None, None)
        except (aiomqtt.MqttError, OSError, TimeoutError) as exc:
            counters.errors += 1
            log.debug("simulate.reconnect", terminal=v.terminal_id, error=str(exc))
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), rng.uniform(2, 6))


async def run_simulation(settings: Settings, cfg: SimConfig) -> Counters:
    """Run the fleet until duration_s elapses (or forever with 0); returns the counters."""
    key = settings.seed.terminal_key.get_secret_value()
    if not key:
        raise SystemExit("FLEET_SEED__TERMINAL_KEY is not set (scripts/setup.sh writes it)")
    fleet, places = await load_fleet(settings, cfg.vehicles, cfg.seed)
    if not fleet:
        raise SystemExit("no terminals in the database: run `fleet seed` first")
    vehicles = []
    for tid, home in fleet:
        vrng = random.Random(f"{cfg.seed}:{tid}")
        near = _nearby(home, places, vrng) or [home]
        vehicles.append(Vehicle(tid, home, near, vrng, epoch_ms=vrng.random() < 0.3))
    counters = Counters()
    stop = asyncio.Event()
    slots = asyncio.Semaphore(max(1, cfg.connect_rate // 5))
    log.info(
        "simulate.start",
        terminals=len(vehicles),
        interval_s=cfg.interval_s,
        gap_share=cfg.gap_share,
        bad_share=cfg.bad_share,
        broker=f"{settings.mqtt.host}:{settings.mqtt.port}",
    )
    tasks = [
        asyncio.create_task(run_terminal(settings, cfg, v, key, counters, slots, stop))
        for v in vehicles
    ]
    started = time.monotonic()
    try:
        while True:
            left = cfg.duration_s - (time.monotonic() - started) if cfg.duration_s else 10.0
            if left <= 0:
                break
            await asyncio.sleep(min(10.0, left))
            log.info("simulate.stats", **counters.__dict__)
    finally:
        stop.set()
        await asyncio.wait(tasks, timeout=15)
        for t in tasks:
            t.cancel()
        log.info("simulate.stopped", **counters.__dict__)
    return counters
