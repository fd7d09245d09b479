"""The schema says what the API enforces (issue 18 item 8, issue 9 item 10): date-time
parameters refuse numbers, cross-field rules are in the OpenAPI document, and a 405 says in
`Allow` which methods the path has."""

from __future__ import annotations

from typing import Any

import httpx

from tests.conftest import Login

API = "/api/v1"


async def test_date_time_parameters_refuse_numbers(client: httpx.AsyncClient, login: Login) -> None:
    admin = await login("admin")
    cases = [
        ("/trips", "departure_to"),
        ("/trips", "departure_from"),
        ("/alerts", "start"),
        ("/exports/trips.csv", "departure_to"),
        ("/dispatch/queue", "departure_from"),
    ]
    for path, name in cases:
        for bad in (
            "0.5",
            "1700000000",
            "2026-12-03",
            "2026-12-03T08:00:00",
            "9999-12-31T20:00:00Z",
        ):
            r = await client.get(f"{API}{path}", params={name: bad}, headers=admin)
            assert r.status_code == 422, (path, name, bad, r.text)
            assert r.json()["error"]["field"] == name
        r = await client.get(
            f"{API}{path}", params={name: "2026-12-03T08:00:00+08:00"}, headers=admin
        )
        assert r.status_code in (200, 403), (path, r.text)
    r = await client.get(
        f"{API}/reports/cost-per-km",
        params={"month_from": "0001-01", "month_to": "2026-01"},
        headers=admin,
    )
    assert r.status_code == 422 and r.json()["error"]["field"] == "month_from"
    r = await client.get(
        f"{API}/reports/cost-per-km",
        params={"month_from": "2000-01", "month_to": "2026-01"},
        headers=admin,
    )
    assert r.status_code == 422 and "at most 120 months" in r.json()["error"]["message"]


async def test_a_405_names_every_method_of_the_path(
    client: httpx.AsyncClient, login: Login
) -> None:
    admin = await login("admin")
    r = await client.delete(f"{API}/trips", headers=admin)
    assert r.status_code == 405 and r.json()["error"]["code"] == "method_not_allowed"
    assert r.headers["allow"] == "GET, HEAD, POST"
    r = await client.request("TRACE", f"{API}/geofences/1", headers=admin)
    assert r.status_code == 405 and r.headers["allow"] == "DELETE, GET, HEAD, PATCH"
    r = await client.put(f"{API}/health")
    assert r.status_code == 405 and r.headers["allow"] == "GET, HEAD"
    # A POST-only path asked with GET (the SPA fallback serves GET elsewhere) …
    r = await client.get(f"{API}/auth/login")
    assert r.status_code == 405 and r.headers["allow"] == "POST"
    # … and a literal path beside a templated one names only its own methods.
    r = await client.options(f"{API}/standards/provisioning/violations", headers=admin)
    assert r.status_code == 405 and r.headers["allow"] == "GET, HEAD", r.text
    r = await client.get(f"{API}/no-such-thing", headers=admin)
    assert r.status_code == 404 and "allow" not in r.headers


def _body(spec: dict[str, Any], path: str, method: str) -> dict[str, Any]:
    ref = spec["paths"][path][method]["requestBody"]["content"]["application/json"]["schema"]
    schema: dict[str, Any] = spec["components"]["schemas"][ref["$ref"].split("/")[-1]]
    return schema


async def test_cross_field_rules_are_in_the_openapi_document(client: httpx.AsyncClient) -> None:
    spec = (await client.get(f"{API}/openapi.json")).json()
    proposal = _body(spec, f"{API}/dispatch/proposals", "post")
    assert [b["required"] for b in proposal["oneOf"]] == [["day"], ["window_from", "window_to"]]
    mark = _body(spec, f"{API}/me/notifications/read", "post")
    assert [b["required"] for b in mark["oneOf"]] == [["ids"], ["all"]]
    chain = _body(spec, f"{API}/approval-chains", "put")
    assert {"properties": {"steps": {"minItems": 1}}} in chain["anyOf"]
    props = spec["components"]["schemas"]["GeofenceProps"]
    assert props["anyOf"][1]["required"] == ["speed_limit_kmh"]
    # GET /costs takes neither, one or both of its filters: no hidden rule left there.
    params = {p["name"]: p for p in spec["paths"][f"{API}/costs"]["get"]["parameters"]}
    assert not params["vehicle_id"]["required"] and not params["trip_id"]["required"]
    # Ids and offsets stop where every JSON client still holds an integer exactly.
    trip_id = spec["paths"][f"{API}/trips/{{trip_id}}/history"]["get"]["parameters"][0]
    assert trip_id["schema"]["maximum"] == 2**53 - 1
    # Date-times are RFC 3339 strings with a pattern that bounds the year.
    dep = next(
        p for p in spec["paths"][f"{API}/trips"]["get"]["parameters"] if p["name"] == "departure_to"
    )
    assert dep["schema"]["anyOf"][0]["pattern"].startswith("^((19[7-9][0-9]|20[0-9][0-9])-")


async def test_the_body_rules_answer_as_the_schema_says(
    client: httpx.AsyncClient, login: Login
) -> None:
    admin = await login("admin")
    disp = await login("dispatcher.qingxiu")
    r = await client.post(f"{API}/me/notifications/read", json={}, headers=admin)
    assert r.status_code == 422
    r = await client.post(f"{API}/me/notifications/read", json={"all": True}, headers=admin)
    assert r.status_code == 200
    me = (await client.get(f"{API}/auth/me", headers=disp)).json()
    org = me["roles"][0]["org_id"]
    for body in (
        {"org_id": org},
        {"org_id": org, "day": "2026-12-03", "window_from": "2026-12-03T00:00:00Z"},
        {"org_id": org, "window_from": "0001-01-01T00:00:00Z", "window_to": "0001-01-02T00:00:00Z"},
        {"org_id": org, "day": "9999-12-31"},
    ):
        r = await client.post(f"{API}/dispatch/proposals", json=body, headers=disp)
        assert r.status_code == 422, (body, r.text)
    r = await client.get(f"{API}/costs", headers=admin)
    assert r.status_code == 200 and "items" in r.json()
    r = await client.get(f"{API}/costs", headers=await login("requester.qingxiu"))
    assert r.status_code == 403
