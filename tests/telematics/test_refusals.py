"""Large buffered uploads (issue 9, item 3): refused ones are visible, split ones arrive.

Before: a `/positions` array over the broker's max_packet_size was refused with no trace on
the platform and the terminal re-sent it forever. Now the contract caps an array
(MAX_ARRAY_PINGS, MAX_MESSAGE_BYTES), the simulator splits its backlog accordingly, and
`fleet broker monitor` counts what the broker refuses per terminal and reason and alerts on
a terminal that keeps failing. Here a real terminal publishes a real oversize array.
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import threading
import time
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg
import orjson
import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion

from fleet.config import Settings
from telematics.broker.credentials import derived_secret
from telematics.broker.mosquitto import MAX_PACKET_SIZE, Broker
from telematics.broker.refusals import MonitorSettings, parse_line, scan
from telematics.ingest.schemas import MAX_ARRAY_PINGS, MAX_MESSAGE_BYTES
from telematics.simulator import backlog_arrays

from .conftest import FLEET_BIN, TERMINAL_KEY, IngestProcs, wait_rows
from .test_ingest import now, ping


def test_broker_log_lines_become_refusals() -> None:
    r = parse_line(
        "2026-12-03T17:29:42+0000: Client GX00000007 disconnected due to oversize packet."
    )
    assert r is not None and (r.client_id, r.reason) == ("GX00000007", "oversize_packet")
    assert r.at == datetime(2026, 12, 3, 17, 29, 42, tzinfo=UTC)
    r = parse_line(
        '2026-12-03T17:29:42+0800: fleet_guard: refused terminal GX1: client id "x y" is not its'
        " terminal id"
    )
    assert r is not None and (r.client_id, r.reason, r.detail) == ("GX1", "bad_client_id", "x y")
    assert r.at == datetime(2026, 12, 3, 9, 29, 42, tzinfo=UTC)
    r = parse_line("2026-12-03T17:29:42+0000: fleet_guard: refused subscription of GX1 to $SYS/#")
    assert r is not None and (r.reason, r.detail) == ("subscribe_refused", "$SYS/#")
    assert parse_line("2026-12-03T17:29:42+0000: Client GX1 disconnected.") is None
    assert parse_line("garbage") is None


def test_the_contract_fits_the_broker_and_the_simulator_keeps_to_it() -> None:
    assert MAX_PACKET_SIZE >= 2 * MAX_MESSAGE_BYTES
    t0 = now()
    pings = [ping(t0 + timedelta(seconds=k), k, alarm=1 << 62) for k in range(2_500)]
    arrays = backlog_arrays(pings)
    assert [len(orjson.loads(a)) for a in arrays] == [1_000, 1_000, 500]
    assert all(len(a) <= MAX_MESSAGE_BYTES for a in arrays)
    # pings padded far past the usual ~190 B: split by bytes too
    fat = [{**p, "pad": "x" * 2_000} for p in pings[:600]]
    arrays = backlog_arrays(fat)
    assert sum(len(orjson.loads(a)) for a in arrays) == 600
    assert all(len(a) <= MAX_MESSAGE_BYTES for a in arrays) and len(arrays) > 1


class Stubborn:
    """A terminal (its own login and client id) that keeps re-sending one upload."""

    def __init__(self, settings: Settings, terminal: str, body: bytes) -> None:
        self.client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=terminal)
        self.client.username_pw_set(terminal, derived_secret(TERMINAL_KEY, terminal))
        self.client.reconnect_delay_set(0.2, 0.5)
        self.topic = f"{settings.mqtt.topic_prefix}/{terminal}/positions"
        self.body = body
        self.stop = threading.Event()
        self.client.on_connect = lambda c, *_a: c.publish(self.topic, self.body, qos=1)
        self.client.connect(settings.mqtt.host, settings.mqtt.port, keepalive=30)
        self.client.loop_start()

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


def _count_in_log(broker: Broker, text: str) -> int:
    return broker.log_path.read_text(errors="replace").count(text)


async def test_an_oversize_upload_is_counted_and_alerted_then_arrives_split(
    mq_settings: Settings,
    mqtt_broker: Broker,
    ingest_procs: IngestProcs,
    terminals: Any,
    publisher: Any,
) -> None:
    (tid,) = terminals(1)
    t0 = now() - timedelta(hours=3)
    backlog = [ping(t0 + timedelta(seconds=k), k) for k in range(7_000)]
    body = orjson.dumps(backlog)
    assert len(body) > MAX_PACKET_SIZE  # ~6,250 full-field pings fill the broker's limit

    refused = f"Client {tid} disconnected due to oversize packet."
    stubborn = Stubborn(mq_settings, tid, body)
    try:
        deadline = time.monotonic() + 30
        while _count_in_log(mqtt_broker, refused) < 3:
            assert time.monotonic() < deadline, "the broker never refused the upload 3 times"
            await asyncio.sleep(0.2)
    finally:
        stubborn.close()

    conn = await asyncpg.connect(mq_settings.db.dsn())
    try:
        cfg = MonitorSettings(alert_after=3, window_s=3600)
        log_path = mqtt_broker.log_path.resolve()
        rep = await scan(conn, log_path, cfg, timezone="Asia/Shanghai")
        assert rep.refusals >= 3
        row = await conn.fetchrow(
            "SELECT count, window_count FROM broker_refusals WHERE client_id = $1"
            " AND reason = 'oversize_packet'",
            tid,
        )
        assert row is not None and row["count"] >= 3, row
        vid = await conn.fetchval("SELECT vehicle_id FROM terminals WHERE id = $1", tid)
        alert = await conn.fetchrow(
            "SELECT id, message, evidence::text AS ev, status FROM alerts"
            " WHERE kind = 'terminal_refused' AND vehicle_id = $1",
            vid,
        )
        assert alert is not None and alert["status"] == "open"
        assert tid in alert["message"] and "超过代理上限" in alert["message"]
        ev = orjson.loads(alert["ev"])
        assert ev["reason"] == "oversize_packet" and ev["count_in_window"] >= 3
        audited = await conn.fetchval(
            "SELECT count(*) FROM audit_log WHERE action = 'alert.create' AND entity = 'alert'"
            " AND entity_id = $1 AND actor = 'broker-monitor'",
            str(alert["id"]),
        )
        assert audited == 1
        # each log line counts once
        await scan(conn, log_path, cfg, timezone="Asia/Shanghai")
        again = await conn.fetchval(
            "SELECT count FROM broker_refusals WHERE client_id = $1 AND reason = 'oversize_packet'",
            tid,
        )
        assert again == row["count"]
    finally:
        await conn.close()

    # The monitor as `fleet demo` runs it (one pass here): nothing is counted twice.
    env = {**os.environ, "FLEET_DB__NAME": mq_settings.db.name}
    mon = await asyncio.to_thread(
        subprocess.run,
        [FLEET_BIN, "broker", "monitor", "--once", "--log", str(mqtt_broker.log_path)],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert mon.returncode == 0, mon.stderr
    # The operator's view from the command line.
    done = await asyncio.to_thread(
        subprocess.run,
        [FLEET_BIN, "broker", "refusals", "--json"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    mine = [r for r in orjson.loads(done.stdout) if r["client_id"] == tid]
    assert [(r["reason"], r["count"]) for r in mine] == [("oversize_packet", row["count"])]

    # The same backlog, split as the contract says, arrives whole.
    ingest_procs.start()
    arrays = backlog_arrays(backlog)
    assert len(arrays) == 7 and all(len(orjson.loads(a)) <= MAX_ARRAY_PINGS for a in arrays)
    pub = publisher(tid)
    assert pub.send("positions", arrays, timeout=60) == len(arrays)
    sql = "SELECT count(*) FROM positions WHERE terminal_id = $1"
    assert await wait_rows(mq_settings.db.dsn(), sql, (tid,), 7_000, timeout_s=60) == 7_000


async def test_an_array_over_the_contract_but_under_the_broker_limit_is_stored_and_noted(
    mq_settings: Settings, ingest_procs: IngestProcs, terminals: Any, publisher: Any
) -> None:
    (tid,) = terminals(1)
    ingest = ingest_procs.start()
    t0 = now() - timedelta(hours=5)
    n = MAX_ARRAY_PINGS + 200
    assert publisher(tid).send(
        "positions", [[ping(t0 + timedelta(seconds=k), k) for k in range(n)]]
    )
    sql = "SELECT count(*) FROM positions WHERE terminal_id = $1"
    assert await wait_rows(mq_settings.db.dsn(), sql, (tid,), n) == n
    line = ingest.wait_for("ingest.array_over_contract", 10)
    assert tid in line
