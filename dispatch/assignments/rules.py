"""Pure assignment rules: licence classes and passenger capacity."""

from __future__ import annotations

# Which vehicle classes each driving licence class covers (GB/公安部令 准驾车型).
LICENCE_COVERS: dict[str, frozenset[str]] = {
    "A1": frozenset({"A1", "A3", "B1", "B2", "C1", "C2"}),
    "A2": frozenset({"A2", "B1", "B2", "C1", "C2"}),
    "A3": frozenset({"A3", "C1", "C2"}),
    "B1": frozenset({"B1", "C1", "C2"}),
    "B2": frozenset({"B2", "C1", "C2"}),
    "C1": frozenset({"C1", "C2"}),
    "C2": frozenset({"C2"}),
}
# The driver occupies one of the vehicle's rated seats (核定载客 counts the driver).
DRIVER_SEATS = 1


def required_licence(body_type: str, seats: int) -> str:
    """Licence class a vehicle needs: bus A1; minibus or more than 9 seats B1; otherwise C1."""
    if body_type == "bus" or seats >= 20:
        return "A1"
    if body_type == "minibus" or seats > 9:
        return "B1"
    return "C1"


def licence_fits(licence_class: str, body_type: str, seats: int) -> bool:
    return required_licence(body_type, seats) in LICENCE_COVERS.get(licence_class, frozenset())


def passenger_capacity(seats: int) -> int:
    return seats - DRIVER_SEATS
