"""Identity rules: login, the org tree, loading an org in scope, configuration levels.

Users and their role bindings are in `fleet.identity.users`."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

from sqlalchemy import Select, or_, select
from sqlalchemy.ext.asyncio import AsyncSession

from fleet import audit
from fleet.config import AuthSettings, get_settings
from fleet.errors import BadCredentials, Conflict, Forbidden, Invalid, NotFound
from fleet.geo import point_from_db, point_to_db
from fleet.identity import hashing, lockout, passwords, schemas, sessions
from fleet.identity.models import Org, User
from fleet.identity.passwords import change_required
from fleet.identity.principal import Principal, hidden, scope_clause
from fleet.identity.security import hash_password, issue_token
from fleet.paging import fetch_page

# Which kind of org may hang under which.
_PARENT_KINDS: dict[str, tuple[str | None, ...]] = {
    "region": (None,),
    "city": ("region",),
    "county": ("city",),
    "unit": ("region", "city", "county", "unit"),
    "system": (None, "system"),
}
ORG_READ = ("admin", "dispatcher", "auditor", "approver", "requester", "driver")
ADMIN = ("admin",)


def org_out(org: Org) -> schemas.OrgOut:
    return schemas.OrgOut(
        id=org.id,
        parent_id=org.parent_id,
        kind=org.kind,
        code=org.code,
        name=org.name,
        name_en=org.name_en,
        path=org.path,
        system_id=org.system_id,
        location=point_from_db(org.location),
    )


def me_out(user: User, auth: AuthSettings | None = None) -> schemas.MeOut:
    roles = {b.role for b in user.bindings}
    return schemas.MeOut(
        password_change_required=change_required(auth or get_settings().auth, user, roles),
        id=user.id,
        username=user.username,
        display_name=user.display_name,
        org_id=user.org_id,
        locale=user.locale,
        roles=[
            schemas.BindingOut(role=b.role, org_id=b.org_id, org_name=b.org.name)
            for b in user.bindings
        ],
    )


async def login(
    session: AsyncSession,
    auth: AuthSettings,
    body: schemas.LoginIn,
    *,
    source: str | None = None,
    user_agent: str | None = None,
) -> tuple[schemas.TokenOut, sessions.Opened]:
    """A token and a new server-side session for the right password; audited as
    `auth.login` (a failure is audited by the refusal handler from the BadCredentials error,
    in its own transaction). Locked usernames and throttled sources are refused first (429,
    fleet/identity/lockout.py); a failure is counted and committed before the 401."""
    await lockout.check_source(auth, source)
    await lockout.check_account(session, body.username)
    user = (
        await session.execute(select(User).where(User.username == body.username))
    ).scalar_one_or_none()
    # argon2 may wait for a pool thread (up to hash_wait_s): end the read-only transaction
    # first, so no database connection is held meanwhile (with it held, a burst of 100
    # logins exhausted the connection pool: 500s). Nothing was written; the objects stay
    # loaded (expire_on_commit=False).
    await session.commit()
    # Verify against a dummy hash when the user is unknown so timing does not reveal it; in
    # the hashing pool, never on the event loop (503 auth_busy when the pool is saturated).
    ok = await hashing.verify_password(user.password_hash if user else _DUMMY_HASH, body.password)
    if user is None or not ok or not user.active:
        reason = "unknown_user" if user is None else "wrong_password" if not ok else "disabled"
        # Known and unknown names take the same path: one upsert, one commit.
        await lockout.record_failure(session, auth, body.username, source=source)
        await session.commit()
        await lockout.count_source(auth, source)
        raise BadCredentials(body.username, reason=reason)
    await lockout.clear(session, body.username)
    opened = await sessions.open_session(
        session, auth, user.id, source=source, user_agent=user_agent
    )
    await audit.record(
        session, audit.Actor(user.username, user.id), "auth.login", "user", user.id,
        data={"source": source, "session": str(opened.id)},
    )  # fmt: skip
    return token_out(auth, user, str(opened.id)), opened


async def change_own_password(
    session: AsyncSession,
    auth: AuthSettings,
    principal: Principal,
    body: schemas.PasswordChangeIn,
    *,
    keep: str | None,
) -> User:
    """The caller's new password, checked against the policy and their history; every other
    session of theirs ends (audited `auth.password_changed`)."""
    user = await session.get(User, principal.user_id)
    if user is None:
        raise NotFound("user not found")
    # A stolen access token must not become a way to guess the password: wrong current
    # passwords count toward the same lock as failed logins.
    await lockout.check_account(session, user.username)
    if not await hashing.verify_password(user.password_hash, body.current_password):
        await lockout.record_failure(session, auth, user.username, source=None)
        await session.commit()  # the failure outlives the refusal's rollback
        raise Invalid(
            "the current password is wrong", code="wrong_password", field="current_password"
        )
    passwords.check_strength(body.new_password, user.username, field="new_password")
    await passwords.check_history(session, auth, user, body.new_password, field="new_password")
    await passwords.set_password(session, auth, user, body.new_password, by_owner=True)
    ended = await sessions.end_user_sessions(
        session, user.id, "password", keep=uuid.UUID(keep) if keep else None
    )
    sessions.account_changed(session, user.id, "password")  # other tabs' websockets end
    await session.flush()
    await audit.record(
        session, principal.actor, "auth.password_changed", "user", user.id, data={"ended": ended}
    )
    return user


def token_out(auth: AuthSettings, user: User, sid: str) -> schemas.TokenOut:
    token = issue_token(auth, user.id, sid=sid)
    return schemas.TokenOut(
        access_token=token.access_token,
        expires_at=datetime.fromtimestamp(token.expires_at, UTC),
        session_idle_s=auth.session_idle_s,
        user=me_out(user, auth),
    )


_DUMMY_HASH = hash_password("not-a-real-password")


async def get_org(session: AsyncSession, org_id: int, *, field: str = "org_id") -> Org:
    """The org by id, no scope check: for ids the server itself holds (a vehicle's unit)."""
    org = await session.get(Org, org_id)
    if org is None:
        raise NotFound(f"organisation {org_id} not found", field=field)
    return org


async def load_org(
    session: AsyncSession,
    principal: Principal,
    org_id: int,
    *,
    field: str = "org_id",
    act: tuple[str, ...] | None = None,
) -> Org:
    """An org the caller named, in scope or refused: 403 without the roles of `act`, 404 when
    the caller cannot see it (as for a missing one), 403 when they see it but `act` does not
    reach it. The one check for every org id a request carries."""
    principal.require(act or ORG_READ)
    org = await session.get(Org, org_id)
    if org is None or not principal.covers(ORG_READ, org.path, org.system_path):
        raise hidden("organisation", org_id, field=field)
    if act is not None and not principal.covers(act, org.path, org.system_path):
        raise Forbidden("organisation is outside your scope", code="out_of_scope", field=field)
    return org


async def region_roots(session: AsyncSession) -> list[Org]:
    """The region org(s): what configuration without an org (`org_id` NULL) belongs to."""
    rows = await session.execute(select(Org).where(Org.kind == "region", Org.parent_id.is_(None)))
    return list(rows.scalars())


async def require_config_level(
    session: AsyncSession, principal: Principal, org: Org | None, *, field: str | None = "org_id"
) -> None:
    """Configuration (standards, approval chains) belongs to an org — None: the whole region —
    and only an admin bound at that org or above changes it (403 `config_level`)."""
    principal.require(ADMIN)
    owners = [org] if org is not None else await region_roots(session)
    if not owners or not all(principal.covers(ADMIN, o.path) for o in owners):
        where = org.name if org is not None else "the region"
        raise Forbidden(
            f"this configuration belongs to {where}; only an administrator bound there or "
            "above may change it",
            code="config_level",
            field=field,
        )


async def config_org(
    session: AsyncSession, principal: Principal, org_id: int | None, *, field: str = "org_id"
) -> Org | None:
    """The org a new or moved piece of configuration is to belong to, checked as above."""
    principal.require(ADMIN)
    org = None if org_id is None else await load_org(session, principal, org_id, field=field)
    await require_config_level(session, principal, org, field=field)
    return org


def _org_query(principal: Principal) -> Select[Org]:
    paths = principal.require(ORG_READ)
    return select(Org).where(scope_clause(paths, Org.path, Org.system_path))


async def list_orgs(
    session: AsyncSession,
    principal: Principal,
    *,
    kind: str | None,
    parent_id: int | None,
    under: int | None,
    q: str | None,
    limit: int,
    offset: int,
) -> tuple[list[Org], int]:
    stmt = _org_query(principal)
    if kind:
        stmt = stmt.where(Org.kind == kind)
    if parent_id is not None:
        stmt = stmt.where(Org.parent_id == parent_id)
    if under is not None:
        root = await get_org(session, under, field="under")
        stmt = stmt.where(Org.path.op("<@")(root.path))
    if q:
        like = f"%{q}%"
        stmt = stmt.where(or_(Org.name.ilike(like), Org.code.ilike(like)))
    return await fetch_page(session, stmt, Org.path, limit=limit, offset=offset)


async def read_org(session: AsyncSession, principal: Principal, org_id: int) -> Org:
    return await load_org(session, principal, org_id, field="id")


async def create_org(session: AsyncSession, principal: Principal, body: schemas.OrgIn) -> Org:
    principal.require(ADMIN)
    parent = None
    if body.parent_id is not None:
        parent = await load_org(session, principal, body.parent_id, field="parent_id", act=ADMIN)
    allowed = _PARENT_KINDS[body.kind]
    if (parent.kind if parent else None) not in allowed:
        raise Invalid(
            f"a {body.kind} cannot be placed under {parent.kind if parent else 'nothing'}",
            field="parent_id",
        )
    # Only an admin bound at a root (a path without dots) may create another root.
    if parent is None and not any("." not in p for p in principal.require(ADMIN)):
        raise Forbidden("only a root admin may create a root organisation", field="parent_id")
    system = None
    if body.system_id is not None:
        if body.kind != "unit":
            raise Invalid("only units belong to a vertical system", field="system_id")
        # Joining a vertical system opens the unit to that system's staff: the caller must
        # administer the system too, not only the unit's territory.
        system = await load_org(session, principal, body.system_id, field="system_id", act=ADMIN)
        if system.kind != "system":
            raise Invalid("system_id must name an organisation of kind 'system'", field="system_id")
    if await session.scalar(select(Org.id).where(Org.code == body.code)):
        raise Conflict(f"organisation code {body.code!r} already exists", field="code")
    org = Org(
        kind=body.kind,
        code=body.code,
        name=body.name,
        name_en=body.name_en,
        parent_id=parent.id if parent else None,
        system_id=system.id if system else None,
        system_path=system.path if system else None,
        location=point_to_db(body.location.lat, body.location.lon) if body.location else None,
        path="0",  # placeholder until the id is known
    )
    session.add(org)
    await session.flush()
    org.path = f"{parent.path}.{org.id}" if parent else str(org.id)
    await session.flush()
    await audit.record(
        session, principal.actor, "org.create", "org", org.id, data=body.model_dump(mode="json")
    )
    return org


async def update_org(
    session: AsyncSession, principal: Principal, org_id: int, body: schemas.OrgPatch
) -> Org:
    org = await load_org(session, principal, org_id, field="id", act=ADMIN)
    changes = body.model_dump(exclude_unset=True, mode="json")
    if "name" in changes and changes["name"] is not None:
        org.name = changes["name"]
    if "name_en" in changes:
        org.name_en = changes["name_en"]
    if body.location is not None:
        org.location = point_to_db(body.location.lat, body.location.lon)
    await session.flush()
    await audit.record(session, principal.actor, "org.update", "org", org.id, data=changes)
    return org
