"""Problem and plan types of the optimizer: frozen dataclasses that validate themselves.

Units: times are seconds from the plan's origin (e.g. 00:00 of the planned day), distances
are metres for geographic points. Planar points (`XY`, used by the literature benchmarks)
use abstract units with speed 1 unit per second, so time and distance coincide there.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass, field
from enum import StrEnum


class BodyType(StrEnum):
    """Body types of official vehicles (车型)."""

    SEDAN = "sedan"
    SUV = "suv"
    MPV = "mpv"
    MINIBUS = "minibus"
    BUS = "bus"


class EnergyType(StrEnum):
    """Energy types: internal combustion, battery electric, plug-in hybrid."""

    ICE = "ice"
    BEV = "bev"
    PHEV = "phev"


class Licence(StrEnum):
    """Chinese driving licence classes relevant to passenger vehicles."""

    A1 = "A1"
    A2 = "A2"
    B1 = "B1"
    B2 = "B2"
    C1 = "C1"
    C2 = "C2"


_CARS = frozenset({BodyType.SEDAN, BodyType.SUV, BodyType.MPV})
#: Which body types each licence class permits (A1 large bus covers everything; A2 and B1
#: cover the medium bus; B2, C1 and C2 cover cars up to 9 seats).
LICENCE_PERMITS: dict[Licence, frozenset[BodyType]] = {
    Licence.A1: frozenset(BodyType),
    Licence.A2: _CARS | {BodyType.MINIBUS},
    Licence.B1: _CARS | {BodyType.MINIBUS},
    Licence.B2: _CARS,
    Licence.C1: _CARS,
    Licence.C2: _CARS,
}


class StopKind(StrEnum):
    """A pickup or a drop-off. A single-stop request has only a drop-off."""

    PICKUP = "pickup"
    DROPOFF = "dropoff"


def _finite(name: str, *values: float) -> None:
    for value in values:
        if not math.isfinite(value):
            raise ValueError(f"{name} must be finite, got {value!r}")


@dataclass(frozen=True, slots=True)
class GeoPoint:
    """A WGS-84 position in degrees."""

    lat: float
    lon: float

    def __post_init__(self) -> None:
        _finite("GeoPoint", self.lat, self.lon)
        if not -90.0 <= self.lat <= 90.0:
            raise ValueError(f"latitude out of range: {self.lat}")
        if not -180.0 <= self.lon <= 180.0:
            raise ValueError(f"longitude out of range: {self.lon}")


@dataclass(frozen=True, slots=True)
class XY:
    """A point on a plane in abstract units (literature benchmarks, synthetic tests)."""

    x: float
    y: float

    def __post_init__(self) -> None:
        _finite("XY", self.x, self.y)


Location = GeoPoint | XY


@dataclass(frozen=True, slots=True)
class TimeWindow:
    """Closed interval [start, end] in seconds from the plan origin."""

    start: float
    end: float

    def __post_init__(self) -> None:
        _finite("TimeWindow", self.start, self.end)
        if self.start > self.end:
            raise ValueError(f"time window starts after it ends: {self.start} > {self.end}")

    def contains(self, t: float) -> bool:
        return self.start <= t <= self.end

    def intersect(self, other: TimeWindow) -> TimeWindow | None:
        start, end = max(self.start, other.start), min(self.end, other.end)
        return TimeWindow(start, end) if start <= end else None


@dataclass(frozen=True, slots=True)
class Visit:
    """One place a request is served: service may *start* within `window`.

    `service` is boarding/alighting time; `wait` is extra time the vehicle is held there
    (e.g. waiting for the official at a meeting). Both are seconds.
    """

    point: Location
    window: TimeWindow | None = None
    service: float = 0.0
    wait: float = 0.0

    def __post_init__(self) -> None:
        _finite("Visit", self.service, self.wait)
        if self.service < 0 or self.wait < 0:
            raise ValueError("service and wait must be >= 0")

    @property
    def duration(self) -> float:
        return self.service + self.wait


@dataclass(frozen=True, slots=True)
class Request:
    """A trip request: pick up `passengers` at `pickup`, drop them at `dropoff`.

    With `pickup=None` the request is a single stop whose load is on board from the depot
    (a delivery in the VRPTW sense, or passengers already on board in a committed trip).
    `allowed_body_types=None` allows every body type. Higher `priority` (1-100) makes
    leaving the request unserved costlier.
    """

    id: str
    dropoff: Visit
    pickup: Visit | None = None
    passengers: int = 1
    allowed_body_types: frozenset[BodyType] | None = None
    priority: int = 1
    zone: str | None = None

    def __post_init__(self) -> None:
        if not self.id:
            raise ValueError("request id must be non-empty")
        if self.passengers < 0:
            raise ValueError(f"request {self.id}: passengers must be >= 0")
        if not 1 <= self.priority <= 100:
            raise ValueError(f"request {self.id}: priority must be within 1..100")
        if self.allowed_body_types is not None:
            if not isinstance(self.allowed_body_types, frozenset):
                object.__setattr__(self, "allowed_body_types", frozenset(self.allowed_body_types))
            if not self.allowed_body_types:
                raise ValueError(f"request {self.id}: allowed_body_types is empty")

    def visits(self) -> tuple[tuple[StopKind, Visit], ...]:
        if self.pickup is None:
            return ((StopKind.DROPOFF, self.dropoff),)
        return ((StopKind.PICKUP, self.pickup), (StopKind.DROPOFF, self.dropoff))


@dataclass(frozen=True, slots=True)
class StopRef:
    """A reference to one stop of a request."""

    request_id: str
    kind: StopKind


@dataclass(frozen=True, slots=True)
class Driver:
    """A driver: licence class, shift window, daily driving limit (seconds)."""

    id: str
    licence: Licence
    shift: TimeWindow | None = None
    max_driving: float | None = None

    def __post_init__(self) -> None:
        if not self.id:
            raise ValueError("driver id must be non-empty")
        if self.max_driving is not None and not self.max_driving > 0:
            raise ValueError(f"driver {self.id}: max_driving must be > 0")


@dataclass(frozen=True, slots=True)
class Vehicle:
    """A vehicle with its depot, seats and availability.

    `range_km` caps the distance of its route (NEV range). `zone=None` puts the vehicle
    in the shared pool. `committed` lists stops already promised to this vehicle, in
    order: the solver keeps them on this vehicle in that order and may insert around them.
    `fixed_cost` (metres-equivalent) overrides the problem's cost per vehicle used.
    """

    id: str
    seats: int
    depot: Location
    body_type: BodyType = BodyType.SEDAN
    energy: EnergyType = EnergyType.ICE
    range_km: float | None = None
    end_depot: Location | None = None
    available: TimeWindow | None = None
    driver_id: str | None = None
    zone: str | None = None
    fixed_cost: float | None = None
    committed: tuple[StopRef, ...] = ()

    def __post_init__(self) -> None:
        if not self.id:
            raise ValueError("vehicle id must be non-empty")
        if self.seats < 0:
            raise ValueError(f"vehicle {self.id}: seats must be >= 0")
        if self.range_km is not None and not self.range_km > 0:
            raise ValueError(f"vehicle {self.id}: range_km must be > 0")
        if self.fixed_cost is not None and self.fixed_cost < 0:
            raise ValueError(f"vehicle {self.id}: fixed_cost must be >= 0")
        if not isinstance(self.committed, tuple):
            object.__setattr__(self, "committed", tuple(self.committed))

    @property
    def end(self) -> Location:
        return self.end_depot if self.end_depot is not None else self.depot


def _unique(kind: str, ids: Iterable[str]) -> None:
    seen: set[str] = set()
    for i in ids:
        if i in seen:
            raise ValueError(f"duplicate {kind} id: {i}")
        seen.add(i)


@dataclass(frozen=True, slots=True)
class Problem:
    """Everything one solve needs. Validated on construction.

    `horizon` bounds every time window. `vehicle_cost` is the cost of using a vehicle in
    metres-equivalent (planar units for XY problems); `None` means "fewer vehicles first",
    i.e. a cost above any single route's length, as in the literature's objective.
    """

    requests: tuple[Request, ...]
    vehicles: tuple[Vehicle, ...]
    drivers: tuple[Driver, ...] = ()
    horizon: TimeWindow = field(default_factory=lambda: TimeWindow(0.0, 86_400.0))
    vehicle_cost: float | None = None
    name: str = ""

    def __post_init__(self) -> None:
        for attr in ("requests", "vehicles", "drivers"):
            value = getattr(self, attr)
            if not isinstance(value, tuple):
                object.__setattr__(self, attr, tuple(value))
        _unique("request", (r.id for r in self.requests))
        _unique("vehicle", (v.id for v in self.vehicles))
        _unique("driver", (d.id for d in self.drivers))
        if self.vehicle_cost is not None and self.vehicle_cost < 0:
            raise ValueError("vehicle_cost must be >= 0")
        self._check_point_kinds()
        self._check_drivers()
        self._check_committed()

    def _check_point_kinds(self) -> None:
        kinds: set[type] = set()
        for r in self.requests:
            kinds.update(type(v.point) for _, v in r.visits())
        for v in self.vehicles:
            kinds.update((type(v.depot), type(v.end)))
        if len(kinds) > 1:
            raise ValueError("a problem must use either GeoPoint or XY points, not both")

    def _check_drivers(self) -> None:
        drivers = {d.id: d for d in self.drivers}
        used: set[str] = set()
        for v in self.vehicles:
            if v.driver_id is None:
                continue
            driver = drivers.get(v.driver_id)
            if driver is None:
                raise ValueError(f"vehicle {v.id}: unknown driver {v.driver_id}")
            if v.driver_id in used:
                raise ValueError(f"driver {v.driver_id} is assigned to two vehicles")
            used.add(v.driver_id)
            if v.body_type not in LICENCE_PERMITS[driver.licence]:
                raise ValueError(
                    f"vehicle {v.id}: driver {driver.id}'s licence {driver.licence} "
                    f"does not permit a {v.body_type}"
                )

    def _check_committed(self) -> None:
        requests = {r.id: r for r in self.requests}
        owner: dict[str, str] = {}
        for v in self.vehicles:
            seen: dict[str, set[StopKind]] = {}
            for ref in v.committed:
                request = requests.get(ref.request_id)
                if request is None:
                    raise ValueError(f"vehicle {v.id}: committed to unknown {ref.request_id}")
                if owner.setdefault(ref.request_id, v.id) != v.id:
                    raise ValueError(f"request {ref.request_id} is committed to two vehicles")
                kinds = seen.setdefault(ref.request_id, set())
                if ref.kind in kinds:
                    raise ValueError(f"vehicle {v.id}: stop {ref} committed twice")
                if ref.kind is StopKind.PICKUP and request.pickup is None:
                    raise ValueError(f"vehicle {v.id}: {ref.request_id} has no pickup")
                paired = ref.kind is StopKind.DROPOFF and request.pickup is not None
                if paired and StopKind.PICKUP not in kinds:
                    raise ValueError(
                        f"vehicle {v.id}: drop-off of {ref.request_id} committed "
                        "before (or without) its pickup"
                    )
                kinds.add(ref.kind)
            for rid, kinds in seen.items():
                if len(kinds) != len(requests[rid].visits()):
                    raise ValueError(f"vehicle {v.id}: only part of {rid} is committed")

    @property
    def is_planar(self) -> bool:
        if self.vehicles:
            return isinstance(self.vehicles[0].depot, XY)
        return bool(self.requests) and isinstance(self.requests[0].dropoff.point, XY)

    def request(self, request_id: str) -> Request:
        for r in self.requests:
            if r.id == request_id:
                return r
        raise KeyError(request_id)

    def driver_of(self, vehicle: Vehicle) -> Driver | None:
        if vehicle.driver_id is None:
            return None
        for d in self.drivers:
            if d.id == vehicle.driver_id:
                return d
        return None


# --------------------------------------------------------------------------- plan


class UnservedReason(StrEnum):
    """Why a request was left unserved."""

    NO_ALLOWED_BODY_TYPE = "no_allowed_body_type"
    NOT_ENOUGH_SEATS = "not_enough_seats"
    TIME_WINDOW = "time_window"
    RANGE = "range"
    DRIVING_LIMIT = "driving_limit"
    NO_CAPACITY_LEFT = "no_capacity_left"
    NO_VEHICLES = "no_vehicles"


@dataclass(frozen=True, slots=True)
class PlannedStop:
    """One stop of a route: arrival, service start and departure (seconds), load after."""

    request_id: str
    kind: StopKind
    arrival: float
    start: float
    departure: float
    load: int


@dataclass(frozen=True, slots=True)
class Route:
    """The route of one vehicle: leaves its depot at `start`, back at `end`."""

    vehicle_id: str
    stops: tuple[PlannedStop, ...]
    start: float
    end: float
    distance: float
    driving: float

    def request_ids(self) -> tuple[str, ...]:
        return tuple(dict.fromkeys(s.request_id for s in self.stops))


@dataclass(frozen=True, slots=True)
class Assignment:
    """Why a request went to its vehicle, in words and in the facts behind them."""

    request_id: str
    vehicle_id: str
    why: str
    eligible_vehicles: int


@dataclass(frozen=True, slots=True)
class Unserved:
    request_id: str
    reason: UnservedReason
    detail: str


@dataclass(frozen=True, slots=True)
class Plan:
    """A solution: routes of the used vehicles, explanations, unserved requests."""

    routes: tuple[Route, ...]
    assignments: tuple[Assignment, ...] = ()
    unserved: tuple[Unserved, ...] = ()
    stats: tuple[tuple[str, str], ...] = ()

    @property
    def vehicles_used(self) -> int:
        return sum(1 for r in self.routes if r.stops)

    @property
    def distance(self) -> float:
        return math.fsum(r.distance for r in self.routes)

    def route_of(self, vehicle_id: str) -> Route | None:
        for r in self.routes:
            if r.vehicle_id == vehicle_id:
                return r
        return None

    def vehicle_of(self, request_id: str) -> str | None:
        for r in self.routes:
            if any(s.request_id == request_id for s in r.stops):
                return r.vehicle_id
        return None
