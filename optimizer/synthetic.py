"""A synthetic city day for benchmarks and tests: counties, depots, mixed fleet, drivers.

Deterministic for a seed. Body types follow the passenger rule of DESIGN.md (1-4 sedan or
SUV, 5-7 MPV, 8-19 minibus, 20+ bus); about a third of the sedans are BEVs with a range
cap; every vehicle has a driver whose licence fits it, a shift and an 8 h driving limit;
15 % of the fleet is the city's shared pool.
"""

from __future__ import annotations

import math
import random

from optimizer.model import (
    BodyType,
    Driver,
    EnergyType,
    GeoPoint,
    Licence,
    Problem,
    Request,
    TimeWindow,
    Vehicle,
    Visit,
)

CITY_CENTRE = (26.08, 119.30)
#: (body type, passenger seats, share of the fleet, licence)
FLEET_MIX: tuple[tuple[BodyType, int, float, Licence], ...] = (
    (BodyType.SEDAN, 4, 0.55, Licence.C1),
    (BodyType.SUV, 4, 0.15, Licence.C1),
    (BodyType.MPV, 7, 0.18, Licence.C1),
    (BodyType.MINIBUS, 19, 0.09, Licence.B1),
    (BodyType.BUS, 44, 0.03, Licence.A1),
)
HOUR = 3600.0


def body_types_for(passengers: int) -> frozenset[BodyType]:
    """The default body-type rule by passenger count (data in production, here a default)."""
    if passengers <= 4:
        return frozenset({BodyType.SEDAN, BodyType.SUV})
    if passengers <= 7:
        return frozenset({BodyType.MPV})
    if passengers <= 19:
        return frozenset({BodyType.MINIBUS})
    return frozenset({BodyType.BUS})


def _offset(rng: random.Random, centre: tuple[float, float], km: float) -> GeoPoint:
    """A point about `km` (normal sigma) from `centre`."""
    lat = centre[0] + rng.gauss(0.0, km) / 111.0
    lon = centre[1] + rng.gauss(0.0, km) / (111.0 * math.cos(math.radians(centre[0])))
    return GeoPoint(round(lat, 6), round(lon, 6))


def city_day(requests: int = 2000, vehicles: int = 800, zones: int = 10, seed: int = 0) -> Problem:
    """One planning day (00:00-24:00, seconds) for a city of `zones` counties."""
    rng = random.Random(seed)
    centres = []
    for i in range(zones):
        angle = 2 * math.pi * i / zones
        radius_km = 8.0 + 14.0 * (i % 3) / 2
        centres.append(
            (
                CITY_CENTRE[0] + radius_km * math.sin(angle) / 111.0,
                CITY_CENTRE[1] + radius_km * math.cos(angle) / 96.0,
            )
        )
    zone_names = [f"county-{i:02d}" for i in range(zones)]
    depots = {
        z: [_offset(rng, c, 2.0) for _ in range(4)]
        for z, c in zip(zone_names, centres, strict=True)
    }
    pool_depots = [_offset(rng, CITY_CENTRE, 1.5) for _ in range(3)]

    fleet: list[Vehicle] = []
    drivers: list[Driver] = []
    kinds = [k for k in FLEET_MIX for _ in range(max(1, round(k[2] * 100)))]
    rng.shuffle(kinds)  # every block of 100 vehicles has the full mix
    for i in range(vehicles):
        body, seats, _, licence = kinds[i % len(kinds)]
        shared = rng.random() < 0.15
        zone = None if shared else zone_names[i % zones]
        depot = rng.choice(pool_depots if zone is None else depots[zone])
        energy, range_km = EnergyType.ICE, None
        if body is BodyType.SEDAN and rng.random() < 0.35:
            energy, range_km = EnergyType.BEV, float(rng.choice((220, 300, 400)))
        elif rng.random() < 0.1:
            energy = EnergyType.PHEV
        early = rng.random() < 0.5
        shift = TimeWindow(7 * HOUR, 19 * HOUR) if early else TimeWindow(8 * HOUR, 20 * HOUR)
        available = None if rng.random() < 0.9 else TimeWindow(12 * HOUR, 24 * HOUR)
        driver_id = f"d{i:04d}"
        drivers.append(Driver(driver_id, licence, shift=shift, max_driving=8 * HOUR))
        fleet.append(
            Vehicle(
                id=f"car{i:04d}",
                seats=seats,
                depot=depot,
                body_type=body,
                energy=energy,
                range_km=range_km,
                available=available,
                driver_id=driver_id,
                zone=zone,
            )
        )

    reqs: list[Request] = []
    for i in range(requests):
        z = rng.randrange(zones)
        origin = _offset(rng, centres[z], 3.0)
        roll = rng.random()
        if roll < 0.6:
            destination = _offset(rng, centres[z], 4.0)
        elif roll < 0.85:
            destination = _offset(rng, CITY_CENTRE, 2.0)  # to the city's offices
        else:
            destination = _offset(rng, centres[rng.randrange(zones)], 3.0)
        size = rng.random()
        passengers = (
            rng.randint(1, 4)
            if size < 0.8
            else rng.randint(5, 7)
            if size < 0.95
            else rng.randint(8, 15)
            if size < 0.99
            else rng.randint(20, 35)
        )
        ready = rng.uniform(7.5 * HOUR, 17.5 * HOUR)
        wait = 0.0 if rng.random() < 0.8 else rng.choice((1800.0, 3600.0))
        reqs.append(
            Request(
                id=f"r{i:05d}",
                pickup=Visit(origin, TimeWindow(ready, ready + 1800.0), service=120.0),
                dropoff=Visit(
                    destination,
                    TimeWindow(ready, ready + 2.5 * HOUR),
                    service=60.0,
                    wait=wait,
                ),
                passengers=passengers,
                allowed_body_types=body_types_for(passengers),
                priority=5 if rng.random() < 0.05 else 1,
                zone=zone_names[z],
            )
        )
    return Problem(
        requests=tuple(reqs),
        vehicles=tuple(fleet),
        drivers=tuple(drivers),
        horizon=TimeWindow(0.0, 24 * HOUR),
        vehicle_cost=5_000.0,
        name=f"city-day-{requests}x{vehicles}-s{seed}",
    )
