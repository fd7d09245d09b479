"""Bits of `positions.flags` / `latest_positions.flags`: valid but suspect points.

Suspect points are stored and flagged, never deleted (DESIGN.md §1: GPS jumps and invalid
fixes are flagged, never silently deleted). The values are part of the stored data: never
renumber a bit, only add new ones.
"""

from __future__ import annotations

from enum import IntFlag


class Flag(IntFlag):
    NONE = 0
    # Implied speed from the vehicle's previous point exceeds the configured limit.
    JUMP = 1 << 0
    # The terminal reported no valid fix (fix=false).
    INVALID_FIX = 1 << 1
    # Exactly (0, 0): a terminal with no fix reporting its zero default.
    NULL_ISLAND = 1 << 2
    # Fewer satellites than a trustworthy fix needs (sats < 4).
    LOW_SATS = 1 << 3


# Plain ints for the hot path (IntFlag arithmetic costs microseconds per operation).
JUMP = int(Flag.JUMP)
INVALID_FIX = int(Flag.INVALID_FIX)
NULL_ISLAND = int(Flag.NULL_ISLAND)
LOW_SATS = int(Flag.LOW_SATS)

# A position is usable for derived state (trips, mileage, rules) when none of these is set.
UNRELIABLE = JUMP | INVALID_FIX | NULL_ISLAND


def names(flags: int) -> list[str]:
    """Readable names of the bits set in `flags` (for logs, APIs and exports)."""
    return [f.name.lower() for f in Flag if f and flags & f and f.name]
