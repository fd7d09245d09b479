"""The official calendar as data: the seeded table, the admin API (role and region scope,
audited), file import (CSV and XLSX, all or nothing, every bad row reported in Chinese)."""

from __future__ import annotations

import io
from datetime import date
from typing import Any

import httpx
import pytest
from openpyxl import Workbook, load_workbook
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession

from fleet.holidays import importer
from fleet.holidays.calendar import WorkCalendar
from fleet.holidays.package import package_rows
from fleet.identity.security import hash_password
from tests.conftest import DEMO_PASSWORD, Login

API = "/api/v1/holidays"


async def _admin_of(session: AsyncSession, username: str, org_code: str) -> None:
    """A user holding the admin role on one org (e.g. a county)."""
    uid = await session.scalar(
        text(
            "INSERT INTO users (username, password_hash, display_name, org_id)"
            " SELECT :u, :h, '县级管理员', id FROM orgs WHERE code = :c RETURNING id"
        ),
        {"u": username, "h": hash_password(DEMO_PASSWORD), "c": org_code},
    )
    await session.execute(
        text(
            "INSERT INTO role_bindings (user_id, role, org_id)"
            " SELECT :uid, 'admin', id FROM orgs WHERE code = :c"
        ),
        {"uid": uid, "c": org_code},
    )
    await session.flush()


async def _audit(session: AsyncSession, action: str) -> list[Any]:
    rows = await session.execute(
        text("SELECT actor, entity_id, data FROM audit_log WHERE action = :a ORDER BY id"),
        {"a": action},
    )
    return list(rows.all())


async def test_seeded_from_the_package_for_the_years_it_covers(
    client: httpx.AsyncClient, login: Login
) -> None:
    auditor = await login("auditor")
    r = await client.get(API, params={"year": 2026}, headers=auditor)
    assert r.status_code == 200, r.text
    days = {d["day"]: d for d in r.json()}
    assert days["2026-10-01"]["kind"] == "holiday" and days["2026-10-01"]["name"] == "国庆节"
    assert days["2026-10-10"]["kind"] == "workday"  # Saturday worked (调休)
    assert days["2026-02-17"]["name"] == "春节"
    expected = {r.day.isoformat() for r in package_rows({2026})}
    assert set(days) == expected
    r = await client.get(f"{API}/coverage", headers=auditor)
    years = {y["year"]: y for y in r.json()["years"]}
    assert min(years) == 2004 and 2026 in years and 2027 not in years


async def test_region_admin_adds_edits_and_deletes_a_day_audited(
    client: httpx.AsyncClient, login: Login, session: AsyncSession
) -> None:
    admin = await login("admin")
    body = {"day": "2027-02-08", "kind": "holiday", "name": "春节", "note": "国办发明电〔2026〕"}
    r = await client.post(API, json=body, headers=admin)
    assert r.status_code == 201, r.text
    assert r.json()["source"] == "manual" and r.json()["updated_by"] is not None
    r = await client.post(API, json=body, headers=admin)
    assert r.status_code == 409 and r.json()["error"]["field"] == "day"

    r = await client.put(
        f"{API}/2027-02-08", json={"kind": "holiday", "name": "春节假期"}, headers=admin
    )
    assert r.status_code == 200 and r.json()["name"] == "春节假期"
    r = await client.get(API, params={"year": 2027}, headers=admin)
    assert [d["day"] for d in r.json()] == ["2027-02-08"]
    r = await client.get(f"{API}/coverage", headers=admin)
    assert 2027 in {y["year"] for y in r.json()["years"]}

    r = await client.delete(f"{API}/2027-02-08", headers=admin)
    assert r.status_code == 204
    r = await client.delete(f"{API}/2027-02-08", headers=admin)
    assert r.status_code == 404
    actions = [
        (a, (await _audit(session, a))[-1][1])
        for a in ("holiday.create", "holiday.update", "holiday.delete")
    ]
    assert actions == [
        ("holiday.create", "2027-02-08"),
        ("holiday.update", "2027-02-08"),
        ("holiday.delete", "2027-02-08"),
    ]


async def test_bad_days_are_422_on_the_field(client: httpx.AsyncClient, login: Login) -> None:
    admin = await login("admin")
    # a working day (调休) must be a Saturday or Sunday: 2027-02-08 is a Monday
    r = await client.post(
        API, json={"day": "2027-02-08", "kind": "workday", "name": "春节"}, headers=admin
    )
    assert r.status_code == 422 and r.json()["error"]["field"] == "kind"
    assert "周六或周日" in r.json()["error"]["message"]
    for bad in (
        {"day": "2027-02-30", "kind": "holiday", "name": "春节"},
        {"day": "1999-01-01", "kind": "holiday", "name": "元旦"},
        {"day": "2027-02-08", "kind": "vacation", "name": "春节"},
        {"day": "2027-02-08", "kind": "holiday", "name": ""},
        {"day": "2027-02-08", "kind": "holiday", "name": "春节", "extra": 1},
    ):
        r = await client.post(API, json=bad, headers=admin)
        assert r.status_code == 422, (bad, r.text)
    r = await client.put(f"{API}/not-a-day", json={"kind": "holiday", "name": "x"}, headers=admin)
    assert r.status_code == 422
    r = await client.get(API, params={"year": 99999}, headers=admin)
    assert r.status_code == 422 and r.json()["error"]["field"] == "year"


async def test_only_region_admins_change_holidays(
    client: httpx.AsyncClient, login: Login, session: AsyncSession
) -> None:
    await _admin_of(session, "admin.qingxiu", "450103")
    county_admin = await login("admin.qingxiu")
    body = {"day": "2027-10-01", "kind": "holiday", "name": "国庆节"}
    r = await client.post(API, json=body, headers=county_admin)
    assert r.status_code == 403 and r.json()["error"]["code"] == "config_level"
    r = await client.delete(f"{API}/2026-10-01", headers=county_admin)
    assert r.status_code == 403 and r.json()["error"]["code"] == "config_level"
    files = {"file": ("h.csv", "日期,类型,名称\n2027-10-01,放假,国庆节\n".encode(), "text/csv")}
    r = await client.post(f"{API}/import", files=files, headers=county_admin)
    assert r.status_code == 403 and r.json()["error"]["code"] == "config_level"
    for user in ("auditor", "dispatcher.qingxiu", "requester.qingxiu"):
        h = await login(user)
        r = await client.post(API, json=body, headers=h)
        assert r.status_code == 403 and r.json()["error"]["code"] == "role_required", user
        assert (await client.get(API, params={"year": 2026}, headers=h)).status_code == 200
    assert (await client.get(API, params={"year": 2026})).status_code == 401
    # the county admin still reads them
    assert (await client.get(API, params={"year": 2026}, headers=county_admin)).status_code == 200


def _xlsx(rows: list[list[Any]]) -> bytes:
    wb = Workbook()
    ws = wb.active
    assert ws is not None
    for row in rows:
        ws.append(row)
    out = io.BytesIO()
    wb.save(out)
    return out.getvalue()


GOOD_2027 = [
    ["日期", "类型", "名称", "备注"],
    [date(2027, 1, 1), "放假", "元旦", None],
    ["2027-02-06", "放假", "春节", "国办发明电〔2026〕X号"],
    ["2027/2/8", "放假", "春节", None],
    ["2027-02-20", "调休上班", "春节", None],
]


async def test_import_xlsx_replaces_the_years_in_the_file_audited(
    client: httpx.AsyncClient, login: Login, session: AsyncSession
) -> None:
    admin = await login("admin")
    await client.post(
        API, json={"day": "2027-05-03", "kind": "holiday", "name": "劳动节"}, headers=admin
    )
    content = _xlsx(GOOD_2027)
    r = await client.post(
        f"{API}/import",
        files={"file": ("2027年节假日.xlsx", content, "application/octet-stream")},
        headers=admin,
    )
    assert r.status_code == 200, r.text
    assert r.json() == {"imported": 4, "years": [2027], "replaced": 1, "mode": "replace"}
    r = await client.get(API, params={"year": 2027}, headers=admin)
    got = [(d["day"], d["kind"], d["name"], d["source"]) for d in r.json()]
    assert got == [
        ("2027-01-01", "holiday", "元旦", "import"),
        ("2027-02-06", "holiday", "春节", "import"),
        ("2027-02-08", "holiday", "春节", "import"),
        ("2027-02-20", "workday", "春节", "import"),
    ]
    (entry,) = await _audit(session, "holiday.import")
    assert entry[0] == "admin" and entry[2]["rows"] == 4 and entry[2]["replaced"] == 1
    # merge: day by day, the rest of the year stays
    csv = "日期,类型,名称\n2027-05-01,放假,劳动节\n".encode()
    r = await client.post(
        f"{API}/import",
        params={"mode": "merge"},
        files={"file": ("more.csv", csv, "text/csv")},
        headers=admin,
    )
    assert r.status_code == 200 and r.json()["replaced"] == 0
    r = await client.get(API, params={"year": 2027}, headers=admin)
    assert len(r.json()) == 5


async def test_a_bad_file_reports_every_row_and_imports_nothing(
    client: httpx.AsyncClient, login: Login
) -> None:
    admin = await login("admin")
    csv = (
        "日期,类型,名称,备注\n"
        "2027-01-01,放假,元旦,\n"  # good, but the file is refused as a whole
        "2027-13-01,放假,元旦,\n"  # row 3: no such month
        "2027-02-08,调休上班,春节,\n"  # row 4: a Monday cannot be an adjusted working day
        "2027-01-01,放假,元旦,\n"  # row 5: duplicate of row 2
        ",休假,,\n"  # row 6: empty date, unknown kind, empty name
    ).encode("gb18030")  # Excel in China saves CSV as GBK
    r = await client.post(
        f"{API}/import", files={"file": ("h.csv", csv, "text/csv")}, headers=admin
    )
    assert r.status_code == 422, r.text
    err = r.json()["error"]
    assert err["code"] == "import_invalid" and err["field"] == "file"
    got = [(e["row"], e["column"]) for e in err["rows"]]
    assert got == [(3, "日期"), (4, "类型"), (5, "日期"), (6, "日期"), (6, "类型"), (6, "名称")]
    reasons = [e["reason"] for e in err["rows"]]
    assert "无法识别" in reasons[0] and "周六或周日" in reasons[1] and "第 2 行重复" in reasons[2]
    assert all(
        not any(c.isascii() and c.isalpha() for c in x.replace("YYYY-MM-DD", "")) for x in reasons
    )
    r = await client.get(API, params={"year": 2027}, headers=admin)
    assert r.json() == []  # all or nothing


@pytest.mark.parametrize(
    ("content", "name", "reason"),
    [
        (b"", "h.csv", "文件为空"),
        ("名称,类型\n春节,放假\n".encode(), "h.csv", "缺少列"),
        (b"PK\x03\x04garbage", "h.xlsx", "无法读取"),
        (b"\x00\x01\x02", "h.csv", "不是文本"),
        (b"x" * (importer.MAX_BYTES + 1), "h.csv", "文件过大"),
    ],
)
async def test_unreadable_files_are_422(
    client: httpx.AsyncClient, login: Login, content: bytes, name: str, reason: str
) -> None:
    admin = await login("admin")
    r = await client.post(f"{API}/import", files={"file": (name, content)}, headers=admin)
    assert r.status_code == 422, r.text
    assert reason in r.json()["error"]["rows"][0]["reason"]


async def test_templates_download_and_import_back(client: httpx.AsyncClient, login: Login) -> None:
    admin = await login("admin")
    r = await client.get(f"{API}/template.xlsx", headers=admin)
    assert r.status_code == 200 and r.content[:2] == b"PK"
    wb = load_workbook(io.BytesIO(r.content))
    assert wb.sheetnames == ["节假日", "说明"]
    ws = wb["节假日"]
    assert [c.value for c in ws[1]] == ["日期", "类型", "名称", "备注"]
    ws.append(["2027-10-01", "放假", "国庆节", None])
    out = io.BytesIO()
    wb.save(out)
    r = await client.post(
        f"{API}/import", files={"file": ("t.xlsx", out.getvalue())}, headers=admin
    )
    assert r.status_code == 200 and r.json()["imported"] == 1, r.text
    r = await client.get(f"{API}/template.csv", headers=admin)
    assert r.status_code == 200 and r.content.decode("utf-8-sig").strip() == "日期,类型,名称,备注"


def test_a_year_without_rows_is_not_covered_and_said_so() -> None:
    """2027 with no rows: weekdays count, but the calendar knows the year is missing."""
    cal = WorkCalendar.from_rows([(r.day, r.kind, r.name) for r in package_rows({2026})], version=1)
    assert cal.covers(2026) and not cal.covers(2027)
    assert cal.is_workday(date(2027, 2, 8))  # Monday, not covered: Monday–Friday assumed
    assert "2027 not covered" in cal.describe(2027)
    assert cal.missing_years(date(2026, 10, 31)) == []
    assert cal.missing_years(date(2026, 11, 1)) == [2027]  # from 1 November
    assert cal.missing_years(date(2027, 1, 2)) == [2027]  # and the year itself, always
