"""Tests and benchmarks never touch a running demo (issue 9, item 7).

A demo on this machine uses the default live bus (`fleet.positions.v1`, `fleet.events.v1`
on the same Redis), the broker on 1884 and the database `fleet`. The processes the tests
start — here a real `fleet ingest` and a real `fleet serve` — must each run on private
resources: their own database, the test broker's port, this run's channel prefix, their own
MQTT client id and share group. Checked from their environment, and by traffic: nothing of
ours appears on the demo's bus, nothing on the demo's bus reaches our consoles.
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import orjson
from redis.asyncio import Redis

from fleet.config import ROOT, Settings, get_settings
from fleet.identity.security import issue_token
from telematics import bus

from .conftest import IngestProcs, ServeProcess
from .test_ingest import now, ping
from .test_live_pipeline import _ids, frames_of, open_console

DEMO_PREFIX = "fleet"  # what a demo runs with (FLEET_REDIS__CHANNEL_PREFIX's default)
DEMO_CHANNELS = (f"{DEMO_PREFIX}.positions.v1", f"{DEMO_PREFIX}.events.v1")


def environ(pid: int) -> dict[str, str]:
    raw = Path(f"/proc/{pid}/environ").read_bytes().split(b"\0")
    return dict(e.decode().split("=", 1) for e in raw if b"=" in e)


async def test_test_processes_run_on_private_resources_and_nothing_crosses(
    mq_settings: Settings,
    ingest_procs: IngestProcs,
    serve_proc: ServeProcess,
    terminals: Any,
    publisher: Any,
) -> None:
    ours = get_settings().redis.channel_prefix
    assert ours.startswith("fleet-test-") and ours != DEMO_PREFIX
    ingest = ingest_procs.start()
    for pid, what in ((ingest.proc.pid, "ingest"), (serve_proc.proc.pid, "serve")):
        env = environ(pid)
        assert env["FLEET_REDIS__CHANNEL_PREFIX"] == ours, what
        assert env["FLEET_DB__NAME"] == mq_settings.db.name != "fleet", what
    env = environ(ingest.proc.pid)
    assert env["FLEET_MQTT__PORT"] == str(mq_settings.mqtt.port) != "1884"
    assert env["FLEET_INGEST__SHARE_GROUP"] == ingest_procs.group != "ingest"
    assert env["FLEET_INGEST__CLIENT_ID"].startswith(f"ingest-{ingest_procs.group}")

    (tid,) = terminals(1)
    vid, admin = await _ids(mq_settings, tid)
    redis = Redis.from_url(mq_settings.redis.url)
    demo = redis.pubsub(ignore_subscribe_messages=True)
    mine = redis.pubsub(ignore_subscribe_messages=True)
    await demo.subscribe(*DEMO_CHANNELS)
    await mine.subscribe(bus.positions_channel())
    ws = await open_console(serve_proc, issue_token(mq_settings.auth, admin).access_token)
    try:
        # Our ingest's pings: on our bus, never on the demo's.
        t0 = now() - timedelta(minutes=17)
        sent = {ping(t0 + timedelta(seconds=k), k)["ts"] for k in range(5)}
        pub = publisher(tid)
        assert pub.send("position", [ping(t0 + timedelta(seconds=k), k) for k in range(5)]) == 5
        seen_ours: set[str] = set()
        seen_demo: list[dict[str, Any]] = []
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline and len(seen_ours) < 1:
            for ps, into in ((mine, None), (demo, seen_demo)):
                msg = await ps.get_message(timeout=0.1)
                if msg is None:
                    continue
                items = orjson.loads(msg["data"]).get("items") or []
                mark = [i for i in items if i.get("vehicle_id") == vid]
                if into is None:
                    seen_ours |= {str(i["ts"]) for i in mark}
                else:
                    into.extend(mark)
        assert seen_ours, "the test ingest published nothing on this run's bus"
        await asyncio.sleep(1.0)  # anything crossing over would have arrived by now
        while (msg := await demo.get_message(timeout=0.1)) is not None:
            items = orjson.loads(msg["data"]).get("items") or []
            seen_demo.extend(i for i in items if i.get("vehicle_id") == vid)
        ts_sent = {datetime.fromisoformat(t).astimezone(UTC) for t in sent}
        crossed = [i for i in seen_demo if datetime.fromisoformat(i["ts"]) in ts_sent]
        assert crossed == [], f"the test ingest published on the demo's bus: {crossed}"

        # A demo's position for the same vehicle id never reaches our console; ours does.
        future = datetime.now(UTC) + timedelta(minutes=3)
        demo_item = {
            "vehicle_id": vid,
            "org_path": None,
            "ts": future.isoformat().replace("+00:00", "Z"),
            "lat": 22.8,
            "lon": 108.3,
        }
        await redis.publish(
            DEMO_CHANNELS[0], orjson.dumps({"type": "positions", "items": [demo_item]})
        )
        heard = [i["ts"] for _, items in await frames_of(ws, vid, 1.5) for i in items]
        assert demo_item["ts"] not in heard  # (our own pings above may still be in flight)
        await bus.publish_positions(redis, [demo_item])
        got = await frames_of(ws, vid, 3.0)
        assert [i["ts"] for _, items in got for i in items] == [demo_item["ts"]]
    finally:
        await ws.close()
        await demo.aclose()  # type: ignore[no-untyped-call]
        await mine.aclose()  # type: ignore[no-untyped-call]
        await redis.aclose()


def test_benchmarks_get_a_bus_of_their_own() -> None:
    """Even when the shell exported the demo's prefix, a bench runs on a private one."""
    code = "import os, bench; print(os.environ['FLEET_REDIS__CHANNEL_PREFIX'])"
    out = subprocess.run(
        [sys.executable, "-c", code],
        cwd=ROOT,
        env={**os.environ, "FLEET_REDIS__CHANNEL_PREFIX": DEMO_PREFIX},
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    ).stdout.strip()
    assert out.startswith("fleet-bench-"), out


def test_the_suite_refuses_a_database_that_is_not_a_test_one() -> None:
    """An exported FLEET_DB__NAME=fleet (the demo's) stops the suite before it drops anything."""
    code = "import tests.conftest"
    r = subprocess.run(
        [sys.executable, "-c", code],
        cwd=ROOT,
        env={**os.environ, "FLEET_DB__NAME": "fleet"},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert r.returncode != 0 and "does not name a test database" in r.stderr, r.stderr
