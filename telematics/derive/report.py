"""What a derive cycle did, and the live events it owes the bus once it commits."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import asyncpg


@dataclass
class CycleReport:
    ran: bool = True
    points: int = 0
    vehicles: int = 0
    backlog: int = 0  # vehicles taken from derive_backlog
    reprocessed: int = 0
    segments: int = 0
    alerts_new: int = 0
    status_changes: int = 0
    cursor: datetime | None = None
    events: list[tuple[str, str | None, dict[str, Any]]] = field(default_factory=list)


def alert_events(rows: list[asyncpg.Record], rep: CycleReport) -> None:
    """New alerts (rows of an INSERT ... RETURNING) as ``alert`` events of the cycle."""
    for r in rows:
        if not r.get("inserted", True):
            continue
        rep.alerts_new += 1
        rep.events.append(
            (
                "alert",
                r["org_path"],
                {
                    "id": r["id"],
                    "kind": r["kind"],
                    "severity": r["severity"],
                    "vehicle_id": r["vehicle_id"],
                    "started_at": r["started_at"].isoformat(),
                    "message": r["message"],
                    "lat": r["lat"],
                    "lon": r["lon"],
                },
            )
        )


def status_events(rows: list[asyncpg.Record], rep: CycleReport) -> None:
    """Status changes (rows of an UPDATE ... RETURNING) as ``status`` events of the cycle."""
    for r in rows:
        rep.status_changes += 1
        rep.events.append(
            (
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
        )
