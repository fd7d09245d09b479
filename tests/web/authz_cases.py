"""The cases of tests/web/test_authz_matrix.py: role × endpoint × foreign-scope object for
every write route and every by-id read of the app (issue 18 items 2-3). Longer than the
house's ~400 lines because it is one table, a case a line, and reads best whole.

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


# Dates near today, so bounds on how old a cost or a range may be never hide a refusal.
_DAY = (datetime.now(UTC) - timedelta(days=2)).date()


def _start(hours: float = 48) -> str:
    return (datetime.now(UTC) + timedelta(hours=hours)).isoformat()


def trip_body(**extra: Any) -> dict[str, Any]:
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
_COST = {"kind": "toll", "amount_cny": "10.00", "occurred_on": _DAY.isoformat()}
_REASON = {"reason": "测试拒绝"}
_USAGE = {"min_passengers": 1, "max_passengers": 4, "body_types": ["sedan"]}
_CAP = {"category": "pool", "body_type": "sedan", "max_price_cny": "100000.00"}
_CHAIN = {"kind": "in_county", "steps": [{"level": "unit", "timeout_hours": 2}]}
_WINDOW = {"window_from": _start(0), "window_to": _start(24), "time_limit_s": 1}
_USER = {"username": "new.user.x", "password": "long-enough-pw", "display_name": "新用户"}
NOT_FOUND = (404, "not_found")
C = Case

# The tables read best one case a line.
# fmt: off
# Every write route: (method, route) -> cases. Each route has the foreign-object refusals
# of the objects it names and, where some role may never act, that role's 403.
WRITES: dict[tuple[str, str], list[Case]] = {
    ("POST", "/orgs"): [
        C("county_admin", "/orgs", *NOT_FOUND, "parent_id", compare="xcounty",
          body={"kind": "unit", "code": "T-1", "name": "测试", "parent_id": "@xcounty"}),
        C("county_admin", "/orgs", *NOT_FOUND, "system_id", compare="system",
          body={"kind": "unit", "code": "T-1", "name": "测试", "parent_id": "@county",
                "system_id": "@system"}),
        C("disp", "/orgs", 403, "role_required",
          body={"kind": "unit", "code": "T-1", "name": "测试", "parent_id": "@county"}),
    ],
    ("PATCH", "/orgs/{org_id}"): [
        C("county_admin", "/orgs/@xunit", *NOT_FOUND, "id", body={"name": "x"}, compare="xunit"),
        C("requester", "/orgs/@unit", 403, "role_required", body={"name": "x"}),
    ],
    ("POST", "/users"): [
        C("county_admin", "/users", *NOT_FOUND, "org_id", compare="xunit",
          body={**_USER, "org_id": "@xunit"}),
        C("county_admin", "/users", *NOT_FOUND, "roles.0.org_id", compare="xunit",
          body={**_USER, "org_id": "@unit", "roles": [{"role": "admin", "org_id": "@xunit"}]}),
        C("disp", "/users", 403, "role_required", body={**_USER, "org_id": "@unit"}),
    ],
    ("PATCH", "/users/{user_id}"): [
        C("county_admin", "/users/@xuser", *NOT_FOUND, "id", body={"active": False},
          compare="xuser"),
        C("county_admin", "/users/@user", *NOT_FOUND, "roles.0.org_id", compare="xcounty",
          body={"roles": [{"role": "admin", "org_id": "@xcounty"}]}),
        C("county_admin", "/users/@big_user", 403, "out_of_scope", body={"active": False}),
        C("disp", "/users/@user", 403, "role_required", body={"active": False}),
    ],
    ("POST", "/users/{user_id}/unlock"): [
        C("county_admin", "/users/@xuser/unlock", *NOT_FOUND, "id", compare="xuser"),
        C("disp", "/users/@user/unlock", 403, "role_required"),
    ],
    ("DELETE", "/users/{user_id}/sessions"): [
        C("county_admin", "/users/@xuser/sessions", *NOT_FOUND, "id", compare="xuser"),
        C("disp", "/users/@user/sessions", 403, "role_required"),
    ],
    ("POST", "/vehicles"): [
        C("county_admin", "/vehicles", *NOT_FOUND, "unit_id", compare="xunit",
          body={**_VEHICLE, "unit_id": "@xunit"}),
        C("disp", "/vehicles", 403, "role_required", body={**_VEHICLE, "unit_id": "@unit"}),
    ],
    ("PATCH", "/vehicles/{vehicle_id}"): [
        C("disp", "/vehicles/@xvehicle", *NOT_FOUND, "id", body={"seats": 5},
          compare="xvehicle"),
        C("disp", "/vehicles/@pooled", 403, "out_of_scope", body={"seats": 5}),
        C("disp", "/vehicles/@vehicle", *NOT_FOUND, "unit_id", body={"unit_id": "@xunit"},
          compare="xunit"),
        C("auditor", "/vehicles/@vehicle", 403, "role_required", body={"seats": 5}),
    ],
    ("POST", "/vehicles/{vehicle_id}/status"): [
        C("disp", "/vehicles/@xvehicle/status", *NOT_FOUND, "id", compare="xvehicle",
          body={"status": "sealed", "reason": "节假日封存"}),
        C("auditor", "/vehicles/@vehicle/status", 403, "role_required",
          body={"status": "sealed", "reason": "节假日封存"}),
    ],
    ("POST", "/vehicles/{vehicle_id}/terminal/commands"): [
        C("disp", "/vehicles/@xvehicle/terminal/commands", *NOT_FOUND, "vehicle_id",
          body={"kind": "position_query"}, compare="xvehicle"),
        C("auditor", "/vehicles/@vehicle/terminal/commands", 403, "role_required",
          body={"kind": "position_query"}),
    ],
    ("POST", "/drivers"): [
        C("county_admin", "/drivers", *NOT_FOUND, "unit_id", compare="xunit",
          body={**_DRIVER, "unit_id": "@xunit"}),
        C("county_admin", "/drivers", *NOT_FOUND, "user_id", compare="xuser",
          body={**_DRIVER, "unit_id": "@pool_unit", "user_id": "@xuser"}),
        C("disp", "/drivers", 403, "role_required", body={**_DRIVER, "unit_id": "@pool_unit"}),
    ],
    ("PATCH", "/drivers/{driver_id}"): [
        C("county_admin", "/drivers/@xdriver", *NOT_FOUND, "id", body={"phone": "12345"},
          compare="xdriver"),
        C("county_admin", "/drivers/@driver", *NOT_FOUND, "unit_id",
          body={"unit_id": "@xunit"}, compare="xunit"),
        C("county_admin", "/drivers/@driver", *NOT_FOUND, "user_id",
          body={"user_id": "@xuser"}, compare="xuser"),
        C("disp", "/drivers/@driver", 403, "role_required", body={"phone": "12345"}),
    ],
    ("POST", "/terminals"): [
        C("county_admin", "/terminals", *NOT_FOUND, "vehicle_id", compare="xvehicle",
          body={"id": "TAUTHZ01", "vehicle_id": "@xvehicle"}),
        C("disp", "/terminals", 403, "role_required", body={"id": "TAUTHZ01"}),
    ],
    ("PATCH", "/terminals/{terminal_id}"): [
        C("county_admin", "/terminals/@xterminal", *NOT_FOUND, "id", body={"active": False},
          compare="xterminal"),
        C("county_admin", "/terminals/@terminal", *NOT_FOUND, "vehicle_id",
          body={"vehicle_id": "@xvehicle"}, compare="xvehicle"),
        C("disp", "/terminals/@terminal", 403, "role_required", body={"active": False}),
    ],
    ("POST", "/geofences"): [
        C("county_admin", "/geofences", *NOT_FOUND, "properties.org_id", compare="xunit",
          body={**_FENCE, "properties": {"name": "围栏", "purpose": "depot", "org_id": "@xunit"}}),
        C("disp", "/geofences", 403, "role_required",
          body={**_FENCE, "properties": {"name": "围栏", "purpose": "depot", "org_id": "@unit"}}),
    ],
    ("PATCH", "/geofences/{geofence_id}"): [
        C("county_admin", "/geofences/@xgeofence", *NOT_FOUND, "id", compare="xgeofence",
          body={"properties": {"active": False}}),
        C("disp", "/geofences/@geofence", 403, "role_required",
          body={"properties": {"active": False}}),
    ],
    ("DELETE", "/geofences/{geofence_id}"): [
        C("county_admin", "/geofences/@xgeofence", *NOT_FOUND, "id", compare="xgeofence"),
        C("disp", "/geofences/@geofence", 403, "role_required"),
    ],
    ("POST", "/alerts/{alert_id}/acknowledge"): [
        C("disp", "/alerts/@xalert/acknowledge", *NOT_FOUND, "id", body={"comment": "看过"},
          compare="xalert"),
        C("auditor", "/alerts/@xalert/acknowledge", 403, "role_required",
          body={"comment": "看过"}),
    ],
    ("POST", "/alerts/{alert_id}/close"): [
        C("disp", "/alerts/@xalert/close", *NOT_FOUND, "id", body={"comment": "处理完毕"},
          compare="xalert"),
        C("auditor", "/alerts/@xalert/close", 403, "role_required", body={"comment": "处理完毕"}),
    ],
    ("POST", "/trips"): [
        C("requester", "/trips", *NOT_FOUND, "unit_id", body=trip_body(unit_id="@xunit"),
          compare="xunit"),
        C("requester", "/trips", 422, "invalid_passenger", "passenger_user_ids.0",
          body=trip_body(passenger_user_ids=["@xuser"]), compare="xuser"),
        C("auditor", "/trips", 403, "role_required", body=trip_body()),
    ],
    ("PUT", "/trips/{trip_id}"): [
        C("requester", "/trips/@xtrip", *NOT_FOUND, "trip_id", body=trip_body(), compare="xtrip"),
        C("auditor", "/trips/@xtrip", 403, "role_required", body=trip_body()),
    ],
    ("POST", "/trips/{trip_id}/submit"): [
        C("requester", "/trips/@xtrip/submit", *NOT_FOUND, "trip_id", compare="xtrip"),
        C("auditor", "/trips/@trip/submit", 403, "role_required"),
    ],
    ("POST", "/trips/{trip_id}/cancel"): [
        C("requester", "/trips/@xtrip/cancel", *NOT_FOUND, "trip_id", body=_REASON,
          compare="xtrip"),
        C("disp", "/trips/@xtrip/cancel", *NOT_FOUND, "trip_id", body=_REASON, compare="xtrip"),
        C("auditor", "/trips/@trip/cancel", 403, "role_required", body=_REASON),
    ],
    ("POST", "/trips/{trip_id}/approve"): [
        C("approver", "/trips/@xtrip/approve", *NOT_FOUND, "trip_id", body={}, compare="xtrip"),
        C("driver", "/trips/@trip/approve", 403, "role_required", body={}, compare="trip"),
    ],
    ("POST", "/trips/{trip_id}/reject"): [
        C("approver", "/trips/@xtrip/reject", *NOT_FOUND, "trip_id", body=_REASON,
          compare="xtrip"),
        C("driver", "/trips/@trip/reject", 403, "role_required", body=_REASON, compare="trip"),
    ],
    ("POST", "/trips/{trip_id}/return"): [
        C("approver", "/trips/@xtrip/return", *NOT_FOUND, "trip_id", body=_REASON,
          compare="xtrip"),
        C("driver", "/trips/@trip/return", 403, "role_required", body=_REASON, compare="trip"),
    ],
    ("POST", "/trips/{trip_id}/delegate"): [
        C("approver", "/trips/@xtrip/delegate", *NOT_FOUND, "trip_id",
          body={"user_id": "@user"}, compare="xtrip"),
        C("approver", "/trips/@trip/delegate", 422, "invalid", "user_id",
          body={"user_id": "@xuser"}, compare="xuser"),
        C("driver", "/trips/@trip/delegate", 403, "role_required", body={"user_id": "@user"},
          compare="trip"),
    ],
    ("PUT", "/approval-chains"): [
        C("county_admin", "/approval-chains", *NOT_FOUND, "org_id",
          body={**_CHAIN, "org_id": "@xcounty"}, compare="xcounty"),
        C("county_admin", "/approval-chains", 403, "config_level", "org_id", body=_CHAIN),
        C("disp", "/approval-chains", 403, "role_required", body=_CHAIN),
    ],
    ("POST", "/standards/usage"): [
        C("county_admin", "/standards/usage", *NOT_FOUND, "org_id",
          body={**_USAGE, "org_id": "@xcounty"}, compare="xcounty"),
        C("county_admin", "/standards/usage", 403, "config_level", "org_id", body=_USAGE),
        C("disp", "/standards/usage", 403, "role_required", body=_USAGE),
    ],
    # Standards are readable by every role: one the caller may not change is a 403.
    ("PUT", "/standards/usage/{standard_id}"): [
        C("county_admin", "/standards/usage/@usage", 403, "config_level", "org_id", body=_USAGE),
        C("disp", "/standards/usage/@usage", 403, "role_required", body=_USAGE),
    ],
    ("DELETE", "/standards/usage/{standard_id}"): [
        C("county_admin", "/standards/usage/@usage", 403, "config_level", "org_id"),
        C("disp", "/standards/usage/@usage", 403, "role_required"),
    ],
    ("PUT", "/standards/provisioning"): [
        C("county_admin", "/standards/provisioning", *NOT_FOUND, "org_id",
          body={**_CAP, "org_id": "@xcounty"}, compare="xcounty"),
        C("county_admin", "/standards/provisioning", 403, "config_level", "org_id", body=_CAP),
        C("disp", "/standards/provisioning", 403, "role_required", body=_CAP),
    ],
    ("DELETE", "/standards/provisioning/{standard_id}"): [
        C("county_admin", "/standards/provisioning/@cap", 403, "config_level", "org_id"),
        C("disp", "/standards/provisioning/@cap", 403, "role_required"),
    ],
    ("POST", "/costs"): [
        C("disp", "/costs", *NOT_FOUND, "vehicle_id", body={**_COST, "vehicle_id": "@xvehicle"},
          compare="xvehicle"),
        C("disp", "/costs", *NOT_FOUND, "trip_id", compare="xtrip",
          body={**_COST, "vehicle_id": "@vehicle", "trip_id": "@xtrip"}),
        C("disp", "/costs", 403, "out_of_scope", "vehicle_id",
          body={**_COST, "vehicle_id": "@pooled"}),
        C("requester", "/costs", 403, "role_required", body={**_COST, "vehicle_id": "@vehicle"}),
    ],
    ("POST", "/service-records"): [
        C("disp", "/service-records", *NOT_FOUND, "vehicle_id", compare="xvehicle",
          body={"vehicle_id": "@xvehicle", "kind": "repair", "done_on": _DAY.isoformat()}),
        C("requester", "/service-records", 403, "role_required",
          body={"vehicle_id": "@vehicle", "kind": "repair", "done_on": _DAY.isoformat()}),
    ],
    ("POST", "/trips/{trip_id}/ratings"): [
        C("requester", "/trips/@xtrip/ratings", *NOT_FOUND, "trip_id", body={"score": 5},
          compare="xtrip"),
        # The region auditor sees the trip but did not ride in it.
        C("auditor", "/trips/@xtrip/ratings", 403, "not_passenger", body={"score": 5}),
    ],
    ("POST", "/dispatch/assignments"): [
        # Refusals of items come one by one in a 200: test_batch_items_are_scoped.
        C("requester", "/dispatch/assignments", 403, "role_required",
          body={"items": [{"trip_id": "@trip", "vehicle_id": "@vehicle", "driver_id": "@driver"}]}),
    ],
    ("POST", "/trips/{trip_id}/assign"): [
        C("disp", "/trips/@xtrip/assign", *NOT_FOUND, "trip_id", compare="xtrip",
          body={"vehicle_id": "@vehicle", "driver_id": "@driver"}),
        C("disp", "/trips/@approved/assign", *NOT_FOUND, "vehicle_id", compare="xvehicle",
          body={"vehicle_id": "@xvehicle", "driver_id": "@driver"}),
        C("disp", "/trips/@approved/assign", *NOT_FOUND, "driver_id", compare="xdriver",
          body={"vehicle_id": "@vehicle", "driver_id": "@xdriver"}),
        C("requester", "/trips/@approved/assign", 403, "role_required", compare="approved",
          body={"vehicle_id": "@vehicle", "driver_id": "@driver"}),
    ],
    ("POST", "/trips/{trip_id}/vehicle-failed"): [
        C("disp", "/trips/@xtrip/vehicle-failed", *NOT_FOUND, "trip_id", body=_REASON,
          compare="xtrip"),
        C("requester", "/trips/@trip/vehicle-failed", 403, "role_required", body=_REASON),
    ],
    ("POST", "/trips/{trip_id}/settle"): [
        C("disp", "/trips/@xtrip/settle", *NOT_FOUND, "trip_id", body={}, compare="xtrip"),
        C("requester", "/trips/@trip/settle", 403, "role_required", body={}),
    ],
    **{
        ("POST", f"/assignments/{{assignment_id}}/{action}"): [
            C("driver", f"/assignments/@xassignment/{action}", *NOT_FOUND, "assignment_id",
              body=body, compare="xassignment"),
            C("requester", f"/assignments/@xassignment/{action}", 403, "role_required",
              body=body, compare="xassignment"),
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
        C("disp", "/dispatch/proposals", *NOT_FOUND, "org_id",
          body={**_WINDOW, "org_id": "@xcounty"}, compare="xcounty"),
        C("requester", "/dispatch/proposals", 403, "role_required",
          body={**_WINDOW, "org_id": "@county"}),
    ],
    ("PATCH", "/dispatch/proposals/{proposal_id}"): [
        C("disp", "/dispatch/proposals/@xproposal", *NOT_FOUND, "proposal_id",
          body={"items": [{"trip_id": "@xtrip", "drop": True}]}, compare="xproposal"),
        C("auditor", "/dispatch/proposals/@xproposal", 403, "role_required",
          body={"items": [{"trip_id": "@xtrip", "drop": True}]}),
    ],
    ("POST", "/dispatch/proposals/{proposal_id}/accept"): [
        C("disp", "/dispatch/proposals/@xproposal/accept", *NOT_FOUND, "proposal_id",
          compare="xproposal"),
        C("auditor", "/dispatch/proposals/@xproposal/accept", 403, "role_required"),
    ],
    ("POST", "/dispatch/proposals/{proposal_id}/discard"): [
        C("disp", "/dispatch/proposals/@xproposal/discard", *NOT_FOUND, "proposal_id",
          compare="xproposal"),
        C("auditor", "/dispatch/proposals/@xproposal/discard", 403, "role_required"),
    ],
    # Acts on the caller's own notifications only; another user's ids are ignored:
    # test_notifications_of_others_are_untouched.
    ("POST", "/me/notifications/read"): [],
}
# Write routes that act on no object in anyone's scope.
# The official calendar: region-wide configuration (fleet/holidays), no org of its own.
_HOLIDAY = {"day": "2027-10-01", "kind": "holiday", "name": "国庆节"}
WRITES.update({
    ("POST", "/holidays"): [
        C("county_admin", "/holidays", 403, "config_level", body=_HOLIDAY),
        C("disp", "/holidays", 403, "role_required", body=_HOLIDAY),
    ],
    ("PUT", "/holidays/{day}"): [
        C("county_admin", "/holidays/2026-10-01", 403, "config_level",
          body={"kind": "holiday", "name": "国庆节"}),
        C("auditor", "/holidays/2026-10-01", 403, "role_required",
          body={"kind": "holiday", "name": "国庆节"}),
    ],
    ("DELETE", "/holidays/{day}"): [
        C("county_admin", "/holidays/2026-10-01", 403, "config_level"),
        C("requester", "/holidays/2026-10-01", 403, "role_required"),
    ],
    ("POST", "/holidays/import"): [  # refused before the (absent) file is looked at
        C("county_admin", "/holidays/import", 403, "config_level"),
        C("disp", "/holidays/import", 403, "role_required"),
    ],
})

NO_OBJECT = {
    ("POST", "/auth/login"): "anonymous: exchanges a password for a token",
    ("POST", "/live/ticket"): "the caller's own websocket ticket (tests/web/test_live_account.py)",
    ("POST", "/auth/refresh"): "the session of the caller's own cookie (tests/web/test_security.py)",
    ("POST", "/auth/logout"): "the caller's own session",
    ("POST", "/auth/password"): "the caller's own password",
    ("DELETE", "/auth/sessions/{session_id}"):
        "the caller's own session; another user's answers 404 (tests/web/test_security.py)",
}

# Every GET route with a path parameter: the by-id reads. Out-of-scope and missing ids must
# answer alike (404); a role that may never read them gets 403 whether the id exists or not.
_RANGE = {"start": f"{_DAY.isoformat()}T00:00:00Z", "end": f"{_DAY.isoformat()}T12:00:00Z"}
READS: dict[str, list[Case]] = {
    "/orgs/{org_id}": [C("disp", "/orgs/@xunit", *NOT_FOUND, "id", compare="xunit")],
    "/users/{user_id}": [
        C("county_admin", "/users/@xuser", *NOT_FOUND, "id", compare="xuser"),
        C("disp", "/users/@user", 403, "role_required", compare="user"),
    ],
    "/users/{user_id}/sessions": [
        C("county_admin", "/users/@xuser/sessions", *NOT_FOUND, "id", compare="xuser"),
        C("disp", "/users/@user/sessions", 403, "role_required", compare="user"),
    ],
    **{
        route: [C("disp", route.replace("{trip_id}", "@xtrip"), *NOT_FOUND, "trip_id",
                  compare="xtrip")]
        for route in (
            "/trips/{trip_id}",
            "/trips/{trip_id}/history",
            "/trips/{trip_id}/approvals",
            "/trips/{trip_id}/approval-chain",
            "/trips/{trip_id}/assignments",
            "/trips/{trip_id}/ratings",
            "/trips/{trip_id}/track-summary",
            "/trips/{trip_id}/track",
        )
    },
    "/dispatch/trips/{trip_id}/suggestions": [
        C("disp", "/dispatch/trips/@xtrip/suggestions", *NOT_FOUND, "trip_id", compare="xtrip"),
        C("auditor", "/dispatch/trips/@trip/suggestions", 403, "role_required", compare="trip"),
    ],
    "/vehicles/{vehicle_id}": [
        C("disp", "/vehicles/@xvehicle", *NOT_FOUND, "id", compare="xvehicle"),
        C("requester", "/vehicles/@vehicle", 403, "role_required", compare="vehicle"),
    ],
    "/vehicles/{vehicle_id}/cost-summary": [
        C("disp", "/vehicles/@xvehicle/cost-summary", *NOT_FOUND, "id", compare="xvehicle"),
    ],
    "/vehicles/{vehicle_id}/track": [
        C("disp", "/vehicles/@xvehicle/track", *NOT_FOUND, "vehicle_id", query=_RANGE,
          compare="xvehicle"),
        C("approver", "/vehicles/@vehicle/track", 403, "role_required", query=_RANGE,
          compare="vehicle"),
    ],
    "/vehicles/{vehicle_id}/trips": [
        C("disp", "/vehicles/@xvehicle/trips", *NOT_FOUND, "vehicle_id", query=_RANGE,
          compare="xvehicle"),
    ],
    "/vehicles/{vehicle_id}/stops": [
        C("disp", "/vehicles/@xvehicle/stops", *NOT_FOUND, "vehicle_id", query=_RANGE,
          compare="xvehicle"),
    ],
    "/vehicles/{vehicle_id}/mileage": [
        C("disp", "/vehicles/@xvehicle/mileage", *NOT_FOUND, "vehicle_id",
          query={"from": _DAY.isoformat(), "to": _DAY.isoformat()}, compare="xvehicle"),
    ],
    "/vehicles/{vehicle_id}/terminal": [
        C("disp", "/vehicles/@xvehicle/terminal", *NOT_FOUND, "vehicle_id", compare="xvehicle"),
        C("approver", "/vehicles/@vehicle/terminal", 403, "role_required", compare="vehicle"),
    ],
    "/vehicles/{vehicle_id}/alerts": [
        C("disp", "/vehicles/@xvehicle/alerts", *NOT_FOUND, "vehicle_id", compare="xvehicle"),
    ],
    "/drivers/{driver_id}": [
        C("disp", "/drivers/@xdriver", *NOT_FOUND, "id", compare="xdriver"),
        C("requester", "/drivers/@driver", 403, "role_required", compare="driver"),
    ],
    "/terminals/{terminal_id}": [
        C("disp", "/terminals/@xterminal", *NOT_FOUND, "id", compare="xterminal"),
    ],
    "/geofences/{geofence_id}": [
        C("disp", "/geofences/@xgeofence", *NOT_FOUND, "id", compare="xgeofence"),
    ],
    "/alerts/{alert_id}": [
        C("disp", "/alerts/@xalert", *NOT_FOUND, "id", compare="xalert"),
        C("requester", "/alerts/@alert", 403, "role_required", compare="alert"),
    ],
    "/dispatch/proposals/{proposal_id}": [
        C("disp", "/dispatch/proposals/@xproposal", *NOT_FOUND, "proposal_id",
          compare="xproposal"),
    ],
}
# GET routes whose path parameter names no object.
NOT_AN_ID = {
    "/exports/trips.{fmt}": "the file format",
    "/exports/alerts.{fmt}": "the file format",
    "/holidays/template.{fmt}": "the file format",
}
# fmt: on
