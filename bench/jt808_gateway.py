"""`python -m bench.jt808_gateway`: the JT/T 808 gateway against the MQTT ingest, same run.

1. MQTT ingest, the reference: 50 terminals publish a 60,000-ping QoS 1 burst while the
   ingest is away (the broker queues it), then `fleet ingest` drains it (as
   bench.ingest_throughput): pings stored per second, first stored -> all stored.
2. 10,000 terminals (a third speaking 2019) connect and authenticate to one `fleet jt808`:
   the time it takes and the gateway's resident memory before and after (per connection).
3. With all of them connected, 50 of them write their 1,200 location reports (0x0200) each
   at once — the TCP analogue of the queued burst — and count the answers; stored per
   second measured as for the ingest. Then the same again as blind-area batches (0x0704,
   25 reports a frame). Every report must be answered 0 and stored exactly once.
4. Heartbeat cost: CPU per heartbeat answered (a burst of one heartbeat per terminal) and
   the CPU share at the steady rate of one heartbeat per terminal every 30 s (333/s).

The file-descriptor limit is raised in this process (the gateway inherits it). Load is the
machine's one-minute load average before and after, from `uptime`.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import time
from collections import Counter
from datetime import UTC, datetime, timedelta
from typing import Any

from bench.ingest_common import IngestProc, machine, rig, subscribe_session, table, terminal_ids
from bench.ingest_throughput import dup_rows, payloads, publish_all, wait_stored
from bench.jt808_load import (
    GatewayProc,
    Term,
    connect_all,
    location_frames,
    provision,
    raise_fd_limit,
)
from telematics.ingest.mqtt import subscriptions
from telematics.jt808 import messages as M


def load() -> str:
    return " ".join(f"{x:.1f}" for x in os.getloadavg())


async def burst(
    dsn: str, gw: GatewayProc, terms: list[Term], per: int, t0: datetime, per_frame: int
) -> dict[str, Any]:
    """Every terminal writes `per` reports at once; wait for answers and rows."""
    frames = [location_frames(t, t0, per, j, per_frame=per_frame) for j, t in enumerate(terms)]
    for t in terms:
        t.want = len(t.answered) + -(-per // per_frame)
        t.done.clear()
    since = datetime.now(UTC)
    cpu0 = gw.cpu_s()
    for t, data in zip(terms, frames, strict=True):
        assert t.transport is not None
        t.transport.write(data)
    total = per * len(terms)
    n, first, done = await wait_stored(dsn, since - timedelta(seconds=1), total)
    await asyncio.wait_for(asyncio.gather(*(t.done.wait() for t in terms)), 120)
    cpu = gw.cpu_s() - cpu0
    return {"stored": n, "rate": n / max(done - first, 1e-6), "cpu_us": cpu / max(n, 1) * 1e6}


async def jt808_part(
    dsn: str, gw: GatewayProc, fleet: list[tuple[str, int, str]], n_terms: int, per: int, wide: int
) -> dict[str, Any]:
    out: dict[str, Any] = {"rss_ready": gw.rss_kib()}
    # 10,000 terminals on one process, then the throughput bursts with all of them on
    started = time.monotonic()
    everyone = await connect_all(gw.port, fleet[:wide])
    out["connect_s"] = time.monotonic() - started
    await asyncio.sleep(2.0)
    out["connections"] = len(everyone)
    out["rss0"], out["rss1"] = out["rss_ready"], gw.rss_kib()
    terms = everyone[:n_terms]
    t1 = datetime.now(UTC).replace(microsecond=0) - timedelta(days=1)
    out["single"] = await burst(dsn, gw, terms, per, t1, 1)
    out["batch"] = await burst(dsn, gw, terms, per, t1 + timedelta(hours=6), 25)
    out["results"] = sum((t.results for t in terms), start=Counter())
    out["answered"] = sum(len(t.answered) for t in terms)
    out["rss_after_bursts"] = gw.rss_kib()
    # a burst of heartbeats, one per terminal
    for t in everyone:
        t.want = len(t.answered) + 1
        t.done.clear()
    cpu0 = gw.cpu_s()
    for t in everyone:
        assert t.transport is not None
        t.transport.write(t.frame(M.HEARTBEAT, b""))
    await asyncio.wait_for(asyncio.gather(*(t.done.wait() for t in everyone)), 120)
    out["hb_us"] = (gw.cpu_s() - cpu0) / len(everyone) * 1e6
    # steady: one heartbeat per terminal every 30 s, for 30 s
    rate = len(everyone) / 30
    cpu0, t0 = gw.cpu_s(), time.monotonic()
    k = 0
    while (elapsed := time.monotonic() - t0) < 30:
        due = int(elapsed * rate)
        while k < due:
            t = everyone[k % len(everyone)]
            assert t.transport is not None
            t.transport.write(t.frame(M.HEARTBEAT, b""))
            k += 1
        await asyncio.sleep(0.05)
    out["hb_steady_share"] = (gw.cpu_s() - cpu0) / (time.monotonic() - t0)
    out["hb_steady_rate"] = k / (time.monotonic() - t0)
    out["still_connected"] = sum(
        1 for t in everyone if t.transport and not t.transport.is_closing()
    )
    for t in everyone:
        if t.transport is not None:
            t.transport.close()
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m bench.jt808_gateway", description=__doc__)
    ap.add_argument("--pings", type=int, default=60_000)
    ap.add_argument("--terminals", type=int, default=50)
    ap.add_argument("--connections", type=int, default=10_000)
    ap.add_argument("--db", default="fleet_bench_jt808")
    args = ap.parse_args(argv)
    fds = raise_fd_limit()
    per = args.pings // args.terminals
    total = per * args.terminals
    print(f"machine: {machine()}; open-file limit {fds}; load before {load()}")
    with rig(args.db, vehicles=args.connections + args.terminals + 10) as r:
        s, dsn = r.settings, r.settings.db.dsn()
        # (1) MQTT ingest, queued burst
        tids = terminal_ids(args.terminals)
        subscribe_session(s, "bench-ingest", subscriptions(s.mqtt.topic_prefix, "ingest"))
        t0 = datetime.now(UTC).replace(microsecond=0) - timedelta(days=2)
        acked, _ = publish_all(s, tids, payloads(tids, per, t0))
        since = datetime.now(UTC)
        ingest = IngestProc(s, "bench-ingest", "ingest")
        n, first, done = asyncio.run(wait_stored(dsn, since - timedelta(seconds=5), acked))
        mqtt_rate = n / max(done - first, 1e-6)
        mqtt_cpu = ingest.cpu_between(first, done) / max(n, 1) * 1e6
        ingest.stop()
        load_mid = load()
        # (2) + (3) JT/T 808
        wide = max(args.connections, args.terminals)
        fleet = asyncio.run(provision(dsn, args.terminals + 1, wide))
        gw = GatewayProc(s)
        gw.wait_for("jt808.ready")
        try:
            j = asyncio.run(jt808_part(dsn, gw, fleet, args.terminals, per, wide))
        finally:
            stopped = gw.stop()
        dups = asyncio.run(dup_rows(dsn))
    load_after = load()

    def row(name: str, part: dict[str, Any], sent: int) -> tuple[Any, ...]:
        return (
            name,
            f"{part['stored']:,}",
            f"{part['rate']:,.0f}",
            f"{part['rate'] / mqtt_rate:.2f}",
            f"{sent - part['stored']}",
            f"{dups}",
            f"{part['cpu_us']:.0f}",
        )

    print()
    print(
        table(
            [
                (
                    "MQTT ingest, queued burst (50 terminals)",
                    f"{n:,}",
                    f"{mqtt_rate:,.0f}",
                    "1.00",
                    f"{acked - n}",
                    f"{dups}",
                    f"{mqtt_cpu:.0f}",
                ),
                row("JT/T 808 0x0200, one report a frame", j["single"], total),
                row("JT/T 808 0x0704, 25 reports a frame", j["batch"], total),
            ],
            ("path", "stored", "stored/s", "vs MQTT", "lost", "duplicates", "CPU µs/report"),
        )
    )
    print(
        f"\nJT/T 808 answers: {j['answered']:,} frames answered, results {dict(j['results'])}"
        f" (every report answered 0: {j['results'].get(0, 0) == j['answered']})"
    )
    per_conn = (j["rss1"] - j["rss0"]) * 1024 / max(j["connections"], 1)
    print()
    print(
        table(
            [
                (
                    f"{j['connections']:,}",
                    f"{j['connect_s']:.1f}",
                    f"{j['rss_ready'] / 1024:.0f} / {j['rss1'] / 1024:.0f}"
                    f" / {j['rss_after_bursts'] / 1024:.0f}",
                    f"{per_conn / 1024:.1f}",
                    f"{j['hb_us']:.0f}",
                    f"{j['hb_steady_rate']:.0f}/s: {j['hb_steady_share'] * 100:.1f} %",
                    f"{j['still_connected']:,}",
                )
            ],
            (
                "terminals",
                "connect+auth s",
                "gateway RSS MiB (ready / all on / after bursts)",
                "KiB / connection",
                "CPU µs / heartbeat",
                "steady heartbeats: CPU of a core",
                "connected at the end",
            ),
        )
    )
    print(f"\nload (1/5/15 min): before {load_mid}; after {load_after}")
    print(f"gateway totals: {stopped[stopped.find('event=') :][:600]}")
    ratio = j["single"]["rate"] / mqtt_rate
    ok = (
        ratio >= 0.8
        and j["single"]["stored"] == total == j["batch"]["stored"]
        and dups == 0
        and j["results"].get(0, 0) == j["answered"]
        and j["still_connected"] >= args.connections
    )
    print("targets (ratio >= 0.8, 0 lost, 0 duplicated, 10,000 held):", "met" if ok else "NOT met")
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
