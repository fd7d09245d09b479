"""What "moving" means, once, for every rule that asks (telematics and dispatch alike).

A position is moving when its ignition is not reported off and its speed reaches
``MOVING_MIN_SPEED_KMH``. The definition is data (the threshold) plus the two forms that
read it: :func:`is_moving` for Python (the trip segmenter, the off-hours rule) and
:func:`moving_sql` for SQL (dispatch's private-use rule over ``positions``). Both forms are
written from the same two conditions below, and a test runs them side by side on the same
rows, so they cannot drift apart.

5 km/h: the speed at which the segmenter has always counted a point as moving. A parked
car's GPS jitter reads below it, and the rules that act on movement also ask for a duration
or a displacement, so a single noisy ping never raises anything.
"""

from __future__ import annotations

MOVING_MIN_SPEED_KMH = 5.0
"""A position at or above this speed (km/h), ignition not off, is moving."""


def is_moving(
    speed_kmh: float | None, acc: bool | None, *, min_speed_kmh: float = MOVING_MIN_SPEED_KMH
) -> bool:
    """The Python form: ignition not reported off (``acc`` True or unknown) and fast enough.

    An unknown speed counts as standing still."""
    return acc is not False and speed_kmh is not None and speed_kmh >= min_speed_kmh


def moving_sql(alias: str = "p", *, speed_param: str = ":moving_kmh") -> str:
    """The SQL form over a ``positions`` row ``alias``; the caller binds ``speed_param`` to
    the threshold (``MOVING_MIN_SPEED_KMH`` unless a setting overrides it). A NULL speed is
    not moving, as in :func:`is_moving`."""
    return f"{alias}.acc IS NOT FALSE AND {alias}.speed_kmh >= {speed_param}"
