"""The approval chain in a real browser: the county the map names is the one the chain is
chosen by; requester and approver both see the levels, the current one and who decides it;
an account that is not an approver is told so on the approvals page."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from playwright.sync_api import Browser, Page, expect

from tests.web.test_browser import PHONE, WAIT_MS, api_token, login, new_context, shot

pytestmark = pytest.mark.timeout(150)

HERE = (22.7959, 108.5040)  # beside 青秀区's seat
QINGXIU_EAST = (22.7224, 108.6577)  # inside 青秀区 on the map, nearest to 邕宁区's seat
XINGNING_INSIDE = (22.9000, 108.4000)
# A Chinese UI shows no raw codes: lower-case words of 4+ letters would be codes leaking.
CODE = re.compile(r"\b[a-z_]{4,}\b")


def _click_at(page: Page, lat: float, lon: float) -> None:
    """Click the request map where (lat, lon) is drawn (offline base map: WGS-84 display)."""
    box = page.get_by_test_id("request-map").bounding_box()
    assert box
    x, y = page.evaluate(
        "([lon, lat]) => { const p = window.__requestMap.project([lon, lat]); return [p.x, p.y]; }",
        [lon, lat],
    )
    assert 0 < x < box["width"] and 0 < y < box["height"], (x, y, box)
    page.mouse.click(box["x"] + x, box["y"] + y)


def _file(base_url: str, password: str, dest: tuple[float, float]) -> dict[str, Any]:
    start = datetime.now(UTC) + timedelta(days=1)
    body = {
        "passengers": 2,
        "purpose": "赴兴宁区调研",
        "origin": {"lat": HERE[0], "lon": HERE[1], "address": "青秀区人民政府"},
        "destination": {"lat": dest[0], "lon": dest[1], "address": "兴宁区调研点"},
        "departure_at": start.isoformat(),
        "return_at": (start + timedelta(hours=3)).isoformat(),
        "submit": True,
    }
    r = httpx.post(
        f"{base_url}/api/v1/trips",
        json=body,
        headers=api_token(base_url, "requester.qingxiu", password),
    )
    assert r.status_code == 201, r.text
    return r.json()  # type: ignore[no-any-return]


def test_the_county_on_the_map_chooses_the_chain(
    browser: Browser, base_url: str, password: str
) -> None:
    ctx = new_context(browser, base_url)
    page = ctx.new_page()
    login(page, "requester.qingxiu", password, "/requests")
    page.wait_for_function(
        "() => window.__requestMap && window.__requestMap.getLayer('county-fill')"
        " && window.__requestMap.loaded()"
    )
    page.get_by_test_id("pick-origin").click()
    _click_at(page, *HERE)
    expect(page.get_by_test_id("origin-address")).to_have_value(re.compile("^青秀区"))
    page.get_by_test_id("pick-destination").click()
    _click_at(page, *QINGXIU_EAST)
    # The map names the county under the click…
    expect(page.get_by_test_id("destination-address")).to_have_value(re.compile("^青秀区"))
    page.get_by_test_id("purpose").fill("赴青秀区东部检查工作")
    page.get_by_test_id("request-submit").click()
    created = page.get_by_test_id("request-created")
    expect(created).to_be_visible()
    trip_id = int(created.inner_text().split("·")[0].strip().lstrip("#"))
    # …and the server files the request in the same county: one level, the unit head.
    headers = api_token(base_url, "requester.qingxiu", password)
    trip = httpx.get(f"{base_url}/api/v1/trips/{trip_id}", headers=headers).json()
    assert trip["kind"] == "in_county", trip
    page.locator(f"[data-testid=my-request-link]:text-matches('^#{trip_id} ')").click()
    page.wait_for_url(f"**/trips/{trip_id}")
    chain = page.get_by_test_id("approval-chain")
    expect(chain).to_have_attribute("data-kind", "in_county")
    expect(chain.get_by_test_id("chain-level")).to_have_count(1)
    expect(chain).to_contain_text("目的地所在区县：青秀区")
    shot(page, "request-chain-in-county")
    ctx.close()


def test_requester_and_approver_see_the_chain(
    browser: Browser, base_url: str, password: str
) -> None:
    trip = _file(base_url, password, XINGNING_INSIDE)
    assert trip["kind"] == "cross_county"
    tid = trip["id"]

    # The requester's page, on a phone: both levels, who decides now, nobody for the county.
    rctx = new_context(browser, base_url, PHONE)
    rp = rctx.new_page()
    login(rp, "requester.qingxiu", password, f"/trips/{tid}")
    rp.wait_for_url(f"**/trips/{tid}")
    chain = rp.get_by_test_id("approval-chain")
    levels = chain.get_by_test_id("chain-level")
    expect(levels).to_have_count(2)
    expect(chain).to_contain_text("跨县（区）")
    expect(levels.nth(0)).to_have_attribute("data-current", "true")
    expect(levels.nth(0)).to_contain_text("第1级 · 单位审批")
    expect(levels.nth(0)).to_contain_text("审批中")
    expect(levels.nth(0).get_by_test_id("chain-deciders")).to_have_text(
        "可审批人：青秀区政府办审批人（青秀区人民政府办公室）"
    )
    expect(levels.nth(1)).to_contain_text("第2级 · 县（区）平台审批")
    expect(levels.nth(1)).to_contain_text("青秀区")
    expect(levels.nth(1).get_by_test_id("chain-no-decider")).to_contain_text("暂无可审批人员")
    text = chain.inner_text()
    assert not CODE.search(text), text
    shot(rp, "request-chain-phone")
    wide = rp.evaluate(
        "(w) => [...document.querySelectorAll('body *')]"
        ".filter((e) => e.getBoundingClientRect().right > w + 1)"
        ".map((e) => e.tagName + '.' + e.className + ' ' + Math.round(e.getBoundingClientRect().right))",
        PHONE["width"],
    )
    assert wide == [], wide

    # The approver's inbox: the level in the row, the same chain beside the request.
    actx = new_context(browser, base_url)
    ap = actx.new_page()
    login(ap, "approver.qingxiu", password, "/approvals")
    row = ap.locator(f"[data-testid=inbox-row][data-trip='{tid}']")
    expect(row).to_contain_text("单位审批")
    expect(row).to_contain_text("青秀区政府办申请人")
    row.click()
    achain = ap.get_by_test_id("approval-chain")
    expect(achain.get_by_test_id("chain-level")).to_have_count(2)
    expect(achain.get_by_test_id("chain-no-decider")).to_have_count(1)
    shot(ap, "approvals-chain")
    ap.get_by_test_id("approval-reason").fill("同意，请县平台审核")
    ap.get_by_test_id("approve").click()
    expect(row).to_have_count(0)
    actx.close()

    # The requester's page follows live: the unit level decided, the county level current.
    expect(levels.nth(0)).to_have_attribute("data-state", "approved", timeout=WAIT_MS)
    expect(levels.nth(0).get_by_test_id("chain-decided-by")).to_contain_text(
        "青秀区政府办审批人（青秀区人民政府办公室）"
    )
    expect(levels.nth(0)).to_contain_text("同意，请县平台审核")
    expect(levels.nth(1)).to_have_attribute("data-current", "true")
    rctx.close()


def test_admin_who_is_not_an_approver_is_told_so(
    browser: Browser, base_url: str, password: str
) -> None:
    ctx = new_context(browser, base_url)
    page = ctx.new_page()
    login(page, "admin", password, "/approvals")
    page.wait_for_url("**/approvals")
    notice = page.get_by_test_id("not-approver")
    expect(notice).to_contain_text("当前账号不是审批人")
    expect(page.get_by_test_id("inbox")).to_have_count(0)
    shot(page, "approvals-not-approver")
    ctx.close()
