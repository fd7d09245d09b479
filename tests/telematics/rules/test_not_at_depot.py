"""Not back at the depot overnight: once a night, per shard."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import asyncpg
import orjson

from telematics.derive.cycle import Deriver
from tests.telematics.rules.conftest import (
    alerts,
)
from tests.telematics.test_derive import cfg, insert_positions, offset


async def test_not_back_at_depot_overnight(apg: asyncpg.Connection) -> None:
    far, home = await apg.fetch(
        "SELECT v.id, ST_Y(v.depot) AS lat, ST_X(v.depot) AS lon FROM vehicles v"
        " WHERE v.status = 'in_service' ORDER BY v.id LIMIT 2"
    )
    evening = datetime(2026, 11, 24, 12, 0, tzinfo=UTC)  # 20:00 local
    la, lo = offset(far["lat"], far["lon"], 5000, 0)
    await insert_positions(
        apg, far["id"], [{"ts": evening, "lat": la, "lon": lo, "speed_kmh": 0, "acc": False}]
    )
    await insert_positions(
        apg,
        home["id"],
        [{"ts": evening, "lat": home["lat"], "lon": home["lon"], "speed_kmh": 0, "acc": False}],
    )
    d = Deriver(cfg())
    before = await d.cycle(apg, now=datetime(2026, 11, 24, 14, 59, tzinfo=UTC))  # 22:59
    assert not [e for e in before.events if e[2].get("kind") == "not_at_depot"]
    check = datetime(2026, 11, 24, 15, 1, tzinfo=UTC)  # 23:01 local
    rep = await d.cycle(apg, now=check)
    kinds = [(e[2]["kind"], e[2]["vehicle_id"]) for e in rep.events if e[0] == "alert"]
    assert ("not_at_depot", far["id"]) in kinds
    assert ("not_at_depot", home["id"]) not in kinds
    found = await alerts(apg, far["id"], "not_at_depot")
    ev = orjson.loads(found[0]["evidence"])
    assert 4900 < ev["distance_m"] < 5100
    assert {f["properties"]["role"] for f in ev["features"]} == {"depot", "last_position"}
    again = await d.cycle(apg, now=check + timedelta(minutes=5))  # once per night
    assert not [e for e in again.events if e[0] == "alert"]
