"""kill -9 of the gateway mid-burst: terminals reconnect and re-send what was not answered
(the standard's retransmission, timeout T x (n+1)); every point answered 0 is stored
exactly once — nothing answered is lost, nothing is stored twice."""

from __future__ import annotations

import asyncio
import contextlib
import time
from datetime import UTC, datetime, timedelta

from telematics.jt808 import messages as M
from telematics.jt808.terminal import Terminal, Unanswered
from tests.telematics.jt808.test_gateway import CODE, q

POINTS = 150


async def drive(t: Terminal, bodies: list[bytes], answered: list[int], stop: asyncio.Event) -> None:
    """A terminal: keep a window of 30 reports in flight; reconnect and re-send when lost."""
    futures: list[asyncio.Future[int]] = []
    k = 0
    while not stop.is_set():
        if not t.connected:
            try:
                await t.connect(timeout_s=2)
                if await t.authenticate(CODE) != M.OK:
                    raise Unanswered("refused")
                t.resend_unanswered()
            except (OSError, Unanswered, TimeoutError):
                t.drop()
                await asyncio.sleep(0.3)
                continue
        while k < len(bodies) and sum(not f.done() for f in futures) < 30:
            fut = t.submit(M.LOCATION, bodies[k])
            fut.add_done_callback(lambda f, k=k: answered.append(k) if f.result() == M.OK else None)
            futures.append(fut)
            k += 1
        if k == len(bodies) and all(f.done() for f in futures):
            return
        await asyncio.sleep(0.02)


async def test_kill9_mid_burst(gateways, jt808_terminals, mq_settings) -> None:
    # a long batch window: at any moment many reports are received but not yet committed
    gw = gateways.start(FLEET_INGEST__BATCH_WAIT_MS="1500", FLEET_INGEST__BATCH_MAX="50000")
    port = gw.port
    terms = await jt808_terminals(20)
    t0 = datetime.now(UTC).replace(microsecond=0) - timedelta(hours=3)
    clients = [Terminal("127.0.0.1", port, t.phone, v2019=i % 2 == 1, reply_timeout_s=1.0, retries=3)
               for i, t in enumerate(terms)]  # fmt: skip
    answered: list[list[int]] = [[] for _ in terms]
    stop = asyncio.Event()
    bodies = [
        [
            M.location_body(
                t0 + timedelta(seconds=10 * k), 22.5 + i * 0.01 + k * 1e-4, 108.0, speed_kmh=40
            )
            for k in range(POINTS)
        ]
        for i in range(len(terms))
    ]
    tasks = [
        asyncio.create_task(drive(c, b, a, stop))
        for c, b, a in zip(clients, bodies, answered, strict=True)
    ]
    # mid-burst: once a third is answered, kill -9, then a new gateway on the same port
    deadline = time.monotonic() + 60
    while sum(map(len, answered)) < len(terms) * POINTS // 3:
        assert time.monotonic() < deadline, f"only {sum(map(len, answered))} answered"
        await asyncio.sleep(0.01)
    await asyncio.sleep(0.3)  # the windows refill: reports the gateway holds uncommitted
    gw.kill9()
    await asyncio.sleep(1.0)  # answers the gateway wrote before it died are read by now
    at_kill = sum(map(len, answered))
    unanswered = sum(sum(not o.future.done() for o in c.unanswered.values()) for c in clients)
    assert unanswered > 0, "nothing was in flight when the gateway died"
    second = gateways.start(port=port)
    try:
        await asyncio.wait_for(asyncio.gather(*tasks), 120)
    finally:
        stop.set()
        for task in tasks:
            task.cancel()
        for c in clients:
            await c.close()
    total = len(terms) * POINTS
    assert at_kill < total, "the burst was over before the kill"
    assert sorted(k for a in answered for k in a) == sorted(k for _ in terms for k in range(POINTS))
    assert sum(c.resends for c in clients) >= unanswered  # sent again after the restart
    rows = await q(
        mq_settings,
        "SELECT vehicle_id, count(*) n, count(DISTINCT ts) d FROM positions"
        " WHERE vehicle_id = ANY($1) AND ts >= $2 GROUP BY vehicle_id",
        [t.vehicle_id for t in terms],
        t0,
    )
    assert {r["vehicle_id"]: (r["n"], r["d"]) for r in rows} == {
        t.vehicle_id: (POINTS, POINTS) for t in terms
    }
    with contextlib.suppress(Exception):
        second.terminate()
