"""Benchmark (c): ping published → seen on a console websocket, 20 consoles, p50/p99.

    python -m bench.live_latency [--vehicles 2000] [--interval 2] [--seconds 40] [--consoles 20]
                                 [--protocol mqtt-json|jt808]

The full path, all real processes: a throw-away seeded database and a private broker (the
project's configuration, bench.ingest_common.rig), one `fleet ingest`, one API server
(`fleet serve`, whose web.live subscriber fans out from Redis), `fleet simulate` driving the
terminals with their own credentials, and N websocket consoles in this process (region
admins, auditors and a city dispatcher). Latency of an item = the console's wall clock when
the message arrived − the ping's own ``ts`` (set by the simulator when it publishes); all
processes share one clock. The first ``--warmup`` seconds are ignored (connections, JIT
caches, partitions). Redis pub/sub is shared with whatever else runs on the machine, so only
items whose ts falls inside the run are counted.

With ``--protocol jt808`` the terminals are JT/T 808 terminals (converted in the bench
database) driven by ``fleet simulate --protocol jt808`` over TCP to one ``fleet jt808``
instead of MQTT to the ingest. Their reports carry whole-second times (the standard's
resolution) and leave on the second, so their age is measured the same way.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import subprocess
import time
import urllib.request
from collections import defaultdict
from datetime import datetime
from typing import Any

import asyncpg
import orjson
from websockets.asyncio.client import connect

from bench.ingest_common import FLEET_BIN, IngestProc, free_port, machine, rig, table
from fleet.identity.security import issue_token
from telematics import bus

# console users created in the bench database: (username, role, org code)
USERS = (
    ("bench.admin", "admin", "450000"),
    ("bench.auditor", "auditor", "450000"),
    ("bench.dispatcher", "dispatcher", "450100"),
)


def _pct(xs: list[float], q: float) -> float:
    s = sorted(xs)
    return s[min(len(s) - 1, max(0, round(q * (len(s) - 1))))] if s else float("nan")


async def _console(
    url: str,
    token: str,
    name: str,
    until: float,
    lat: list[float],
    per_vehicle_second: dict[tuple[str, int, int], int],
    t_start: float,
) -> int:
    n = 0
    async with connect(url, open_timeout=30, max_size=None) as ws:
        # the bearer token in the first frame, never in the URL (web/live_auth.py)
        await ws.send(orjson.dumps({"type": "auth", "token": token}).decode())
        while (left := until - time.time()) > 0:
            try:
                raw = await asyncio.wait_for(ws.recv(), left)
            except TimeoutError:
                break
            now = time.time()
            msg = orjson.loads(raw)
            if msg.get("type") != "positions":
                continue
            for item in msg["items"]:
                ts = datetime.fromisoformat(str(item["ts"])).timestamp()
                if ts < t_start:
                    continue  # not ours (shared Redis) or from before the run
                n += 1
                lat.append(now - ts)
                per_vehicle_second[(name, item["vehicle_id"], int(now))] += 1
    return n


async def _redis_tap(url: str, until: float, lat: list[float], t_start: float) -> None:
    """The same batches as seen on Redis: splits the path into ingest and fan-out."""
    redis = bus.redis_client(url)
    pubsub = redis.pubsub(ignore_subscribe_messages=True)
    await pubsub.subscribe(bus.positions_channel())
    try:
        while (left := until - time.time()) > 0:
            msg = await pubsub.get_message(timeout=min(left, 1.0))
            if msg is None or msg.get("type") != "message":
                continue
            now = time.time()
            for item in orjson.loads(msg["data"]).get("items", []):
                ts = datetime.fromisoformat(str(item["ts"])).timestamp()
                if ts >= t_start:
                    lat.append(now - ts)
    finally:
        await pubsub.aclose()  # type: ignore[no-untyped-call]
        await redis.aclose()


async def _received(dsn: str, t_start: float) -> list[float]:
    """received_at - ts of the stored pings of the measured run: the terminal -> receiver
    leg (the simulator's own delay, the network, the ingest's or gateway's read)."""
    conn = await asyncpg.connect(dsn)
    try:
        rows = await conn.fetch(
            "SELECT extract(epoch FROM received_at - ts)::float8 AS d FROM positions"
            " WHERE ts >= to_timestamp($1)",
            t_start,
        )
        return [r["d"] for r in rows]
    finally:
        await conn.close()


async def _users(dsn: str) -> dict[str, int]:
    """Console users (token login only: the password hash is a placeholder)."""
    conn = await asyncpg.connect(dsn)
    try:
        out = {}
        for username, role, code in USERS:
            org = await conn.fetchval("SELECT id FROM orgs WHERE code = $1", code)
            uid = await conn.fetchval(
                "INSERT INTO users (username, password_hash, display_name, org_id)"
                " VALUES ($1, 'x', $1, $2) RETURNING id",
                username,
                org,
            )
            await conn.execute(
                "INSERT INTO role_bindings (user_id, role, org_id) VALUES ($1, $2, $3)",
                uid,
                role,
                org,
            )
            out[username] = uid
        return out
    finally:
        await conn.close()


def _wait_http(url: str, timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(url, timeout=2) as r:
                if r.status == 200:
                    return
        except OSError:
            time.sleep(0.2)
    raise TimeoutError(f"{url} did not answer within {timeout_s}s")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--vehicles", type=int, default=2000, help="simulated terminals")
    ap.add_argument("--interval", type=float, default=2.0, help="seconds between pings")
    ap.add_argument("--seconds", type=float, default=40.0, help="measured run after warm-up")
    ap.add_argument("--warmup", type=float, default=15.0)
    ap.add_argument("--consoles", type=int, default=20)
    ap.add_argument("--db", default="fleet_live_latbench", help="throw-away database name")
    ap.add_argument("--protocol", choices=("mqtt-json", "jt808"), default="mqtt-json")
    args = ap.parse_args()
    jt808 = args.protocol == "jt808"

    with rig(args.db, vehicles=args.vehicles) as r:
        s = r.settings
        env = {
            **os.environ,
            "FLEET_DB__NAME": s.db.name,
            "FLEET_MQTT__HOST": s.mqtt.host,
            "FLEET_MQTT__PORT": str(s.mqtt.port),
            "FLEET_SEED__TERMINAL_KEY": s.seed.terminal_key.get_secret_value(),
        }
        gateway: Any = None
        if jt808:
            from bench.jt808_load import GatewayProc, raise_fd_limit
            from telematics.jt808.simulate import provision_demo

            raise_fd_limit()
            asyncio.run(provision_demo(s, args.vehicles, 1))
            gateway = GatewayProc(s)
            env["FLEET_JT808__PORT"] = str(gateway.port)
        ingest: Any = gateway or IngestProc(s, "ingest-livebench", "livebench")
        port = free_port()
        api = subprocess.Popen(
            [FLEET_BIN, "serve", "--host", "127.0.0.1", "--port", str(port)],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        sim: subprocess.Popen[bytes] | None = None
        try:
            ingest.wait_for("jt808.ready" if jt808 else "ingest.ready")
            _wait_http(f"http://127.0.0.1:{port}/api/v1/health", 60)
            users = asyncio.run(_users(s.db.owner().dsn()))
            tokens = [
                issue_token(s.auth, users[USERS[i % len(USERS)][0]]).access_token
                for i in range(args.consoles)
            ]
            total = args.warmup + args.seconds
            sim = subprocess.Popen(
                [
                    FLEET_BIN,
                    "simulate",
                    "--vehicles",
                    str(args.vehicles),
                    "--interval",
                    str(args.interval),
                    "--duration",
                    str(total + 5),
                    "--gap",
                    "0",
                    "--bad-share",
                    "0",
                    *(["--protocol", "jt808"] if jt808 else []),
                ],
                env=env,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )
            lat: list[float] = []
            redis_lat: list[float] = []
            per_second: dict[tuple[str, int, int], int] = defaultdict(int)
            t0 = time.time()
            measure_from = t0 + args.warmup

            async def run() -> list[int]:
                url = f"ws://127.0.0.1:{port}/api/v1/live"
                tap = asyncio.create_task(
                    _redis_tap(s.redis.url, t0 + total, redis_lat, measure_from)
                )
                counts = await asyncio.gather(
                    *(
                        _console(url, tok, f"c{i}", t0 + total, lat, per_second, measure_from)
                        for i, tok in enumerate(tokens)
                    )
                )
                await tap
                return list(counts)

            counts = asyncio.run(run())
        finally:
            if sim is not None and sim.poll() is None:
                sim.terminate()
                sim.wait(30)
            api.terminate()
            api.wait(30)
            totals = ingest.stop()
        received = asyncio.run(_received(s.db.dsn(), measure_from))

    worst = max(per_second.values(), default=0)
    rows: list[tuple[Any, ...]] = [
        (
            "ping -> received (gateway)" if jt808 else "ping -> received (ingest)",
            f"{args.vehicles / args.interval:.0f}/s",
            f"{len(received):,}",
            "",
            *(f"{_pct(received, q) * 1000:.0f}" for q in (0.5, 0.9, 0.99)),
            f"{max(received, default=float('nan')) * 1000:.0f}",
            "",
        ),
        (
            "ping -> Redis (gateway)" if jt808 else "ping -> Redis (ingest)",
            f"{args.vehicles / args.interval:.0f}/s",
            f"{len(redis_lat):,}",
            "",
            f"{_pct(redis_lat, 0.5) * 1000:.0f}",
            f"{_pct(redis_lat, 0.9) * 1000:.0f}",
            f"{_pct(redis_lat, 0.99) * 1000:.0f}",
            f"{max(redis_lat, default=float('nan')) * 1000:.0f}",
            "",
        ),
        (
            f"ping -> console ({args.consoles})",
            f"{args.vehicles / args.interval:.0f}/s",
            f"{sum(counts):,}",
            f"{statistics.mean(counts):,.0f}" if counts else "0",
            f"{_pct(lat, 0.5) * 1000:.0f}",
            f"{_pct(lat, 0.9) * 1000:.0f}",
            f"{_pct(lat, 0.99) * 1000:.0f}",
            f"{max(lat, default=float('nan')) * 1000:.0f}",
            worst,
        ),
    ]
    print(f"machine: {machine()}")
    print(
        f"full path: simulate ({args.vehicles} terminals, every {args.interval:g}s) ->"
        f" {'JT/T 808 -> gateway' if jt808 else 'MQTT -> ingest'} -> Redis -> API websocket;"
        f" {args.seconds:.0f}s measured after"
        f" {args.warmup:.0f}s warm-up; ingest totals {totals}"
    )
    print(
        table(
            rows,
            (
                "path",
                "ping rate",
                "items seen",
                "per console",
                "p50 ms",
                "p90 ms",
                "p99 ms",
                "max ms",
                "max/vehicle/s",
            ),
        )
    )
    print("target: p99 <= 1500 ms; coalescing: max/vehicle/s must be 1")


if __name__ == "__main__":
    main()
