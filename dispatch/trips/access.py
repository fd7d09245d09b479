"""Load a trip in the caller's scope or refuse: the one check every trip id goes through.

A trip is visible to its requester, its passengers, the driver booked for it, and the
supervising roles whose scope holds its requesting or serving unit (`repository.visible_clause`).
Anyone else gets the answer a missing trip gets (404), so trip ids are no existence oracle.
"""

from __future__ import annotations

from sqlalchemy.ext.asyncio import AsyncSession

from dispatch.trips import repository
from dispatch.trips.models import TripRequest
from fleet.identity.principal import Principal, hidden


async def load_trip(
    session: AsyncSession,
    principal: Principal,
    trip_id: int,
    *,
    field: str = "trip_id",
    lock: bool = False,
) -> TripRequest:
    """The trip if the caller may see it, else 404; `lock` takes its row lock (transitions)."""
    # populate_existing: another transaction may have moved the trip on since we looked.
    stmt = (
        repository.trips_query(principal)
        .where(TripRequest.id == trip_id)
        .execution_options(populate_existing=True)
    )
    if lock:
        stmt = stmt.with_for_update(of=TripRequest)
    trip = (await session.execute(stmt)).scalar_one_or_none()
    if trip is None:
        raise hidden("trip", trip_id, field=field)
    return trip
