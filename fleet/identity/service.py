"""Identity rules: login, the org tree, users and their role bindings."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Select, or_, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from fleet import audit
from fleet.config import AuthSettings
from fleet.errors import BadCredentials, Conflict, Forbidden, Invalid, NotFound
from fleet.geo import point_from_db, point_to_db
from fleet.identity import schemas
from fleet.identity.models import Org, RoleBinding, User
from fleet.identity.principal import Principal, scope_clause
from fleet.identity.security import hash_password, issue_token, verify_password
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


def me_out(user: User) -> schemas.MeOut:
    return schemas.MeOut(
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
    session: AsyncSession, auth: AuthSettings, body: schemas.LoginIn, *, source: str | None = None
) -> schemas.TokenOut:
    """A token for the right password; audited as `auth.login` (a failure is audited by the
    refusal handler from the BadCredentials error, in its own transaction)."""
    user = (
        await session.execute(select(User).where(User.username == body.username))
    ).scalar_one_or_none()
    # Verify against a dummy hash when the user is unknown so timing does not reveal it.
    ok = verify_password(user.password_hash if user else _DUMMY_HASH, body.password)
    if user is None or not ok or not user.active:
        reason = "unknown_user" if user is None else "wrong_password" if not ok else "disabled"
        raise BadCredentials(body.username, reason=reason)
    await audit.record(
        session, audit.Actor(user.username, user.id), "auth.login", "user", user.id,
        data={"source": source},
    )  # fmt: skip
    token = issue_token(auth, user.id)
    return schemas.TokenOut(
        access_token=token.access_token,
        expires_at=datetime.fromtimestamp(token.expires_at, UTC),
        user=me_out(user),
    )


_DUMMY_HASH = hash_password("not-a-real-password")


async def get_org(session: AsyncSession, org_id: int, *, field: str = "org_id") -> Org:
    org = await session.get(Org, org_id)
    if org is None:
        raise NotFound(f"organisation {org_id} not found", field=field)
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
    org = await get_org(session, org_id, field="id")
    principal.check(ORG_READ, org.path, org.system_path, what="organisation")
    return org


async def create_org(session: AsyncSession, principal: Principal, body: schemas.OrgIn) -> Org:
    parent = await get_org(session, body.parent_id, field="parent_id") if body.parent_id else None
    allowed = _PARENT_KINDS[body.kind]
    if (parent.kind if parent else None) not in allowed:
        raise Invalid(
            f"a {body.kind} cannot be placed under {parent.kind if parent else 'nothing'}",
            field="parent_id",
        )
    if parent is None:
        # Only an admin bound at a root (a path without dots) may create another root.
        if not any("." not in p for p in principal.require(("admin",))):
            raise Forbidden("only a root admin may create a root organisation", field="parent_id")
    else:
        principal.check(("admin",), parent.path, parent.system_path, what="parent organisation")
    system = None
    if body.system_id is not None:
        if body.kind != "unit":
            raise Invalid("only units belong to a vertical system", field="system_id")
        system = await get_org(session, body.system_id, field="system_id")
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
    org = await get_org(session, org_id, field="id")
    principal.check(("admin",), org.path, org.system_path, what="organisation")
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


# ---- users -----------------------------------------------------------------------

USER_ADMIN = ("admin",)


async def user_out(session: AsyncSession, user: User) -> schemas.UserOut:
    await session.refresh(user, ["bindings"])
    return schemas.UserOut(
        id=user.id,
        username=user.username,
        display_name=user.display_name,
        phone=user.phone,
        org_id=user.org_id,
        locale=user.locale,
        active=user.active,
        roles=me_out(user).roles,
    )


async def _check_bindings(
    session: AsyncSession, principal: Principal, bindings: list[schemas.BindingIn]
) -> list[tuple[str, int]]:
    out: list[tuple[str, int]] = []
    for i, b in enumerate(bindings):
        org = await get_org(session, b.org_id, field=f"roles.{i}.org_id")
        # An admin can only grant roles inside their own scope.
        if not principal.covers(USER_ADMIN, org.path, org.system_path):
            raise Forbidden("cannot grant a role outside your scope", field=f"roles.{i}.org_id")
        out.append((b.role, org.id))
    return sorted(set(out))


async def list_users(
    session: AsyncSession,
    principal: Principal,
    *,
    q: str | None,
    org_id: int | None,
    limit: int,
    offset: int,
) -> tuple[list[User], int]:
    paths = principal.require(USER_ADMIN)
    stmt: Select[Any] = (
        select(User).join(Org, Org.id == User.org_id).where(scope_clause(paths, Org.path, None))
    )
    if q:
        stmt = stmt.where(or_(User.username.ilike(f"%{q}%"), User.display_name.ilike(f"%{q}%")))
    if org_id is not None:
        root = await get_org(session, org_id)
        stmt = stmt.where(Org.path.op("<@")(root.path))
    return await fetch_page(session, stmt, User.id, limit=limit, offset=offset)


async def read_user(session: AsyncSession, principal: Principal, user_id: int) -> User:
    user = await session.get(User, user_id)
    if user is None:
        raise NotFound(f"user {user_id} not found", field="id")
    org = await get_org(session, user.org_id)
    principal.check(USER_ADMIN, org.path, None, what="user")
    return user


async def create_user(session: AsyncSession, principal: Principal, body: schemas.UserIn) -> User:
    org = await get_org(session, body.org_id)
    principal.check(USER_ADMIN, org.path, org.system_path, what="organisation")
    bindings = await _check_bindings(session, principal, body.roles)
    if await session.scalar(select(User.id).where(User.username == body.username)):
        raise Conflict(f"username {body.username!r} is taken", field="username")
    user = User(
        username=body.username,
        password_hash=hash_password(body.password),
        display_name=body.display_name,
        phone=body.phone,
        org_id=org.id,
        locale=body.locale,
    )
    user.bindings = [RoleBinding(role=r, org_id=o) for r, o in bindings]
    session.add(user)
    try:
        await session.flush()
    except IntegrityError as exc:
        raise Conflict("user conflicts with an existing one", field="username") from exc
    data = body.model_dump(mode="json", exclude={"password"})
    await audit.record(session, principal.actor, "user.create", "user", user.id, data=data)
    return user


async def update_user(
    session: AsyncSession, principal: Principal, user_id: int, body: schemas.UserPatch
) -> User:
    user = await read_user(session, principal, user_id)
    changes = body.model_dump(exclude_unset=True, mode="json", exclude={"password"})
    for name in ("display_name", "phone", "locale", "active"):
        if name in changes and changes[name] is not None:
            setattr(user, name, changes[name])
    if body.password is not None:
        user.password_hash = hash_password(body.password)
        changes["password"] = "changed"
    if body.roles is not None:
        bindings = await _check_bindings(session, principal, body.roles)
        await session.refresh(user, ["bindings"])
        user.bindings = [RoleBinding(role=r, org_id=o) for r, o in bindings]
    await session.flush()
    await audit.record(session, principal.actor, "user.update", "user", user.id, data=changes)
    return user


async def read_user_self(session: AsyncSession, user_id: int) -> User:
    user = await session.get(User, user_id)
    if user is None:
        raise NotFound("user not found")
    return user
