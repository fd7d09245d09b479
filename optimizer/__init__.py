"""Fleet's pure optimizer: problem in, plan out. Knows nothing of the database or HTTP.

Entry points: `solve` (day plan), `insert_urgent` (one urgent request, committed trips
fixed), `solve_region` (decompose by zone, parallel worker processes, merge), and
`check` (the independent feasibility checker).
"""

from optimizer.checker import CheckReport, Violation, check
from optimizer.matrix import (
    EuclideanProvider,
    GreatCircleProvider,
    MatrixProvider,
    TravelMatrix,
    default_provider,
)
from optimizer.model import (
    LICENCE_PERMITS,
    XY,
    Assignment,
    BodyType,
    Driver,
    EnergyType,
    GeoPoint,
    Licence,
    Location,
    Plan,
    PlannedStop,
    Problem,
    Request,
    Route,
    StopKind,
    StopRef,
    TimeWindow,
    Unserved,
    UnservedReason,
    Vehicle,
    Visit,
)
from optimizer.region import solve_region
from optimizer.solver import (
    Insertion,
    InsertionRanking,
    SolveOptions,
    insert_urgent,
    rank_insertions,
    solve,
)

__all__ = [
    "LICENCE_PERMITS",
    "XY",
    "Assignment",
    "BodyType",
    "CheckReport",
    "Driver",
    "EnergyType",
    "EuclideanProvider",
    "GeoPoint",
    "GreatCircleProvider",
    "Insertion",
    "InsertionRanking",
    "Licence",
    "Location",
    "MatrixProvider",
    "Plan",
    "PlannedStop",
    "Problem",
    "Request",
    "Route",
    "SolveOptions",
    "StopKind",
    "StopRef",
    "TimeWindow",
    "TravelMatrix",
    "Unserved",
    "UnservedReason",
    "Vehicle",
    "Violation",
    "Visit",
    "check",
    "default_provider",
    "insert_urgent",
    "rank_insertions",
    "solve",
    "solve_region",
]
