"""Region admins are told every day from 1 November that next year's holidays are missing,
once a day, until the year is in the table; the API says so at start-up."""

from __future__ import annotations

from datetime import date

import pytest
import structlog
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession

from dispatch.holiday_notice import KIND, notify_missing_years
from fleet.config import Settings
from fleet.holidays import service
from fleet.identity.security import hash_password
from tests.conftest import DEMO_PASSWORD


async def _notified(session: AsyncSession) -> list[tuple[str, str]]:
    rows = await session.execute(
        text(
            "SELECT u.username, n.data->>'day' FROM notifications n JOIN users u"
            " ON u.id = n.user_id WHERE n.kind = :k ORDER BY n.id"
        ),
        {"k": KIND},
    )
    return [(r[0], r[1]) for r in rows.all()]


async def test_region_admins_are_told_daily_from_november_until_covered(
    session: AsyncSession,
) -> None:
    # a county admin is not told: holidays are region configuration
    uid = await session.scalar(
        text(
            "INSERT INTO users (username, password_hash, display_name, org_id) SELECT"
            " 'admin.county', :h, '县管理员', id FROM orgs WHERE code = '450103' RETURNING id"
        ),
        {"h": hash_password(DEMO_PASSWORD)},
    )
    await session.execute(
        text(
            "INSERT INTO role_bindings (user_id, role, org_id)"
            " SELECT :u, 'admin', id FROM orgs WHERE code = '450103'"
        ),
        {"u": uid},
    )
    assert await notify_missing_years(session, date(2026, 10, 31)) == ([], 0)
    assert await notify_missing_years(session, date(2026, 11, 1)) == ([2027], 1)
    assert await notify_missing_years(session, date(2026, 11, 1)) == ([2027], 0)  # once a day
    assert await notify_missing_years(session, date(2026, 11, 2)) == ([2027], 1)
    await session.flush()
    assert await _notified(session) == [("admin", "2026-11-01"), ("admin", "2026-11-02")]
    message = (
        await session.execute(
            text("SELECT message FROM notifications WHERE kind = :k"), {"k": KIND}
        )
    ).scalar()
    assert message is not None and "2027 年" in message and "节假日管理" in message
    # 2027 is still missing on 2 January 2027 (and now it is this year)
    assert await notify_missing_years(session, date(2027, 1, 2)) == ([2027], 1)
    await session.execute(
        text("INSERT INTO holidays (day, kind, name) VALUES ('2027-01-01', 'holiday', '元旦')")
    )
    assert await notify_missing_years(session, date(2027, 1, 3)) == ([], 0)


async def test_the_api_says_so_at_start_up(
    settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`fleet serve`'s start-up check: a warning naming the missing year from 1 November, and
    none before (the table is seeded up to 2026)."""
    from fleet.holidays import api
    from web.app import create_app

    app = create_app(settings, manage_engine=False)
    app.state.settings = settings
    for today, expected in ((date(2026, 11, 15), [[2027]]), (date(2026, 6, 1), [])):
        monkeypatch.setattr(service, "today_shanghai", lambda today=today: today)
        with structlog.testing.capture_logs() as logs:
            async with api.lifespan(app):
                pass
        got = [e["missing_years"] for e in logs if e["event"] == "holidays.coverage_missing"]
        assert got == expected, logs
        assert all(e["log_level"] == "warning" for e in logs if e["event"].endswith("missing"))
