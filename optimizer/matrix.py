"""Travel-time and distance matrices behind a small provider protocol.

The embedded providers work offline: `EuclideanProvider` for planar points and
`GreatCircleProvider` (haversine x circuity factor, speed by distance band) for
WGS-84 points. The production option, an OSRM-compatible `/table` service, lives in
`optimizer.osrm` so that httpx is imported only when it is used.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol, runtime_checkable

import numpy as np
import numpy.typing as npt

from optimizer.model import XY, GeoPoint, Location

FloatMatrix = npt.NDArray[np.float64]

EARTH_RADIUS_M = 6_371_008.8


@dataclass(frozen=True, slots=True)
class TravelMatrix:
    """Square matrices over a list of points: seconds and metres (or planar units)."""

    durations: FloatMatrix
    distances: FloatMatrix

    def __post_init__(self) -> None:
        n = self.durations.shape[0]
        if self.durations.shape != (n, n) or self.distances.shape != (n, n):
            raise ValueError("travel matrices must be square and of the same size")
        if not (np.all(np.isfinite(self.durations)) and np.all(self.durations >= 0)):
            raise ValueError("durations must be finite and >= 0")
        if not (np.all(np.isfinite(self.distances)) and np.all(self.distances >= 0)):
            raise ValueError("distances must be finite and >= 0")


@runtime_checkable
class MatrixProvider(Protocol):
    """Anything that turns a list of points into travel durations and distances."""

    def matrix(self, points: Sequence[Location]) -> TravelMatrix: ...


@dataclass(frozen=True, slots=True)
class EuclideanProvider:
    """Straight-line distance in double precision; duration = distance / speed."""

    speed: float = 1.0

    def matrix(self, points: Sequence[Location]) -> TravelMatrix:
        xy = np.array([_xy(p) for p in points], dtype=np.float64).reshape(-1, 2)
        diff = xy[:, None, :] - xy[None, :, :]
        dist = np.sqrt((diff**2).sum(axis=-1))
        return TravelMatrix(durations=dist / self.speed, distances=dist)


def _xy(p: Location) -> tuple[float, float]:
    if not isinstance(p, XY):
        raise TypeError("EuclideanProvider needs XY points")
    return (p.x, p.y)


#: Default speed bands for a Chinese city/county road network: (road metres up to, km/h).
DEFAULT_SPEED_BANDS: tuple[tuple[float, float], ...] = (
    (2_000.0, 20.0),
    (10_000.0, 32.0),
    (40_000.0, 50.0),
    (math.inf, 75.0),
)


@dataclass(frozen=True, slots=True)
class GreatCircleProvider:
    """Haversine distance x `circuity` as road distance; time by speed bands.

    Travel time integrates the bands: the first 2 km at 20 km/h, the next 8 km at
    32 km/h and so on, so time grows monotonically with distance (no band jumps).
    """

    circuity: float = 1.35
    speed_bands: tuple[tuple[float, float], ...] = DEFAULT_SPEED_BANDS

    def __post_init__(self) -> None:
        if not self.circuity >= 1.0:
            raise ValueError("circuity must be >= 1")
        if not self.speed_bands or self.speed_bands[-1][0] != math.inf:
            raise ValueError("the last speed band must reach infinity")
        previous = 0.0
        for upto, kmh in self.speed_bands:
            if upto <= previous or kmh <= 0:
                raise ValueError("speed bands must increase and speeds be > 0")
            previous = upto

    def matrix(self, points: Sequence[Location]) -> TravelMatrix:
        latlon = np.radians(np.array([_latlon(p) for p in points], dtype=np.float64))
        latlon = latlon.reshape(-1, 2)
        lat, lon = latlon[:, 0], latlon[:, 1]
        dlat = lat[:, None] - lat[None, :]
        dlon = lon[:, None] - lon[None, :]
        a = (
            np.sin(dlat / 2) ** 2
            + np.cos(lat)[:, None] * np.cos(lat)[None, :] * np.sin(dlon / 2) ** 2
        )
        great = 2 * EARTH_RADIUS_M * np.arcsin(np.sqrt(np.clip(a, 0.0, 1.0)))
        road = great * self.circuity
        return TravelMatrix(durations=self.seconds_for(road), distances=road)

    def seconds_for(self, road_m: FloatMatrix) -> FloatMatrix:
        seconds = np.zeros_like(road_m)
        lower = 0.0
        for upto, kmh in self.speed_bands:
            in_band = np.clip(road_m - lower, 0.0, upto - lower)
            seconds += in_band / (kmh / 3.6)
            lower = upto
        return seconds


def _latlon(p: Location) -> tuple[float, float]:
    if not isinstance(p, GeoPoint):
        raise TypeError("GreatCircleProvider needs GeoPoint points")
    return (p.lat, p.lon)


def default_provider(planar: bool) -> MatrixProvider:
    """The offline provider matching the problem's kind of points."""
    return EuclideanProvider() if planar else GreatCircleProvider()
