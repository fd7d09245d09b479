"""OSRM-compatible `/table` provider (the production option): configuration only.

Imported on demand only, so the pure solve path never loads httpx.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import httpx
import numpy as np

from optimizer.matrix import TravelMatrix
from optimizer.model import GeoPoint, Location


class OsrmError(RuntimeError):
    """The table service answered with an error or an unusable matrix."""


@dataclass(frozen=True, slots=True)
class OsrmTableProvider:
    """Asks `{base_url}/table/v1/{profile}/{lon,lat;...}` for durations and distances.

    Unreachable pairs (null in the answer) are replaced by `unreachable_s` seconds and
    `unreachable_m` metres, which makes them practically unusable but keeps the solve going.
    """

    base_url: str = "http://localhost:5000"
    profile: str = "driving"
    timeout_s: float = 30.0
    unreachable_s: float = 7 * 86_400.0
    unreachable_m: float = 10_000_000.0

    def matrix(self, points: Sequence[Location]) -> TravelMatrix:
        if not points:
            empty = np.zeros((0, 0), dtype=np.float64)
            return TravelMatrix(durations=empty, distances=empty)
        coords = ";".join(f"{_geo(p).lon:.6f},{_geo(p).lat:.6f}" for p in points)
        url = f"{self.base_url.rstrip('/')}/table/v1/{self.profile}/{coords}"
        response = httpx.get(
            url, params={"annotations": "duration,distance"}, timeout=self.timeout_s
        )
        if response.status_code != 200:
            raise OsrmError(f"OSRM table answered {response.status_code}: {response.text[:200]}")
        return parse_table(response.json(), len(points), self.unreachable_s, self.unreachable_m)


def _geo(p: Location) -> GeoPoint:
    if not isinstance(p, GeoPoint):
        raise TypeError("OsrmTableProvider needs GeoPoint points")
    return p


def parse_table(
    body: dict[str, Any], n: int, unreachable_s: float, unreachable_m: float
) -> TravelMatrix:
    """Turns an OSRM `/table` JSON answer into a TravelMatrix (nulls -> unreachable)."""
    if body.get("code") != "Ok":
        raise OsrmError(f"OSRM table error: {body.get('code')}: {body.get('message', '')}")
    durations = _square(body.get("durations"), n, unreachable_s, "durations")
    distances = _square(body.get("distances"), n, unreachable_m, "distances")
    return TravelMatrix(durations=durations, distances=distances)


def _square(rows: Any, n: int, missing: float, name: str) -> np.ndarray[Any, np.dtype[np.float64]]:
    if not isinstance(rows, list) or len(rows) != n:
        raise OsrmError(f"OSRM table: {name} is not a {n}x{n} matrix")
    out = np.empty((n, n), dtype=np.float64)
    for i, row in enumerate(rows):
        if not isinstance(row, list) or len(row) != n:
            raise OsrmError(f"OSRM table: {name} row {i} has the wrong length")
        for j, value in enumerate(row):
            out[i, j] = missing if value is None else float(value)
    return out
