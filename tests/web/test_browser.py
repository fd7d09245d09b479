"""The web front end in a real headless Chromium against a real server, database and Redis.

One session-scoped server; each test logs in through the UI. Screenshots of every page go to
test-artifacts/web/. Every wait is bounded.
"""

from __future__ import annotations

import os
import random
import re
import subprocess
import sys
from datetime import UTC, datetime, time, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import asyncpg
import httpx
import pytest
from playwright.sync_api import Browser, BrowserContext, Page, expect

from fleet.config import Settings
from telematics import bus
from tests.web import fleetdata
from tests.web.conftest import ARTIFACTS, run_async

pytestmark = pytest.mark.timeout(150)
SHANGHAI = ZoneInfo("Asia/Shanghai")

DESKTOP = {"width": 1440, "height": 900}
PHONE = {"width": 375, "height": 667}
WAIT_MS = 15_000
# Every wait is bounded, but by 15 s rather than Playwright's 5 s: CI shares two cores with
# PostgreSQL, Mosquitto and the API under test, and a loaded box must not fail a correct UI.
expect.set_options(timeout=WAIT_MS)


def new_context(
    browser: Browser, base_url: str, viewport: dict[str, int] = DESKTOP
) -> BrowserContext:
    ctx = browser.new_context(
        base_url=base_url,
        viewport=viewport,
        locale="zh-CN",
        timezone_id="Asia/Shanghai",
        service_workers="allow",
    )
    ctx.set_default_timeout(WAIT_MS)
    return ctx


def login(page: Page, username: str, password: str, path: str = "/") -> None:
    page.goto(path)
    page.fill("input[name=username]", username)
    page.fill("input[name=password]", password)
    page.click("button[type=submit]")
    expect(page.locator("input[name=password]")).to_have_count(0)


def shot(page: Page, name: str) -> None:
    page.screenshot(path=str(ARTIFACTS / f"{name}.png"))


def api_token(base_url: str, username: str, password: str) -> dict[str, str]:
    r = httpx.post(
        f"{base_url}/api/v1/auth/login", json={"username": username, "password": password}
    )
    r.raise_for_status()
    return {"Authorization": f"Bearer {r.json()['access_token']}"}


def test_login_page_and_admin_home(browser: Browser, base_url: str, password: str) -> None:
    """The login page, and the admin (every role's pages) landing on the console. The other
    roles log in through the UI in the trip-flow and live-map tests."""
    ctx = new_context(browser, base_url)
    page = ctx.new_page()
    page.goto("/audit")  # a deep link survives the detour through the login page
    expect(page.locator(".login-card h1")).to_have_text("公务用车管理平台")
    shot(page, "login")
    page.fill("input[name=username]", "admin")
    page.fill("input[name=password]", password)
    page.click("button[type=submit]")
    page.wait_for_url("**/audit")
    nav = page.locator(".topbar nav")
    for label in ("调度台", "用车申请", "审批", "监督检查"):
        expect(nav).to_contain_text(label)
    shot(page, "home-admin-audit")
    ctx.close()


def test_wrong_password_is_refused(browser: Browser, base_url: str) -> None:
    ctx = new_context(browser, base_url)
    page = ctx.new_page()
    page.goto("/login")
    page.fill("input[name=username]", "dispatcher.qingxiu")
    page.fill("input[name=password]", "not-the-password")
    page.click("button[type=submit]")
    expect(page.get_by_role("alert")).to_have_text("用户名或密码错误")
    ctx.close()


def test_english_switch_is_remembered(browser: Browser, base_url: str, password: str) -> None:
    ctx = new_context(browser, base_url)
    page = ctx.new_page()
    login(page, "auditor", password)
    page.get_by_test_id("lang-switch").first.click()
    expect(page.locator(".topbar nav")).to_contain_text("Supervision")
    page.reload()
    expect(page.locator(".topbar nav")).to_contain_text("Supervision")
    shot(page, "audit-en")
    ctx.close()


def _positions(page: Page) -> dict[str, Any]:
    return page.evaluate(
        "() => { const f = window.__fleet; const out = {}; if (!f) return out;"
        " for (const v of f.byId.values()) if (v.lon != null) out[v.id] = [v.lon, v.lat, v.ts];"
        " return out; }"
    )


async def _publish(settings: Settings, cars: list[fleetdata.Car], ts: datetime) -> None:
    redis = bus.redis_client(settings.redis.url)
    try:
        await bus.publish_positions(redis, fleetdata.batch_items(cars, ts))
    finally:
        await redis.aclose()


async def _cars(settings: Settings) -> list[fleetdata.Car]:
    conn = await asyncpg.connect(settings.db.dsn())
    try:
        return await fleetdata.load_cars(conn)
    finally:
        await conn.close()


def test_live_map_moves_vehicles(
    browser: Browser, base_url: str, password: str, web_settings: Settings
) -> None:
    ctx = new_context(browser, base_url)
    page = ctx.new_page()
    login(page, "dispatcher.nanning", password, "/console")
    page.wait_for_url("**/console")
    expect(page.get_by_test_id("live-state")).to_have_attribute(
        "data-state", "open", timeout=WAIT_MS
    )
    page.wait_for_function(
        "() => window.__fleetStats && window.__fleetStats.shown > 0", timeout=WAIT_MS
    )
    first = _positions(page)
    assert first, "no vehicle positions on the console"

    # Two batches through Redis (the real fan-out path), one second apart.
    cars = run_async(_cars(web_settings))
    rng = random.Random(3)
    for _ in range(2):
        fleetdata.step(cars, 60, rng)
        run_async(_publish(web_settings, cars, datetime.now(UTC)))
        page.wait_for_timeout(1100)
    page.wait_for_function(
        "(before) => { const f = window.__fleet; let moved = 0;"
        " for (const [id, p] of Object.entries(before)) { const v = f.byId.get(Number(id));"
        " if (v && (v.lon !== p[0] || v.lat !== p[1])) moved++; } return moved > 0; }",
        arg=first,
        timeout=WAIT_MS,
    )
    second = _positions(page)
    moved = [vid for vid, p in second.items() if vid in first and p[:2] != first[vid][:2]]
    assert moved, "positions did not change between two reads"
    # The GPU layer drew them (rendered features from the vehicles source).
    page.wait_for_function(
        "() => window.__map.queryRenderedFeatures({layers: ['v-point', 'v-cluster']}).length > 0",
        timeout=WAIT_MS,
    )
    expect(page.get_by_test_id("count-moving")).not_to_have_text("0")
    shot(page, "console-live")

    # Search by plate and open the vehicle panel.
    plate = cars[0].plate if str(cars[0].id) in second else None
    plate = plate or page.locator("[data-testid=vehicle-row] .title span").first.inner_text()
    page.get_by_test_id("plate-search").fill(plate)
    page.get_by_test_id("vehicle-row").first.click()
    expect(page.get_by_test_id("vehicle-panel")).to_contain_text(plate)
    page.wait_for_timeout(1200)
    shot(page, "console-vehicle-panel")
    page.get_by_test_id("tab-alerts").click()
    page.wait_for_timeout(500)
    shot(page, "console-alerts")
    ctx.close()


def _pick_vehicle(base_url: str, headers: dict[str, str], trip: dict[str, Any]) -> dict[str, Any]:
    r = httpx.get(
        f"{base_url}/api/v1/vehicles",
        params={"status": "in_service", "limit": 500},
        headers=headers,
    )
    r.raise_for_status()
    for v in r.json()["items"]:
        if (
            v["body_type"] in trip["allowed_body_types"]
            and v["seats"] > trip["passengers"]
            and v["energy"] != "bev"
        ):
            return v
    raise AssertionError("no vehicle fits the trip in the dispatcher's scope")


async def _drive(
    settings: Settings, vehicle_id: int, start: datetime, end: datetime, trip: dict[str, Any]
) -> int:
    conn = await asyncpg.connect(settings.db.dsn())
    try:
        seconds = max(2.0, (end - start).total_seconds())
        n = 60
        rows = []
        o, d = trip["origin"], trip["destination"]
        for i in range(n + 1):
            f = i / n
            ts = start + timedelta(seconds=seconds * f)
            speed = 0.0 if i in (0, n) else 30 + 40 * f * (1 - f) * 4
            rows.append(
                (
                    vehicle_id,
                    ts,
                    f"GX{vehicle_id:08d}",
                    o["lon"] + (d["lon"] - o["lon"]) * f,
                    o["lat"] + (d["lat"] - o["lat"]) * f + 0.003 * (f * (1 - f)),
                    speed,
                )
            )
        await conn.executemany(
            "INSERT INTO positions (vehicle_id, ts, terminal_id, geom, speed_kmh, heading_deg, acc, fix, flags)"
            " VALUES ($1, $2, $3, ST_SetSRID(ST_MakePoint($4, $5), 4326), $6, 90, true, true, 0)"
            " ON CONFLICT DO NOTHING",
            rows,
        )
        return len(rows)
    finally:
        await conn.close()


def test_trip_flow_through_the_ui(
    browser: Browser, base_url: str, password: str, web_settings: Settings
) -> None:
    # 1. Requester files a request, origin and destination picked on the map.
    ctx = new_context(browser, base_url)
    page = ctx.new_page()
    login(page, "requester.qingxiu", password, "/")
    page.wait_for_url("**/requests")
    expect(page.locator(".topbar nav a")).to_have_text(["用车申请"])
    page.wait_for_function("() => document.querySelector('[data-testid=request-map] canvas')")
    page.wait_for_timeout(800)
    box = page.get_by_test_id("request-map").bounding_box()
    assert box
    page.get_by_test_id("pick-origin").click()
    page.mouse.click(box["x"] + box["width"] * 0.45, box["y"] + box["height"] * 0.5)
    expect(page.get_by_test_id("origin-value")).to_be_visible()
    page.get_by_test_id("pick-destination").click()
    # Inside 青秀区 (the requester's county), so one approval decides it. (The click used to
    # land in 兴宁区 as drawn, filed in-county only because the server took the nearest seat.)
    page.mouse.click(box["x"] + box["width"] * 0.61, box["y"] + box["height"] * 0.5)
    expect(page.get_by_test_id("destination-value")).to_be_visible()
    # The map names the county and coordinates; the requester writes the street address.
    expect(page.get_by_test_id("destination-address")).to_have_value(
        re.compile(r"^青秀区 \(\d+\.\d{5}")
    )
    page.get_by_test_id("destination-address").fill("民族大道103号 自治区人民政府")
    page.get_by_test_id("purpose").fill("赴自治区政府参加工作会议")
    page.get_by_test_id("request-submit").click()
    created = page.get_by_test_id("request-created")
    expect(created).to_be_visible()
    trip_id = int(created.inner_text().split("·")[0].strip().lstrip("#"))
    expect(page.locator("[data-testid=my-request]").first).to_be_visible()
    shot(page, "requests")
    requester_page = page

    # 2. Approver approves it from the inbox.
    actx = new_context(browser, base_url)
    ap = actx.new_page()
    login(ap, "approver.qingxiu", password, "/")
    ap.wait_for_url("**/approvals")
    # The request was filed before the approver logged in: the stored notification is waiting.
    expect(ap.get_by_test_id("bell-count")).to_be_visible()
    ap.get_by_test_id("bell").click()
    expect(ap.locator("[data-testid=bell-item]").filter(has_text=f"#{trip_id}")).to_have_count(1)
    shot(ap, "notifications")
    ap.get_by_test_id("mark-all-read").click()
    expect(ap.get_by_test_id("bell-count")).to_have_count(0)
    ap.get_by_test_id("bell").click()
    row = ap.locator(f"[data-testid=inbox-row][data-trip='{trip_id}']")
    expect(row).to_be_visible()
    row.click()
    expect(ap.locator("dd").filter(has_text="民族大道103号 自治区人民政府")).to_have_count(1)
    shot(ap, "approvals")
    ap.get_by_test_id("approval-reason").fill("同意")
    ap.get_by_test_id("approve").click()
    expect(row).to_have_count(0, timeout=WAIT_MS)
    actx.close()
    # The requester's list follows the state live (trip event over the websocket).
    expect(requester_page.locator("[data-testid=my-request]").first).to_have_attribute(
        "data-state", "approved", timeout=WAIT_MS
    )

    # 3. Dispatcher assigns a vehicle and the demo driver from the queue.
    headers = api_token(base_url, "dispatcher.qingxiu", password)
    trip = httpx.get(f"{base_url}/api/v1/trips/{trip_id}", headers=headers).json()
    vehicle = _pick_vehicle(base_url, headers, trip)
    dctx = new_context(browser, base_url)
    dp = dctx.new_page()
    login(dp, "dispatcher.qingxiu", password, "/")
    dp.wait_for_url("**/console")
    item = dp.locator(f"[data-testid=queue-item][data-trip='{trip_id}']")
    expect(item).to_be_visible()
    item.get_by_test_id("assign-open").click()
    dp.get_by_test_id("assign-plate").fill(vehicle["plate"])
    dp.get_by_test_id("assign-driver").select_option(label="示范驾驶员 · C1")
    shot(dp, "console-assign")
    dp.get_by_test_id("assign-submit").click()
    expect(item).to_have_count(0)
    dctx.close()

    # 4. Driver, on a phone: accept, depart, then complete while offline (queued, sent later).
    pctx = new_context(browser, base_url, PHONE)
    pp = pctx.new_page()
    login(pp, "driver.qingxiu", password, "/")
    pp.wait_for_url("**/driver")
    task = pp.locator(f"[data-testid=task][data-trip='{trip_id}']")
    expect(task).to_be_visible()
    expect(pp.locator("link[rel=manifest]")).to_have_count(1)
    # Installable: the manifest parses and the service worker activates (bounded wait).
    manifest = httpx.get(f"{base_url}/manifest.webmanifest").json()
    assert manifest["start_url"] == "/driver" and manifest["display"] == "standalone"
    assert pp.evaluate(
        "() => Promise.race([navigator.serviceWorker.ready.then(r => !!r.active),"
        " new Promise(r => setTimeout(() => r(false), 10000))])"
    )
    shot(pp, "driver-assigned")
    task.get_by_test_id("accept").click()
    expect(task).to_have_attribute("data-state", "accepted")
    task.get_by_test_id("depart").click()
    pp.get_by_test_id("odometer").fill("1000")
    pp.get_by_test_id("action-submit").click()
    expect(task).to_have_attribute("data-state", "departed")
    href = task.get_by_test_id("navigate").get_attribute("href") or ""
    assert href.startswith(("https://uri.amap.com/", "geo:"))
    shot(pp, "driver-departed")
    pp.wait_for_timeout(1500)
    a = httpx.get(f"{base_url}/api/v1/trips/{trip_id}/assignments", headers=headers).json()
    departed_at = datetime.fromisoformat(a[-1]["departed_at"])
    # The drive between departure and now, as the ingest would have stored it.
    n = run_async(
        _drive(
            web_settings,
            vehicle["id"],
            departed_at + timedelta(milliseconds=50),
            datetime.now(UTC) - timedelta(milliseconds=100),
            trip,
        )
    )
    assert n > 10
    pctx.set_offline(True)
    pp.evaluate("() => window.dispatchEvent(new Event('offline'))")
    expect(pp.get_by_test_id("offline-banner")).to_be_visible()
    task.get_by_test_id("complete").click()
    pp.get_by_test_id("odometer").fill("1025")
    pp.get_by_test_id("tolls").fill("15")
    pp.get_by_test_id("parking").fill("10")
    pp.get_by_test_id("fuel").fill("60")
    pp.get_by_test_id("action-submit").click()
    expect(pp.get_by_test_id("outbox-count")).to_contain_text("1")
    expect(task).to_have_attribute("data-state", "completed")
    shot(pp, "driver-offline-queued")
    pctx.set_offline(False)
    pp.evaluate("() => window.dispatchEvent(new Event('online'))")
    expect(pp.get_by_test_id("outbox-count")).to_have_count(0)
    shot(pp, "driver-synced")
    a = httpx.get(f"{base_url}/api/v1/trips/{trip_id}/assignments", headers=headers).json()
    assert a[-1]["state"] == "completed" and a[-1]["odometer_end_km"] == 1025
    pctx.close()
    ctx.close()

    # 5. Auditor replays the track, planned vs actual, prints the report.
    # A request departing the day after tomorrow: the auditor's default list (the last 7 days
    # and everything after) shows it at any hour, as it shows this trip when it was filed at
    # 23:30 Shanghai and departs after midnight.
    later = _request_departing(base_url, password, datetime.now(UTC) + timedelta(hours=50))
    uctx = new_context(browser, base_url)
    up = uctx.new_page()
    login(up, "auditor", password, "/")
    up.wait_for_url("**/audit")
    expect(up.locator(".topbar nav a")).to_have_text(["监督检查"])
    for tid in (trip_id, later):
        expect(up.locator(f"[data-testid=audit-trip-row][data-trip='{tid}']")).to_have_count(1)
    # newest departure first
    expect(up.locator("[data-testid=audit-trip-row]").first).to_have_attribute(
        "data-trip", str(later)
    )
    up.get_by_test_id("audit-search").click()
    expect(up.locator(f"[data-testid=audit-trip-row][data-trip='{trip_id}']")).to_have_count(1)
    shot(up, "audit-trips")
    # Search by the vehicle's plate and the driver's name: exactly this trip.
    up.get_by_test_id("audit-plate").fill(vehicle["plate"])
    up.get_by_test_id("audit-driver").fill("示范驾驶员")
    up.get_by_test_id("audit-search").click()
    expect(up.get_by_test_id("audit-trip-filter")).to_contain_text(vehicle["plate"])
    expect(up.locator("[data-testid=audit-trip-row]")).to_have_count(1)
    expect(up.locator("[data-testid=audit-trip-row] td").first).to_have_text(str(trip_id))
    shot(up, "audit-trips-by-vehicle")
    up.get_by_test_id("audit-plate").fill("")
    up.get_by_test_id("audit-driver").fill("")
    up.get_by_test_id("audit-tab-alerts").click()
    up.get_by_test_id("audit-search").click()
    up.wait_for_timeout(800)
    shot(up, "audit-alerts")
    up.goto(f"/audit/trips/{trip_id}")
    expect(up.get_by_test_id("planned-actual")).to_contain_text("25.0")
    up.wait_for_function("() => window.__playbackReady === true", timeout=WAIT_MS)
    slider = up.get_by_test_id("time-slider")
    before = up.get_by_test_id("playback-time").inner_text()
    slider.fill("30")
    expect(up.get_by_test_id("playback-time")).not_to_have_text(before)
    expect(up.locator("[data-testid=speed-chart] canvas")).to_have_count(1)
    up.wait_for_timeout(600)
    shot(up, "audit-trip-playback")
    up.goto(f"/trips/{trip_id}/report")
    expect(up.get_by_test_id("trip-report")).to_contain_text("1025")
    up.wait_for_function("() => window.__playbackReady === true", timeout=WAIT_MS)
    up.emulate_media(media="print")
    up.wait_for_timeout(500)
    shot(up, "trip-report-print")
    up.emulate_media(media="screen")

    # A vehicle-day replay of a 40-minute drive (10-second pings) with its speed chart: at
    # 10:00 yesterday (Shanghai), so the whole drive lies in one day at any hour (from 00:00
    # to 00:45 "the last 45 minutes" straddled midnight and the day showed only part of it).
    yesterday = datetime.now(SHANGHAI).date() - timedelta(days=1)
    start = datetime.combine(yesterday, time(10, 0), SHANGHAI).astimezone(UTC)
    run_async(_day_track(web_settings, vehicle["id"], start))
    day = start.astimezone(SHANGHAI).date().isoformat()
    up.evaluate("() => { window.__playbackReady = false; }")
    up.goto(f"/audit/vehicles/{vehicle['id']}/{day}")
    up.wait_for_function("() => window.__playbackReady === true", timeout=WAIT_MS)
    assert int(up.get_by_test_id("track-points").inner_text()) >= 240
    up.get_by_test_id("time-slider").fill("120")
    up.wait_for_timeout(500)
    shot(up, "audit-vehicle-day")
    uctx.close()


def _request_departing(base_url: str, password: str, start: datetime) -> int:
    body = {
        "passengers": 2,
        "nature": "official",
        "purpose": "赴市政务服务中心参加后天的会议",
        "origin": {"lat": 22.787, "lon": 108.492, "address": "青秀区人民政府"},
        "destination": {"lat": 22.80, "lon": 108.51, "address": "青秀区政务服务中心"},
        "departure_at": start.replace(microsecond=0).isoformat(),
        "return_at": (start.replace(microsecond=0) + timedelta(hours=2)).isoformat(),
        "round_trip": True,
        "submit": True,
    }
    headers = api_token(base_url, "requester.qingxiu", password)
    r = httpx.post(f"{base_url}/api/v1/trips", json=body, headers=headers)
    assert r.status_code == 201, r.text
    return int(r.json()["id"])


async def _day_track(settings: Settings, vehicle_id: int, start: datetime) -> None:
    conn = await asyncpg.connect(settings.db.dsn())
    try:
        await fleetdata.write_track(
            conn, vehicle_id, start, origin=(108.30, 22.80), end=(108.42, 22.86), minutes=40
        )
    finally:
        await conn.close()


async def _open_alert(settings: Settings, county: str) -> tuple[int, int]:
    """A fresh open alert on a vehicle of the county that has no other open alert."""
    conn = await asyncpg.connect(settings.db.dsn())
    try:
        row = await conn.fetchrow(
            "INSERT INTO alerts (kind, vehicle_id, org_id, started_at, message, evidence,"
            " dedup_key) SELECT 'overspeed', v.id, v.unit_id, now(), '超速 浏览器测试', '{}',"
            " 'browser-ack:' || v.id || ':' || extract(epoch FROM now()) FROM vehicles v"
            " JOIN orgs o ON o.id = v.unit_id WHERE o.path <@ (SELECT path FROM orgs WHERE"
            " code = $1) AND v.shared_pool = 'none' AND NOT EXISTS (SELECT 1 FROM alerts a"
            " WHERE a.vehicle_id = v.id AND a.status = 'open') ORDER BY v.id LIMIT 1"
            " RETURNING id, vehicle_id",
            county,
        )
        assert row is not None, "no vehicle without an open alert"
        return int(row["id"]), int(row["vehicle_id"])
    finally:
        await conn.close()


def test_acknowledgement_reaches_another_console_live(
    browser: Browser, base_url: str, password: str, web_settings: Settings
) -> None:
    """The county dispatcher acknowledges an alert in the console; the city dispatcher's
    open console drops it from its alerts list and clears the vehicle's alarm, no reload."""
    alert_id, vehicle_id = run_async(_open_alert(web_settings, "450103"))
    pages = {}
    contexts = []
    for user in ("dispatcher.nanning", "dispatcher.qingxiu"):
        ctx = new_context(browser, base_url)
        contexts.append(ctx)
        page = ctx.new_page()
        login(page, user, password, "/console")
        page.wait_for_url("**/console")
        expect(page.get_by_test_id("live-state")).to_have_attribute("data-state", "open")
        page.get_by_test_id("tab-alerts").click()
        expect(page.locator(f"[data-alert-id='{alert_id}']")).to_have_count(1)
        pages[user] = page
    watcher, actor = pages["dispatcher.nanning"], pages["dispatcher.qingxiu"]
    alarm = f"() => window.__fleet.byId.get({vehicle_id})?.alarm"
    watcher.wait_for_function(f"() => ({alarm})() === true")
    loads = []
    watcher.on("framenavigated", lambda f: loads.append(f.url))
    try:
        actor.locator(f"[data-alert-id='{alert_id}'] [data-testid=ack-open]").click()
        actor.get_by_test_id("ack-comment").fill("已电话提醒驾驶员")
        actor.get_by_test_id("ack-submit").click()
        expect(actor.locator(f"[data-alert-id='{alert_id}']")).to_have_count(0)
        # The other console: gone from its open list and no longer an alarm on its map.
        expect(watcher.locator(f"[data-alert-id='{alert_id}']")).to_have_count(0)
        watcher.wait_for_function(f"() => ({alarm})() === false")
        assert loads == [], loads  # no navigation or reload happened
        shot(watcher, "console-alert-acknowledged-elsewhere")
    finally:
        for ctx in contexts:
            ctx.close()


def test_exports_and_spa_fallback(base_url: str, password: str) -> None:
    headers = api_token(base_url, "auditor", password)
    csv = httpx.get(f"{base_url}/api/v1/exports/trips.csv", headers=headers)
    assert csv.status_code == 200 and csv.text.startswith("\ufeff编号 ID")
    xlsx = httpx.get(f"{base_url}/api/v1/exports/alerts.xlsx", headers=headers)
    assert xlsx.status_code == 200 and xlsx.content[:2] == b"PK"
    # Client routes get the HTML shell; /api never does.
    assert '<div id="app">' in httpx.get(f"{base_url}/audit/trips/1").text
    r = httpx.get(f"{base_url}/api/v1/no-such-route")
    assert r.status_code == 404 and r.json()["error"]["code"] == "not_found"
    cfg = httpx.get(f"{base_url}/api/v1/ui-config").json()
    assert cfg["default_tiles"] == "offline" and cfg["timezone"] == "Asia/Shanghai"
    geo = httpx.get(f"{base_url}/geo/guangxi-counties.geojson").json()
    assert len(geo["features"]) >= 100


def test_auto_assign_proposal_through_the_console(
    browser: Browser, base_url: str, password: str, web_settings: Settings
) -> None:
    """Dispatcher asks the optimizer for a proposal in the console, reviews it, accepts it;
    a real `fleet optimizer-worker` process solves it."""
    worker = subprocess.Popen(
        [str(Path(sys.executable).with_name("fleet")), "optimizer-worker"],
        env={**os.environ, "FLEET_DB__NAME": web_settings.db.name},
        stdout=subprocess.DEVNULL,
        stderr=(ARTIFACTS / "optimizer-worker.log").open("wb"),
    )
    try:
        # An approved request departing soon (in Qingxiu district, Nanning).
        start = datetime.now(UTC).replace(microsecond=0) + timedelta(minutes=20)
        body = {
            "passengers": 2,
            "nature": "official",
            "purpose": "赴市政务服务中心办理公务",
            "origin": {"lat": 22.787, "lon": 108.492, "address": "青秀区人民政府"},
            "destination": {"lat": 22.80, "lon": 108.51, "address": "青秀区政务服务中心"},
            "departure_at": start.isoformat(),
            "return_at": (start + timedelta(hours=2)).isoformat(),
            "round_trip": True,
            "submit": True,
        }
        req = api_token(base_url, "requester.qingxiu", password)
        r = httpx.post(f"{base_url}/api/v1/trips", json=body, headers=req)
        assert r.status_code == 201, r.text
        trip_id = r.json()["id"]
        appr = api_token(base_url, "approver.qingxiu", password)
        r = httpx.post(f"{base_url}/api/v1/trips/{trip_id}/approve", json={}, headers=appr)
        assert r.status_code == 200 and r.json()["state"] == "approved", r.text

        ctx = new_context(browser, base_url)
        page = ctx.new_page()
        # The panel plans "today" (Asia/Shanghai) by the browser's clock. Just before
        # midnight the departure falls on the next day: then move the page's clock there.
        if start.astimezone(SHANGHAI).date() != datetime.now(SHANGHAI).date():
            page.clock.set_system_time(start)
        login(page, "dispatcher.qingxiu", password, "/console")
        page.wait_for_url("**/console")
        page.get_by_test_id("tab-proposal").click()
        page.get_by_test_id("proposal-compute").click()
        accept = page.get_by_test_id("proposal-accept")
        expect(accept).to_be_visible(timeout=90_000)  # 10 s solve + worker start, loaded box
        row = page.locator("[data-testid=proposal-item]").filter(has_text=str(trip_id))
        expect(row).to_have_count(1)
        shot(page, "console-proposal")
        accept.click()
        expect(page.get_by_test_id("proposal-result")).to_be_visible()
        shot(page, "console-proposal-accepted")
        ctx.close()

        disp = api_token(base_url, "dispatcher.qingxiu", password)
        trip = httpx.get(f"{base_url}/api/v1/trips/{trip_id}", headers=disp).json()
        assert trip["state"] == "assigned", trip
        a = httpx.get(f"{base_url}/api/v1/trips/{trip_id}/assignments", headers=disp).json()
        assert a[-1]["source"] == "optimizer" and a[-1]["state"] == "assigned", a
    finally:
        worker.terminate()
        try:
            worker.wait(15)
        except subprocess.TimeoutExpired:
            worker.kill()


def test_urgent_suggestion_assigned_from_the_console(
    browser: Browser, base_url: str, password: str
) -> None:
    """An urgent request in the queue: 推荐车辆 lists ranked vehicles with their reasons; one
    click books the first through the manual assignment."""
    start = datetime.now(UTC).replace(microsecond=0) + timedelta(minutes=40)
    body = {
        "passengers": 2,
        "nature": "official",
        "purpose": "紧急赴现场处置",
        "origin": {"lat": 22.787, "lon": 108.492, "address": "青秀区人民政府"},
        "destination": {"lat": 22.80, "lon": 108.51, "address": "现场"},
        "departure_at": start.isoformat(),
        "return_at": (start + timedelta(hours=2)).isoformat(),
        "round_trip": True,
        "urgency": "urgent",
        "submit": True,
    }
    r = httpx.post(
        f"{base_url}/api/v1/trips",
        json=body,
        headers=api_token(base_url, "requester.qingxiu", password),
    )
    assert r.status_code == 201, r.text
    trip_id = r.json()["id"]
    r = httpx.post(
        f"{base_url}/api/v1/trips/{trip_id}/approve",
        json={},
        headers=api_token(base_url, "approver.qingxiu", password),
    )
    assert r.status_code == 200 and r.json()["state"] == "approved", r.text

    ctx = new_context(browser, base_url)
    page = ctx.new_page()
    login(page, "dispatcher.qingxiu", password, "/console")
    page.wait_for_url("**/console")
    item = page.locator(f"[data-testid=queue-item][data-trip='{trip_id}']")
    expect(item).to_be_visible()
    item.get_by_test_id("suggest-open").click()
    first = page.locator("[data-testid=suggestion]").first
    expect(first).to_be_visible()
    expect(page.get_by_test_id("suggest-counts")).to_contain_text("可派")
    expect(first).to_contain_text("增加里程")
    vehicle_id = int(first.get_attribute("data-vehicle") or 0)
    shot(page, "console-suggestions")
    first.get_by_test_id("suggest-assign").click()
    expect(item).to_have_count(0)
    ctx.close()

    disp = api_token(base_url, "dispatcher.qingxiu", password)
    a = httpx.get(f"{base_url}/api/v1/trips/{trip_id}/assignments", headers=disp).json()
    assert a[-1]["vehicle_id"] == vehicle_id and a[-1]["state"] == "assigned", a
    assert a[-1]["source"] == "manual"
