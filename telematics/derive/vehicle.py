"""One vehicle's step of a derive cycle: its new points through the segmenter and the rules.

The vehicle's state (segmenter state + open rule episodes) is a small JSON document stored
in ``derive_state``; feeding points advances it, so a cycle resumes where the last one left
off, and feeding the same points from a clean state yields the same segments and alerts.
Points flagged unreliable (``telematics.positions.flags``) are skipped.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any
from zoneinfo import ZoneInfo

import asyncpg

from telematics.derive import mileage
from telematics.derive.segment import Pt, Segment, Segmenter, SegState
from telematics.positions.flags import UNRELIABLE
from telematics.rules.base import AlertDraft, RulePoint
from telematics.rules.catalog import point_rules, run_point_rules
from telematics.rules.thresholds import DeriveSettings


class VehicleFeed:
    """The segmenter and the point rules, configured once per worker."""

    def __init__(self, cfg: DeriveSettings) -> None:
        self.tz = ZoneInfo(cfg.timezone)
        self.segmenter = Segmenter(
            motion_speed_kmh=cfg.motion_speed_kmh,
            stop_min_s=cfg.stop_min_s,
            trip_min_distance_m=cfg.trip_min_distance_m,
        )
        self.rules = point_rules(cfg)

    def feed(
        self,
        vid: int,
        seg_state: SegState,
        episodes: dict[str, Any],
        vrows: list[asyncpg.Record],
        deltas: mileage.Deltas | None,
    ) -> tuple[list[Segment], list[AlertDraft]]:
        """Advance ``seg_state`` and ``episodes`` (in place) over the vehicle's rows (ts order);
        add to ``deltas`` unless None (re-processing recomputes mileage from the table)."""
        usable = [r for r in vrows if not (r["flags"] or 0) & UNRELIABLE]
        pts = [
            Pt(r["ts"], r["lat"], r["lon"], r["speed_kmh"], r["acc"], r["odometer_km"])
            for r in usable
        ]
        if deltas is not None:
            # before the segmenter moves the state on: the track continues from its last point
            prev = (seg_state.last_lat, seg_state.last_lon) if seg_state.last_ts else None
            mileage.add_points(deltas, vid, usable, prev, self.tz)
        rule_pts = [
            RulePoint(
                ts=r["ts"],
                lat=r["lat"],
                lon=r["lon"],
                speed_kmh=r["speed_kmh"],
                acc=r["acc"],
                moving=self.segmenter.moving(p),
                body_type=r["body_type"],
                zone_limit_kmh=r["limit_kmh"],
                inside_allowed=r["inside"],
                allowed_ids=list(r["ids"] or []),
            )
            for r, p in zip(usable, pts, strict=True)
        ]
        segs = self.segmenter.feed(seg_state, pts)
        drafts = run_point_rules(self.rules, vid, episodes, rule_pts)
        return segs, drafts


def state_row(
    vid: int, seg_state: SegState, episodes: dict[str, Any], last_ts: datetime
) -> dict[str, Any]:
    """The vehicle's ``derive_state`` row, with its mode for the status update."""
    return {
        "vehicle_id": vid,
        "last_ts": last_ts.isoformat(),
        "state": {"seg": seg_state.to_json(), "episodes": episodes},
        "mode": seg_state.mode,
        "since": datetime.fromtimestamp(seg_state.start_ts, UTC).isoformat()
        if seg_state.mode
        else None,
    }
