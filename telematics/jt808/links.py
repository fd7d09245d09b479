"""Each terminal's link as the gateway sees it (`terminal_links`), written in bulk.

Logins and disconnections are queued and written together (every ~0.5 s by the sweeper),
the last-seen times every `seen_flush_s` — never a statement per heartbeat. A terminal that
went quiet (heartbeat timeout) also has its vehicle marked offline at once, and that status
change is pushed on the live bus like the derive worker's.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import asyncpg

from telematics.jt808 import repository as repo

if TYPE_CHECKING:
    from telematics.jt808.session import Connection

Publish = Callable[[str, str | None, dict[str, Any]], Awaitable[None]]


class LinkBook:
    def __init__(self, gateway: str) -> None:
        self.gateway = gateway
        self._online: dict[str, tuple[Any, ...]] = {}
        self._offline: list[tuple[str, str, datetime, datetime]] = []

    def up(self, c: Connection) -> None:
        tid = c.terminal_id
        assert tid is not None
        connected = datetime.fromtimestamp(c.connected_at, UTC)
        self._online[tid] = (tid, self.gateway, c.peer, c.version or 0, connected)

    def down(self, c: Connection) -> None:
        """Once per authenticated connection, with the reason it went away."""
        if c.terminal_id is not None and c.connected_at:
            since = datetime.fromtimestamp(c.connected_at, UTC)
            self._offline.append((c.terminal_id, c.reason, since, datetime.now(UTC)))
            c.connected_at = 0.0

    async def flush(
        self, pool: asyncpg.Pool, publish: Publish, seen: list[tuple[str, datetime]]
    ) -> None:
        if self._online:  # first: a connection that came and went in one interval
            rows = list(self._online.values())
            await repo.links_online(pool, rows)
            self._online.clear()
        if self._offline:
            rows_off, self._offline = self._offline, []
            for r in await repo.links_offline(pool, self.gateway, rows_off):
                await publish(
                    "status",
                    r["org_path"],
                    {
                        "vehicle_id": r["vehicle_id"],
                        "status": r["status"],
                        "previous": r["previous"],
                        "since": r["status_since"].isoformat(),
                        "ts": r["ts"].isoformat(),
                        "lat": r["lat"],
                        "lon": r["lon"],
                    },
                )
        if seen:
            await repo.links_seen(pool, self.gateway, seen)
