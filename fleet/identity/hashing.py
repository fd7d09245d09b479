"""Password hashing off the event loop: argon2id in a small thread pool, bounded.

One argon2 verify with argon2-cffi's defaults (64 MiB, 3 passes, 4 lanes) takes ~100 ms of
wall time and ~150 ms of CPU on this project's 2-core machine. Run on the event loop, 20
parallel logins stalled every request of the process for about 2 s. argon2-cffi releases the
GIL while it hashes, so threads are enough:

- ``FLEET_AUTH__HASH_WORKERS`` threads (default 2: more only adds memory on two cores) hash
  at once, at ``FLEET_AUTH__HASH_NICE`` (default +10), so the event loop and the other
  processes of the box (the ingest) keep the CPU they need while a burst of logins takes
  what is left: on the shared 2-core box `/health` p99 during bursts of 20 logins was
  27–45 ms at nice 10 against 77–95 ms at nice 0, for ~30 % fewer logins per second
  (bench/login_burst.py, docs/benchmarks.md);
- up to ``FLEET_AUTH__HASH_QUEUE`` further requests wait for a thread, each at most
  ``FLEET_AUTH__HASH_WAIT_S``; past either bound the request is refused at once with
  **503 ``auth_busy``** and ``Retry-After`` rather than queued without limit (each hash in
  flight holds 64 MiB, and a client that waited 10 s has usually given up). 503, not 429:
  the server is saturated, not this client misbehaving (per-client throttling is issue 11's);
- a waiter whose client went away leaves the queue without hashing; a hash already running
  finishes in its thread and only then frees its slot, so the bound holds.

``hash_workers = 0`` hashes inline on the event loop: the old behaviour, kept only as the
baseline of bench/login_burst.py.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import TypeVar

from fleet.config import AuthSettings, get_settings
from fleet.errors import Busy
from fleet.identity import security

T = TypeVar("T")
RETRY_AFTER_S = 1


def _lower_priority(nice: int) -> None:
    # On Linux the nice value is per thread; the threads libargon2 starts for its lanes inherit it.
    with contextlib.suppress(AttributeError, OSError):
        os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), nice)


@dataclass
class PoolStats:
    verifies: int = 0
    hashes: int = 0
    refused: int = 0


class PasswordPool:
    """argon2 in `workers` threads with at most `queue` waiters (0 workers: inline)."""

    def __init__(self, workers: int, queue: int, wait_s: float, nice: int = 10) -> None:
        self.workers = workers
        self.queue = queue
        self.wait_s = wait_s
        self.waiting = 0
        self.stats = PoolStats()
        self._executor = (
            ThreadPoolExecutor(
                workers,
                thread_name_prefix="argon2",
                initializer=_lower_priority,
                initargs=(nice,),
            )
            if workers > 0
            else None
        )
        self._slots: dict[int, asyncio.Semaphore] = {}  # per event loop (tests run several)

    @classmethod
    def from_settings(cls, auth: AuthSettings) -> PasswordPool:
        return cls(auth.hash_workers, auth.hash_queue, auth.hash_wait_s, auth.hash_nice)

    def _slot(self) -> asyncio.Semaphore:
        key = id(asyncio.get_running_loop())
        sem = self._slots.get(key)
        if sem is None:
            sem = self._slots[key] = asyncio.Semaphore(self.workers)
        return sem

    def _busy(self) -> Busy:
        self.stats.refused += 1
        return Busy(
            "too many logins at once; retry in a moment",
            code="auth_busy",
            retry_after_s=RETRY_AFTER_S,
        )

    async def _run(self, fn: Callable[..., T], *args: str) -> T:
        if self._executor is None:
            return fn(*args)
        slot = self._slot()
        if slot.locked() and self.waiting >= self.queue:
            raise self._busy()
        self.waiting += 1
        try:
            await asyncio.wait_for(slot.acquire(), self.wait_s)
        except TimeoutError:
            raise self._busy() from None
        finally:
            self.waiting -= 1
        try:
            done = asyncio.get_running_loop().run_in_executor(self._executor, fn, *args)
        except BaseException:
            slot.release()
            raise
        # The slot is freed when the thread is done, even if this request is cancelled first.
        done.add_done_callback(lambda _: slot.release())
        return await asyncio.shield(done)

    async def verify(self, password_hash: str, password: str) -> bool:
        self.stats.verifies += 1
        return await self._run(security.verify_password, password_hash, password)

    async def hash(self, password: str) -> str:
        self.stats.hashes += 1
        return await self._run(security.hash_password, password)

    def close(self) -> None:
        if self._executor is not None:
            self._executor.shutdown(wait=False, cancel_futures=True)


_pool: PasswordPool | None = None


def pool() -> PasswordPool:
    """The process's pool, built from the settings on first use."""
    global _pool
    if _pool is None:
        _pool = PasswordPool.from_settings(get_settings().auth)
    return _pool


async def verify_password(password_hash: str, password: str) -> bool:
    """argon2 verify in the pool (raises Busy when the pool is saturated)."""
    return await pool().verify(password_hash, password)


async def hash_password(password: str) -> str:
    """argon2id hash in the pool (raises Busy when the pool is saturated)."""
    return await pool().hash(password)
