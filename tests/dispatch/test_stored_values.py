"""No stored value can break a read (issue 18 item 1).

The worst values a row can hold — timestamps of year 1 and 9999 and ±infinity, dates the
same, control characters and formula prefixes in every text, NaN and huge numbers — are
written straight into the database (as rows written before a rule, or by SQL, would be),
then every GET operation of the OpenAPI document is called as six roles, every export in
every format: each must answer below 500, and the files must open.
"""

from __future__ import annotations

import csv
import io
import re
import xml.etree.ElementTree as ET
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import Any

import httpx
import orjson
from openpyxl import load_workbook
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession

from tests.conftest import Login
from tests.dispatch.conftest import API, World, approved_trip, make_driver, make_vehicle, trip_body

# Everything PostgreSQL text can hold that a spreadsheet or XML cannot (no NUL: PostgreSQL
# refuses it itself), behind a formula.
WORST = '=HYPERLINK("http://x"&A1,"点击")\u001a\u0001\u0007\u000b\u007f\u0085\ufffe-1+2@\t'
MIN_TS, MAX_TS = datetime(1, 1, 1, tzinfo=UTC), datetime(9999, 12, 31, 23, 0, tzinfo=UTC)


@dataclass(frozen=True)
class Extreme:
    """One way to be out of range: a window, a day, and numbers."""

    name: str
    starts: str  # SQL literals, cast by PostgreSQL: -infinity is not a Python datetime
    ends: str
    day: str
    km: float
    cny: Decimal


EXTREMES = (
    Extreme(
        "year 1", "0001-01-01 00:00+00", "0001-01-01 02:00+00", "0001-01-01", 1e308, Decimal(0)
    ),
    Extreme(
        "year 9999",
        "9999-12-31 20:00+00",
        "9999-12-31 22:00+00",
        "9999-12-31",
        float("inf"),
        Decimal("99999999.99"),
    ),
    Extreme("infinite", "-infinity", "infinity", "infinity", float("nan"), Decimal("NaN")),
)


@dataclass
class Stored:
    trips: list[int] = field(default_factory=list)
    vehicles: list[int] = field(default_factory=list)
    drivers: list[int] = field(default_factory=list)
    alerts: list[int] = field(default_factory=list)
    runs: list[int] = field(default_factory=list)


async def _scalar(session: AsyncSession, sql: str, **params: Any) -> int:
    return int((await session.execute(text(sql), params)).scalar_one())


async def _store_worst(session: AsyncSession, world: World) -> Stored:
    out = Stored()
    requester, admin = world.users["requester.qingxiu"], world.users["admin"]
    await session.execute(
        text("UPDATE orgs SET name = :n WHERE id IN (:a, :b)"),
        {"n": WORST[:200], "a": world.requester_unit, "b": world.pool_unit},
    )
    await session.execute(
        text("UPDATE drivers SET name = :n, licence_expires = 'infinity' WHERE id = :d"),
        {"n": WORST, "d": world.driver_id},
    )
    for i, x in enumerate(EXTREMES):
        vehicle = await make_vehicle(session, world.pool_unit)
        driver = world.driver_id if i == 1 else await make_driver(session, world.pool_unit, "A1")
        out.vehicles.append(vehicle)
        out.drivers.append(driver)
        w = {"s": x.starts, "e": x.ends, "d": x.day}
        await session.execute(
            text(
                "UPDATE vehicles SET purchase_date = CAST(CAST(:d AS text) AS date), plate = :plate"
                " WHERE id = :v"
            ),
            {**w, "v": vehicle, "plate": f"=A1+2-{i}"},
        )
        trip_sql = (
            "INSERT INTO trip_requests (requester_id, unit_id, passengers, passenger_names,"
            " nature, purpose, origin, origin_address, destination, destination_address,"
            " departure_at, return_at, special_needs, kind, allowed_body_types, planned_km,"
            " state, approval_status, state_reason, stops) VALUES (:req, :unit, 3, :names,"
            " 'official', :txt, ST_SetSRID(ST_MakePoint(108.38, 22.82), 4326), :txt,"
            " ST_SetSRID(ST_MakePoint(108.4, 22.85), 4326), :txt, CAST(CAST(:s AS text) AS timestamptz),"
            " CAST(CAST(:e AS text) AS timestamptz), :txt, 'in_county', '{sedan,suv}', :km, :state,"
            " 'approved', :txt, CAST(CAST(:stops AS text) AS jsonb)) RETURNING id"
        )
        stops = orjson.dumps([{"lat": 22.9, "lon": 108.5, "address": WORST}]).decode()
        common = {
            **w,
            "req": requester,
            "unit": world.requester_unit,
            "names": [WORST],
            "txt": WORST,
            "km": x.km,
            "stops": stops,
        }
        waiting = await _scalar(session, trip_sql, **common, state="approved")
        done = await _scalar(session, trip_sql, **common, state="completed")
        out.trips += [waiting, done]
        assignment_sql = (
            "INSERT INTO trip_assignments (trip_id, vehicle_id, driver_id, dispatcher_id,"
            " starts_at, ends_at, state, departed_at, arrived_at, completed_at,"
            " odometer_start_km, odometer_end_km, tolls_cny, parking_cny, energy_cny, notes,"
            " decline_reason) VALUES (:t, :v, :dr, :adm, CAST(CAST(:s AS text) AS timestamptz),"
            " CAST(CAST(:e AS text) AS timestamptz), :state, CAST(CAST(:s AS text) AS timestamptz), CAST(CAST(:e AS text) AS timestamptz),"
            " CAST(CAST(:e AS text) AS timestamptz), 0, :km, :cny, :cny, :cny, :txt, :txt)"
        )
        a = {**w, "v": vehicle, "dr": driver, "adm": admin, "km": x.km, "cny": x.cny, "txt": WORST}
        await session.execute(text(assignment_sql), {**a, "t": done, "state": "completed"})
        if i == 1:  # the demo driver's phone sees an accepted trip of year 9999
            accepted = await _scalar(session, trip_sql, **common, state="accepted")
            out.trips.append(accepted)
            await session.execute(text(assignment_sql), {**a, "t": accepted, "state": "accepted"})
        for kind in ("fuel", "toll"):
            await session.execute(
                text(
                    "INSERT INTO cost_records (vehicle_id, trip_id, kind, amount_cny, occurred_on,"
                    " note, recorded_by) VALUES (:v, :t, :k, :cny, CAST(CAST(:d AS text) AS date), :txt, :adm)"
                ),
                {**a, "t": done, "k": kind},
            )
        await session.execute(
            text(
                "INSERT INTO service_records (vehicle_id, kind, done_on, due_on, vendor, note,"
                " reminded_at) VALUES (:v, 'insurance', CAST(CAST(:d AS text) AS date), CAST(CAST(:d AS text) AS date),"
                " :txt, :txt, CAST(CAST(:e AS text) AS timestamptz))"
            ),
            a,
        )
        out.alerts.append(
            await _scalar(
                session,
                "INSERT INTO alerts (kind, severity, vehicle_id, org_id, trip_id, started_at,"
                " ended_at, location, message, evidence, status, ack_by, ack_at, ack_comment,"
                " created_at) VALUES ('private_use', 'critical', :v, :unit, :t,"
                " CAST(CAST(:s AS text) AS timestamptz), CAST(CAST(:e AS text) AS timestamptz),"
                " ST_SetSRID(ST_MakePoint(108.38, 22.82), 4326), :txt, CAST(CAST(:ev AS text) AS jsonb),"
                " 'acknowledged', :adm, CAST(CAST(:e AS text) AS timestamptz), :txt, CAST(CAST(:s AS text) AS timestamptz))"
                " RETURNING id",
                **a,
                unit=world.pool_unit,
                t=done,
                ev=orjson.dumps(
                    {"type": "FeatureCollection", "features": [], "note": WORST}
                ).decode(),
            )
        )
        await session.execute(
            text(
                "INSERT INTO vehicle_trips (vehicle_id, started_at, ended_at, start_geom, end_geom,"
                " distance_m, max_speed_kmh, points, odometer_start_km, odometer_end_km)"
                " VALUES (:v, CAST(CAST(:s AS text) AS timestamptz), CAST(CAST(:e AS text) AS timestamptz),"
                " ST_SetSRID(ST_MakePoint(108.38, 22.82), 4326),"
                " ST_SetSRID(ST_MakePoint(108.4, 22.85), 4326), :km, 3.4e38, 2147483647, 0, :km)"
            ),
            a,
        )
        await session.execute(
            text(
                "INSERT INTO vehicle_stops (vehicle_id, started_at, ended_at, geom, ignition_off)"
                " VALUES (:v, CAST(CAST(:s AS text) AS timestamptz), CAST(CAST(:e AS text) AS timestamptz),"
                " ST_SetSRID(ST_MakePoint(108.38, 22.82), 4326), true)"
            ),
            a,
        )
        await session.execute(
            text(
                "INSERT INTO vehicle_daily_mileage (vehicle_id, day, distance_km, source, track_km)"
                " VALUES (:v, CAST(CAST(:d AS text) AS date), :km, 'track', :km)"
            ),
            a,
        )
        await session.execute(
            text(
                "INSERT INTO latest_positions (vehicle_id, ts, terminal_id, geom, speed_kmh,"
                " odometer_km, status, status_since, received_at) VALUES (:v,"
                " CAST(CAST(:e AS text) AS timestamptz), :term, ST_SetSRID(ST_MakePoint(108.38, 22.82), 4326),"
                " 'NaN', :km, 'moving', CAST(CAST(:s AS text) AS timestamptz), CAST(CAST(:e AS text) AS timestamptz))"
                " ON CONFLICT (vehicle_id) DO NOTHING"
            ),
            {**a, "term": f"WORST{i:04d}"},
        )
        out.runs.append(
            await _scalar(
                session,
                "INSERT INTO optimizer_runs (org_id, created_by, window_start, window_end,"
                " time_limit_s, state, problem, error, started_at, finished_at) VALUES"
                " (:county, :disp, CAST(CAST(:s AS text) AS timestamptz), CAST(CAST(:e AS text) AS timestamptz), 10,"
                " 'failed', '{}', :txt, CAST(CAST(:s AS text) AS timestamptz), CAST(CAST(:e AS text) AS timestamptz))"
                " RETURNING id",
                **w,
                county=world.county,
                disp=world.users["dispatcher.qingxiu"],
                txt=WORST,
            )
        )
        for user in world.users.values():
            await session.execute(
                text(
                    "INSERT INTO notifications (user_id, kind, message, data, created_at,"
                    " read_at) VALUES (:u, 'trip_approved', :txt, CAST(CAST(:data AS text) AS jsonb),"
                    " CAST(CAST(:s AS text) AS timestamptz), CAST(CAST(:e AS text) AS timestamptz))"
                ),
                {**w, "u": user, "txt": WORST, "data": orjson.dumps({"note": WORST}).decode()},
            )
        await session.execute(
            text(
                "INSERT INTO approval_steps (trip_id, round, seq, level, state, assignee_id,"
                " timeout_hours, due_at, acted_by, acted_at, comment) VALUES (:t, 1, 1, 'unit',"
                " 'approved', :u, 24, CAST(CAST(:e AS text) AS timestamptz), :u, CAST(CAST(:s AS text) AS timestamptz), :txt)"
            ),
            {**w, "t": waiting, "u": world.users["approver.qingxiu"], "txt": WORST},
        )
    await session.commit()
    return out


ROLES = (
    "admin",
    "auditor",
    "dispatcher.qingxiu",
    "approver.qingxiu",
    "requester.qingxiu",
    "driver.qingxiu",
)


def _queries(path: str, today: date) -> list[dict[str, str]]:
    """The query variants a GET operation is read with (the minimal one first)."""
    now = datetime.now(UTC).replace(microsecond=0)
    if path.endswith("/track"):
        window = {"start": (now - timedelta(days=30)).isoformat(), "end": now.isoformat()}
        return [{**window, "format": "geojson"}, {**window, "format": "gpx"}]
    if path.endswith(("/trips", "/stops", "/alerts")) and "/vehicles/" in path:
        return [{"start": (now - timedelta(days=366)).isoformat(), "end": now.isoformat()}]
    if path.endswith("/mileage"):
        return [{"from": (today - timedelta(days=60)).isoformat(), "to": today.isoformat()}]
    if path.endswith("/cost-per-km"):
        months = [("2020-01", "2029-12"), ("1970-01", "1979-12"), ("2090-01", "2099-12")]
        return [
            {"month_from": a, "month_to": b, "format": f}
            for a, b in months
            for f in ("json", "csv")
        ]
    return [{}]


async def test_every_read_survives_the_worst_stored_values(
    client: httpx.AsyncClient, login: Login, session: AsyncSession, world: World
) -> None:
    stored = await _store_worst(session, world)
    terminal = await session.scalar(text("SELECT min(id) FROM terminals"))
    ids: dict[str, list[Any]] = {
        "trip_id": stored.trips,
        "vehicle_id": stored.vehicles,
        "driver_id": stored.drivers,
        "alert_id": stored.alerts,
        "proposal_id": stored.runs,
        "org_id": [world.requester_unit],
        "user_id": [world.users["requester.qingxiu"]],
        "terminal_id": [terminal],
        "geofence_id": [1],
        "fmt": ["csv", "xlsx"],
    }
    spec = (await client.get(f"{API}/openapi.json")).json()
    today = datetime.now(UTC).date()
    answered: dict[str, set[int]] = {}
    failures: list[str] = []
    for role in ROLES:
        headers = await login(role)
        for path, ops in spec["paths"].items():
            if "get" not in ops or path.endswith("/openapi.json"):
                continue
            names = re.findall(r"{(\w+)}", path)
            missing = [n for n in names if n not in ids]
            assert not missing, f"{path}: give the sweep ids for {missing}"
            urls = [path]
            for name in names:
                urls = [u.replace(f"{{{name}}}", str(v)) for u in urls for v in ids[name]]
            for url in urls:
                for params in _queries(path, today):
                    try:
                        r = await client.get(url, params=params, headers=headers)
                    except Exception as exc:  # the app's own error, raised through ASGI
                        failures.append(f"{role} GET {url} {params} -> {exc!r}"[:300])
                        continue
                    answered.setdefault(path, set()).add(r.status_code)
                    if r.status_code >= 500:
                        failures.append(f"{role} GET {url} {params} -> {r.status_code} {r.text}")
                    elif r.status_code == 200:
                        _opens(url, params, r)
    assert not failures, "\n".join(failures[:20])
    # The sweep read something: exports, trip and alert lists, suggestions, proposals answered.
    for path in (
        "/api/v1/exports/trips.{fmt}",
        "/api/v1/exports/alerts.{fmt}",
        "/api/v1/trips",
        "/api/v1/alerts",
        "/api/v1/dispatch/proposals",
        "/api/v1/reports/cost-per-km",
        "/api/v1/costs",
        "/api/v1/me/assignments",
        "/api/v1/me/notifications",
    ):
        assert 200 in answered[path], (path, answered[path])


def _opens(url: str, params: dict[str, str], r: httpx.Response) -> None:
    """A 200 file is a file its reader opens, with no formula and no control character."""
    kind = r.headers.get("content-type", "")
    if kind.startswith("text/csv"):
        rows = list(csv.reader(io.StringIO(r.content.decode("utf-8-sig"))))
        assert rows, url
        for row in rows:
            for value in row:
                assert not re.search("[\x00-\x08\x0b-\x1f\x7f-\x9f]", value), (url, value)
                assert not value.startswith(("=", "+", "-", "@", "\t", "\r")), (url, value)
    elif "spreadsheetml" in kind:
        ws = load_workbook(io.BytesIO(r.content)).active
        assert ws is not None
        for row in ws.iter_rows():
            for c in row:
                assert c.data_type != "f", (url, c.coordinate, c.value)
    elif "gpx" in kind:
        ET.fromstring(r.content)
    elif "json" in kind:
        orjson.loads(r.content)


async def test_the_reported_500s_are_gone(
    client: httpx.AsyncClient, login: Login, session: AsyncSession, world: World
) -> None:
    """The issue's cases, each as it was reported."""
    stored = await _store_worst(session, world)
    admin = await login("admin")
    disp = await login("dispatcher.qingxiu")
    for fmt in ("csv", "xlsx"):
        for role in ("admin", "auditor", "dispatcher.qingxiu", "requester.qingxiu"):
            r = await client.get(f"{API}/exports/trips.{fmt}", headers=await login(role))
            assert r.status_code == 200, (role, fmt, r.text)
        r = await client.get(f"{API}/exports/alerts.{fmt}", headers=admin)
        assert r.status_code == 200, r.text
    # The year-9999 departure shows in UTC (Asia/Shanghai would be year 10000).
    r = await client.get(f"{API}/exports/trips.xlsx", headers=admin)
    ws = load_workbook(io.BytesIO(r.content)).active
    assert ws is not None
    values = {str(c.value) for row in ws.iter_rows() for c in row}
    assert "9999-12-31T20:00:00+00:00" in values
    assert not any("\x1a" in v for v in values)
    # Suggestions for a waiting trip of year 9999: a refusal that says why, not a 500.
    r = await client.get(f"{API}/dispatch/trips/{stored.trips[2]}/suggestions", headers=disp)
    assert r.status_code == 409 and r.json()["error"]["code"] == "stored_value_out_of_range"
    r = await client.get(
        f"{API}/reports/cost-per-km",
        params={"month_from": "0001-01", "month_to": "9999-12"},
        headers=admin,
    )
    assert r.status_code == 422 and r.json()["error"]["field"] == "month_from"
    r = await client.get(f"{API}/dispatch/proposals", headers=disp)
    assert r.status_code == 200
    starts = {p["window_start"] for p in r.json()["items"]}
    assert {"0001-01-01T00:00:00Z", "9999-12-31T20:00:00Z"} <= starts


async def test_times_enter_only_within_their_bounds(
    client: httpx.AsyncClient, login: Login, session: AsyncSession, world: World
) -> None:
    """The values the issue saw accepted (201/200) are 422 on their field, with the range."""
    req = await login("requester.qingxiu")
    disp = await login("dispatcher.qingxiu")
    drv = await login("driver.qingxiu")
    body = trip_body(world)
    for departure in ("9999-12-31T20:00:00Z", "0001-01-01T00:00:00Z", 253402300800):
        r = await client.post(
            f"{API}/trips",
            json={**body, "departure_at": departure, "return_at": "9999-12-31T22:00:00Z"},
            headers=req,
        )
        assert r.status_code == 422 and r.json()["error"]["field"] == "departure_at", r.text
    far = (datetime.now(UTC) + timedelta(days=200)).isoformat()
    r = await client.post(f"{API}/trips", json={**body, "departure_at": far}, headers=req)
    assert r.status_code == 422 and "180 days ahead" in r.json()["error"]["message"]

    vehicle = await make_vehicle(session, world.pool_unit)
    for day, why in (("0001-01-01", "1970–2099"), ("2001-01-01", "5 years back")):
        r = await client.post(
            f"{API}/costs",
            json={"vehicle_id": vehicle, "kind": "fuel", "amount_cny": 10, "occurred_on": day},
            headers=disp,
        )
        assert r.status_code == 422 and r.json()["error"]["field"] == "occurred_on"
        assert why in r.json()["error"]["message"], r.text

    trip = await approved_trip(client, login, world, start_in_h=24, hours=2)
    r = await client.post(
        f"{API}/trips/{trip['id']}/assign",
        json={"vehicle_id": vehicle, "driver_id": world.driver_id},
        headers=disp,
    )
    aid = r.json()["id"]
    assert (await client.post(f"{API}/assignments/{aid}/accept", headers=drv)).status_code == 200
    now = datetime.now(UTC)
    for at, why in (
        ("1900-01-01T00:00:00Z", "1970–2099"),
        ((now - timedelta(days=20)).isoformat(), "14 days ago"),
        ((now + timedelta(hours=2)).isoformat(), "in the future"),
    ):
        r = await client.post(
            f"{API}/assignments/{aid}/depart", json={"odometer_km": 10, "at": at}, headers=drv
        )
        assert r.status_code == 422 and r.json()["error"]["field"] == "at", r.text
        assert why in r.json()["error"]["message"], r.text
    # Three days before a booking that starts tomorrow: not this trip's departure.
    r = await client.post(
        f"{API}/assignments/{aid}/depart",
        json={"odometer_km": 10, "at": (now - timedelta(days=3)).isoformat()},
        headers=drv,
    )
    assert r.status_code == 422 and "48 hours outside" in r.json()["error"]["message"]
    r = await client.post(f"{API}/assignments/{aid}/depart", json={"odometer_km": 10}, headers=drv)
    assert r.status_code == 200, r.text
    r = await client.post(
        f"{API}/assignments/{aid}/arrive", json={"at": "9999-12-31T00:00:00Z"}, headers=drv
    )
    assert r.status_code == 422 and r.json()["error"]["field"] == "at"
