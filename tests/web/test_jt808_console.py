"""The console's JT/T 808 parts in Chromium: an SOS alarm is distinct and audible, and the
vehicle panel sends a text to the driver's terminal."""

from __future__ import annotations

import asyncpg
from playwright.sync_api import Browser, expect

from fleet.config import Settings
from telematics import bus
from tests.web.conftest import run_async
from tests.web.test_browser import WAIT_MS, login, new_context, shot


async def _sos_vehicle(settings: Settings) -> tuple[int, str, str, int]:
    """A 青秀 vehicle (the last one, apart from the other tests' picks), its JT/T 808 terminal,
    and an open SOS alert on it, announced on the live bus as the ingest's alarm hook does."""
    conn = await asyncpg.connect(settings.db.dsn())
    try:
        v = await conn.fetchrow(
            "SELECT v.id, v.plate, v.unit_id, o.path::text AS path FROM vehicles v"
            " JOIN orgs o ON o.id = v.unit_id WHERE o.path <@ (SELECT path FROM orgs"
            " WHERE code = '450103') AND v.shared_pool = 'none' ORDER BY v.id DESC LIMIT 1"
        )
        await conn.execute(
            "UPDATE terminals SET protocol = 'jt808', phone = '0136' || lpad($1::text, 8, '0')"
            " WHERE vehicle_id = $1::bigint",
            v["id"],
        )
        alert = await conn.fetchval(
            "INSERT INTO alerts (kind, severity, vehicle_id, org_id, started_at, message, dedup_key)"
            " VALUES ('sos', 'critical', $1::bigint, $2, now(), '紧急报警：驾驶员触发求助按钮',"
            " 'browser-sos:' || $1::text || ':' || extract(epoch FROM now())) RETURNING id",
            v["id"],
            v["unit_id"],
        )
        return int(v["id"]), str(v["plate"]), str(v["path"]), int(alert)
    finally:
        await conn.close()


async def _announce(settings: Settings, vehicle_id: int, path: str, alert_id: int) -> None:
    redis = bus.redis_client(settings.redis.url)
    try:
        await bus.publish_event(
            redis,
            "alert",
            {
                "id": alert_id,
                "kind": "sos",
                "severity": "critical",
                "vehicle_id": vehicle_id,
                "started_at": "2026-12-03T10:00:00+00:00",
                "message": "紧急报警：驾驶员触发求助按钮",
            },
            org_path=path,
        )
    finally:
        await redis.aclose()


async def _close(settings: Settings, alert_id: int) -> None:
    conn = await asyncpg.connect(settings.db.dsn())
    try:
        await conn.execute("UPDATE alerts SET status = 'closed' WHERE id = $1", alert_id)
    finally:
        await conn.close()


def test_sos_is_distinct_and_audible_and_the_panel_sends_a_text(
    browser: Browser, base_url: str, password: str, web_settings: Settings
) -> None:
    vid, plate, path, alert_id = run_async(_sos_vehicle(web_settings))
    ctx = new_context(browser, base_url)
    page = ctx.new_page()
    try:
        login(page, "dispatcher.qingxiu", password, "/console")
        page.wait_for_url("**/console")
        expect(page.get_by_test_id("live-state")).to_have_attribute(
            "data-state", "open", timeout=WAIT_MS
        )
        page.wait_for_function("() => window.__fleetStats && window.__fleetStats.total > 0")
        run_async(_announce(web_settings, vid, path, alert_id))
        banner = page.get_by_test_id("sos-banner")
        expect(banner).to_contain_text("紧急报警")
        expect(banner).to_contain_text(plate)
        page.wait_for_function("() => (window.__sosPlayed ?? 0) >= 1")  # the siren started
        page.get_by_test_id("tab-alerts").click()
        item = page.locator(f"[data-alert-id='{alert_id}'].alert-item")
        expect(item).to_have_count(1)
        assert "kind-sos" in (item.get_attribute("class") or "")
        expect(item.locator(".sos-badge")).to_have_text("SOS")
        shot(page, "console-sos")

        # locate the vehicle from the banner; its panel sends a text to the terminal
        page.get_by_test_id("sos-locate").first.click()
        panel = page.get_by_test_id("vehicle-panel")
        expect(panel).to_contain_text(plate)
        expect(panel.get_by_test_id("terminal-section")).to_contain_text("车载终端")
        panel.get_by_test_id("terminal-text").fill("请立即回电调度台")
        panel.get_by_test_id("terminal-send-text").click()
        cmd = panel.get_by_test_id("terminal-command").first
        expect(cmd).to_have_attribute("data-status", "queued")
        expect(cmd).to_contain_text("请立即回电调度台")
        expect(cmd).to_contain_text("等待下发")
        page.get_by_test_id("sos-dismiss").first.click()
        expect(banner).to_have_count(0)
        shot(page, "console-terminal-command")
    finally:
        ctx.close()
        run_async(_close(web_settings, alert_id))
