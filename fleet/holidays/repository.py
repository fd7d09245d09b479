"""Every SQL statement of the holidays domain (the request's SQLAlchemy session)."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date

from sqlalchemy import delete, extract, func, select
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession

from fleet.holidays.models import Holiday


async def of_year(session: AsyncSession, year: int) -> list[Holiday]:
    rows = await session.execute(
        select(Holiday).where(extract("year", Holiday.day) == year).order_by(Holiday.day)
    )
    return list(rows.scalars())


async def coverage(session: AsyncSession) -> list[tuple[int, int, int]]:
    """(year, holiday days, adjusted working days) of every year with rows."""
    year = extract("year", Holiday.day).label("year")
    rows = await session.execute(
        select(
            year,
            func.count().filter(Holiday.kind == "holiday"),
            func.count().filter(Holiday.kind == "workday"),
        )
        .group_by(year)
        .order_by(year)
    )
    return [(int(y), int(h), int(w)) for y, h, w in rows.all()]


async def years_covered(session: AsyncSession) -> set[int]:
    return {y for y, h, _ in await coverage(session) if h > 0}


async def delete_years(session: AsyncSession, years: Sequence[int]) -> int:
    result = await session.execute(
        delete(Holiday).where(extract("year", Holiday.day).in_(list(years))).returning(Holiday.day)
    )
    return len(result.all())


async def upsert(
    session: AsyncSession,
    rows: Sequence[tuple[date, str, str, str | None]],
    *,
    source: str,
    user_id: int | None,
) -> int:
    """Insert (day, kind, name, note) rows; an existing day is overwritten."""
    if not rows:
        return 0
    stmt = insert(Holiday).values(
        [
            {"day": d, "kind": k, "name": n, "note": note, "source": source, "updated_by": user_id}
            for d, k, n, note in rows
        ]
    )
    stmt = stmt.on_conflict_do_update(
        index_elements=[Holiday.day],
        set_={
            "kind": stmt.excluded.kind,
            "name": stmt.excluded.name,
            "note": stmt.excluded.note,
            "source": stmt.excluded.source,
            "updated_by": stmt.excluded.updated_by,
            "updated_at": func.now(),
        },
    )
    await session.execute(stmt)
    return len(rows)
