"""节假日管理 in a real Chromium: list by year, add, edit, delete, import (a bad file's rows
listed in Chinese, nothing stored; a good XLSX), template download, on a desktop and a phone."""

from __future__ import annotations

import io
import re

import asyncpg
import pytest
from openpyxl import Workbook
from playwright.sync_api import Browser, expect

from fleet.config import Settings
from tests.web.conftest import run_async
from tests.web.test_browser import PHONE, login, new_context, shot

pytestmark = pytest.mark.timeout(150)


def _xlsx() -> bytes:
    wb = Workbook()
    ws = wb.active
    assert ws is not None
    ws.append(["日期", "类型", "名称", "备注"])
    for d in range(6, 14):
        ws.append([f"2027-02-{d:02d}", "放假", "春节", None])
    ws.append(["2027-02-20", "调休上班", "春节", "周六上班"])
    out = io.BytesIO()
    wb.save(out)
    return out.getvalue()


BAD_CSV = "日期,类型,名称\n2027-10-01,放假,国庆节\n2027-10-32,放假,国庆节\n2027-10-11,调休上班,国庆节\n".encode()


async def _forget_2027(settings: Settings) -> None:
    conn = await asyncpg.connect(settings.db.dsn())
    try:
        await conn.execute("DELETE FROM holidays WHERE day >= '2027-01-01'")
    finally:
        await conn.close()


def test_holidays_page(
    browser: Browser, base_url: str, password: str, web_settings: Settings
) -> None:
    run_async(_forget_2027(web_settings))
    ctx = new_context(browser, base_url)
    page = ctx.new_page()
    try:
        login(page, "admin", password, "/holidays")
        page.wait_for_url("**/holidays")
        expect(page.locator(".topbar nav")).to_contain_text("节假日")
        expect(page.locator("h1")).to_have_text("节假日管理")
        # The seeded calendar (chinese-calendar up to 2026), by year.
        page.get_by_test_id("holiday-year").select_option("2026")
        national = page.locator("[data-testid=holiday-row][data-day='2026-10-01']")
        expect(national).to_contain_text("国庆节")
        expect(national).to_contain_text("放假")
        expect(national).to_contain_text("周四")
        expect(page.locator("[data-testid=holiday-row][data-day='2026-10-10']")).to_contain_text(
            "调休上班"
        )
        expect(page.get_by_test_id("holiday-year-stats")).to_contain_text("调休上班")
        shot(page, "holidays-2026")

        # Add a day of 2027 (not in the package), then edit it.
        page.get_by_test_id("holiday-add").click()
        page.get_by_test_id("holiday-form-day").fill("2027-02-08")
        page.get_by_test_id("holiday-form-name").fill("春节")
        page.get_by_test_id("holiday-save").click()
        expect(page.get_by_test_id("holiday-msg")).to_have_text("已保存")
        row = page.locator("[data-testid=holiday-row][data-day='2027-02-08']")
        expect(row).to_contain_text("春节")
        expect(row).to_contain_text("手工录入")
        row.get_by_test_id("holiday-edit").click()
        page.get_by_test_id("holiday-form-note").fill("国办发明电")
        page.get_by_test_id("holiday-save").click()
        expect(row).to_contain_text("国办发明电")
        # An adjusted working day on a Monday is refused, in Chinese.
        page.get_by_test_id("holiday-add").click()
        page.get_by_test_id("holiday-form-day").fill("2027-03-01")
        page.get_by_test_id("holiday-form-kind").select_option("workday")
        page.get_by_test_id("holiday-form-name").fill("测试")
        page.get_by_test_id("holiday-save").click()
        expect(page.get_by_test_id("holiday-msg")).to_contain_text("周六或周日")

        # A bad file: every bad row listed (row, column, reason), nothing imported.
        page.get_by_test_id("holiday-file").set_input_files(
            {"name": "2027.csv", "mimeType": "text/csv", "buffer": BAD_CSV}
        )
        page.get_by_test_id("holiday-import").click()
        expect(page.get_by_test_id("holiday-msg")).to_contain_text("未导入任何数据")
        errors = page.locator("[data-testid=import-error]")
        expect(errors).to_have_count(2)
        expect(errors.nth(0)).to_contain_text(re.compile(r"3\s*日期.*无法识别"))
        expect(errors.nth(1)).to_contain_text(re.compile(r"4\s*类型.*周六或周日"))
        shot(page, "holidays-import-errors")
        expect(page.locator("[data-testid=holiday-row][data-day='2027-10-01']")).to_have_count(0)

        # A good XLSX replaces 2027 as a whole.
        page.get_by_test_id("holiday-file").set_input_files(
            {
                "name": "2027.xlsx",
                "mimeType": "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
                "buffer": _xlsx(),
            }
        )
        page.get_by_test_id("holiday-import").click()
        expect(page.get_by_test_id("holiday-msg")).to_contain_text("已导入 9 条")
        expect(page.get_by_test_id("import-errors")).to_have_count(0)
        expect(page.locator("[data-testid=holiday-row]")).to_have_count(9)
        expect(row).to_contain_text("文件导入")
        expect(page.locator("[data-testid=holiday-row][data-day='2027-02-20']")).to_have_attribute(
            "data-kind", "workday"
        )
        # whatever today is, 2027 is no longer reported missing
        missing = page.get_by_test_id("holiday-missing")
        if missing.count():
            expect(missing).not_to_contain_text("2027")

        # Delete takes a second click to confirm.
        last = page.locator("[data-testid=holiday-row][data-day='2027-02-13']")
        last.get_by_test_id("holiday-delete").click()
        expect(last.get_by_test_id("holiday-delete")).to_have_text("确认删除")
        last.get_by_test_id("holiday-delete").click()
        expect(last).to_have_count(0)
        expect(page.locator("[data-testid=holiday-row]")).to_have_count(8)

        # The template downloads as a real XLSX.
        with page.expect_download() as dl:
            page.get_by_test_id("holiday-template-xlsx").click()
        path = dl.value.path()
        assert path is not None and path.read_bytes()[:2] == b"PK"

        # Chinese only: no raw code or English word on the page.
        body = page.locator("main").inner_text()
        for code in ("holiday", "workday", "manual", "import_invalid", "package", "undefined"):
            assert code not in body, code
        shot(page, "holidays-2027")
    finally:
        ctx.close()
        run_async(_forget_2027(web_settings))


def test_holidays_page_on_a_phone(browser: Browser, base_url: str, password: str) -> None:
    ctx = new_context(browser, base_url, PHONE)
    page = ctx.new_page()
    try:
        login(page, "admin", password, "/holidays")
        page.wait_for_url("**/holidays")
        page.get_by_test_id("holiday-year").select_option("2026")
        expect(page.locator("[data-testid=holiday-row]").first).to_be_visible()
        # The page itself does not scroll sideways; the table scrolls in its own box.
        width = page.evaluate("() => document.documentElement.scrollWidth")
        assert width <= PHONE["width"] + 1, width
        page.get_by_test_id("holiday-add").click()
        expect(page.get_by_test_id("holiday-save")).to_be_visible()
        shot(page, "holidays-phone")
    finally:
        ctx.close()
