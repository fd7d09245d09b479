"""`python -m bench.ingest_throughput`: full ingest vs a bare paho consumer, same run.

1. Two persistent sessions are created on the broker (one per shared-subscription group:
   `bare` and `ingest`), then N terminals publish a QoS 1 burst (default 60,000 pings)
   while both consumers are away, so the broker queues a copy for each. This is also the
   queue-limit check: Mosquitto's default per-client queue (1,000) would drop most of it.
2. The bare consumer (paho, MQTT v5, QoS 1, JSON decode, no DB) drains its session.
3. The full ingest (`fleet ingest` subprocess: validate, flag, COPY, upsert, commit, ack)
   drains its session. Rates are measured from the first message received to the last
   message received (bare) / the moment every ping was committed (ingest).
4. Live burst: with the ingest running, the terminals publish another burst as fast as
   they can; loss = acknowledged to the publisher but not stored, duplicates = rows stored
   twice (and redeliveries the ingest absorbed).

"CPU µs/ping" is the consumer process's CPU time over its drain divided by the pings: less
sensitive than the rates to what else the machine runs (the rates on a shared 2-core box
swing by 2x from run to run; compare ratios only within one run).
"""

from __future__ import annotations

import argparse
import asyncio
import time
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg
import orjson
import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from bench.ingest_common import (
    IngestProc,
    Publishers,
    machine,
    rig,
    subscribe_session,
    table,
    terminal_ids,
)
from fleet.config import Settings
from telematics.ingest.mqtt import subscriptions


def payloads(tids: list[str], per_terminal: int, t0: datetime) -> list[tuple[str, int, bytes]]:
    out = []
    for k in range(per_terminal):
        for j, tid in enumerate(tids):
            ts = t0 + timedelta(seconds=10 * k)
            body = {
                "ts": int(ts.timestamp() * 1000),
                "lat": 22.5 + j * 0.01 + k * 1e-4,
                "lon": 108.0 + j * 0.01 + k * 1e-4,
                "speed_kmh": 40.0,
                "heading_deg": 45.0,
                "odometer_km": 1000.0 + k * 0.1,
                "acc": True,
                "fix": True,
                "sats": 10,
                "alarm": 0,
                "seq": k,
            }
            out.append((tid, k, orjson.dumps(body)))
    return out


def publish_all(
    settings: Settings, tids: list[str], items: list[tuple[str, int, bytes]]
) -> tuple[int, float]:
    pubs = Publishers(settings, tids)
    try:
        t = time.monotonic()
        for tid, seq, body in items:
            pubs.publish(tid, seq, body)
        acked = pubs.wait_acked()
        return acked, time.monotonic() - t
    finally:
        pubs.close()


class BareConsumer:
    """The baseline: paho QoS 1 consumer that JSON-decodes and counts, nothing else."""

    def __init__(self, settings: Settings, client_id: str, group: str) -> None:
        self.keys: set[tuple[str, int]] = set()
        self.count = 0
        self.first = 0.0
        self.last = 0.0
        self.cpu_s = 0.0
        self.client = mqtt.Client(
            CallbackAPIVersion.VERSION2, client_id=client_id, protocol=mqtt.MQTTv5
        )
        m = settings.mqtt
        self.client.username_pw_set(m.service_user, m.service_password.get_secret_value())
        self.client.on_message = self._on_message
        topics = subscriptions(m.topic_prefix, group)
        self.client.on_connect = lambda c, *_a: c.subscribe([(t, 1) for t in topics])
        props = Properties(PacketTypes.CONNECT)  # type: ignore[no-untyped-call]
        props.SessionExpiryInterval = 3600
        self.client.connect(m.host, m.port, clean_start=False, properties=props)

    def _on_message(self, _c: Any, _u: Any, msg: mqtt.MQTTMessage) -> None:
        now = time.time()
        if not self.count:
            self.first = now
        d = orjson.loads(msg.payload)
        self.keys.add((msg.topic, d["seq"]))
        self.count += 1
        self.last = now

    def drain(self, expected: int, idle_s: float = 10.0) -> None:
        cpu0 = time.process_time()
        self.client.loop_start()
        last_n, last_change = -1, time.monotonic()
        while self.count < expected and time.monotonic() - last_change < idle_s:
            time.sleep(0.05)
            if self.count != last_n:
                last_n, last_change = self.count, time.monotonic()
        self.cpu_s = time.process_time() - cpu0  # this process: paho's thread + 50 ms polls
        self.client.disconnect()
        self.client.loop_stop()


async def wait_stored(
    dsn: str, since: datetime, expected: int, idle_s: float = 20.0
) -> tuple[int, float, float]:
    """Poll until `expected` rows with received_at >= since; returns (n, first_rx, t_done)."""
    conn = await asyncpg.connect(dsn)
    try:
        last_n, last_change = -1, time.monotonic()
        n = 0
        while time.monotonic() - last_change < idle_s:
            n = int(
                await conn.fetchval("SELECT count(*) FROM positions WHERE received_at >= $1", since)
            )
            if n >= expected:
                break
            if n != last_n:
                last_n, last_change = n, time.monotonic()
            await asyncio.sleep(0.05)
        done = time.time()
        first = await conn.fetchval(
            "SELECT extract(epoch FROM min(received_at)) FROM positions WHERE received_at >= $1",
            since,
        )
        return n, float(first or done), done
    finally:
        await conn.close()


async def dup_rows(dsn: str) -> int:
    conn = await asyncpg.connect(dsn)
    try:
        return int(
            await conn.fetchval("SELECT count(*) - count(DISTINCT (vehicle_id, ts)) FROM positions")
        )
    finally:
        await conn.close()


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m bench.ingest_throughput", description=__doc__)
    ap.add_argument("--pings", type=int, default=60_000)
    ap.add_argument("--terminals", type=int, default=50)
    ap.add_argument("--db", default="fleet_bench_ingest")
    ap.add_argument(
        "--rogues",
        type=int,
        default=0,
        help="terminals connected throughout that subscribe to both consumers' share groups, "
        "# and $SYS/# (bench/rogues.py)",
    )
    args = ap.parse_args(argv)
    per = args.pings // args.terminals
    total = per * args.terminals
    tids = terminal_ids(args.terminals)
    print(f"machine: {machine()}")
    with rig(args.db, vehicles=max(1_000, args.terminals)) as r:
        s, dsn = r.settings, r.settings.db.owner().dsn()
        prefix = s.mqtt.topic_prefix
        subscribe_session(s, "bench-bare", subscriptions(prefix, "bare"))
        subscribe_session(s, "bench-ingest", subscriptions(prefix, "ingest"))
        rogues = None
        if args.rogues:
            from bench.rogues import Rogues

            pool = terminal_ids(max(1_000, args.terminals))[args.terminals :]
            rogues = Rogues(s, pool[-args.rogues :], ["bare", "ingest"])
            print(
                f"rogues: {rogues.connected}/{args.rogues} terminals connected, "
                f"{rogues.granted}/{rogues.requested} subscriptions granted"
            )
        t0 = datetime.now(UTC).replace(microsecond=0) - timedelta(days=2)
        acked, pub_s = publish_all(s, tids, payloads(tids, per, t0))
        print(f"queued burst: {acked}/{total} PUBACKed in {pub_s:.1f}s ({acked / pub_s:,.0f}/s)")

        bare = BareConsumer(s, "bench-bare", "bare")
        bare.drain(acked)
        bare_rate = bare.count / max(bare.last - bare.first, 1e-6)

        since = datetime.now(UTC)
        ingest = IngestProc(s, "bench-ingest", "ingest")
        n, first, done = asyncio.run(wait_stored(dsn, since - timedelta(seconds=5), acked))
        ingest_rate = n / max(done - first, 1e-6)
        ingest_cpu = ingest.cpu_between(first, done)
        ingest.wait_for("ingest.ready")

        # Live burst with the ingest running.
        t1 = t0 + timedelta(days=1)
        since2 = datetime.now(UTC)
        acked2, pub2_s = publish_all(s, tids, payloads(tids, per, t1))
        n2, first2, done2 = asyncio.run(wait_stored(dsn, since2, acked2))
        live_cpu = ingest.cpu_between(first2, done2)
        totals = ingest.stop()
        dups = asyncio.run(dup_rows(dsn))
        if rogues is not None:
            rogues.close()
            print(f"rogues received {rogues.received} messages")

    rows = [
        (
            "bare paho consumer (QoS 1, JSON, no DB)",
            f"{bare.count:,}",
            f"{bare_rate:,.0f}",
            "1.00",
            f"{acked - len(bare.keys)}",
            f"{bare.count - len(bare.keys)}",
            f"{bare.cpu_s / max(bare.count, 1) * 1e6:.0f}",
        ),
        (
            "full ingest, queued burst",
            f"{n:,}",
            f"{ingest_rate:,.0f}",
            f"{ingest_rate / bare_rate:.2f}",
            f"{acked - n}",
            f"{dups}",
            f"{ingest_cpu / max(n, 1) * 1e6:.0f}",
        ),
        (
            "full ingest, live burst",
            f"{n2:,}",
            f"{n2 / max(done2 - first2, 1e-6):,.0f}",
            "",
            f"{acked2 - n2}",
            f"{dups}",
            f"{live_cpu / max(n2, 1) * 1e6:.0f}",
        ),
    ]
    print()
    header = ("consumer", "pings", "pings/s", "ratio", "lost", "duplicates", "CPU µs/ping")
    print(table(rows, header))
    print(
        f"\nlive burst published at {acked2 / pub2_s:,.0f}/s; ingest totals: "
        f"batches={totals.get('batches')}, redeliveries absorbed={totals.get('duplicates', 0)}, "
        f"rejected={sum(v for k, v in totals.items() if k.startswith('rejected'))}"
    )
    ok = ingest_rate >= 0.8 * bare_rate and acked == n == total and acked2 == n2 and dups == 0
    print("targets (ratio >= 0.8, 0 lost, 0 duplicated):", "met" if ok else "NOT met")
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
