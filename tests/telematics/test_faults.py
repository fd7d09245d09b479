"""Fault tests with real processes: nothing the broker accepted is lost, nothing is doubled.

Each test streams QoS 1 pings from several terminals while something breaks: the ingest is
killed with SIGKILL and restarted, its database connections are terminated, the PostgreSQL
server is restarted (cleanly, then crashed and recovered), the broker is restarted.
Afterwards every ping that got a PUBACK must be stored, exactly once.

The server that is restarted is a private cluster of the test's own (`private_pg`: the
machine's PostgreSQL + PostGIS binaries, a temporary data directory, a free port), so the
shared server other test runs use is never disturbed.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg

from fleet.config import Settings
from telematics.broker.mosquitto import Broker

from .conftest import IngestProcs, PrivatePostgres, Publisher, wait_rows
from .test_ingest import ping


class Burst(threading.Thread):
    """Publishes `per_terminal` pings for each terminal in chunks; records what got PUBACK."""

    def __init__(
        self,
        make: Callable[[str], Publisher],
        tids: list[str],
        per_terminal: int,
        *,
        chunk: int = 250,
        pause_s: float = 0.0,
    ) -> None:
        super().__init__(daemon=True)
        self.pubs = [make(t) for t in tids]
        self.per_terminal = per_terminal
        self.chunk = chunk
        self.pause_s = pause_s
        self.t0 = datetime.now(UTC).replace(microsecond=0) - timedelta(hours=6)
        self.acked: set[tuple[str, datetime]] = set()
        self.sent = 0
        self.done = threading.Event()

    def run(self) -> None:
        try:
            for start in range(0, self.per_terminal, self.chunk):
                for k, pub in enumerate(self.pubs):
                    tss = [
                        self.t0 + timedelta(seconds=i)
                        for i in range(start, min(start + self.chunk, self.per_terminal))
                    ]
                    ok = pub.send_tracked(
                        "position",
                        [ping(ts, lat=22.8 + k * 0.01 + i * 1e-5) for i, ts in enumerate(tss)],
                        timeout=20,
                    )
                    self.sent += len(tss)
                    self.acked.update(
                        (pub.terminal, ts) for ts, a in zip(tss, ok, strict=True) if a
                    )
                if self.pause_s:
                    time.sleep(self.pause_s)
        finally:
            self.done.set()


async def stored(settings: Settings, tids: list[str]) -> tuple[set[tuple[str, datetime]], int]:
    conn = await asyncpg.connect(settings.db.dsn())
    try:
        rows = await conn.fetch(
            "SELECT terminal_id, ts FROM positions WHERE terminal_id = ANY($1::text[])", tids
        )
    finally:
        await conn.close()
    return {(r["terminal_id"], r["ts"]) for r in rows}, len(rows)


async def assert_nothing_lost(
    settings: Settings, burst: Burst, tids: list[str], procs: IngestProcs | None = None
) -> None:
    """Every PUBACKed ping stored (waiting up to 60 s for the tail), none stored twice."""
    assert burst.done.wait(120), "publisher did not finish"
    deadline = time.monotonic() + 60
    while True:
        have, total = await stored(settings, tids)
        lost = burst.acked - have
        if not lost or time.monotonic() > deadline:
            break
        await asyncio.sleep(0.3)
    if lost:
        conn = await asyncpg.connect(settings.db.dsn())
        try:
            rows = await conn.fetch(
                "SELECT reason, count(*) FROM rejected_pings WHERE terminal_id = ANY($1::text[])"
                " GROUP BY 1",
                tids,
            )
            print("rejected pings of these terminals:", [tuple(r) for r in rows])
        finally:
            await conn.close()
        for p in procs.procs if procs else []:
            print(f"--- ingest {p.client_id} (exit {p.proc.poll()}) ---\n{p.log(80)}")
    assert not lost, (
        f"{len(lost)} acknowledged pings lost (stored {len(have)}, acknowledged "
        f"{len(burst.acked)}); first lost {min(lost)}, last {max(lost)}"
    )
    assert total == len(have), "a ping was stored twice"


async def test_kill9_ingest_mid_burst(
    mq_settings: Settings, ingest_procs: IngestProcs, terminals: Any, publisher: Any
) -> None:
    tids = terminals(5)
    first = ingest_procs.start("fault-kill9")
    burst = Burst(publisher, tids, 3000)
    burst.start()
    await wait_rows(
        mq_settings.db.dsn(),
        "SELECT count(*) FROM positions WHERE terminal_id = ANY($1::text[])",
        (tids,),
        2000,
        timeout_s=60,
    )
    first.kill9()
    await asyncio.sleep(1.0)  # the burst goes on; the broker queues for the session
    ingest_procs.start("fault-kill9")  # same client id: the persistent session resumes
    await assert_nothing_lost(mq_settings, burst, tids, ingest_procs)
    assert len(burst.acked) == 15_000


async def test_db_connections_terminated_mid_stream(
    mq_settings: Settings, ingest_procs: IngestProcs, terminals: Any, publisher: Any
) -> None:
    tids = terminals(4)
    proc = ingest_procs.start()
    burst = Burst(publisher, tids, 2000, chunk=200, pause_s=0.2)
    burst.start()
    admin = await asyncpg.connect(mq_settings.db.owner().dsn(name="postgres"))
    killed = 0
    try:
        for _ in range(3):
            await asyncio.sleep(1.0)
            killed += await admin.fetchval(
                "SELECT count(*) FROM (SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
                " WHERE application_name = 'ingest' AND datname = $1) t",
                mq_settings.db.name,
            )
    finally:
        await admin.close()
    assert killed >= 1
    await assert_nothing_lost(mq_settings, burst, tids, ingest_procs)
    assert proc.proc.poll() is None, "the ingest must survive losing its connections"
    assert any("ingest.db_retry" in line for line in proc.lines) or killed


async def test_postgres_restarted_mid_stream(
    private_pg: tuple[PrivatePostgres, Settings],
    mqtt_broker: Broker,
    terminals: Any,
    publisher: Any,
) -> None:
    server, settings = private_pg
    procs = IngestProcs(settings)
    try:
        tids = terminals(4)
        proc = procs.start()
        burst = Burst(publisher, tids, 4000, chunk=150, pause_s=0.3)
        burst.start()
        count = "SELECT count(*) FROM positions WHERE terminal_id = ANY($1::text[])"
        await wait_rows(settings.db.dsn(), count, (tids,), 600, timeout_s=60)
        # Each outage lasts 1.5 s while the terminals keep publishing (a chunk every ≤ 0.3 s),
        # so the ingest has batches to write while the server is down, whatever the timing.
        for mode in ("fast", "immediate"):  # a clean shutdown, then a crash + WAL replay
            sent = burst.sent
            await asyncio.to_thread(server.stop, mode)
            await asyncio.sleep(1.5)
            assert burst.sent > sent, "the terminals must publish during the outage"
            await asyncio.to_thread(server.start)
            await asyncio.sleep(0.5)
        await assert_nothing_lost(settings, burst, tids, procs)
        assert len(burst.acked) == 16000
        assert proc.proc.poll() is None, "the ingest must survive the database restarts"
        assert proc.wait_for("ingest.db_retry", 1), "the ingest never saw the outage"
    finally:
        procs.close()


async def test_broker_restart_mid_stream(
    mq_settings: Settings,
    mqtt_broker: Broker,
    ingest_procs: IngestProcs,
    terminals: Any,
    publisher: Any,
) -> None:
    tids = terminals(4)
    proc = ingest_procs.start()
    burst = Burst(publisher, tids, 2000, chunk=200, pause_s=0.3)
    burst.start()
    await asyncio.sleep(1.5)
    # SIGTERM (Mosquitto writes its persistence file), start, admit terminals once the
    # ingest has resubscribed (see Broker.restart for why).
    assert await mqtt_broker.restart(mq_settings.db.dsn(), gate_s=30)
    try:
        await assert_nothing_lost(mq_settings, burst, tids, ingest_procs)
    except AssertionError:
        print(proc.log(60))
        print(mqtt_broker.log_path.read_text()[-4000:])
        raise
    # The publishers saw the outage (some pings were refused), and the ingest reconnected.
    assert proc.wait_for("ingest.mqtt_connected", 5, after=1)
    assert proc.proc.poll() is None
