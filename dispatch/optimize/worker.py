"""The auto-assign worker: claims queued runs, solves them in a child process, stores proposals.

The API only writes a queued `optimizer_runs` row; this process (`fleet optimizer-worker`,
started by `fleet demo`) polls the table, claims a run with `FOR UPDATE SKIP LOCKED` (start
several workers for parallel runs), hands the JSON snapshot to a `ProcessPoolExecutor` child
(OR-Tools never runs on an event loop), writes a heartbeat with the elapsed time every
second, and stores the proposal (or the error). A run whose worker went silent is claimed
again, at most 3 times.
"""

from __future__ import annotations

import asyncio
import contextlib
import multiprocessing
import os
import signal
import socket
import time
from collections.abc import Callable
from concurrent.futures import Executor, ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from contextlib import AbstractAsyncContextManager
from datetime import UTC, datetime
from typing import Annotated, Any

import typer
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession

from dispatch.optimize.problem import solve_snapshot

Sessions = Callable[[], AbstractAsyncContextManager[AsyncSession]]
MAX_ATTEMPTS = 3

_CLAIM = text(
    """
    UPDATE optimizer_runs r
       SET state = CASE WHEN r.attempts >= :max_attempts THEN 'failed' ELSE 'running' END,
           error = CASE WHEN r.attempts >= :max_attempts
                        THEN 'gave up after ' || r.attempts || ' attempts (worker lost)' END,
           attempts = r.attempts + 1, worker = :worker, started_at = now(),
           heartbeat_at = now(), updated_at = now(),
           progress = jsonb_build_object('phase', 'starting', 'elapsed_s', 0,
                                         'time_limit_s', r.time_limit_s)
     WHERE r.id = (SELECT id FROM optimizer_runs
                    WHERE state = 'queued'
                       OR (state = 'running'
                           AND heartbeat_at < now() - make_interval(secs => :stale_s))
                    ORDER BY id FOR UPDATE SKIP LOCKED LIMIT 1)
    RETURNING r.id, r.state, r.problem, r.time_limit_s, r.seed
    """
)
_BEAT = text(
    "UPDATE optimizer_runs SET heartbeat_at = now(), updated_at = now(),"
    " progress = progress || CAST(:progress AS jsonb)"
    " WHERE id = :id AND state = 'running' AND worker = :worker"
)
_FINISH = text(
    "UPDATE optimizer_runs SET state = :state, proposal = CAST(:proposal AS jsonb), error = :error,"
    " finished_at = now(), heartbeat_at = now(), updated_at = now(),"
    " progress = progress || CAST(:progress AS jsonb)"
    " WHERE id = :id AND state = 'running' AND worker = :worker"
)


def worker_name() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"


def _warm() -> None:
    import optimizer  # noqa: F401  (OR-Tools and VROOM load once, before the first run)


def make_executor(processes: int = 1, *, warm: bool = False) -> ProcessPoolExecutor:
    """Child processes for the solver; spawned, so no event loop or DB socket is inherited.

    `warm` starts the children and imports the optimizer now (about 5 s here), so the first
    run does not pay for it."""
    spawn = multiprocessing.get_context("spawn")
    pool = ProcessPoolExecutor(max_workers=processes, mp_context=spawn)
    if warm:
        for _ in range(processes):
            pool.submit(_warm)
    return pool


def _json(value: Any) -> str:
    import orjson

    return orjson.dumps(value).decode()


async def run_next(
    sessions: Sessions,
    executor: Executor,
    *,
    worker: str,
    heartbeat_s: float = 1.0,
    stale_s: float = 60.0,
    hard_limit_s: float | None = None,
) -> int | None:
    """Claim one run and solve it; returns its id, or None when nothing was waiting.

    A solve still running after `hard_limit_s` (default: twice its time limit plus a
    minute) is stopped — the executor's child processes are terminated — and the run
    fails with that reason instead of heartbeating forever; `PoolKilled` then tells the
    caller to replace the executor."""
    from fleet.audit import Actor, record
    from fleet.logging import get_logger

    log = get_logger("dispatch.optimize.worker")
    async with sessions() as session:
        row = (
            await session.execute(
                _CLAIM, {"worker": worker, "stale_s": stale_s, "max_attempts": MAX_ATTEMPTS}
            )
        ).one_or_none()
    if row is None:
        return None
    run_id: int = row[0]
    state: str = row[1]
    snapshot: dict[str, Any] = row[2]
    time_limit: float = row[3]
    seed: int = row[4]
    if state == "failed":
        log.error("optimizer.run_abandoned", run=run_id)
        return run_id
    log.info("optimizer.run_started", run=run_id, requests=len(snapshot["requests"]))
    loop = asyncio.get_running_loop()
    started = time.monotonic()
    future = loop.run_in_executor(executor, solve_snapshot, snapshot, time_limit, seed)
    hard = hard_limit_s if hard_limit_s is not None else 2 * time_limit + 60.0
    killed = False
    while True:
        done, _ = await asyncio.wait({future}, timeout=heartbeat_s)
        if done:
            break
        if time.monotonic() - started > hard:
            await asyncio.to_thread(_terminate_children, executor)
            future.cancel()
            killed = True
            break
        progress = {"phase": "solving", "elapsed_s": round(time.monotonic() - started, 1)}
        async with sessions() as session:
            await session.execute(
                _BEAT, {"id": run_id, "worker": worker, "progress": _json(progress)}
            )
    elapsed = round(time.monotonic() - started, 2)
    try:
        if killed:
            raise SolveOverrun(
                f"the solve overran its {time_limit:g} s limit and was stopped after"
                f" {elapsed:.0f} s; try a smaller scope or a shorter window"
            )
        proposal = future.result()
        state, error = "done", None
    except BrokenProcessPool:
        raise  # the caller replaces the pool; the run is claimed again once stale
    except Exception as exc:  # a failed solve is reported on the run, the worker carries on
        proposal, state, error = None, "failed", f"{type(exc).__name__}: {exc}"[:2000]
    progress = {"phase": state, "elapsed_s": elapsed}
    if proposal is not None and proposal.get("objective") is not None:
        progress["best_objective"] = proposal["objective"]
    async with sessions() as session:
        stored = await session.execute(
            _FINISH,
            {
                "id": run_id,
                "worker": worker,
                "state": state,
                "proposal": _json(proposal) if proposal is not None else None,
                "error": error,
                "progress": _json(progress),
            },
        )
        if stored.rowcount:  # type: ignore[attr-defined]
            await record(
                session,
                Actor(name="optimizer-worker"),
                "optimizer.proposal_solved",
                "optimizer_run",
                run_id,
                from_state="running",
                to_state=state,
                data={
                    "elapsed_s": elapsed,
                    "items": len(proposal["items"]) if proposal else 0,
                    "unserved": len(proposal["unserved"]) if proposal else 0,
                    "error": error,
                },
            )
    log.info("optimizer.run_finished", run=run_id, state=state, elapsed_s=elapsed)
    if killed:
        log.error("optimizer.solve_killed", run=run_id, elapsed_s=elapsed, hard_limit_s=hard)
        raise PoolKilled(f"run {run_id}: solver process terminated after {elapsed:.0f} s")
    return run_id


class SolveOverrun(Exception):
    """A solve ran far past its time limit and was stopped."""


class PoolKilled(BrokenProcessPool):
    """The executor's children were terminated (a run overran); replace the executor."""


def _terminate_children(executor: Executor, grace_s: float = 5.0) -> None:
    """Stop a runaway solve: OR-Tools cannot be interrupted from outside its process.

    SIGTERM first; a child still there after `grace_s` (busy starting, or a handler that
    swallows the signal) gets SIGKILL. Runs in a thread: joining blocks."""
    processes = list((getattr(executor, "_processes", None) or {}).values())
    for proc in processes:
        with contextlib.suppress(Exception):
            proc.terminate()
    deadline = time.monotonic() + grace_s
    for proc in processes:
        with contextlib.suppress(Exception):
            proc.join(max(0.0, deadline - time.monotonic()))
            if proc.exitcode is None and _pid_alive(proc.pid):
                proc.kill()


def _pid_alive(pid: int | None) -> bool:
    """True while `pid` runs (a zombie, or a pid another thread already reaped, is not)."""
    if pid is None:
        return False
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except (OSError, IndexError):
        return False


async def run_worker(poll_s: float, once: bool, processes: int = 1) -> None:
    """Poll for queued runs until SIGINT/SIGTERM (or, with `once`, until none is waiting)."""
    from fleet.config import get_settings
    from fleet.db import make_engine, make_sessionmaker, unit_of_work
    from fleet.logging import configure, get_logger

    configure()
    log = get_logger("dispatch.optimize.worker")
    engine = make_engine(get_settings().db, application_name="optimizer-worker")
    factory = make_sessionmaker(engine)
    name = worker_name()
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    executor = make_executor(processes, warm=True)
    log.info("optimizer.worker_started", worker=name, processes=processes)
    try:
        while not stop.is_set():
            try:
                ran = await run_next(lambda: unit_of_work(factory), executor, worker=name)
            except BrokenProcessPool as exc:
                log.error("optimizer.pool_broken", error=str(exc))
                executor.shutdown(wait=False, cancel_futures=True)
                executor = make_executor(processes, warm=True)
                ran = None
            except Exception as exc:  # a database hiccup must not end the worker
                log.error("optimizer.round_failed", error=repr(exc))
                ran = None
            if ran is not None:
                continue
            if once:
                break
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), timeout=poll_s)
    finally:
        executor.shutdown(wait=False, cancel_futures=True)
        await engine.dispose()
        log.info("optimizer.worker_stopped", worker=name, at=datetime.now(UTC).isoformat())


def optimizer_worker(
    poll: Annotated[
        float, typer.Option(min=0.2, max=60, help="seconds between looks for queued runs")
    ] = 1.0,
    once: Annotated[
        bool, typer.Option("--once", help="solve what is queued now, then exit")
    ] = False,
) -> None:
    """Solve auto-assign proposals (POST /api/v1/dispatch/proposals) one at a time in a
    child process, reporting progress on each run; a run whose worker died is picked up
    again. Start several workers to solve several runs at once."""
    asyncio.run(run_worker(poll, once))
