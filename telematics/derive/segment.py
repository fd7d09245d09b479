"""Trip and stop segmentation from ignition (acc) and motion: a pure, resumable state machine.

A point "moves" as ``telematics.rules.moving`` defines it, at ``motion_speed_kmh`` (by default
the shared ``MOVING_MIN_SPEED_KMH``). A stop becomes a trip once the vehicle has moved
``trip_min_distance_m`` away from where it stood (GPS drift in a car park never does); a trip
ends when the ignition goes off, or after ``stop_min_s`` without motion (a red light does not
end it). The state is a small JSON document stored per vehicle, so the worker resumes where
it left off and a re-run over the same points yields the same segments (keyed by
``(vehicle_id, started_at)``).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from typing import Any

from fleet.distance import great_circle_m
from telematics.rules.moving import is_moving


@dataclass(frozen=True)
class Pt:
    ts: datetime
    lat: float
    lon: float
    speed_kmh: float | None
    acc: bool | None
    odometer_km: float | None = None


@dataclass
class Segment:
    """A trip or stop as it stands after a batch (ended_at None = still open)."""

    kind: str  # "trip" | "stop"
    started_at: datetime
    lat: float
    lon: float
    ended_at: datetime | None = None
    end_lat: float | None = None
    end_lon: float | None = None
    distance_m: float = 0.0
    max_speed_kmh: float = 0.0
    points: int = 0
    odometer_start_km: float | None = None
    odometer_end_km: float | None = None
    ignition_off: bool = False


@dataclass
class SegState:
    mode: str | None = None  # "trip" | "stop" | None before the first point
    start_ts: float = 0.0  # epoch seconds of the open segment's start
    start_lat: float = 0.0
    start_lon: float = 0.0
    distance_m: float = 0.0
    max_speed_kmh: float = 0.0
    points: int = 0
    odo_start: float | None = None
    ignition_off: bool = False
    # in a trip: since when the vehicle stands still (and where)
    still_ts: float | None = None
    still_lat: float = 0.0
    still_lon: float = 0.0
    # in a stop: a movement not yet far enough to be a trip
    move_ts: float | None = None
    move_dist_m: float = 0.0
    move_max_kmh: float = 0.0
    move_points: int = 0
    last_ts: float | None = None
    last_lat: float = 0.0
    last_lon: float = 0.0
    last_odo: float | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, data: dict[str, Any] | None) -> SegState:
        if not data:
            return cls()
        known = {k: v for k, v in data.items() if k in cls.__dataclass_fields__}
        return cls(**known)


def _dt(epoch: float) -> datetime:
    return datetime.fromtimestamp(epoch, UTC)


class Segmenter:
    def __init__(
        self, *, motion_speed_kmh: float, stop_min_s: float, trip_min_distance_m: float
    ) -> None:
        self.motion_speed_kmh = motion_speed_kmh
        self.stop_min_s = stop_min_s
        self.trip_min_distance_m = trip_min_distance_m

    def moving(self, p: Pt) -> bool:
        return is_moving(p.speed_kmh, p.acc, min_speed_kmh=self.motion_speed_kmh)

    def feed(self, st: SegState, points: list[Pt]) -> list[Segment]:
        """Advance the state over points (ascending ts, newer than st.last_ts).

        Returns every segment touched: closed ones and the open one last.
        """
        out: dict[tuple[str, float], Segment] = {}
        for p in points:
            t = p.ts.timestamp()
            if st.last_ts is not None and t <= st.last_ts:
                continue
            step = (
                0.0
                if st.last_ts is None
                else great_circle_m(st.last_lat, st.last_lon, p.lat, p.lon)
            )
            moving = self.moving(p)
            if st.mode is None:
                self._open(st, "trip" if moving else "stop", t, p)
            elif st.mode == "trip":
                st.distance_m += step
                st.points += 1
                st.max_speed_kmh = max(st.max_speed_kmh, p.speed_kmh or 0.0)
                if moving:
                    st.still_ts = None
                else:
                    if st.still_ts is None:
                        st.still_ts, st.still_lat, st.still_lon = t, p.lat, p.lon
                    if p.acc is False or t - st.still_ts >= self.stop_min_s:
                        end_ts = st.still_ts
                        out[("trip", st.start_ts)] = self._segment(
                            st, end_ts, st.still_lat, st.still_lon, p
                        )
                        lat, lon = st.still_lat, st.still_lon
                        self._open(st, "stop", end_ts, p, lat=lat, lon=lon)
                        st.ignition_off = p.acc is False
            else:  # stop
                if p.acc is False:
                    st.ignition_off = True
                if moving:
                    if st.move_ts is None:
                        # the movement began at the last point where it stood
                        st.move_ts = st.last_ts if st.last_ts is not None else t
                        st.move_dist_m, st.move_max_kmh, st.move_points = 0.0, 0.0, 0
                    st.move_dist_m += step
                    st.move_max_kmh = max(st.move_max_kmh, p.speed_kmh or 0.0)
                    st.move_points += 1
                    st.still_ts = None
                    away = great_circle_m(st.start_lat, st.start_lon, p.lat, p.lon)
                    if away >= self.trip_min_distance_m:
                        begin = st.move_ts
                        out[("stop", st.start_ts)] = self._segment(
                            st, begin, st.start_lat, st.start_lon, p
                        )
                        dist, vmax, n = st.move_dist_m, st.move_max_kmh, st.move_points
                        self._open(st, "trip", begin, p, lat=st.start_lat, lon=st.start_lon)
                        st.distance_m, st.max_speed_kmh, st.points = dist, vmax, n
                        st.odo_start = st.last_odo if st.last_odo is not None else p.odometer_km
                elif st.move_ts is not None:
                    if st.still_ts is None:
                        st.still_ts = t
                    if t - st.still_ts >= self.stop_min_s:
                        st.move_ts, st.still_ts = None, None
            st.last_ts, st.last_lat, st.last_lon = t, p.lat, p.lon
            if p.odometer_km is not None:
                st.last_odo = p.odometer_km
        if st.mode is not None and st.last_ts is not None:
            out[(st.mode, st.start_ts)] = self._open_segment(st)
        return list(out.values())

    def _open(
        self,
        st: SegState,
        mode: str,
        t: float,
        p: Pt,
        *,
        lat: float | None = None,
        lon: float | None = None,
    ) -> None:
        st.mode, st.start_ts = mode, t
        st.start_lat = p.lat if lat is None else lat
        st.start_lon = p.lon if lon is None else lon
        st.distance_m, st.max_speed_kmh, st.points = 0.0, 0.0, 1
        st.odo_start = p.odometer_km if p.odometer_km is not None else st.last_odo
        st.ignition_off = p.acc is False and mode == "stop"
        st.still_ts, st.move_ts = None, None
        st.move_dist_m, st.move_max_kmh, st.move_points = 0.0, 0.0, 0
        if mode == "trip":
            st.max_speed_kmh = p.speed_kmh or 0.0

    def _segment(
        self, st: SegState, end_ts: float, end_lat: float, end_lon: float, p: Pt
    ) -> Segment:
        assert st.mode is not None
        return Segment(
            kind=st.mode,
            started_at=_dt(st.start_ts),
            lat=st.start_lat,
            lon=st.start_lon,
            ended_at=_dt(max(end_ts, st.start_ts)),
            end_lat=end_lat,
            end_lon=end_lon,
            distance_m=st.distance_m if st.mode == "trip" else 0.0,
            max_speed_kmh=st.max_speed_kmh,
            points=st.points,
            odometer_start_km=st.odo_start,
            odometer_end_km=st.last_odo if p.odometer_km is None else p.odometer_km,
            ignition_off=st.ignition_off,
        )

    def _open_segment(self, st: SegState) -> Segment:
        assert st.mode is not None
        return Segment(
            kind=st.mode,
            started_at=_dt(st.start_ts),
            lat=st.start_lat,
            lon=st.start_lon,
            distance_m=st.distance_m if st.mode == "trip" else 0.0,
            max_speed_kmh=st.max_speed_kmh,
            points=st.points,
            odometer_start_km=st.odo_start,
            odometer_end_km=st.last_odo,
            ignition_off=st.ignition_off,
        )
