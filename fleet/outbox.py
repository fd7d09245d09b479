"""Events after commit: queued on the session, published on the live bus once it commits.

Services call :func:`queue` inside the boundary's transaction (an HTTP request, a worker
round); the messages go out on ``fleet.events.v1`` only when that transaction commits —
nothing is announced for work that was rolled back. The bus is best effort: a Redis failure
is logged and never breaks the request. Used by telematics (alert acknowledgements) and
dispatch (trips, approvals, notifications, trip-aware alerts) alike, so it lives in the
kernel below both; the after-commit machinery is fleet/pubsub.py's, shared with the
account-change events. The events channel's contract is written in telematics/bus.py.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from fleet import pubsub
from fleet.pubsub import _clients, flush_pending

__all__ = ["_clients", "event_body", "events_channel", "flush_pending", "queue"]


def events_channel() -> str:
    """This deployment's ``<prefix>.events.v1`` channel."""
    return pubsub.name("events.v1")


def event_body(
    type_: str,
    data: dict[str, Any],
    *,
    org_path: str | None = None,
    user_ids: Sequence[int] | None = None,
) -> dict[str, Any]:
    """The JSON object of one ``events.v1`` message."""
    return {
        "type": type_,
        "org_path": org_path,
        "user_ids": list(user_ids or []) or None,
        "data": data,
    }


def queue(
    session: AsyncSession,
    type_: str,
    data: dict[str, Any],
    *,
    org_path: str | None = None,
    user_ids: Sequence[int] | None = None,
) -> None:
    """Publish an event on the bus once the session's transaction commits."""
    ids = sorted(set(user_ids)) if user_ids else None
    pubsub.publish_after_commit(
        session, events_channel(), event_body(type_, data, org_path=org_path, user_ids=ids)
    )
