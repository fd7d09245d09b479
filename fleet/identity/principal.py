"""Who is asking, and which org subtrees each of their roles covers."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import ColumnElement, SQLColumnExpression, and_, false, literal, or_
from sqlalchemy.dialects.postgresql import ARRAY

from fleet.audit import Actor
from fleet.errors import Forbidden, NotFound
from fleet.types import Ltree

READ_ROLES = ("admin", "dispatcher", "auditor", "approver")
WRITE_ROLES = ("admin",)


@dataclass(frozen=True)
class Principal:
    user_id: int
    username: str
    org_id: int
    # role -> org paths (ltree text) the role is bound to
    bindings: dict[str, tuple[str, ...]] = field(default_factory=dict)
    # Set when the user must change their password first ("initial" or "expired"): the API
    # then admits only /auth/me, /auth/password and /auth/logout (fleet/deps.py).
    password_change: str | None = None

    @property
    def actor(self) -> Actor:
        return Actor(name=self.username, user_id=self.user_id)

    @property
    def roles(self) -> frozenset[str]:
        return frozenset(self.bindings)

    def has_any(self, roles: Iterable[str]) -> bool:
        return any(r in self.bindings for r in roles)

    def paths(self, roles: Iterable[str]) -> tuple[str, ...]:
        out: list[str] = []
        for r in roles:
            out.extend(self.bindings.get(r, ()))
        return tuple(sorted(set(out)))

    def require(self, roles: Iterable[str]) -> tuple[str, ...]:
        """The paths of the given roles, or 403 when the user holds none of them."""
        roles = tuple(roles)
        paths = self.paths(roles)
        if not paths:
            raise Forbidden(f"requires one of the roles: {', '.join(roles)}", code="role_required")
        return paths

    def covers(self, roles: Iterable[str], path: str, system_path: str | None = None) -> bool:
        """True if an org at `path` (in vertical system `system_path`) is in the roles' scope."""
        for p in self.paths(roles):
            if _under(path, p) or (system_path is not None and _under(system_path, p)):
                return True
        return False

    def check(
        self, roles: Iterable[str], path: str, system_path: str | None = None, *, what: str
    ) -> None:
        roles = tuple(roles)
        self.require(roles)
        if not self.covers(roles, path, system_path):
            raise Forbidden(f"{what} is outside your scope", code="out_of_scope")


def hidden(what: str, ident: object, *, field: str) -> NotFound:
    """The answer for an object the caller may not see: exactly the answer for one that does
    not exist (404 `not_found`, same message and field), so existence is never an oracle.

    The policy (docs/architecture.md, "Who sees what"): role first (403 `role_required`
    before any lookup), then visibility (404 for what the caller cannot see), then the
    right to act on what they can see (403 `out_of_scope` or a specific code), then state
    (409). Every "load X in scope or refuse" function raises this for the invisible case.
    """
    return NotFound(f"{what} {ident} not found", field=field)


def _under(path: str, ancestor: str) -> bool:
    return path == ancestor or path.startswith(ancestor + ".")


def territory_of(unit_path: str) -> str:
    """The territory a unit belongs to: its county, else its city, else the region (a path).

    In-county trips stay in it (approval kind), and the people linked to a unit's objects —
    a trip's passengers, a driver's login — are users of it."""
    parts = unit_path.split(".")
    return ".".join(parts[: min(3, len(parts) - 1)]) if len(parts) > 1 else unit_path


def under(path: str, ancestor: str) -> bool:
    """True if `path` is `ancestor` or lies below it (ltree `<@` in Python)."""
    return _under(path, ancestor)


def ltree_array(paths: tuple[str, ...]) -> ColumnElement[list[str]]:
    return literal(list(paths), ARRAY(Ltree()))


def scope_clause(
    paths: tuple[str, ...],
    org_path: SQLColumnExpression[Any],
    system_path: SQLColumnExpression[Any] | None,
) -> ColumnElement[bool]:
    """SQL: the org at org_path (or its vertical system) lies under one of paths."""
    if not paths:
        return false()
    arr = ltree_array(paths)
    clause: ColumnElement[bool] = org_path.op("<@")(arr)
    if system_path is not None:
        clause = or_(clause, and_(system_path.is_not(None), system_path.op("<@")(arr)))
    return clause
