"""One way to page a query: the total of the filtered query, then one ordered slice of it."""

from __future__ import annotations

from typing import Any, TypeVar

from sqlalchemy import Select, func, select
from sqlalchemy.ext.asyncio import AsyncSession

T = TypeVar("T")


async def count_rows(session: AsyncSession, stmt: Select[*tuple[Any, ...]]) -> int:
    """How many rows the (unordered, unlimited) query yields."""
    counted = select(func.count()).select_from(stmt.subquery())
    return int((await session.execute(counted)).scalar_one())


async def fetch_page(
    session: AsyncSession, stmt: Select[T], order_by: Any, *, limit: int, offset: int
) -> tuple[list[T], int]:
    """The rows of one page (entities of a one-entity select) and the total count."""
    total = await count_rows(session, stmt)
    order = order_by if isinstance(order_by, tuple | list) else (order_by,)
    rows = await session.execute(stmt.order_by(*order).limit(limit).offset(offset))
    return list(rows.scalars()), total
