"""Supervision rules on positions (运行监管): episodes of a condition held long enough.

Point rules (overspeed, geofence exit, movement off-hours / on holidays) are evaluated per
vehicle over the points of a derive cycle, with their open episode carried in the vehicle's
derive state, so an episode may span cycles. An episode opens on the first point meeting
the condition, survives gaps shorter than the rule's grace, and becomes an alert once it has
lasted the rule's minimum duration; its dedup key (kind, vehicle, episode start) makes the
alert idempotent across re-runs. Evidence is a GeoJSON FeatureCollection of the offending
points with the thresholds as foreign members, ready to open on the map.

Fleet-wide checks (not back at the depot overnight, terminal offline while in service) are
SQL statements in ``telematics.derive.worker``. Working days come from the official calendar
(``fleet.holidays``: the `holidays` table, held in process and refreshed by the derive cycle).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time
from typing import Any
from zoneinfo import ZoneInfo

from fleet.holidays import calendar
from telematics.derive.config import DeriveSettings

# ---- calendar --------------------------------------------------------------------------


def is_workday(day: date) -> bool:
    """Official working day: weekdays that are not public holidays, plus adjusted (调休)
    weekend working days, from the holidays table. A year the table does not cover counts
    Monday–Friday, with a warning (see fleet.holidays.calendar)."""
    return calendar.current().is_workday(day)


def holiday_name(day: date) -> str | None:
    return calendar.current().holiday_name(day)


def off_hours(ts: datetime, cfg: DeriveSettings) -> tuple[bool, str]:
    """(True, reason) when ts falls outside working time: non-working day or hours."""
    local = ts.astimezone(ZoneInfo(cfg.timezone))
    day = local.date()
    if not is_workday(day):
        name = holiday_name(day)
        return True, f"holiday:{name}" if name else "weekend"
    t = local.time()
    if t < cfg.work_start or t >= cfg.work_end:
        return True, "after_hours"
    return False, ""


def in_working_hours(ts: datetime, cfg: DeriveSettings) -> bool:
    return not off_hours(ts, cfg)[0]


# ---- per-point episode rules -------------------------------------------------------------


@dataclass(frozen=True)
class RulePoint:
    ts: datetime
    lat: float
    lon: float
    speed_kmh: float | None
    acc: bool | None
    moving: bool
    body_type: str
    zone_limit_kmh: float | None  # strictest speed_limit geofence containing the point
    inside_allowed: bool | None  # None: no allowed_area geofence applies to the vehicle
    allowed_ids: list[int] = field(default_factory=list)


@dataclass
class AlertDraft:
    kind: str
    severity: str
    vehicle_id: int
    started_at: datetime
    ended_at: datetime | None
    lat: float
    lon: float
    message: str
    evidence: dict[str, Any]
    dedup_key: str


def _epoch(ts: datetime) -> float:
    return ts.timestamp()


def _iso(epoch: float) -> str:
    return datetime.fromtimestamp(epoch, UTC).isoformat().replace("+00:00", "Z")


class EpisodeRule:
    """One rule: a condition per point, a minimum duration and a grace for short gaps."""

    kind = "rule"
    severity = "warning"

    def __init__(self, cfg: DeriveSettings) -> None:
        self.cfg = cfg

    # subclasses
    min_s: float = 0.0
    grace_s: float = 0.0

    def test(self, p: RulePoint) -> dict[str, Any] | None:
        """Properties of the offending point, or None when the point is fine."""
        raise NotImplementedError

    def describe(self, ep: dict[str, Any]) -> tuple[str, str, dict[str, Any]]:
        """(kind, message, thresholds) of an episode."""
        raise NotImplementedError

    def feed(
        self, vehicle_id: int, ep: dict[str, Any] | None, points: list[RulePoint]
    ) -> tuple[dict[str, Any] | None, list[AlertDraft]]:
        drafts: dict[str, AlertDraft] = {}
        for p in points:
            t = _epoch(p.ts)
            props = self.test(p)
            if ep is not None and t - ep["last"] > self.grace_s:
                # the condition has not been seen for longer than the grace: the episode ends
                if ep["last"] - ep["start"] >= self.min_s:
                    d = self._draft(vehicle_id, ep, closed=True)
                    drafts[d.dedup_key] = d
                ep = None
            if props is None:
                continue
            if ep is None:
                ep = {"start": t, "last": t, "n": 0, "pts": [], "info": {}}
            ep["last"] = t
            ep["n"] += 1
            ep["info"].update({k: v for k, v in props.items() if k.startswith("_")})
            if len(ep["pts"]) < self.cfg.evidence_max_points:
                ep["pts"].append(
                    [
                        t,
                        round(p.lon, 6),
                        round(p.lat, 6),
                        p.speed_kmh,
                        {k: v for k, v in props.items() if not k.startswith("_")},
                    ]
                )
            if ep["last"] - ep["start"] >= self.min_s:
                d = self._draft(vehicle_id, ep, closed=False)
                drafts[d.dedup_key] = d
        return ep, list(drafts.values())

    def _draft(self, vehicle_id: int, ep: dict[str, Any], *, closed: bool) -> AlertDraft:
        kind, message, thresholds = self.describe(ep)
        first = ep["pts"][0]
        features = [
            {
                "type": "Feature",
                "geometry": {"type": "Point", "coordinates": [pt[1], pt[2]]},
                "properties": {"ts": _iso(pt[0]), "speed_kmh": pt[3], **pt[4]},
            }
            for pt in ep["pts"]
        ]
        if len(ep["pts"]) >= 2:
            features.insert(
                0,
                {
                    "type": "Feature",
                    "geometry": {
                        "type": "LineString",
                        "coordinates": [[pt[1], pt[2]] for pt in ep["pts"]],
                    },
                    "properties": {"kind": "episode"},
                },
            )
        evidence = {
            "type": "FeatureCollection",
            "rule": kind,
            "vehicle_id": vehicle_id,
            "thresholds": thresholds,
            "window": {
                "start": _iso(ep["start"]),
                "end": _iso(ep["last"]),
                "duration_s": round(ep["last"] - ep["start"], 1),
                "open": not closed,
            },
            "points_total": ep["n"],
            "points_in_evidence": len(ep["pts"]),
            "features": features,
        }
        return AlertDraft(
            kind=kind,
            severity=self.severity,
            vehicle_id=vehicle_id,
            started_at=datetime.fromtimestamp(ep["start"], UTC),
            ended_at=datetime.fromtimestamp(ep["last"], UTC) if closed else None,
            lat=first[2],
            lon=first[1],
            message=message,
            evidence=evidence,
            dedup_key=f"{kind}:{vehicle_id}:{int(ep['start'])}",
        )


class Overspeed(EpisodeRule):
    kind = "overspeed"

    def __init__(self, cfg: DeriveSettings) -> None:
        super().__init__(cfg)
        self.min_s, self.grace_s = cfg.overspeed_min_s, cfg.overspeed_grace_s

    def test(self, p: RulePoint) -> dict[str, Any] | None:
        limit = self.cfg.speed_limits.for_body(p.body_type)
        source = f"body_type:{p.body_type}"
        if p.zone_limit_kmh is not None and p.zone_limit_kmh < limit:
            limit, source = p.zone_limit_kmh, "geofence"
        if p.speed_kmh is None or p.speed_kmh <= limit:
            return None
        return {"limit_kmh": limit, "_limit_source": source, "_limit_kmh": limit}

    def describe(self, ep: dict[str, Any]) -> tuple[str, str, dict[str, Any]]:
        vmax = max((pt[3] or 0.0) for pt in ep["pts"])
        limit = ep["info"].get("_limit_kmh")
        dur = ep["last"] - ep["start"]
        msg = (
            f"超速 overspeed: up to {vmax:.0f} km/h over the {limit:.0f} km/h limit for {dur:.0f} s"
        )
        return (
            self.kind,
            msg,
            {
                "limit_kmh": limit,
                "limit_source": ep["info"].get("_limit_source"),
                "min_duration_s": self.min_s,
                "max_speed_kmh": vmax,
            },
        )


class GeofenceExit(EpisodeRule):
    kind = "geofence_exit"

    def __init__(self, cfg: DeriveSettings) -> None:
        super().__init__(cfg)
        self.min_s, self.grace_s = cfg.geofence_exit_min_s, cfg.geofence_grace_s

    def test(self, p: RulePoint) -> dict[str, Any] | None:
        if p.inside_allowed is not False:
            return None
        return {"_allowed_area_ids": p.allowed_ids}

    def describe(self, ep: dict[str, Any]) -> tuple[str, str, dict[str, Any]]:
        dur = ep["last"] - ep["start"]
        ids = ep["info"].get("_allowed_area_ids", [])
        return (
            self.kind,
            f"驶出允许区域 left the allowed area for {dur:.0f} s",
            {"allowed_area_geofence_ids": ids, "min_duration_s": self.min_s},
        )


class OffHours(EpisodeRule):
    """Movement outside working hours; on a public holiday or weekend the kind is
    ``holiday_movement`` (adjusted working days count as working days)."""

    kind = "off_hours_movement"

    def __init__(self, cfg: DeriveSettings) -> None:
        super().__init__(cfg)
        self.min_s, self.grace_s = cfg.off_hours_min_s, cfg.off_hours_grace_s

    def test(self, p: RulePoint) -> dict[str, Any] | None:
        if not p.moving:
            return None
        off, reason = off_hours(p.ts, self.cfg)
        if not off:
            return None
        return {"reason": reason, "_reason": reason}

    def describe(self, ep: dict[str, Any]) -> tuple[str, str, dict[str, Any]]:
        reason = str(ep["info"].get("_reason", ""))
        kind = "holiday_movement" if reason != "after_hours" else "off_hours_movement"
        dur = ep["last"] - ep["start"]
        year = datetime.fromtimestamp(ep["start"], UTC).astimezone(ZoneInfo(self.cfg.timezone)).year
        what = (
            "节假日用车 movement on a non-working day"
            if kind == "holiday_movement"
            else ("非工作时间用车 movement outside working hours")
        )
        return (
            kind,
            f"{what} ({reason}) for {dur:.0f} s",
            {
                "reason": reason,
                "working_hours": f"{self.cfg.work_start:%H:%M}-{self.cfg.work_end:%H:%M}",
                "timezone": self.cfg.timezone,
                "calendar": calendar.current().describe(year),
                "min_duration_s": self.min_s,
            },
        )


def point_rules(cfg: DeriveSettings) -> tuple[EpisodeRule, ...]:
    return (Overspeed(cfg), GeofenceExit(cfg), OffHours(cfg))


def run_point_rules(
    rules: tuple[EpisodeRule, ...],
    vehicle_id: int,
    episodes: dict[str, Any],
    points: list[RulePoint],
) -> list[AlertDraft]:
    """Feed every rule; updates ``episodes`` (rule kind -> open episode) in place."""
    out: list[AlertDraft] = []
    for rule in rules:
        ep, drafts = rule.feed(vehicle_id, episodes.get(rule.kind), points)
        if ep is None:
            episodes.pop(rule.kind, None)
        else:
            episodes[rule.kind] = ep
        out.extend(drafts)
    return out


def local_time(ts: datetime, tz: str) -> time:
    return ts.astimezone(ZoneInfo(tz)).time()
