"""The first login of a user whose password an administrator set (issue 11 items 2-3), in
Chromium: the change-password page in Chinese, nothing but it until the password is changed,
no bearer token in localStorage, a reload keeping the session (the HttpOnly refresh cookie),
and sign-out ending it."""

from __future__ import annotations

import secrets

import httpx
from playwright.sync_api import Browser, expect

from tests.web.test_browser import api_token, new_context, shot


def _org_id(base_url: str, headers: dict[str, str], code: str) -> int:
    r = httpx.get(f"{base_url}/api/v1/orgs", params={"q": code}, headers=headers, timeout=30)
    return int(next(o["id"] for o in r.json()["items"] if o["code"] == code))


def test_first_login_changes_the_password_and_a_reload_keeps_the_session(
    browser: Browser, base_url: str, password: str
) -> None:
    admin = api_token(base_url, "admin", password)
    unit = _org_id(base_url, admin, "450103-02")
    name = f"first.{secrets.token_hex(3)}"
    initial = f"Init-{secrets.token_urlsafe(9)}"
    r = httpx.post(
        f"{base_url}/api/v1/users",
        json={
            "username": name,
            "password": initial,
            "display_name": "首次登录测试",
            "org_id": unit,
            "roles": [{"role": "requester", "org_id": unit}],
        },
        headers=admin,
        timeout=30,
    )
    assert r.status_code == 201, r.text
    ctx = new_context(browser, base_url)
    page = ctx.new_page()
    try:
        page.goto("/")
        page.fill("input[name=username]", name)
        page.fill("input[name=password]", initial)
        page.click("button[type=submit]")
        form = page.get_by_test_id("change-password")
        expect(form).to_be_visible()
        expect(form).to_contain_text("请修改密码")
        expect(form).to_contain_text("首次登录须先修改密码")
        shot(page, "change-password")
        # A reload shows the same page: the server still requires the change.
        page.reload()
        expect(page.get_by_test_id("change-password")).to_be_visible()
        page.fill("input[name=current_password]", initial)
        page.fill("input[name=new_password]", "password")
        page.fill("input[name=confirm_password]", "password")
        page.click("button[type=submit]")
        expect(page.get_by_role("alert")).to_contain_text("新密码强度不足")
        new = f"New-{secrets.token_urlsafe(9)}"
        page.fill("input[name=new_password]", new)
        page.fill("input[name=confirm_password]", new)
        page.click("button[type=submit]")
        expect(page.get_by_test_id("change-password")).to_have_count(0)
        expect(page.get_by_test_id("whoami")).to_contain_text("首次登录测试")
        # No bearer token is kept where scripts (or an XSS) could read it for long.
        stored = page.evaluate("() => JSON.stringify(Object.entries(localStorage))")
        assert "eyJ" not in stored, stored
        cookies = {c["name"]: c for c in ctx.cookies()}
        refresh = cookies["fleet_refresh"]
        assert refresh["httpOnly"] and refresh["sameSite"] == "Strict"
        assert refresh["path"] == "/api/v1/auth"
        assert "fleet_refresh" not in page.evaluate("() => document.cookie")
        # A reload keeps the session: the refresh cookie gives a new access token.
        page.reload()
        expect(page.get_by_test_id("whoami")).to_contain_text("首次登录测试")
        expect(page.locator("input[name=password]")).to_have_count(0)
        # Sign-out ends the session on the server: a reload shows the login page.
        page.get_by_role("button", name="退出").click()
        expect(page.locator("input[name=password]")).to_be_visible()
        page.reload()
        expect(page.locator("input[name=password]")).to_be_visible()
        # And the new password is the one that works.
        assert api_token(base_url, name, new)
    finally:
        ctx.close()
