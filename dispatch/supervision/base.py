"""What every trip-aware rule shares: its thresholds, its report, writing and announcing an alert.

A new alert is audited (actor ``supervision``) and queued for the live bus (type "alert") to
the consoles whose scope covers the vehicle's unit, sent once the transaction commits.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import orjson
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession

from dispatch import notify
from fleet import audit
from telematics.rules.moving import MOVING_MIN_SPEED_KMH

SUPERVISION = audit.Actor("supervision")


@dataclass(frozen=True)
class Rules:
    """Thresholds; units in the names."""

    # what "moving" means, shared with telematics (a ping at or above it, ignition not off)
    moving_speed_kmh: float = MOVING_MIN_SPEED_KMH
    private_min_km: float = 1.0  # an uncovered movement this long is suspected private use…
    private_min_minutes: float = 3.0  # …or one lasting this long
    episode_gap_minutes: float = 10.0  # moving pings further apart start a new episode
    overtime_grace_minutes: float = 30.0
    deviation_km: float = 2.0  # closest approach to the approved destination
    evidence_points: int = 300


@dataclass
class CheckReport:
    private_use: int = 0
    trip_overtime: int = 0
    destination_deviation: int = 0
    alert_ids: list[int] = field(default_factory=list)


_INSERT = text(
    """
    INSERT INTO alerts (kind, severity, vehicle_id, org_id, trip_id, started_at, ended_at,
                        location, message, evidence, dedup_key)
    VALUES (:kind, :severity, :vehicle_id, :org_id, :trip_id, :started_at, :ended_at,
            CASE WHEN CAST(:lon AS float8) IS NULL THEN NULL
                 ELSE ST_SetSRID(ST_MakePoint(:lon, :lat), 4326) END,
            :message, CAST(:evidence AS jsonb), :dedup_key)
    ON CONFLICT (dedup_key) DO NOTHING
    RETURNING id
    """
)


async def insert_alert(
    session: AsyncSession, unit_path: str, report: CheckReport, **values: Any
) -> int | None:
    values.setdefault("trip_id", None)
    values.setdefault("severity", "warning")
    values.setdefault("lon", None)
    values.setdefault("lat", None)
    values["evidence"] = orjson.dumps(values["evidence"], default=str).decode()
    alert_id = (await session.execute(_INSERT, values)).scalar_one_or_none()
    if alert_id is None:
        return None
    report.alert_ids.append(int(alert_id))
    await announce(
        session,
        unit_path,
        id=int(alert_id),
        **{k: values[k] for k in ("kind", "severity", "vehicle_id", "trip_id", "started_at")},
        message=values["message"],
    )
    return int(alert_id)


async def announce(session: AsyncSession, unit_path: str, **data: Any) -> None:
    """A new alert: audited, and on the live bus (type "alert") to consoles whose scope
    covers the unit once the transaction commits."""
    await audit.record(
        session,
        SUPERVISION,
        "alert.create",
        "alert",
        data["id"],
        to_state="open",
        data={k: data.get(k) for k in ("kind", "severity", "vehicle_id", "trip_id")},
    )
    notify.queue(session, "alert", data, org_path=unit_path)
