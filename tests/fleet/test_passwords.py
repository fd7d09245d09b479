"""Password policy (issue 11 item 2) through the real app: strength, the common list of the
zxcvbn package, the username, the history, expiry, and the change at first login."""

from __future__ import annotations

import itertools
from typing import Any

import httpx
import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession
from zxcvbn.frequency_lists import FREQUENCY_LISTS

from fleet.config import get_settings
from tests.conftest import Login, bearer

API = "/api/v1"
STRONG = "Tea-kettle-Morning-42"


async def _org(session: AsyncSession, code: str) -> int:
    return int(await session.scalar(text("SELECT id FROM orgs WHERE code = :c"), {"c": code}))


async def _create(
    client: httpx.AsyncClient, admin: dict[str, str], org_id: int, username: str, password: str
) -> httpx.Response:
    body = {
        "username": username,
        "password": password,
        "display_name": "新用户",
        "org_id": org_id,
        "roles": [{"role": "requester", "org_id": org_id}],
    }
    return await client.post(f"{API}/users", json=body, headers=admin)


def _err(r: httpx.Response) -> tuple[int, Any, Any]:
    e = r.json().get("error", {})
    return r.status_code, e.get("code"), e.get("field")


COMMON_LONG = next(p for p in FREQUENCY_LISTS["passwords"] if len(p) >= 12)


@pytest.mark.parametrize(
    ("password", "code"),
    [
        ("password", "password_too_weak"),
        ("12345678", "password_too_weak"),
        ("abcdefghijk", "password_too_weak"),  # 11 characters, one class
        ("x-new.user.z-Secret-9", "password_has_username"),
        (COMMON_LONG, "password_common"),
        (COMMON_LONG.upper(), "password_common"),
    ],
)
async def test_weak_passwords_are_refused_on_the_field(
    client: httpx.AsyncClient, session: AsyncSession, login: Login, password: str, code: str
) -> None:
    admin = await login("admin")
    r = await _create(client, admin, await _org(session, "450103-02"), "new.user.z", password)
    assert _err(r) == (422, code, "password"), r.text


@pytest.mark.parametrize("password", ["Abcdef1!", "abcdefghijkl-long", STRONG])
async def test_strong_enough_passwords_pass(
    client: httpx.AsyncClient, session: AsyncSession, login: Login, password: str
) -> None:
    admin = await login("admin")
    r = await _create(client, admin, await _org(session, "450103-02"), "new.user.z", password)
    assert r.status_code == 201, r.text


async def test_a_password_set_by_an_administrator_must_be_changed_first(
    client: httpx.AsyncClient, session: AsyncSession, login: Login
) -> None:
    admin = await login("admin")
    r = await _create(client, admin, await _org(session, "450103-02"), "new.user.z", STRONG)
    assert r.status_code == 201, r.text
    r = await client.post(f"{API}/auth/login", json={"username": "new.user.z", "password": STRONG})
    assert r.status_code == 200, r.text
    assert r.json()["user"]["password_change_required"] == "initial"
    me = {"Authorization": f"Bearer {r.json()['access_token']}"}
    # Anything but me / password / logout: 403 with a code the UI understands.
    r = await client.get(f"{API}/orgs", headers=me)
    assert _err(r)[:2] == (403, "password_change_required")
    assert r.json()["error"]["reason"] == "initial"
    r = await client.post(f"{API}/live/ticket", headers=me)
    assert _err(r)[:2] == (403, "password_change_required")
    assert (await client.get(f"{API}/auth/me", headers=me)).status_code == 200
    # The change: the current password is required, the same one is refused.
    change = f"{API}/auth/password"
    r = await client.post(
        change, json={"current_password": "wrong", "new_password": "Other-Secret-77"}, headers=me
    )
    assert _err(r) == (422, "wrong_password", "current_password")
    r = await client.post(
        change, json={"current_password": STRONG, "new_password": STRONG}, headers=me
    )
    assert _err(r) == (422, "password_reused", "new_password")
    r = await client.post(
        change, json={"current_password": STRONG, "new_password": "short"}, headers=me
    )
    assert _err(r) == (422, "password_too_weak", "new_password")
    r = await client.post(
        change, json={"current_password": STRONG, "new_password": "Other-Secret-77"}, headers=me
    )
    assert r.status_code == 200 and r.json()["password_change_required"] is None, r.text
    # The same token (its session continues) now reaches the rest of the API.
    assert (await client.get(f"{API}/orgs", headers=me)).status_code == 200
    audit = await session.scalar(
        text("SELECT count(*) FROM audit_log WHERE action = 'auth.password_changed'")
    )
    assert audit


async def test_none_of_the_last_five_passwords_comes_back(
    client: httpx.AsyncClient, session: AsyncSession, login: Login
) -> None:
    admin = await login("admin")
    r = await _create(client, admin, await _org(session, "450103-02"), "new.user.z", STRONG)
    r = await client.post(f"{API}/auth/login", json={"username": "new.user.z", "password": STRONG})
    me = {"Authorization": f"Bearer {r.json()['access_token']}"}
    used = [STRONG] + [f"Rotating-Secret-{i}x" for i in range(5)]
    for old, new in itertools.pairwise(used):
        r = await client.post(
            f"{API}/auth/password", json={"current_password": old, "new_password": new},
            headers=me,
        )  # fmt: skip
        assert r.status_code == 200, r.text
    current = used[-1]
    for old in used[-5:]:  # the current one and the four before it
        r = await client.post(
            f"{API}/auth/password", json={"current_password": current, "new_password": old},
            headers=me,
        )  # fmt: skip
        assert _err(r) == (422, "password_reused", "new_password"), old
    # The sixth-newest has left the history.
    r = await client.post(
        f"{API}/auth/password", json={"current_password": current, "new_password": used[0]},
        headers=me,
    )  # fmt: skip
    assert r.status_code == 200, r.text


async def test_an_administrator_password_expires_after_90_days(
    client: httpx.AsyncClient, session: AsyncSession, login: Login
) -> None:
    requester, admin = await login("requester.qingxiu"), await login("admin")
    await session.execute(
        text(
            "UPDATE users SET password_changed_at = now() - interval '91 days'"
            " WHERE username IN ('admin', 'requester.qingxiu')"
        )
    )
    await session.commit()  # into the test's transaction: a refused request rolls back its own
    r = await client.get(f"{API}/orgs", headers=admin)
    assert _err(r)[:2] == (403, "password_change_required")
    assert r.json()["error"]["reason"] == "expired"
    me = await client.get(f"{API}/auth/me", headers=admin)
    assert me.json()["password_change_required"] == "expired"
    # Other roles' passwords do not expire by default.
    assert (await client.get(f"{API}/orgs", headers=requester)).status_code == 200


async def test_an_administrator_reset_must_be_changed_again(
    client: httpx.AsyncClient, session: AsyncSession, login: Login
) -> None:
    admin = await login("admin")
    uid = await session.scalar(text("SELECT id FROM users WHERE username = 'requester.qingxiu'"))
    r = await client.patch(f"{API}/users/{uid}", json={"password": "password"}, headers=admin)
    assert _err(r) == (422, "password_too_weak", "password")
    r = await client.patch(f"{API}/users/{uid}", json={"password": STRONG}, headers=admin)
    assert r.status_code == 200, r.text
    r = await client.post(
        f"{API}/auth/login", json={"username": "requester.qingxiu", "password": STRONG}
    )
    assert r.json()["user"]["password_change_required"] == "initial"


async def test_a_token_without_a_session_is_refused_by_default(
    client: httpx.AsyncClient, session: AsyncSession, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Only the test suite's `bearer()` helper has sessionless tokens accepted."""
    uid = int(await session.scalar(text("SELECT id FROM users WHERE username = 'admin'")))
    monkeypatch.setattr(get_settings().auth, "accept_sessionless_tokens", False)
    r = await client.get(f"{API}/orgs", headers=bearer(get_settings(), uid))
    assert _err(r)[:2] == (401, "token_invalid")
