"""Tell region admins, once a day, that the official calendar is missing a year.

From 1 November the coming year must be in the `holidays` table (the State Council publishes
its schedule in the autumn), and the current year always: until it is, every region-level
admin gets a stored notification each day (kind ``holiday_calendar_missing``), so the gap is
seen before its first holiday silently counts as a working day. Run by the dispatch worker;
idempotent per day (an advisory lock and the day in the notification's data).
"""

from __future__ import annotations

from datetime import date

from sqlalchemy import select, text
from sqlalchemy.ext.asyncio import AsyncSession

from dispatch import notify
from dispatch.notifications.models import Notification
from fleet.holidays import repository
from fleet.holidays.calendar import WorkCalendar
from fleet.identity.service import region_roots

KIND = "holiday_calendar_missing"


async def coverage_calendar(session: AsyncSession) -> WorkCalendar:
    """A calendar that knows only which years are covered (enough to tell what is missing)."""
    return WorkCalendar(years=frozenset(await repository.years_covered(session)))


async def missing_years(session: AsyncSession, today: date) -> list[int]:
    return (await coverage_calendar(session)).missing_years(today)


async def notify_missing_years(session: AsyncSession, today: date) -> tuple[list[int], int]:
    """(missing years, admins told now); nobody is told twice on the same day."""
    missing = await missing_years(session, today)
    if not missing:
        return [], 0
    await session.execute(text("SELECT pg_advisory_xact_lock(hashtext('fleet.holidays.notice'))"))
    admins: set[int] = set()
    for region in await region_roots(session):
        admins.update(await notify.users_with_role_covering(session, "admin", region.path))
    told = set(
        (
            await session.execute(
                select(Notification.user_id).where(
                    Notification.kind == KIND,
                    Notification.data["day"].astext == today.isoformat(),
                )
            )
        ).scalars()
    )
    targets = sorted(admins - told)
    years = "、".join(f"{y} 年" for y in missing)
    notify.notify_users(
        session,
        targets,
        KIND,
        f"节假日安排缺少 {years}：请在“节假日管理”页面录入或导入；"
        "未录入的年份，法定节假日将按普通工作日计算，节假日用车不会告警。",
        day=today.isoformat(),
        years=missing,
    )
    return missing, len(targets)
