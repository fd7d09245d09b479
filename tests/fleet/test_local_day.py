"""Dates people mean are Shanghai days: between 00:00 and 08:00 Shanghai the server's UTC
date is still yesterday, and "today" must not be refused as the future."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import httpx

from fleet.clock import local_today
from tests.conftest import Login
from tests.fleet.test_registry import VEHICLE, _unit


def test_local_today_is_the_shanghai_day() -> None:
    assert local_today(datetime(2026, 12, 8, 16, 15, tzinfo=UTC)).isoformat() == "2026-12-09"
    assert local_today(datetime(2026, 12, 8, 15, 45, tzinfo=UTC)).isoformat() == "2026-12-08"


async def test_a_vehicle_bought_today_in_shanghai_is_accepted(
    client: httpx.AsyncClient, login: Login
) -> None:
    """Fails before the fix when run at 00:00–08:00 Shanghai (the 00:15 shifted run)."""
    admin = await login("admin")
    unit = await _unit(client, admin, "450103-03")
    today = local_today()
    # VINs with a valid check digit (position 9, ISO 3779)
    body = {
        **VEHICLE,
        "vin": "LFV2A21K5A4000001",
        "unit_id": unit,
        "purchase_date": today.isoformat(),
    }
    r = await client.post("/api/v1/vehicles", json=body, headers=admin)
    assert r.status_code == 201, r.text
    body = {
        **VEHICLE,
        "plate": "桂AD99002",
        "vin": "LFV2A21K7A4000002",
        "unit_id": unit,
        "purchase_date": (today + timedelta(days=1)).isoformat(),
    }
    r = await client.post("/api/v1/vehicles", json=body, headers=admin)
    assert r.status_code == 422 and r.json()["error"]["field"] == "purchase_date", r.text
