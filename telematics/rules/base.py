"""Point rules on positions: an episode of a condition held long enough becomes an alert.

A point rule (one file each in this package, listed in ``catalog.POINT_RULES``) says per point
whether it offends (:meth:`EpisodeRule.test`) and how an episode reads (``describe``); this
base does the rest. Rules are evaluated per vehicle over the points of a derive cycle, with
their open episode carried in the vehicle's derive state, so an episode may span cycles. An
episode opens on the first point meeting the condition, survives gaps shorter than the rule's
grace, and becomes an alert once it has lasted the rule's minimum duration; its dedup key
(kind, vehicle, episode start) makes the alert idempotent across re-runs. Evidence is a
GeoJSON FeatureCollection of the offending points with the thresholds as foreign members,
ready to open on the map.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from telematics.rules.thresholds import DeriveSettings


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
