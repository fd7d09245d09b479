"""Benchmark: what the audit chain's protection costs.

    python -m bench.audit_chain [--entries 200000] [--checkpoints 5000] [--refusals 400] [--drop]

On a throw-away database (``audit_bench``, reused while it holds ``--entries`` entries):
(a) verification — the chain recomputed inside PostgreSQL by ``audit_entry_hash`` (the
baseline: the old ``fleet audit verify``) against ``fleet.audit.verify`` recomputing every
hash in Python, and the full anchored check with ``--checkpoints`` signed checkpoints;
(b) refusals — ``--refusals`` requests without a token to an authenticated route, in process
over ASGI as the runtime role, each audited in its own transaction, against the same with
the refusal budget exhausted (nothing written): the difference is the audit write's cost.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import time
from datetime import UTC, datetime, timedelta

import asyncpg
import httpx

from bench.dbutil import percentile
from fleet.config import get_settings
from fleet.db import database_exists, drop_database, recreate_database

DB = "audit_bench"

_OLD_VERIFY = """
SELECT count(*) FROM (
    SELECT CASE
             WHEN a.id <> coalesce(lag(a.id) OVER w, 0) + 1 THEN 'gap before entry'
             WHEN a.prev_hash IS DISTINCT FROM lag(a.hash) OVER w THEN 'prev_hash mismatch'
             WHEN a.hash <> audit_entry_hash(a.prev_hash, a) THEN 'entry altered'
           END AS problem
    FROM audit_log a WINDOW w AS (ORDER BY a.id)
) s WHERE problem IS NOT NULL
"""


async def build(entries: int) -> None:
    from fleet.cli import migrate

    settings = get_settings()
    await recreate_database(DB)
    await asyncio.to_thread(migrate, settings.db.model_copy(update={"name": DB}))
    conn = await asyncpg.connect(settings.db.dsn(name=DB), command_timeout=None)
    try:
        t = time.perf_counter()
        for lo in range(0, entries, 10_000):
            n = min(10_000, entries - lo)
            await conn.execute(
                "INSERT INTO audit_log (id, at, actor_id, actor, action, entity, entity_id,"
                " from_state, to_state, reason, data, hash)"
                " SELECT 0, now(), 7, 'dispatcher.qingxiu', 'trip.assign', 'trip', g::text,"
                " 'approved', 'assigned', NULL, jsonb_build_object('vehicle_id', g, 'n', g),"
                " '\\x' FROM generate_series($1::int, $2::int) g",
                lo + 1,
                lo + n,
            )
        print(f"wrote {entries:,} entries in {time.perf_counter() - t:.1f} s (runtime role)")
    finally:
        await conn.close()


async def verification(checkpoints: int) -> tuple[int, list[tuple[str, float, int]]]:
    """(entries, [(check, seconds, problems found)])."""
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    from fleet import anchors as A
    from fleet import audit

    conn = await asyncpg.connect(get_settings().db.dsn(name=DB), command_timeout=None)
    try:
        n = await audit.count(conn)
        out: list[tuple[str, float, int]] = []
        t = time.perf_counter()
        problems = int(await conn.fetchval(_OLD_VERIFY))
        out.append(("chain in SQL (old verify, baseline)", time.perf_counter() - t, problems))
        t = time.perf_counter()
        breaks = await audit.verify(conn)
        out.append(("chain recomputed in Python", time.perf_counter() - t, len(breaks)))
        # Checkpoints every n/k entries, as the worker would have signed them.
        key = Ed25519PrivateKey.generate()
        ids = sorted({max(1, n * (i + 1) // checkpoints) for i in range(checkpoints)})
        heads = await audit.hashes_at(conn, ids)
        t0 = datetime(2026, 1, 1, tzinfo=UTC)
        cps = [
            A.sign(key, DB, s, heads[s], t0 + timedelta(seconds=120 * i)) for i, s in enumerate(ids)
        ]
        keys = {A.key_id(key.public_key()): key.public_key()}
        t = time.perf_counter()
        report = await A.verify_report(conn, chain=DB, checkpoints=cps, keys=keys)
        out.append(
            (f"anchored: chain + {len(cps):,} checkpoints", time.perf_counter() - t,
             len(report.problems))
        )  # fmt: skip
        return n, out
    finally:
        await conn.close()


async def refusals(count: int) -> tuple[list[float], list[float]]:
    from fleet.db import make_engine, make_sessionmaker
    from web.app import create_app
    from web.refusals import RefusalBudget

    settings = get_settings().model_copy(deep=True)
    settings.db.name = DB
    engine = make_engine(settings.db, application_name="bench-refusals")
    app = create_app(settings, manage_engine=False)
    app.state.sessionmaker = make_sessionmaker(engine)
    timings: dict[bool, list[float]] = {True: [], False: []}
    try:
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://b") as c:
            for audited in (True, False, True, False):
                # Audited: a budget nothing exhausts; not audited: a budget already spent.
                budget = RefusalBudget(10**9, 10**9) if audited else RefusalBudget(1, 1)
                if not audited:
                    budget.admit("x")
                    budget.per_source = budget.total = 0
                app.state.refusal_budget = budget
                for _ in range(count // 2):
                    t = time.perf_counter()
                    r = await c.get("/api/v1/vehicles")
                    timings[audited].append((time.perf_counter() - t) * 1000)
                    assert r.status_code == 401
    finally:
        await engine.dispose()
    return timings[True], timings[False]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--entries", type=int, default=200_000)
    ap.add_argument("--checkpoints", type=int, default=5_000)
    ap.add_argument("--refusals", type=int, default=400)
    ap.add_argument("--drop", action="store_true", help="drop the database afterwards")
    args = ap.parse_args()
    os.environ.setdefault("FLEET_REDIS__CHANNEL_PREFIX", "fleet-bench-audit")

    async def run() -> None:
        if not await database_exists(DB):
            await build(args.entries)
        else:
            conn = await asyncpg.connect(get_settings().db.dsn(name=DB))
            have = int(await conn.fetchval("SELECT count(*) FROM audit_log"))
            await conn.close()
            if have < args.entries:
                await build(args.entries)
        entries, rows = await verification(args.checkpoints)
        print(f"\n(a) verification of {entries:,} entries, load {os.getloadavg()[0]:.1f}")
        print(f"{'check':<42} {'seconds':>8} {'entries/s':>11} {'problems':>9}")
        for name, secs, probs in rows:
            print(f"{name:<42} {secs:8.2f} {entries / secs:11,.0f} {probs:9}")
        on, off = await refusals(args.refusals)
        print(f"\n(b) {args.refusals} refused requests (401, no token), in process over ASGI")
        print(f"{'':<28} {'p50 ms':>8} {'p95 ms':>8} {'mean ms':>8}")
        for name, xs in (("audited (own transaction)", on), ("not audited (over budget)", off)):
            mean = sum(xs) / len(xs)
            print(f"{name:<28} {percentile(xs, 0.5):8.2f} {percentile(xs, 0.95):8.2f} {mean:8.2f}")
        if args.drop:
            await drop_database(DB)

    asyncio.run(run())


if __name__ == "__main__":
    main()
