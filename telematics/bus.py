"""The live bus between processes: Redis pub/sub, one message per batch, never per ping.

Two channels (the contract every producer and the websocket endpoint share):

Channel names start with ``FLEET_REDIS__CHANNEL_PREFIX`` (default ``fleet``), so a test run
or benchmark on the same Redis as a demo has a bus of its own.

- ``fleet.positions.v1``: one message per committed ingest batch, a JSON object
  ``{"type": "positions", "items": [{"vehicle_id", "org_path", "ts" (RFC 3339 UTC), "lat",
  "lon", "speed_kmh", "heading_deg", "acc", "flags"}, ...]}``.
- ``fleet.events.v1``: ``{"type": "status" | "alert" | "trip" | "notification", "org_path":
  unit path or null, "user_ids": [..] or null, "data": {...}}``. A console receives an event
  when its user's scope covers ``org_path`` or the user is listed in ``user_ids``.
- ``fleet.accounts.v1`` (the kernel's, fleet/identity/sessions.py): ``{"type": "account",
  "user_id", "reason"}`` after a user's account changed (deactivated, roles, password); every
  API process closes that user's open websockets. Never forwarded to a console.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import orjson
from redis.asyncio import Redis

from fleet import pubsub
from fleet.identity.sessions import accounts_channel as accounts_channel  # re-exported
from fleet.outbox import event_body as event_body  # re-exported: the events.v1 contract
from fleet.outbox import events_channel as events_channel  # re-exported


def positions_channel() -> str:
    return pubsub.name("positions.v1")


def redis_client(url: str) -> Redis:
    return pubsub.connect(url)


async def publish_positions(redis: Redis, items: Sequence[dict[str, Any]]) -> None:
    if items:
        await redis.publish(
            positions_channel(), orjson.dumps({"type": "positions", "items": list(items)})
        )


async def publish_event(
    redis: Redis,
    type_: str,
    data: dict[str, Any],
    *,
    org_path: str | None = None,
    user_ids: Sequence[int] | None = None,
) -> None:
    body = event_body(type_, data, org_path=org_path, user_ids=user_ids)
    await redis.publish(events_channel(), orjson.dumps(body, default=str))
