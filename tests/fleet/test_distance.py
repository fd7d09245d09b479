"""The one great-circle distance (`fleet.distance`), on hand-checkable cases."""

from __future__ import annotations

import math

from fleet.distance import EARTH_RADIUS_M, great_circle_m


def test_a_degree_of_latitude_and_of_longitude_on_the_equator() -> None:
    degree = 2 * math.pi * EARTH_RADIUS_M / 360  # ≈ 111 195 m
    assert math.isclose(great_circle_m(0, 0, 1, 0), degree, rel_tol=1e-12)
    assert math.isclose(great_circle_m(0, 0, 0, 1), degree, rel_tol=1e-12)


def test_symmetric_zero_on_itself_and_half_the_globe_at_most() -> None:
    nanning, beijing = (22.817, 108.366), (39.904, 116.407)
    assert great_circle_m(*nanning, *beijing) == great_circle_m(*beijing, *nanning)
    assert 2_040_000 < great_circle_m(*nanning, *beijing) < 2_060_000
    assert great_circle_m(*nanning, *nanning) == 0
    assert math.isclose(great_circle_m(0, 0, 0, 180), math.pi * EARTH_RADIUS_M, rel_tol=1e-12)
