"""`fleet simulate --protocol jt808`: terminals register, report on the second, and upload
their blind-area backlog as 0x0704 after reconnecting."""

from __future__ import annotations

import asyncio
import random

from fleet.config import get_settings
from telematics.jt808.simulate import Jt808Sim, run_terminal
from telematics.simulator import Counters, Place, SimConfig, Vehicle
from tests.telematics.jt808.test_gateway import q


async def test_simulated_terminals_report_and_upload_backlogs(
    gateway, jt808_terminals, mq_settings
) -> None:
    terms = await jt808_terminals(3, code=None)  # not registered: they register first
    key = get_settings().seed.terminal_key.get_secret_value()
    sim = Jt808Sim("127.0.0.1", gateway.port, reply_timeout_s=2.0, gap_chance=0.3, gap_s=(2.0, 3.0))
    cfg = SimConfig(vehicles=3, interval_s=1.0, gap_share=1.0, seed=5)
    counters = Counters()
    stop = asyncio.Event()
    home = Place(108.366, 22.817, "1")
    tasks = []
    for t in terms:
        plate = (await q(mq_settings, "SELECT plate FROM vehicles WHERE id = $1", t.vehicle_id))[0][
            "plate"
        ]
        v = Vehicle(
            t.id, home, [home, Place(108.4, 22.85, "1")], random.Random(t.id), epoch_ms=False
        )
        tasks.append(
            asyncio.create_task(
                run_terminal(sim, cfg, v, t.phone, plate, key, counters, asyncio.Semaphore(5), stop)
            )
        )
    await asyncio.sleep(14)
    stop.set()
    await asyncio.wait(tasks, timeout=15)
    rows = await q(
        mq_settings,
        "SELECT vehicle_id, count(*) n, count(*) FILTER (WHERE seq IS NULL) backlog"
        " FROM positions WHERE vehicle_id = ANY($1) GROUP BY vehicle_id",
        [t.vehicle_id for t in terms],
    )
    assert len(rows) == 3
    assert all(r["n"] >= 5 for r in rows), rows
    assert sum(r["backlog"] for r in rows) > 0, rows  # 0x0704 items carry no serial as seq
    assert counters.buffered_uploads > 0 and counters.errors == 0
    registered = await q(
        mq_settings,
        "SELECT count(*) n FROM terminals WHERE id = ANY($1) AND registered_at IS NOT NULL",
        [t.id for t in terms],
    )
    assert registered[0]["n"] == 3
