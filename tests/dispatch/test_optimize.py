"""Auto-assign: proposal solved by the worker path (child process), reviewed, edited, accepted.

The HTTP flow runs in the test's transaction: the worker's `run_next` claims the queued run
through the test session and solves it in a real `ProcessPoolExecutor` child. The
cross-process test commits a run to the test database and lets `fleet optimizer-worker
--once` (a separate OS process) solve it while the test watches its state and progress.
"""

from __future__ import annotations

import asyncio
import sys
import time
from collections.abc import AsyncIterator, Iterator
from concurrent.futures import ProcessPoolExecutor
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession

from dispatch.optimize import problem
from dispatch.optimize.worker import PoolKilled, _pid_alive, make_executor, run_next
from tests.conftest import Login
from tests.dispatch.conftest import API, World, approved_trip, make_driver, make_vehicle

ROOT = Path(__file__).resolve().parents[2]
P = f"{API}/dispatch/proposals"


@pytest.fixture(scope="module")
def executor() -> Iterator[ProcessPoolExecutor]:
    pool = make_executor(1)
    yield pool
    pool.shutdown(wait=True, cancel_futures=True)


def _window() -> dict[str, str]:
    now = datetime.now(UTC)
    return {
        "window_from": (now + timedelta(hours=20)).isoformat(),
        "window_to": (now + timedelta(hours=40)).isoformat(),
    }


async def _solve_queued(session: AsyncSession, executor: ProcessPoolExecutor) -> int | None:
    """The worker's own step, with the test's session as its unit of work."""

    @asynccontextmanager
    async def sessions() -> AsyncIterator[AsyncSession]:
        yield session
        await session.commit()

    return await run_next(sessions, executor, worker="test-worker", heartbeat_s=0.5)


async def test_proposal_reviewed_edited_accepted(
    client: httpx.AsyncClient,
    login: Login,
    world: World,
    session: AsyncSession,
    executor: ProcessPoolExecutor,
) -> None:
    disp = await login("dispatcher.qingxiu")
    # Our own small fleet in the scope (the seeded county vehicles are candidates too).
    spare = await make_vehicle(session, world.pool_unit)
    for _ in range(3):
        await make_vehicle(session, world.pool_unit)
        await make_driver(session, world.pool_unit, "C1")
    a = await approved_trip(client, login, world, start_in_h=24, hours=3)
    b = await approved_trip(client, login, world, start_in_h=24.5, hours=3)  # overlaps a
    c = await approved_trip(client, login, world, start_in_h=30, hours=2)

    r = await client.post(
        P, json={"org_id": world.county, "time_limit_s": 1, **_window()}, headers=disp
    )
    assert r.status_code == 202, r.text
    run = r.json()
    assert run["state"] == "queued"
    assert run["counts"]["requests"] >= 3
    assert run["counts"]["vehicles_planned"] >= 2
    assert run["items"] == [] and run["progress"]["time_limit_s"] == 1
    # Region mode's partition key: the requesting unit's county; vehicles of county units
    # carry theirs, city-pool vehicles none (shared by every county's part).
    snap = (
        await session.execute(
            text("SELECT problem FROM optimizer_runs WHERE id = :id"), {"id": run["id"]}
        )
    ).scalar_one()
    assert {r["zone"] for r in snap["requests"]} == {"450103"}
    assert {v["zone"] for v in snap["vehicles"]} <= {"450103", None}
    assert "450103" in {v["zone"] for v in snap["vehicles"]}

    # Not yet solved: nothing to edit or accept.
    r = await client.post(f"{P}/{run['id']}/accept", headers=disp)
    assert r.status_code == 409 and r.json()["error"]["code"] == "illegal_transition"

    started = time.monotonic()
    assert await _solve_queued(session, executor) == run["id"]
    assert time.monotonic() - started < 30
    assert await _solve_queued(session, executor) is None  # nothing else queued

    r = await client.get(f"{P}/{run['id']}", headers=disp)
    assert r.status_code == 200, r.text
    prop = r.json()
    assert prop["state"] == "done", prop
    assert prop["progress"]["phase"] == "done" and prop["progress"]["elapsed_s"] >= 0.5
    assert prop["started_at"] and prop["finished_at"]
    items = {i["trip_id"]: i for i in prop["items"]}
    left = {u["trip_id"]: u for u in prop["unserved"]}
    for t in (a, b, c):
        assert (t["id"] in items) != (t["id"] in left)
    assert a["id"] in items and b["id"] in items, prop
    ia, ib = items[a["id"]], items[b["id"]]
    assert ia["vehicle_id"] != ib["vehicle_id"]  # overlapping bookings: two vehicles
    assert ia["driver_id"] != ib["driver_id"]
    assert ia["why"] and ia["plate"] in ia["why"] and ia["eligible_vehicles"] >= 1
    for u in prop["unserved"]:
        assert u["reason"] and u["detail"]

    # Review: an edit the manual rules refuse is refused at once.
    bus = await make_vehicle(session, world.pool_unit, body_type="bus", seats=30)
    r = await client.patch(
        f"{P}/{run['id']}", json={"items": [{"trip_id": a["id"], "vehicle_id": bus}]}, headers=disp
    )
    assert r.status_code == 422 and r.json()["error"]["code"] == "body_type_not_allowed"
    # Edit: a another vehicle; c dropped (or, if left out, stays out).
    edits: list[dict[str, Any]] = [{"trip_id": a["id"], "vehicle_id": spare}]
    if c["id"] in items:
        edits.append({"trip_id": c["id"], "drop": True})
    r = await client.patch(f"{P}/{run['id']}", json={"items": edits}, headers=disp)
    assert r.status_code == 200, r.text
    edited = {i["trip_id"]: i for i in r.json()["items"]}
    assert edited[a["id"]]["vehicle_id"] == spare and edited[a["id"]]["edited"]
    if c["id"] in items:
        assert edited[c["id"]]["dropped"]

    # Between proposal and acceptance, b's vehicle goes to the workshop.
    await session.execute(
        text("UPDATE vehicles SET status = 'under_repair' WHERE id = :v"), {"v": ib["vehicle_id"]}
    )
    await session.commit()

    r = await client.post(f"{P}/{run['id']}/accept", headers=disp)
    assert r.status_code == 200, r.text
    out = r.json()
    results = {x["trip_id"]: x for x in out["results"]}
    assert c["id"] not in results  # dropped
    assert results[a["id"]]["ok"] and results[a["id"]]["assignment_id"]
    assert not results[b["id"]]["ok"]
    assert results[b["id"]]["error"]["code"] == "vehicle_not_in_service"
    assert out["accepted"] == sum(1 for x in out["results"] if x["ok"]) >= 1
    assert out["refused"] >= 1

    r = await client.get(f"{API}/trips/{a['id']}", headers=disp)
    assert r.json()["state"] == "assigned"
    r = await client.get(f"{API}/trips/{a['id']}/assignments", headers=disp)
    assert [(x["vehicle_id"], x["source"]) for x in r.json()] == [(spare, "optimizer")]
    r = await client.get(f"{API}/trips/{b['id']}", headers=disp)
    assert r.json()["state"] == "approved"

    r = await client.get(f"{P}/{run['id']}", headers=disp)
    assert r.json()["state"] == "accepted" and len(r.json()["results"]) == len(out["results"])
    r = await client.post(f"{P}/{run['id']}/accept", headers=disp)
    assert r.status_code == 409 and r.json()["error"]["current"] == "accepted"

    actions: set[str] = set(
        (
            await session.execute(
                text(
                    "SELECT action FROM audit_log WHERE entity = 'optimizer_run' AND entity_id = :i"
                ),
                {"i": str(run["id"])},
            )
        ).scalars()
    )
    assert {
        "optimizer.proposal_create",
        "optimizer.proposal_solved",
        "optimizer.proposal_edit",
        "optimizer.proposal_accept",
    } <= actions

    r = await client.get(P, params={"org_id": world.county}, headers=disp)
    assert r.status_code == 200 and run["id"] in [x["id"] for x in r.json()["items"]]


async def test_scope_role_and_state_refusals(
    client: httpx.AsyncClient, login: Login, world: World
) -> None:
    disp = await login("dispatcher.qingxiu")
    body = {"org_id": world.county, "time_limit_s": 1, **_window()}

    r = await client.post(P, json=body, headers=await login("requester.qingxiu"))
    assert r.status_code == 403 and r.json()["error"]["code"] == "role_required"
    # Another county: answered as a missing org would be.
    r = await client.post(P, json=body, headers=await login("dispatcher.xingning"))
    assert r.status_code == 404 and r.json()["error"]["code"] == "not_found"
    r = await client.post(P, json={"org_id": world.county, "time_limit_s": 1}, headers=disp)
    assert r.status_code == 422
    r = await client.post(P, json={**body, "time_limit_s": 0}, headers=disp)
    assert r.status_code == 422 and r.json()["error"]["field"] == "time_limit_s"
    r = await client.post(P, json={**body, "org_id": 10**9}, headers=disp)
    assert r.status_code == 404

    r = await client.post(P, json=body, headers=disp)
    assert r.status_code == 202, r.text
    rid = r.json()["id"]
    # Out of scope: another county's dispatcher neither reads nor accepts it (nor learns
    # that it exists).
    other = await login("dispatcher.xingning")
    assert (await client.get(f"{P}/{rid}", headers=other)).status_code == 404
    assert (await client.post(f"{P}/{rid}/accept", headers=other)).status_code == 404
    # The auditor reads, never writes.
    aud = await login("auditor")
    assert (await client.get(f"{P}/{rid}", headers=aud)).status_code == 200
    r = await client.post(f"{P}/{rid}/discard", headers=aud)
    assert r.status_code == 403
    # A queued proposal cannot be edited; it can be discarded, then nothing more.
    r = await client.patch(
        f"{P}/{rid}", json={"items": [{"trip_id": 1, "drop": True}]}, headers=disp
    )
    assert r.status_code == 409 and r.json()["error"]["current"] == "queued"
    r = await client.post(f"{P}/{rid}/discard", headers=disp)
    assert r.status_code == 200 and r.json()["state"] == "discarded"
    r = await client.post(f"{P}/{rid}/accept", headers=disp)
    assert r.status_code == 409
    assert (await client.get(f"{P}/999999999", headers=disp)).status_code == 404


async def test_runaway_solve_is_stopped_and_the_run_fails(
    client: httpx.AsyncClient, login: Login, world: World, session: AsyncSession
) -> None:
    """A solve far past its limit (here: a hard limit below any solve's time) is stopped —
    its child process terminated — and the run fails with the reason, not 'running' forever."""
    disp = await login("dispatcher.qingxiu")
    await approved_trip(client, login, world, start_in_h=24, hours=2)
    r = await client.post(
        P, json={"org_id": world.county, "time_limit_s": 1, **_window()}, headers=disp
    )
    assert r.status_code == 202, r.text
    rid = r.json()["id"]
    pool = make_executor(1, warm=True)
    children = list(pool._processes.values())  # type: ignore[attr-defined]

    @asynccontextmanager
    async def sessions() -> AsyncIterator[AsyncSession]:
        yield session
        await session.commit()

    try:
        with pytest.raises(PoolKilled):
            await run_next(sessions, pool, worker="test-worker", heartbeat_s=0.2, hard_limit_s=0.3)
        # The executor's own thread may reap a child first (then Process.is_alive() can
        # race and say True), so ask the kernel: gone, or a zombie, within 15 s.
        for _ in range(150):
            if not any(_pid_alive(c.pid) for c in children):
                break
            await asyncio.sleep(0.1)
        assert not [c.pid for c in children if _pid_alive(c.pid)]
    finally:
        pool.shutdown(wait=False, cancel_futures=True)
    run = (await client.get(f"{P}/{rid}", headers=disp)).json()
    assert run["state"] == "failed" and "overran its 1 s limit" in run["error"], run
    assert run["progress"]["phase"] == "failed"


def test_mapping_keeps_bookings_licences_and_ranges() -> None:
    """Pure mapping: a booked vehicle is not proposed in its booked time, a bus goes to an A1
    driver, a BEV short of one trip's range is not proposed for it."""
    o = datetime(2026, 12, 1, tzinfo=UTC)
    here = (22.82, 108.38)

    def trip(i: int, h: float, bodies: tuple[str, ...] = ("sedan",), km: float = 20) -> Any:
        return problem.TripIn(
            i, here, (22.85, 108.40), o + timedelta(hours=h), o + timedelta(hours=h + 2),
            True, 2, bodies, "normal", km, f"t{i}",
        )  # fmt: skip

    def veh(i: int, body: str = "sedan", energy: str = "ice", rng: int | None = None,
            busy: tuple[tuple[int, datetime, datetime], ...] = ()) -> Any:  # fmt: skip
        seats = 30 if body == "bus" else 5
        return problem.VehicleIn(i, f"P{i}", 1, here, seats, body, energy, rng, busy)

    booked = ((77, o + timedelta(hours=1), o + timedelta(hours=5)),)
    snap = problem.build_snapshot(
        [trip(1, 2), trip(2, 2, ("bus",)), trip(3, 9, km=300)],
        [veh(10, busy=booked), veh(11), veh(12, "bus"), veh(13, energy="bev", rng=100)],
        [
            problem.DriverIn(20, "busy", 1, "C1", frozenset({77})),
            problem.DriverIn(21, "c1", 1, "C1", frozenset()),
            problem.DriverIn(22, "a1", 1, "A1", frozenset()),
            problem.DriverIn(23, "other", 1, "C1", frozenset({99})),  # booked elsewhere
            problem.DriverIn(24, "c1b", 1, "C1", frozenset()),
        ],
        window_start=o,
        window_end=o + timedelta(days=1),
        late_slack_min=10,
    )
    pairs = {v["vehicle_id"]: v["driver_id"] for v in snap["vehicles"]}
    assert pairs[12] == 22  # only the A1 driver may drive the bus
    assert pairs[10] == 20  # a driver's own bookings must lie within the vehicle's
    assert 23 not in pairs.values()
    prob = problem.to_problem(snap)
    assert [len(v.committed) for v in prob.vehicles if v.id == "v10"] == [2]

    plan = problem.solve_snapshot(snap, 1.0)
    got = {i["trip_id"]: i["vehicle_id"] for i in plan["items"]}
    assert got[1] == 11  # v10 is booked 01:00-05:00
    assert got[2] == 12
    assert got.get(3) != 13  # 300 km is beyond the BEV's 100 km
    assert 3 in got or any(u["trip_id"] == 3 for u in plan["unserved"])


def test_drivers_of_a_lending_unit_drive_only_its_pooled_cars() -> None:
    """A driver from outside the scope (own_unit_only: their unit lends a pooled car) is
    paired with that unit's car and never with another unit's."""
    here = (22.82, 108.38)

    def veh(i: int, unit: int) -> Any:
        return problem.VehicleIn(i, f"P{i}", unit, here, 5, "sedan", "ice", None, ())

    lender = problem.DriverIn(30, "lender", 2, "C1", frozenset(), own_unit_only=True)
    pairs = problem.pair_drivers([veh(10, 1), veh(11, 2)], [lender])
    assert {v: d.id for v, d in pairs.items()} == {11: 30}
    assert problem.pair_drivers([veh(10, 1)], [lender]) == {}
    local = problem.DriverIn(31, "local", 1, "C1", frozenset())
    pairs = problem.pair_drivers([veh(10, 1), veh(11, 2)], [lender, local])
    assert {v: d.id for v, d in pairs.items()} == {10: 31, 11: 30}


def test_scope_over_several_counties_is_solved_by_county() -> None:
    """Region mode for a multi-county scope: one part per county, a city-pool vehicle shared;
    a county's trips go to its own vehicles. Below the size threshold: one solve."""
    o = datetime(2026, 12, 1, tzinfo=UTC)
    qingxiu, xingning = (22.82, 108.38), (22.87, 108.32)

    def trip(i: int, h: float, here: tuple[float, float], zone: str) -> Any:
        return problem.TripIn(
            i, here, (here[0] + 0.02, here[1] + 0.02), o + timedelta(hours=h),
            o + timedelta(hours=h + 2), True, 2, ("sedan",), "normal", 20, f"t{i}", zone,
        )  # fmt: skip

    def veh(i: int, here: tuple[float, float], zone: str | None) -> Any:
        return problem.VehicleIn(i, f"P{i}", 1, here, 5, "sedan", "ice", None, (), zone)

    trips = [
        trip(1, 1, qingxiu, "450103"),
        trip(2, 5, qingxiu, "450103"),
        trip(3, 1, xingning, "450102"),
        trip(4, 5, xingning, "450102"),
        trip(5, 1, qingxiu, "450103"),
    ]
    snap = problem.build_snapshot(
        trips,
        [veh(10, qingxiu, "450103"), veh(11, xingning, "450102"), veh(12, qingxiu, None)],
        [problem.DriverIn(j, f"D{j}", 1, "C1", frozenset()) for j in (20, 21, 22)],
        window_start=o,
        window_end=o + timedelta(days=1),
        late_slack_min=10,
    )
    assert {r["zone"] for r in snap["requests"]} == {"450103", "450102"}
    by_region = problem.solve_snapshot(snap, 2.0, region_min_requests=1, workers=1)
    assert by_region["stats"]["parts"] == "2"
    got = {i["trip_id"]: i["vehicle_id"] for i in by_region["items"]}
    assert len(got) == 5 and not by_region["unserved"]
    assert got[3] == got[4] == 11  # Xingning's trips on Xingning's car
    assert {got[1], got[5]} == {10, 12}  # two at 01:00 in Qingxiu: its car and the pool's
    whole = problem.solve_snapshot(snap, 1.0)  # 5 requests < REGION_MIN_REQUESTS
    assert "parts" not in whole["stats"] and len(whole["items"]) == 5


async def test_worker_process_reports_progress(engine: AsyncEngine) -> None:
    """`fleet optimizer-worker --once` in its own process: queued -> running (elapsed) -> done.

    No per-test transaction here (the worker writes the audit chain; an open test transaction
    holding chain entries would make it wait): the run is committed and deleted afterwards."""
    o = datetime.now(UTC) + timedelta(days=3)
    here = (22.82, 108.38)
    snap = problem.build_snapshot(
        [
            problem.TripIn(
                i,
                here,
                (22.85, 108.40 + i / 100),
                o + timedelta(hours=i),
                o + timedelta(hours=i + 1),
                i % 2 == 0,
                2,
                ("sedan",),
                "normal",
                20,
                f"t{i}",
            )
            for i in range(1, 7)
        ],
        [problem.VehicleIn(j, f"P{j}", 1, here, 5, "sedan", "ice", None, ()) for j in (1, 2)],
        [problem.DriverIn(j, f"D{j}", 1, "C1", frozenset()) for j in (1, 2)],
        window_start=o,
        window_end=o + timedelta(days=1),
        late_slack_min=10,
    )
    async with engine.connect() as conn:
        rid = await conn.scalar(
            text(
                "INSERT INTO optimizer_runs (org_id, created_by, window_start, window_end,"
                " time_limit_s, problem) SELECT o.id, u.id, :s, :e, 2, CAST(:p AS jsonb)"
                " FROM orgs o, users u WHERE o.code = '450103'"
                " AND u.username = 'dispatcher.qingxiu' RETURNING id"
            ),
            {
                "s": o,
                "e": o + timedelta(days=1),
                "p": orjson.dumps(snap).decode(),
            },
        )
        await conn.commit()
    proc = await asyncio.create_subprocess_exec(
        str(Path(sys.executable).parent / "fleet"),
        "optimizer-worker",
        "--once",
        "--poll",
        "0.5",
        cwd=ROOT,
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.PIPE,
    )
    seen: list[tuple[str, dict[str, Any]]] = []
    proposal: dict[str, Any] = {}
    try:
        deadline = time.monotonic() + 45
        while time.monotonic() < deadline:
            async with engine.connect() as conn:
                row = (
                    await conn.execute(
                        text("SELECT state, progress, proposal FROM optimizer_runs WHERE id = :i"),
                        {"i": rid},
                    )
                ).one()
            state: str = row[0]
            progress: dict[str, Any] = row[1]
            proposal = row[2] or {}
            if not seen or seen[-1][0] != state or state == "running":
                seen.append((state, progress))
            if state in ("done", "failed"):
                break
            await asyncio.sleep(0.2)
        _, err = await asyncio.wait_for(proc.communicate(), timeout=30)
        assert proc.returncode == 0, err.decode()[-2000:]
    finally:
        if proc.returncode is None:
            proc.kill()
            await asyncio.wait_for(proc.wait(), timeout=10)
        async with engine.connect() as conn:
            await conn.execute(text("DELETE FROM optimizer_runs WHERE id = :i"), {"i": rid})
            await conn.commit()
    states = [s for s, _ in seen]
    assert states[-1] == "done", seen
    running = [p for s, p in seen if s == "running"]
    assert running, seen  # the console saw it running ...
    assert any((p.get("elapsed_s") or 0) > 0 for p in running), running  # ... with progress
    assert proposal["items"] and {i["trip_id"] for i in proposal["items"]} | {
        u["trip_id"] for u in proposal["unserved"]
    } == set(range(1, 7))
