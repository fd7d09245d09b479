"""Holidays: anyone signed in reads; region-level admins add, edit, delete and import; audited.

Holidays are region-wide configuration (one official calendar for every county), so a write
needs the admin role bound at the region itself — a city or county admin gets 403
``config_level`` (fleet.identity.service.require_config_level, as for region standards).
"""

from __future__ import annotations

import hashlib
from datetime import date, datetime
from typing import Literal

from sqlalchemy.ext.asyncio import AsyncSession

from fleet import audit
from fleet.clock import local_today
from fleet.errors import Conflict, Invalid, NotFound
from fleet.holidays import importer, repository, schemas
from fleet.holidays.calendar import WorkCalendar, day_problem
from fleet.holidays.models import Holiday
from fleet.identity.models import ROLES
from fleet.identity.principal import Principal
from fleet.identity.service import require_config_level

READ = ROLES
WRITE = ("admin",)


class ImportInvalid(Invalid):
    code = "import_invalid"


def today_shanghai(now: datetime | None = None) -> date:
    return local_today(now)


async def require_region_admin(session: AsyncSession, principal: Principal) -> None:
    """Holidays are region-wide configuration: 403 `role_required` without the admin role,
    403 `config_level` for an admin bound below the region."""
    await require_config_level(session, principal, None, field=None)


async def list_year(session: AsyncSession, principal: Principal, year: int) -> list[Holiday]:
    principal.require(READ)
    return await repository.of_year(session, year)


async def coverage(
    session: AsyncSession, principal: Principal, today: date | None = None
) -> schemas.Coverage:
    principal.require(READ)
    today = today or today_shanghai()
    years = await repository.coverage(session)
    covered = frozenset(y for y, h, _ in years if h > 0)
    return schemas.Coverage(
        today=today,
        years=[schemas.YearCoverage(year=y, holidays=h, workdays=w) for y, h, w in years],
        missing_years=WorkCalendar(years=covered).missing_years(today),
    )


def _check(day: date, kind: str) -> None:
    problem = day_problem(day, kind)
    if problem:
        raise Invalid(problem, field="kind" if kind == "workday" else "day", code="invalid_day")


async def create(session: AsyncSession, principal: Principal, body: schemas.HolidayIn) -> Holiday:
    await require_region_admin(session, principal)
    _check(body.day, body.kind)
    if await session.get(Holiday, body.day) is not None:
        raise Conflict(f"{body.day} is already in the calendar", field="day", code="day_exists")
    row = Holiday(
        day=body.day,
        kind=body.kind,
        name=body.name,
        note=body.note,
        source="manual",
        updated_by=principal.user_id,
    )
    session.add(row)
    await session.flush()
    await audit.record(
        session,
        principal.actor,
        "holiday.create",
        "holiday",
        body.day.isoformat(),
        to_state=body.kind,
        data=body.model_dump(mode="json"),
    )
    return row


async def update(
    session: AsyncSession, principal: Principal, day: date, body: schemas.HolidayBody
) -> Holiday:
    await require_region_admin(session, principal)
    row = await session.get(Holiday, day)
    if row is None:
        raise NotFound(f"{day} is not in the calendar", field="day")
    _check(day, body.kind)
    before = {"kind": row.kind, "name": row.name, "note": row.note}
    row.kind, row.name, row.note = body.kind, body.name, body.note
    row.source, row.updated_by = "manual", principal.user_id
    await session.flush()
    await session.refresh(row)
    await audit.record(
        session,
        principal.actor,
        "holiday.update",
        "holiday",
        day.isoformat(),
        from_state=before["kind"],
        to_state=body.kind,
        data={"before": before, "after": body.model_dump(mode="json")},
    )
    return row


async def delete(session: AsyncSession, principal: Principal, day: date) -> None:
    await require_region_admin(session, principal)
    row = await session.get(Holiday, day)
    if row is None:
        raise NotFound(f"{day} is not in the calendar", field="day")
    before = {"kind": row.kind, "name": row.name, "note": row.note, "source": row.source}
    await session.delete(row)
    await session.flush()
    await audit.record(
        session,
        principal.actor,
        "holiday.delete",
        "holiday",
        day.isoformat(),
        from_state=before["kind"],
        data=before,
    )


async def import_file(
    session: AsyncSession,
    principal: Principal,
    content: bytes,
    filename: str,
    mode: Literal["replace", "merge"],
) -> schemas.ImportReport:
    """All or nothing: every row is checked first; `replace` clears the years in the file."""
    await require_region_admin(session, principal)
    try:
        rows = importer.parse(content, filename)
    except importer.BadFile as exc:
        errors = [
            schemas.ImportRowError(row=e.row, column=e.column, reason=e.reason).model_dump()
            for e in exc.errors
        ]
        raise ImportInvalid(
            f"文件有 {len(errors)} 处错误，未导入任何数据", field="file", rows=errors
        ) from exc
    years = sorted({r.day.year for r in rows})
    replaced = await repository.delete_years(session, years) if mode == "replace" else 0
    n = await repository.upsert(
        session,
        [(r.day, r.kind, r.name, r.note) for r in rows],
        source="import",
        user_id=principal.user_id,
    )
    await audit.record(
        session,
        principal.actor,
        "holiday.import",
        "holidays",
        ",".join(str(y) for y in years),
        data={
            "file": filename[:200],
            "sha256": hashlib.sha256(content).hexdigest(),
            "mode": mode,
            "rows": n,
            "replaced": replaced,
            "years": years,
        },
    )
    return schemas.ImportReport(imported=n, years=years, replaced=replaced, mode=mode)
