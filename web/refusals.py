"""Refused requests go into the audit log: failed logins and every 401/403.

`auth.login_failed` names the username attempted, why (unknown user, wrong password,
disabled) and the source address — never the password. `access.denied` names the route
template, the method, the status and error code, the source, and the actor when the token
was good (a 403). The request's own transaction has already rolled back when the error
handler runs, so each entry is written in a short transaction of its own, with a lock
timeout: a refusal is never delayed long by the audit chain's lock, and a failing audit
write never changes the answer (it is logged instead).

A flood of refusals must not become a flood of audit writes (each is one short insert under
the chain's lock, about a millisecond). `RefusalBudget` admits at most
FLEET_AUDIT__REFUSALS_PER_SOURCE_PER_MIN entries per source address and
FLEET_AUDIT__REFUSALS_PER_MIN in all, per API process and minute; the rest are counted and
logged (`audit.refusals_suppressed`), and the next entry written for that source carries
`suppressed_before`. Rate limiting the requests themselves is issue 11's.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from typing import Any

from fastapi import FastAPI, Request
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession

from fleet import audit
from fleet.config import AuditSettings
from fleet.db import unit_of_work
from fleet.errors import BadCredentials
from fleet.logging import get_logger

log = get_logger("web.refusals")

ANONYMOUS = audit.Actor("anonymous")
_MAX_SOURCES = 50_000  # distinct sources tracked per window (memory bound)


class RefusalBudget:
    """Per-minute caps on refusal audit entries, per source and in all (one per process)."""

    def __init__(
        self,
        per_source: int,
        total: int,
        *,
        window_s: float = 60.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.per_source, self.total, self.window_s, self.clock = per_source, total, window_s, clock
        self.started = clock()
        self.counts: dict[str, int] = {}
        self.written = 0
        self.suppressed: dict[str, int] = {}
        self.carried: dict[str, int] = {}

    def _roll(self) -> None:
        now = self.clock()
        if now - self.started < self.window_s:
            return
        if self.suppressed:
            top = sorted(self.suppressed.items(), key=lambda kv: -kv[1])[:5]
            log.warning(
                "audit.refusals_suppressed",
                total=sum(self.suppressed.values()),
                sources=len(self.suppressed),
                top=dict(top),
            )
            for src, n in self.suppressed.items():
                if len(self.carried) < _MAX_SOURCES or src in self.carried:
                    self.carried[src] = self.carried.get(src, 0) + n
        self.started, self.counts, self.written, self.suppressed = now, {}, 0, {}

    def admit(self, source: str) -> tuple[bool, int]:
        """(write an entry?, refusals from this source suppressed earlier to report with it)."""
        self._roll()
        n = self.counts.get(source, 0)
        full = len(self.counts) >= _MAX_SOURCES and source not in self.counts
        if n >= self.per_source or self.written >= self.total or full:
            if source not in self.suppressed and len(self.suppressed) < _MAX_SOURCES:
                log.warning("audit.refusal_cap", source=source, per_source=self.per_source)
            self.suppressed[source] = self.suppressed.get(source, 0) + 1
            return False, 0
        self.counts[source] = n + 1
        self.written += 1
        return True, self.carried.pop(source, 0)


def route_template(request: Request) -> str:
    """The matched route as declared, with the prefix it is mounted under
    (`/api/v1/trips/{trip_id}/approve`): one entry names one operation, whatever the id."""
    path = request.url.path
    route = request.scope.get("route")
    regex = getattr(route, "path_regex", None)
    template = getattr(route, "path", None)
    if regex is None or template is None:
        return path[:200]
    # The route knows only its own part of the path; the router it is included in adds a
    # prefix. Find where its part starts.
    for i, ch in enumerate(path):
        if ch == "/" and regex.match(path[i:]):
            return (path[:i] + str(template))[:200]
    return str(template)[:200]


def install(app: FastAPI, cfg: AuditSettings) -> None:
    app.state.refusal_budget = RefusalBudget(cfg.refusals_per_source_per_min, cfg.refusals_per_min)


@asynccontextmanager
async def _own_transaction(app: FastAPI) -> AsyncIterator[AsyncSession]:
    async with unit_of_work(app.state.sessionmaker) as session:
        # Wait at most 2 s for the chain's lock (held by a transaction that is writing audit
        # entries until it commits); a refusal then answers without its entry. Commit without
        # waiting for the WAL flush: a refusal's entry may be lost in a server crash (the
        # last ~0.6 s), but a flood of refusals does not queue up behind fsync (p50 20 → 8 ms
        # per refusal under load, bench/audit_chain.py).
        await session.execute(
            text(
                "SELECT set_config('lock_timeout', '2s', true),"
                " set_config('synchronous_commit', 'off', true)"
            )
        )
        yield session


def side_transaction(app: FastAPI) -> AbstractAsyncContextManager[AsyncSession]:
    """A transaction of its own (tests may replace it: `app.state.side_transaction`)."""
    override = getattr(app.state, "side_transaction", None)
    return override() if override is not None else _own_transaction(app)


async def audit_refusal(request: Request, status: int, code: str, exc: Exception | None) -> None:
    """Record one refused request, unless over budget; never raises."""
    source = request.client.host if request.client else "unknown"
    budget: RefusalBudget | None = getattr(request.app.state, "refusal_budget", None)
    admitted, suppressed_before = budget.admit(source) if budget else (True, 0)
    if not admitted:
        return
    data: dict[str, Any] = {"source": source}
    if suppressed_before:
        data["suppressed_before"] = suppressed_before
    if isinstance(exc, BadCredentials):
        actor, action, entity, entity_id = ANONYMOUS, "auth.login_failed", "user", exc.username
        data["reason"] = exc.reason
    else:
        principal = getattr(request.state, "principal", None)
        actor = principal.actor if principal is not None else ANONYMOUS
        template = route_template(request)
        action, entity, entity_id = "access.denied", "route", f"{request.method} {template}"
        data.update(status=status, code=code, path=request.url.path[:200])
    try:
        async with side_transaction(request.app) as session:
            await audit.record(session, actor, action, entity, entity_id, data=data)
    except Exception as e:  # the refusal stands whether or not its entry could be written
        log.error("audit.refusal_write_failed", action=action, error=repr(e)[:200])
