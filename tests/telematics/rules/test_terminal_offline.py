"""Terminal offline while in service, during working hours; closed by the first ping back."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import asyncpg

from telematics.derive.cycle import Deriver
from tests.telematics.rules.conftest import (
    BASE,
    WORK,
    alerts,
)
from tests.telematics.test_derive import cfg, insert_positions


async def test_terminal_offline_while_in_service(apg: asyncpg.Connection) -> None:
    rows = await apg.fetch(
        "SELECT id FROM vehicles WHERE status = 'in_service' ORDER BY id LIMIT 2"
    )
    live, sealed = rows[0]["id"], rows[1]["id"]
    await apg.execute("UPDATE vehicles SET status = 'sealed' WHERE id = $1", sealed)
    last = WORK - timedelta(minutes=40)
    for vid in (live, sealed):
        await insert_positions(
            apg, vid, [{"ts": last, "lat": BASE[0], "lon": BASE[1], "speed_kmh": 0, "acc": False}]
        )
    d = Deriver(cfg())
    evening = datetime(2026, 11, 24, 14, 0, tzinfo=UTC)  # 22:00 local: outside working hours
    rep = await d.cycle(apg, now=evening)
    assert not [e for e in rep.events if e[0] == "alert" and e[2]["kind"] == "terminal_offline"]
    rep = await d.cycle(apg, now=WORK)
    got = [e[2]["vehicle_id"] for e in rep.events if e[0] == "alert"]
    assert got == [live]
    rep = await d.cycle(apg, now=WORK + timedelta(minutes=1))
    assert not [e for e in rep.events if e[0] == "alert"]
    # the terminal reports again: the alert gets its end
    back = WORK + timedelta(minutes=2)
    await insert_positions(
        apg, live, [{"ts": back, "lat": BASE[0], "lon": BASE[1], "speed_kmh": 0, "acc": False}]
    )
    await d.cycle(apg, now=back + timedelta(seconds=5))
    a = (await alerts(apg, live, "terminal_offline"))[0]
    assert a["started_at"] == last and a["ended_at"] == back
