"""Role × endpoint × foreign-scope object, for every write route and every by-id read of the
app (issue 18 items 2-3). The tables below are checked against the app's own routes: a new
write route, or a new GET route with a path parameter, fails this test until it is added with
the refusals it must give — so a new endpoint without scope checks is noticed.

Callers work in 青秀区 (450103); the foreign objects belong to 兴宁区 (450102), a county of the
same city. The policy (docs/architecture.md, "Who sees what"): a role that may never act gets
403 `role_required` before anything is looked up; an object the caller cannot see gets the
answer a missing one gets (404 `not_found`, same field); what they see but may not change
gets 403.
"""

from __future__ import annotations

from dataclasses import dataclass
from dataclasses import field as dc_field
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession

from fleet.config import Settings
from telematics.credentials import hash_secret
from tests.conftest import bearer, make_user

API = "/api/v1"
MISSING = 10**12  # a valid id no row has
MISSING_TERMINAL = "NOPE9999"
VALID_VIN = "1M8GDM9AXKP042788"  # check digit X is right


@dataclass(frozen=True)
class Case:
    """One request and the refusal it must get. `path` and `body` name objects as "@ref";
    `compare` names the ref that, replaced by a missing id, must give the identical answer."""

    who: str
    path: str
    status: int
    code: str
    field: str | None = None
    body: Any = None
    query: dict[str, Any] = dc_field(default_factory=dict)
    compare: str | None = None


def _start(hours: float = 48) -> str:
    return (datetime.now(UTC) + timedelta(hours=hours)).isoformat()


def _trip(**extra: Any) -> dict[str, Any]:
    start = datetime.now(UTC) + timedelta(hours=30)
    return {
        "passengers": 2,
        "purpose": "到区政务中心开会",
        "origin": {"lat": 22.81, "lon": 108.39, "address": "区政府"},
        "destination": {"lat": 22.83, "lon": 108.40, "address": "政务服务中心"},
        "departure_at": start.isoformat(),
        "return_at": (start + timedelta(hours=2)).isoformat(),
        **extra,
    }


_VEHICLE = {
    "plate": "桂A9Z999",
    "vin": VALID_VIN,
    "category": "pool",
    "body_type": "sedan",
    "seats": 5,
    "energy": "ice",
    "engine_l": "1.5",
    "price_cny": "150000.00",
    "purchase_date": "2024-01-01",
    "depot": {"lat": 22.8, "lon": 108.3},
}
_DRIVER = {"name": "覃师傅", "licence_class": "C1", "licence_no": "T450000123"}
_SQUARE = {
    "type": "Polygon",
    "coordinates": [[[108.3, 22.8], [108.31, 22.8], [108.31, 22.81], [108.3, 22.8]]],
}
_FENCE = {"type": "Feature", "geometry": _SQUARE}
_COST = {"kind": "toll", "amount_cny": "10.00", "occurred_on": "2026-11-20"}
_REASON = {"reason": "测试拒绝"}
_USAGE = {"min_passengers": 1, "max_passengers": 4, "body_types": ["sedan"]}
_CAP = {"category": "pool", "body_type": "sedan", "max_price_cny": "100000.00"}
_CHAIN = {"kind": "in_county", "steps": [{"level": "unit", "timeout_hours": 2}]}
_WINDOW = {"window_from": _start(0), "window_to": _start(24), "time_limit_s": 1}
_USER = {"username": "new.user.x", "password": "long-enough-pw", "display_name": "新用户"}
NOT_FOUND = (404, "not_found")

# Every write route: (method, route) -> cases. Each route has the foreign-object refusals
# of the objects it names and, where some role may never act, that role's 403.
WRITES: dict[tuple[str, str], list[Case]] = {
    ("POST", "/orgs"): [
        Case(
            "county_admin",
            "/orgs",
            *NOT_FOUND,
            "parent_id",
            compare="xcounty",
            body={"kind": "unit", "code": "T-1", "name": "测试", "parent_id": "@xcounty"},
        ),
        Case(
            "county_admin",
            "/orgs",
            *NOT_FOUND,
            "system_id",
            compare="system",
            body={
                "kind": "unit",
                "code": "T-1",
                "name": "测试",
                "parent_id": "@county",
                "system_id": "@system",
            },
        ),
        Case(
            "disp",
            "/orgs",
            403,
            "role_required",
            body={"kind": "unit", "code": "T-1", "name": "测试", "parent_id": "@county"},
        ),
    ],
    ("PATCH", "/orgs/{org_id}"): [
        Case("county_admin", "/orgs/@xunit", *NOT_FOUND, "id", body={"name": "x"}, compare="xunit"),
        Case("requester", "/orgs/@unit", 403, "role_required", body={"name": "x"}),
    ],
    ("POST", "/users"): [
        Case(
            "county_admin",
            "/users",
            *NOT_FOUND,
            "org_id",
            compare="xunit",
            body={**_USER, "org_id": "@xunit"},
        ),
        Case(
            "county_admin",
            "/users",
            *NOT_FOUND,
            "roles.0.org_id",
            compare="xunit",
            body={**_USER, "org_id": "@unit", "roles": [{"role": "admin", "org_id": "@xunit"}]},
        ),
        Case("disp", "/users", 403, "role_required", body={**_USER, "org_id": "@unit"}),
    ],
    ("PATCH", "/users/{user_id}"): [
        Case(
            "county_admin",
            "/users/@xuser",
            *NOT_FOUND,
            "id",
            body={"active": False},
            compare="xuser",
        ),
        Case(
            "county_admin",
            "/users/@user",
            *NOT_FOUND,
            "roles.0.org_id",
            compare="xcounty",
            body={"roles": [{"role": "admin", "org_id": "@xcounty"}]},
        ),
        Case("county_admin", "/users/@big_user", 403, "out_of_scope", body={"active": False}),
        Case("disp", "/users/@user", 403, "role_required", body={"active": False}),
    ],
    ("POST", "/vehicles"): [
        Case(
            "county_admin",
            "/vehicles",
            *NOT_FOUND,
            "unit_id",
            compare="xunit",
            body={**_VEHICLE, "unit_id": "@xunit"},
        ),
        Case("disp", "/vehicles", 403, "role_required", body={**_VEHICLE, "unit_id": "@unit"}),
    ],
    ("PATCH", "/vehicles/{vehicle_id}"): [
        Case(
            "disp", "/vehicles/@xvehicle", *NOT_FOUND, "id", body={"seats": 5}, compare="xvehicle"
        ),
        Case("disp", "/vehicles/@pooled", 403, "out_of_scope", body={"seats": 5}),
        Case(
            "disp",
            "/vehicles/@vehicle",
            *NOT_FOUND,
            "unit_id",
            body={"unit_id": "@xunit"},
            compare="xunit",
        ),
        Case("auditor", "/vehicles/@vehicle", 403, "role_required", body={"seats": 5}),
    ],
    ("POST", "/vehicles/{vehicle_id}/status"): [
        Case(
            "disp",
            "/vehicles/@xvehicle/status",
            *NOT_FOUND,
            "id",
            compare="xvehicle",
            body={"status": "sealed", "reason": "节假日封存"},
        ),
        Case(
            "auditor",
            "/vehicles/@vehicle/status",
            403,
            "role_required",
            body={"status": "sealed", "reason": "节假日封存"},
        ),
    ],
    ("POST", "/drivers"): [
        Case(
            "county_admin",
            "/drivers",
            *NOT_FOUND,
            "unit_id",
            compare="xunit",
            body={**_DRIVER, "unit_id": "@xunit"},
        ),
        Case(
            "county_admin",
            "/drivers",
            *NOT_FOUND,
            "user_id",
            compare="xuser",
            body={**_DRIVER, "unit_id": "@pool_unit", "user_id": "@xuser"},
        ),
        Case("disp", "/drivers", 403, "role_required", body={**_DRIVER, "unit_id": "@pool_unit"}),
    ],
    ("PATCH", "/drivers/{driver_id}"): [
        Case(
            "county_admin",
            "/drivers/@xdriver",
            *NOT_FOUND,
            "id",
            body={"phone": "12345"},
            compare="xdriver",
        ),
        Case(
            "county_admin",
            "/drivers/@driver",
            *NOT_FOUND,
            "unit_id",
            body={"unit_id": "@xunit"},
            compare="xunit",
        ),
        Case(
            "county_admin",
            "/drivers/@driver",
            *NOT_FOUND,
            "user_id",
            body={"user_id": "@xuser"},
            compare="xuser",
        ),
        Case("disp", "/drivers/@driver", 403, "role_required", body={"phone": "12345"}),
    ],
    ("POST", "/terminals"): [
        Case(
            "county_admin",
            "/terminals",
            *NOT_FOUND,
            "vehicle_id",
            compare="xvehicle",
            body={"id": "TAUTHZ01", "vehicle_id": "@xvehicle"},
        ),
        Case("disp", "/terminals", 403, "role_required", body={"id": "TAUTHZ01"}),
    ],
    ("PATCH", "/terminals/{terminal_id}"): [
        Case(
            "county_admin",
            "/terminals/@xterminal",
            *NOT_FOUND,
            "id",
            body={"active": False},
            compare="xterminal",
        ),
        Case(
            "county_admin",
            "/terminals/@terminal",
            *NOT_FOUND,
            "vehicle_id",
            body={"vehicle_id": "@xvehicle"},
            compare="xvehicle",
        ),
        Case("disp", "/terminals/@terminal", 403, "role_required", body={"active": False}),
    ],
    ("POST", "/geofences"): [
        Case(
            "county_admin",
            "/geofences",
            *NOT_FOUND,
            "properties.org_id",
            compare="xunit",
            body={**_FENCE, "properties": {"name": "围栏", "purpose": "depot", "org_id": "@xunit"}},
        ),
        Case(
            "disp",
            "/geofences",
            403,
            "role_required",
            body={**_FENCE, "properties": {"name": "围栏", "purpose": "depot", "org_id": "@unit"}},
        ),
    ],
    ("PATCH", "/geofences/{geofence_id}"): [
        Case(
            "county_admin",
            "/geofences/@xgeofence",
            *NOT_FOUND,
            "id",
            compare="xgeofence",
            body={"properties": {"active": False}},
        ),
        Case(
            "disp",
            "/geofences/@geofence",
            403,
            "role_required",
            body={"properties": {"active": False}},
        ),
    ],
    ("POST", "/alerts/{alert_id}/acknowledge"): [
        Case(
            "disp",
            "/alerts/@xalert/acknowledge",
            *NOT_FOUND,
            "id",
            body={"comment": "看过"},
            compare="xalert",
        ),
        Case(
            "auditor", "/alerts/@xalert/acknowledge", 403, "role_required", body={"comment": "看过"}
        ),
    ],
    ("POST", "/alerts/{alert_id}/close"): [
        Case(
            "disp",
            "/alerts/@xalert/close",
            *NOT_FOUND,
            "id",
            body={"comment": "处理完毕"},
            compare="xalert",
        ),
        Case(
            "auditor", "/alerts/@xalert/close", 403, "role_required", body={"comment": "处理完毕"}
        ),
    ],
    ("POST", "/trips"): [
        Case(
            "requester",
            "/trips",
            *NOT_FOUND,
            "unit_id",
            body=_trip(unit_id="@xunit"),
            compare="xunit",
        ),
        Case(
            "requester",
            "/trips",
            422,
            "invalid_passenger",
            "passenger_user_ids.0",
            body=_trip(passenger_user_ids=["@xuser"]),
            compare="xuser",
        ),
        Case("auditor", "/trips", 403, "role_required", body=_trip()),
    ],
    ("PUT", "/trips/{trip_id}"): [
        Case("requester", "/trips/@xtrip", *NOT_FOUND, "trip_id", body=_trip(), compare="xtrip"),
        Case("auditor", "/trips/@xtrip", 403, "role_required", body=_trip()),
    ],
    ("POST", "/trips/{trip_id}/submit"): [
        Case("requester", "/trips/@xtrip/submit", *NOT_FOUND, "trip_id", compare="xtrip"),
        Case("auditor", "/trips/@trip/submit", 403, "role_required"),
    ],
    ("POST", "/trips/{trip_id}/cancel"): [
        Case(
            "requester",
            "/trips/@xtrip/cancel",
            *NOT_FOUND,
            "trip_id",
            body=_REASON,
            compare="xtrip",
        ),
        Case("disp", "/trips/@xtrip/cancel", *NOT_FOUND, "trip_id", body=_REASON, compare="xtrip"),
        Case("auditor", "/trips/@trip/cancel", 403, "role_required", body=_REASON),
    ],
    ("POST", "/trips/{trip_id}/approve"): [
        Case("approver", "/trips/@xtrip/approve", *NOT_FOUND, "trip_id", body={}, compare="xtrip"),
        Case("driver", "/trips/@trip/approve", 403, "role_required", body={}, compare="trip"),
    ],
    ("POST", "/trips/{trip_id}/reject"): [
        Case(
            "approver", "/trips/@xtrip/reject", *NOT_FOUND, "trip_id", body=_REASON, compare="xtrip"
        ),
        Case("driver", "/trips/@trip/reject", 403, "role_required", body=_REASON, compare="trip"),
    ],
    ("POST", "/trips/{trip_id}/return"): [
        Case(
            "approver", "/trips/@xtrip/return", *NOT_FOUND, "trip_id", body=_REASON, compare="xtrip"
        ),
        Case("driver", "/trips/@trip/return", 403, "role_required", body=_REASON, compare="trip"),
    ],
    ("POST", "/trips/{trip_id}/delegate"): [
        Case(
            "approver",
            "/trips/@xtrip/delegate",
            *NOT_FOUND,
            "trip_id",
            body={"user_id": "@user"},
            compare="xtrip",
        ),
        Case(
            "approver",
            "/trips/@trip/delegate",
            422,
            "invalid",
            "user_id",
            body={"user_id": "@xuser"},
            compare="xuser",
        ),
        Case(
            "driver",
            "/trips/@trip/delegate",
            403,
            "role_required",
            body={"user_id": "@user"},
            compare="trip",
        ),
    ],
    ("PUT", "/approval-chains"): [
        Case(
            "county_admin",
            "/approval-chains",
            *NOT_FOUND,
            "org_id",
            body={**_CHAIN, "org_id": "@xcounty"},
            compare="xcounty",
        ),
        Case("county_admin", "/approval-chains", 403, "config_level", "org_id", body=_CHAIN),
        Case("disp", "/approval-chains", 403, "role_required", body=_CHAIN),
    ],
    ("POST", "/standards/usage"): [
        Case(
            "county_admin",
            "/standards/usage",
            *NOT_FOUND,
            "org_id",
            body={**_USAGE, "org_id": "@xcounty"},
            compare="xcounty",
        ),
        Case("county_admin", "/standards/usage", 403, "config_level", "org_id", body=_USAGE),
        Case("disp", "/standards/usage", 403, "role_required", body=_USAGE),
    ],
    ("PUT", "/standards/usage/{standard_id}"): [
        Case("county_admin", "/standards/usage/@usage", 403, "config_level", "org_id", body=_USAGE),
        Case("disp", "/standards/usage/@usage", 403, "role_required", body=_USAGE),
    ],
    ("DELETE", "/standards/usage/{standard_id}"): [
        Case("county_admin", "/standards/usage/@usage", 403, "config_level", "org_id"),
        Case("disp", "/standards/usage/@usage", 403, "role_required"),
    ],
    ("PUT", "/standards/provisioning"): [
        Case(
            "county_admin",
            "/standards/provisioning",
            *NOT_FOUND,
            "org_id",
            body={**_CAP, "org_id": "@xcounty"},
            compare="xcounty",
        ),
        Case("county_admin", "/standards/provisioning", 403, "config_level", "org_id", body=_CAP),
        Case("disp", "/standards/provisioning", 403, "role_required", body=_CAP),
    ],
    ("DELETE", "/standards/provisioning/{standard_id}"): [
        Case("county_admin", "/standards/provisioning/@cap", 403, "config_level", "org_id"),
        Case("disp", "/standards/provisioning/@cap", 403, "role_required"),
    ],
    ("POST", "/costs"): [
        Case(
            "disp",
            "/costs",
            *NOT_FOUND,
            "vehicle_id",
            body={**_COST, "vehicle_id": "@xvehicle"},
            compare="xvehicle",
        ),
        Case(
            "disp",
            "/costs",
            *NOT_FOUND,
            "trip_id",
            compare="xtrip",
            body={**_COST, "vehicle_id": "@vehicle", "trip_id": "@xtrip"},
        ),
        Case(
            "disp",
            "/costs",
            403,
            "out_of_scope",
            "vehicle_id",
            body={**_COST, "vehicle_id": "@pooled"},
        ),
        Case("requester", "/costs", 403, "role_required", body={**_COST, "vehicle_id": "@vehicle"}),
    ],
    ("POST", "/service-records"): [
        Case(
            "disp",
            "/service-records",
            *NOT_FOUND,
            "vehicle_id",
            compare="xvehicle",
            body={"vehicle_id": "@xvehicle", "kind": "repair", "done_on": "2026-11-20"},
        ),
        Case(
            "requester",
            "/service-records",
            403,
            "role_required",
            body={"vehicle_id": "@vehicle", "kind": "repair", "done_on": "2026-11-20"},
        ),
    ],
    ("POST", "/trips/{trip_id}/ratings"): [
        Case(
            "requester",
            "/trips/@xtrip/ratings",
            *NOT_FOUND,
            "trip_id",
            body={"score": 5},
            compare="xtrip",
        ),
        # The region auditor sees the trip but did not ride in it.
        Case("auditor", "/trips/@xtrip/ratings", 403, "not_passenger", body={"score": 5}),
    ],
    ("POST", "/dispatch/assignments"): [
        # Refusals come item by item in a 200; checked in test_batch_items_are_scoped.
        Case(
            "requester",
            "/dispatch/assignments",
            403,
            "role_required",
            body={
                "items": [{"trip_id": "@trip", "vehicle_id": "@vehicle", "driver_id": "@driver"}]
            },
        ),
    ],
    ("POST", "/trips/{trip_id}/assign"): [
        Case(
            "disp",
            "/trips/@xtrip/assign",
            *NOT_FOUND,
            "trip_id",
            compare="xtrip",
            body={"vehicle_id": "@vehicle", "driver_id": "@driver"},
        ),
        Case(
            "disp",
            "/trips/@approved/assign",
            *NOT_FOUND,
            "vehicle_id",
            compare="xvehicle",
            body={"vehicle_id": "@xvehicle", "driver_id": "@driver"},
        ),
        Case(
            "disp",
            "/trips/@approved/assign",
            *NOT_FOUND,
            "driver_id",
            compare="xdriver",
            body={"vehicle_id": "@vehicle", "driver_id": "@xdriver"},
        ),
        Case(
            "requester",
            "/trips/@approved/assign",
            403,
            "role_required",
            compare="approved",
            body={"vehicle_id": "@vehicle", "driver_id": "@driver"},
        ),
    ],
    ("POST", "/trips/{trip_id}/vehicle-failed"): [
        Case(
            "disp",
            "/trips/@xtrip/vehicle-failed",
            *NOT_FOUND,
            "trip_id",
            body=_REASON,
            compare="xtrip",
        ),
        Case("requester", "/trips/@trip/vehicle-failed", 403, "role_required", body=_REASON),
    ],
    ("POST", "/trips/{trip_id}/settle"): [
        Case("disp", "/trips/@xtrip/settle", *NOT_FOUND, "trip_id", body={}, compare="xtrip"),
        Case("requester", "/trips/@trip/settle", 403, "role_required", body={}),
    ],
    **{
        ("POST", f"/assignments/{{assignment_id}}/{action}"): [
            Case(
                "driver",
                f"/assignments/@xassignment/{action}",
                *NOT_FOUND,
                "assignment_id",
                body=body,
                compare="xassignment",
            ),
            Case(
                "requester",
                f"/assignments/@xassignment/{action}",
                403,
                "role_required",
                body=body,
                compare="xassignment",
            ),
        ]
        for action, body in (
            ("accept", None),
            ("decline", _REASON),
            ("depart", {"odometer_km": 1000}),
            ("arrive", {}),
            ("complete", {"odometer_km": 1010}),
        )
    },
    ("POST", "/dispatch/proposals"): [
        Case(
            "disp",
            "/dispatch/proposals",
            *NOT_FOUND,
            "org_id",
            body={**_WINDOW, "org_id": "@xcounty"},
            compare="xcounty",
        ),
        Case(
            "requester",
            "/dispatch/proposals",
            403,
            "role_required",
            body={**_WINDOW, "org_id": "@county"},
        ),
    ],
    ("PATCH", "/dispatch/proposals/{proposal_id}"): [
        Case(
            "disp",
            "/dispatch/proposals/@xproposal",
            *NOT_FOUND,
            "proposal_id",
            body={"items": [{"trip_id": "@xtrip", "drop": True}]},
            compare="xproposal",
        ),
        Case(
            "auditor",
            "/dispatch/proposals/@xproposal",
            403,
            "role_required",
            body={"items": [{"trip_id": "@xtrip", "drop": True}]},
        ),
    ],
    ("POST", "/dispatch/proposals/{proposal_id}/accept"): [
        Case(
            "disp",
            "/dispatch/proposals/@xproposal/accept",
            *NOT_FOUND,
            "proposal_id",
            compare="xproposal",
        ),
        Case("auditor", "/dispatch/proposals/@xproposal/accept", 403, "role_required"),
    ],
    ("POST", "/dispatch/proposals/{proposal_id}/discard"): [
        Case(
            "disp",
            "/dispatch/proposals/@xproposal/discard",
            *NOT_FOUND,
            "proposal_id",
            compare="xproposal",
        ),
        Case("auditor", "/dispatch/proposals/@xproposal/discard", 403, "role_required"),
    ],
    # Acts on the caller's own notifications only; another user's ids are ignored (checked
    # in test_notifications_of_others_are_untouched).
    ("POST", "/me/notifications/read"): [],
}
# Write routes that act on no object in anyone's scope.
NO_OBJECT = {("POST", "/auth/login"): "anonymous: exchanges a password for a token"}

# Every GET route with a path parameter: the by-id reads. Out-of-scope and missing ids must
# answer alike (and 404).
_RANGE = {"start": "2026-11-20T00:00:00Z", "end": "2026-11-21T00:00:00Z"}
READS: dict[str, list[Case]] = {
    "/orgs/{org_id}": [Case("disp", "/orgs/@xunit", *NOT_FOUND, "id", compare="xunit")],
    "/users/{user_id}": [
        Case("county_admin", "/users/@xuser", *NOT_FOUND, "id", compare="xuser"),
        Case("disp", "/users/@user", 403, "role_required", compare="user"),
    ],
    **{
        route: [
            Case(
                "disp", route.replace("{trip_id}", "@xtrip"), *NOT_FOUND, "trip_id", compare="xtrip"
            )
        ]
        for route in (
            "/trips/{trip_id}",
            "/trips/{trip_id}/history",
            "/trips/{trip_id}/approvals",
            "/trips/{trip_id}/assignments",
            "/trips/{trip_id}/ratings",
            "/trips/{trip_id}/track-summary",
            "/trips/{trip_id}/track",
        )
    },
    "/dispatch/trips/{trip_id}/suggestions": [
        Case("disp", "/dispatch/trips/@xtrip/suggestions", *NOT_FOUND, "trip_id", compare="xtrip"),
        Case("auditor", "/dispatch/trips/@trip/suggestions", 403, "role_required", compare="trip"),
    ],
    "/vehicles/{vehicle_id}": [
        Case("disp", "/vehicles/@xvehicle", *NOT_FOUND, "id", compare="xvehicle"),
        Case("requester", "/vehicles/@vehicle", 403, "role_required", compare="vehicle"),
    ],
    "/vehicles/{vehicle_id}/cost-summary": [
        Case("disp", "/vehicles/@xvehicle/cost-summary", *NOT_FOUND, "id", compare="xvehicle")
    ],
    "/vehicles/{vehicle_id}/track": [
        Case(
            "disp",
            "/vehicles/@xvehicle/track",
            *NOT_FOUND,
            "vehicle_id",
            query=_RANGE,
            compare="xvehicle",
        ),
        Case(
            "approver",
            "/vehicles/@vehicle/track",
            403,
            "role_required",
            query=_RANGE,
            compare="vehicle",
        ),
    ],
    "/vehicles/{vehicle_id}/trips": [
        Case(
            "disp",
            "/vehicles/@xvehicle/trips",
            *NOT_FOUND,
            "vehicle_id",
            query=_RANGE,
            compare="xvehicle",
        )
    ],
    "/vehicles/{vehicle_id}/stops": [
        Case(
            "disp",
            "/vehicles/@xvehicle/stops",
            *NOT_FOUND,
            "vehicle_id",
            query=_RANGE,
            compare="xvehicle",
        )
    ],
    "/vehicles/{vehicle_id}/mileage": [
        Case(
            "disp",
            "/vehicles/@xvehicle/mileage",
            *NOT_FOUND,
            "vehicle_id",
            query={"from": "2026-11-20", "to": "2026-11-21"},
            compare="xvehicle",
        )
    ],
    "/vehicles/{vehicle_id}/alerts": [
        Case("disp", "/vehicles/@xvehicle/alerts", *NOT_FOUND, "vehicle_id", compare="xvehicle")
    ],
    "/drivers/{driver_id}": [
        Case("disp", "/drivers/@xdriver", *NOT_FOUND, "id", compare="xdriver"),
        Case("requester", "/drivers/@driver", 403, "role_required", compare="driver"),
    ],
    "/terminals/{terminal_id}": [
        Case("disp", "/terminals/@xterminal", *NOT_FOUND, "id", compare="xterminal")
    ],
    "/geofences/{geofence_id}": [
        Case("disp", "/geofences/@xgeofence", *NOT_FOUND, "id", compare="xgeofence")
    ],
    "/alerts/{alert_id}": [
        Case("disp", "/alerts/@xalert", *NOT_FOUND, "id", compare="xalert"),
        Case("requester", "/alerts/@alert", 403, "role_required", compare="alert"),
    ],
    "/dispatch/proposals/{proposal_id}": [
        Case(
            "disp", "/dispatch/proposals/@xproposal", *NOT_FOUND, "proposal_id", compare="xproposal"
        )
    ],
}
# GET routes whose path parameter names no object.
NOT_AN_ID = {
    "/exports/trips.{fmt}": "the file format",
    "/exports/alerts.{fmt}": "the file format",
}


def _api_routes(methods: set[str]) -> set[tuple[str, str]]:
    """(method, path) of every API operation the app serves, from its OpenAPI document (the
    API's routes are all described there: test_openapi_describes_every_route)."""
    from web.app import create_app

    out = set()
    for path, ops in create_app().openapi()["paths"].items():
        for method in ops:
            if method.upper() in methods and path.startswith(API):
                out.add((method.upper(), path.removeprefix(API)))
    return out


def test_every_write_route_is_in_the_table() -> None:
    routes = _api_routes({"POST", "PUT", "PATCH", "DELETE"})
    missing = routes - WRITES.keys() - NO_OBJECT.keys()
    assert not missing, f"write routes without scope cases in this table: {sorted(missing)}"
    assert not WRITES.keys() - routes, "cases for routes that no longer exist"


def test_every_by_id_read_is_in_the_table() -> None:
    routes = {p for m, p in _api_routes({"GET"}) if "{" in p}
    missing = routes - READS.keys() - NOT_AN_ID.keys()
    assert not missing, f"by-id reads without cases in this table: {sorted(missing)}"
    assert not READS.keys() - routes, "cases for routes that no longer exist"


# ---- the world -----------------------------------------------------------------------------


async def _one(session: AsyncSession, sql: str, **params: Any) -> Any:
    return (await session.execute(text(sql), params)).scalar_one()


async def _vehicle(session: AsyncSession, unit: int, plate: str, pool: str = "none") -> int:
    return int(
        await _one(
            session,
            "INSERT INTO vehicles (plate, vin, category, body_type, seats, energy, engine_l,"
            " price_cny, purchase_date, unit_id, depot, shared_pool) VALUES (:p, :vin, 'pool',"
            " 'sedan', 5, 'ice', 1.5, 150000, '2024-01-01', :u,"
            " ST_SetSRID(ST_MakePoint(108.38, 22.82), 4326), :pool) RETURNING id",
            p=plate,
            vin=f"LAUTHZ{abs(hash(plate)) % 10**11:011d}",
            u=unit,
            pool=pool,
        )
    )


@pytest.fixture
async def world(
    client: httpx.AsyncClient, session: AsyncSession, settings: Settings
) -> tuple[dict[str, Any], dict[str, dict[str, str]]]:
    """Object ids by name (x…: 兴宁's) and callers' headers."""
    org = {
        code: int(await _one(session, "SELECT id FROM orgs WHERE code = :c", c=code))
        for code in ("450103", "450103-02", "450103-03", "450102", "450102-03", "SYS-GA")
    }
    users = {
        name: int(await _one(session, "SELECT id FROM users WHERE username = :u", u=name))
        for name in (
            "dispatcher.qingxiu",
            "approver.qingxiu",
            "requester.qingxiu",
            "driver.qingxiu",
            "auditor",
        )
    }
    county_admin = await make_user(session, "admin.qx", "450103", (("admin", "450103"),))
    xuser = await make_user(session, "req.xn", "450102-03", (("requester", "450102-03"),))
    big_user = await make_user(
        session, "aud.qx", "450103-02", (("auditor", "450000"), ("requester", "450103-02"))
    )
    headers = {
        "disp": bearer(settings, users["dispatcher.qingxiu"]),
        "approver": bearer(settings, users["approver.qingxiu"]),
        "requester": bearer(settings, users["requester.qingxiu"]),
        "driver": bearer(settings, users["driver.qingxiu"]),
        "auditor": bearer(settings, users["auditor"]),
        "county_admin": bearer(settings, county_admin),
        "xuser": bearer(settings, xuser),
    }
    vehicle = await _vehicle(session, org["450103-03"], "桂A8Z001")
    xvehicle = await _vehicle(session, org["450102-03"], "桂A8Z002")
    pooled = await _vehicle(session, org["450102-03"], "桂A8Z003", pool="city")
    driver = int(
        await _one(session, "SELECT id FROM drivers WHERE user_id = :u", u=users["driver.qingxiu"])
    )
    await session.execute(
        text(
            "UPDATE drivers SET licence_class = 'A1', status = 'active', licence_expires = NULL"
            " WHERE id = :d"
        ),
        {"d": driver},
    )
    xdriver = int(
        await _one(
            session,
            "INSERT INTO drivers (name, licence_class, licence_no, unit_id) VALUES"
            " ('兴宁驾驶员', 'A1', 'XN00000001', :u) RETURNING id",
            u=org["450102-03"],
        )
    )
    for tid, vid in (("TQX00001", vehicle), ("TXN00001", xvehicle)):
        await session.execute(
            text("INSERT INTO terminals (id, secret_hash, vehicle_id) VALUES (:t, :h, :v)"),
            {"t": tid, "h": hash_secret("a-terminal-secret"), "v": vid},
        )
    fences = {}
    for name, unit in (("geofence", org["450103-03"]), ("xgeofence", org["450102-03"])):
        fences[name] = int(
            await _one(
                session,
                "INSERT INTO geofences (name, purpose, org_id, geom) VALUES ('围栏', 'depot', :o,"
                " ST_Multi(ST_GeomFromText('POLYGON((108.3 22.8, 108.31 22.8, 108.31 22.81,"
                " 108.3 22.8))', 4326))) RETURNING id",
                o=unit,
            )
        )
    alerts = {}
    for name, vid in (("alert", vehicle), ("xalert", xvehicle)):
        alerts[name] = int(
            await _one(
                session,
                "INSERT INTO alerts (kind, vehicle_id, org_id, started_at, location, message,"
                " evidence, dedup_key) SELECT 'overspeed', v.id, v.unit_id, now(),"
                " ST_SetSRID(ST_MakePoint(108.3, 22.8), 4326), '超速', '{}', :k"
                " FROM vehicles v WHERE v.id = :v RETURNING id",
                v=vid,
                k=f"authz:{name}",
            )
        )
    await session.commit()

    # In-county trips (one approval step): from and to near 青秀's seat.
    lat, lon = (
        await session.execute(
            text("SELECT ST_Y(location), ST_X(location) FROM orgs WHERE id = :o"),
            {"o": org["450103"]},
        )
    ).one()
    here = {
        "origin": {"lat": lat + 0.01, "lon": lon + 0.01, "address": "区政府"},
        "destination": {"lat": lat + 0.03, "lon": lon + 0.02, "address": "政务服务中心"},
    }

    async def file(who: str) -> int:
        body = _trip(submit=True, **here)
        r = await client.post(f"{API}/trips", json=body, headers=headers[who])
        assert r.status_code == 201, r.text
        return int(r.json()["id"])

    xtrip = await file("xuser")
    trip = await file("requester")
    approved = await file("requester")
    r = await client.post(f"{API}/trips/{approved}/approve", json={}, headers=headers["approver"])
    assert r.status_code == 200, r.text
    xassignment = int(
        await _one(
            session,
            "INSERT INTO trip_assignments (trip_id, vehicle_id, driver_id, starts_at, ends_at)"
            " SELECT id, :v, :d, departure_at, return_at FROM trip_requests WHERE id = :t"
            " RETURNING id",
            v=xvehicle,
            d=xdriver,
            t=xtrip,
        )
    )
    xproposal = int(
        await _one(
            session,
            "INSERT INTO optimizer_runs (org_id, created_by, window_start, window_end,"
            " time_limit_s, state, problem) VALUES (:o, :u, now(), now() + interval '1 day', 1,"
            " 'done', '{}') RETURNING id",
            o=org["450102"],
            u=xuser,
        )
    )
    usage = int(await _one(session, "SELECT min(id) FROM usage_standards WHERE org_id IS NULL"))
    cap = int(
        await _one(session, "SELECT min(id) FROM provisioning_standards WHERE org_id IS NULL")
    )
    await session.commit()
    refs = {
        "county": org["450103"],
        "unit": org["450103-02"],
        "pool_unit": org["450103-03"],
        "xcounty": org["450102"],
        "xunit": org["450102-03"],
        "system": org["SYS-GA"],
        "user": users["requester.qingxiu"],
        "xuser": xuser,
        "big_user": big_user,
        "vehicle": vehicle,
        "xvehicle": xvehicle,
        "pooled": pooled,
        "driver": driver,
        "xdriver": xdriver,
        "terminal": "TQX00001",
        "xterminal": "TXN00001",
        **fences,
        **alerts,
        "trip": trip,
        "approved": approved,
        "xtrip": xtrip,
        "xassignment": xassignment,
        "xproposal": xproposal,
        "usage": usage,
        "cap": cap,
    }
    return refs, headers


def _fill(value: Any, refs: dict[str, Any]) -> Any:
    if isinstance(value, str) and value.startswith("@"):
        return refs[value[1:]]
    if isinstance(value, dict):
        return {k: _fill(v, refs) for k, v in value.items()}
    if isinstance(value, list):
        return [_fill(v, refs) for v in value]
    return value


def _path(path: str, refs: dict[str, Any]) -> str:
    parts = path.split("/")
    return API + "/".join(str(_fill(p, refs)) for p in parts)


async def _send(
    client: httpx.AsyncClient, method: str, case: Case, refs: dict[str, Any], headers: Any
) -> httpx.Response:
    return await client.request(
        method,
        _path(case.path, refs),
        json=_fill(case.body, refs) if case.body is not None or method != "GET" else None,
        params=case.query,
        headers=headers[case.who],
    )


def _answer(r: httpx.Response) -> tuple[int, str | None, str | None]:
    body = r.json() if r.headers.get("content-type", "").startswith("application/json") else {}
    e = body.get("error", {}) if isinstance(body, dict) else {}
    return r.status_code, e.get("code"), e.get("field")


async def _check(
    client: httpx.AsyncClient, method: str, route: str, case: Case, world: Any
) -> list[str]:
    refs, headers = world
    problems = []
    r = await _send(client, method, case, refs, headers)
    got = _answer(r)
    want = (case.status, case.code, case.field) if case.field else (case.status, case.code)
    if got[: len(want)] != want:
        problems.append(f"{method} {route} as {case.who}: want {want}, got {got} {r.text[:200]}")
    if case.compare is not None:
        missing = {
            **refs,
            case.compare: MISSING_TERMINAL if "terminal" in case.compare else MISSING,
        }
        r2 = await _send(client, method, case, missing, headers)
        if _answer(r2) != got:
            problems.append(
                f"{method} {route} as {case.who}: @{case.compare} out of scope gives {got},"
                f" missing gives {_answer(r2)} — existence is an oracle"
            )
    return problems


async def test_writes_refuse_foreign_objects_and_roles_that_may_never_act(
    client: httpx.AsyncClient, world: Any
) -> None:
    problems: list[str] = []
    for (method, route), cases in WRITES.items():
        for case in cases:
            problems += await _check(client, method, route, case, world)
    assert not problems, "\n".join(problems)


async def test_by_id_reads_answer_out_of_scope_as_missing(
    client: httpx.AsyncClient, world: Any
) -> None:
    problems: list[str] = []
    for route, cases in READS.items():
        for case in cases:
            problems += await _check(client, "GET", route, case, world)
    assert not problems, "\n".join(problems)


async def test_batch_items_are_scoped(client: httpx.AsyncClient, world: Any) -> None:
    refs, headers = world
    items = [
        {"trip_id": refs["xtrip"], "vehicle_id": refs["vehicle"], "driver_id": refs["driver"]},
        {"trip_id": MISSING, "vehicle_id": refs["vehicle"], "driver_id": refs["driver"]},
        {"trip_id": refs["approved"], "vehicle_id": refs["xvehicle"], "driver_id": refs["driver"]},
        {"trip_id": refs["approved"], "vehicle_id": MISSING, "driver_id": refs["driver"]},
    ]
    r = await client.post(
        f"{API}/dispatch/assignments", json={"items": items}, headers=headers["disp"]
    )
    assert r.status_code == 200, r.text
    got = [(i["ok"], i["error"]["code"], i["error"]["field"]) for i in r.json()]
    assert got == [
        (False, "not_found", "trip_id"),
        (False, "not_found", "trip_id"),
        (False, "not_found", "vehicle_id"),
        (False, "not_found", "vehicle_id"),
    ]


async def test_notifications_of_others_are_untouched(
    client: httpx.AsyncClient, session: AsyncSession, world: Any
) -> None:
    refs, headers = world
    nid = await _one(
        session,
        "INSERT INTO notifications (user_id, kind, message) VALUES (:u, 'test', '测试')"
        " RETURNING id",
        u=refs["xuser"],
    )
    await session.commit()
    r = await client.post(
        f"{API}/me/notifications/read", json={"ids": [nid]}, headers=headers["disp"]
    )
    assert r.status_code == 200 and r.json()["marked"] == 0
    r = await client.get(f"{API}/me/notifications", headers=headers["xuser"])
    assert [n["id"] for n in r.json()["items"] if n["read_at"] is None] == [nid]
