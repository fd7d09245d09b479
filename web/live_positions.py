"""Which positions of the live bus are live: per vehicle, only the newest one ever seen.

The bus carries every new row an ingest batch stored, including a buffered upload's old
pings (sent after a coverage gap, any order). Those belong to tracks; a console must only
ever see a vehicle move forward. `LivePositions` keeps, per vehicle, the newest ping time
this API process knows (from the bus, and from ``latest_positions`` at start) and lets
through, of each bus message, only the newest item of each vehicle and only if it is newer
still. web.live then coalesces what passes per console.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from datetime import datetime
from typing import Any

Positioned = tuple[float, dict[str, Any]]  # (the ping's ts as epoch seconds, bus item)


def ping_epoch(ts: Any) -> float | None:
    """A bus item's ``ts`` (RFC 3339, ``Z`` or an offset) as epoch seconds; None if unreadable.

    Compared as numbers: as strings, ``…:26Z`` sorts after ``…:26.5Z``.
    """
    try:
        return datetime.fromisoformat(str(ts)).timestamp()
    except ValueError:
        return None


class LivePositions:
    """Newest ping time per vehicle (26,638 vehicles: a dict of ~2 MB)."""

    def __init__(self) -> None:
        self.newest: dict[int, float] = {}

    def seed(self, rows: Iterable[tuple[int, float]]) -> None:
        """Start from the live positions: (vehicle_id, ts as epoch seconds)."""
        newest = self.newest
        for vid, ts in rows:
            if ts > newest.get(vid, -math.inf):
                newest[vid] = ts

    def newer(self, items: Iterable[Any]) -> dict[int, Positioned]:
        """The newest item per vehicle of one bus message, if newer than every position seen
        before for that vehicle; what it returns becomes the newest seen."""
        newest = self.newest
        out: dict[int, Positioned] = {}
        for item in items:
            if not isinstance(item, dict):
                continue
            vid = item.get("vehicle_id")
            ts = ping_epoch(item.get("ts"))
            if not isinstance(vid, int) or ts is None or ts <= newest.get(vid, -math.inf):
                continue
            newest[vid] = ts
            out[vid] = (ts, item)
        return out
