"""The one query for bookings that overlap a time window (booking, planning, suggestions).

Overlap is the database's rule (the exclusion constraints on `tstzrange(starts_at, ends_at)`):
an active booking overlaps [start, end) when it starts before `end` and ends after `start`.
"""

from __future__ import annotations

from collections.abc import Collection
from datetime import datetime
from typing import NamedTuple

from sqlalchemy import or_, select
from sqlalchemy.ext.asyncio import AsyncSession

from dispatch.assignments.models import ACTIVE, Assignment


class Booking(NamedTuple):
    """An active booking as the checks and the planners read it."""

    id: int
    trip_id: int
    vehicle_id: int
    driver_id: int
    starts_at: datetime
    ends_at: datetime


def overlaps(starts_at: datetime, ends_at: datetime, start: datetime, end: datetime) -> bool:
    """Whether [starts_at, ends_at) overlaps [start, end): the same rule in Python."""
    return starts_at < end and ends_at > start


async def active_bookings(
    session: AsyncSession,
    start: datetime,
    end: datetime,
    *,
    vehicle_ids: Collection[int] = (),
    driver_ids: Collection[int] = (),
) -> list[Booking]:
    """Active bookings of any of the vehicles or drivers that overlap [start, end)."""
    rows = await session.execute(
        select(
            Assignment.id,
            Assignment.trip_id,
            Assignment.vehicle_id,
            Assignment.driver_id,
            Assignment.starts_at,
            Assignment.ends_at,
        ).where(
            Assignment.state.in_(ACTIVE),
            Assignment.starts_at < end,
            Assignment.ends_at > start,
            or_(
                Assignment.vehicle_id.in_(list(vehicle_ids)),
                Assignment.driver_id.in_(list(driver_ids)),
            ),
        )
    )
    return [Booking(int(i), int(t), int(v), int(d), s, e) for i, t, v, d, s, e in rows.all()]
