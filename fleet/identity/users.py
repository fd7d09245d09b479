"""User rules: who may see and change which user, role bindings, and the admin guards.

A user is visible to admins whose scope holds the user's org; changing one also needs every
role the user holds inside the caller's scope. No admin removes their own admin binding or
deactivates themselves, and a region keeps at least one active admin.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import Select, func, or_, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from fleet import audit
from fleet.config import get_settings
from fleet.errors import Conflict, Forbidden, NotFound
from fleet.identity import lockout, passwords, schemas, sessions
from fleet.identity.models import AuthSession, Org, RoleBinding, User
from fleet.identity.principal import Principal, hidden, scope_clause
from fleet.identity.service import get_org, load_org, me_out
from fleet.identity.sessions import account_changed
from fleet.paging import fetch_page

USER_ADMIN = ("admin",)
# Who unlocks accounts and ends other users' sessions: the security administrator. Until the
# separation of duties (issue 11 item 4) this is whoever manages users; it is this one name.
SECURITY_ADMIN = USER_ADMIN


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
    """An admin grants roles only on orgs inside their own scope."""
    out: list[tuple[str, int]] = []
    for i, b in enumerate(bindings):
        org = await load_org(
            session, principal, b.org_id, field=f"roles.{i}.org_id", act=USER_ADMIN
        )
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
        select(User)
        .join(Org, Org.id == User.org_id)
        .where(scope_clause(paths, Org.path, Org.system_path))
    )
    if q:
        stmt = stmt.where(or_(User.username.ilike(f"%{q}%"), User.display_name.ilike(f"%{q}%")))
    if org_id is not None:
        root = await get_org(session, org_id)
        stmt = stmt.where(Org.path.op("<@")(root.path))
    return await fetch_page(session, stmt, User.id, limit=limit, offset=offset)


async def load_user(
    session: AsyncSession,
    principal: Principal,
    user_id: int,
    *,
    roles: tuple[str, ...] = USER_ADMIN,
    field: str = "id",
) -> User:
    """A user whose org lies in the scope of `roles`; anyone else is answered as missing."""
    principal.require(roles)
    user = await session.get(User, user_id)
    org = await session.get(Org, user.org_id) if user is not None else None
    if user is None or org is None or not principal.covers(roles, org.path, org.system_path):
        raise hidden("user", user_id, field=field)
    return user


async def read_user(session: AsyncSession, principal: Principal, user_id: int) -> User:
    return await load_user(session, principal, user_id)


async def _manageable_user(session: AsyncSession, principal: Principal, user_id: int) -> User:
    """A user the caller may change: visible, and every role they hold inside the caller's
    scope (resetting the password of someone bound higher up would hand over that binding)."""
    user = await load_user(session, principal, user_id)
    await session.refresh(user, ["bindings"])
    for b in user.bindings:
        if not principal.covers(USER_ADMIN, b.org.path, b.org.system_path):
            raise Forbidden(
                "this user holds roles outside your scope; an administrator covering them "
                "must make the change",
                code="out_of_scope",
                field="id",
            )
    return user


async def create_user(session: AsyncSession, principal: Principal, body: schemas.UserIn) -> User:
    org = await load_org(session, principal, body.org_id, act=USER_ADMIN)
    bindings = await _check_bindings(session, principal, body.roles)
    if await session.scalar(select(User.id).where(User.username == body.username)):
        raise Conflict(f"username {body.username!r} is taken", field="username")
    passwords.check_strength(body.password, body.username)
    user = User(
        username=body.username,
        display_name=body.display_name,
        phone=body.phone,
        org_id=org.id,
        locale=body.locale,
    )
    # Set by an administrator: to be changed at the first login.
    await passwords.set_password(session, get_settings().auth, user, body.password, by_owner=False)
    user.bindings = [RoleBinding(role=r, org_id=o) for r, o in bindings]
    session.add(user)
    try:
        await session.flush()
    except IntegrityError as exc:
        raise Conflict("user conflicts with an existing one", field="username") from exc
    data = body.model_dump(mode="json", exclude={"password"})
    await audit.record(session, principal.actor, "user.create", "user", user.id, data=data)
    return user


async def _guard_admins(
    session: AsyncSession,
    principal: Principal,
    user: User,
    *,
    active: bool,
    bindings: list[tuple[str, int]] | None,
) -> None:
    """No admin locks themselves out, and a region keeps at least one active admin."""
    held = {(b.role, b.org_id) for b in user.bindings if b.role == "admin"}
    kept = held if bindings is None else held & set(bindings)
    if not active:
        kept = set()
    if user.id == principal.user_id:
        if not active:
            raise Forbidden("you cannot deactivate your own account", code="own_account")
        if kept != held:
            raise Forbidden(
                "you cannot remove your own administrator role",
                code="own_admin_role",
                field="roles",
            )
    for _, org_id in sorted(held - kept):
        org = await session.get(Org, org_id)
        if org is None or org.kind != "region":
            continue
        others = await session.scalar(
            select(func.count())
            .select_from(RoleBinding)
            .join(User, User.id == RoleBinding.user_id)
            .where(
                RoleBinding.role == "admin",
                RoleBinding.org_id == org_id,
                User.active,
                User.id != user.id,
            )
        )
        if not others:
            raise Conflict(
                f"the last active administrator of {org.name} cannot be removed",
                code="last_admin",
                field="roles" if active else "active",
            )


async def update_user(
    session: AsyncSession, principal: Principal, user_id: int, body: schemas.UserPatch
) -> User:
    user = await _manageable_user(session, principal, user_id)
    bindings = None
    if body.roles is not None:
        bindings = await _check_bindings(session, principal, body.roles)
    active = user.active if body.active is None else body.active
    await _guard_admins(session, principal, user, active=active, bindings=bindings)
    changes = body.model_dump(exclude_unset=True, mode="json", exclude={"password"})
    was_active = user.active
    for name in ("display_name", "phone", "locale", "active"):
        if name in changes and changes[name] is not None:
            setattr(user, name, changes[name])
    # Each change below ends the user's sessions at once, and ends (or re-scopes) their open
    # websockets on every API process once this commits (fleet/identity/sessions.py).
    auth = get_settings().auth
    if was_active and not user.active:
        account_changed(session, user.id, "deactivated")
        await sessions.end_user_sessions(session, user.id, "deactivated")
    if body.password is not None:
        passwords.check_strength(body.password, user.username)
        await passwords.check_history(session, auth, user, body.password, field="password")
        # A reset by someone else: the user must change it at their next login.
        by_owner = user.id == principal.user_id
        await passwords.set_password(session, auth, user, body.password, by_owner=by_owner)
        changes["password"] = "changed"
        account_changed(session, user.id, "password")
        await sessions.end_user_sessions(session, user.id, "password")
    if bindings is not None and sorted((b.role, b.org_id) for b in user.bindings) != bindings:
        account_changed(session, user.id, "roles")
        await sessions.end_user_sessions(session, user.id, "roles")
    if bindings is not None:
        # Keep the rows of bindings that stay (replacing them would insert a duplicate of
        # (user, role, org) before the old row is deleted).
        kept = [b for b in user.bindings if (b.role, b.org_id) in set(bindings)]
        have = {(b.role, b.org_id) for b in kept}
        user.bindings = kept + [
            RoleBinding(role=r, org_id=o) for r, o in bindings if (r, o) not in have
        ]
    await session.flush()
    await audit.record(session, principal.actor, "user.update", "user", user.id, data=changes)
    return user


async def read_user_self(session: AsyncSession, user_id: int) -> User:
    user = await session.get(User, user_id)
    if user is None:
        raise NotFound("user not found")
    return user


async def unlock_user(session: AsyncSession, principal: Principal, user_id: int) -> bool:
    """Clear a user's failed logins and lock (audited `auth.unlock`); True if it was locked."""
    user = await load_user(session, principal, user_id, roles=SECURITY_ADMIN)
    was_locked = await lockout.clear(session, user.username)
    await audit.record(
        session, principal.actor, "auth.unlock", "user", user.id, data={"was_locked": was_locked}
    )
    return was_locked


async def user_sessions(
    session: AsyncSession, principal: Principal, user_id: int
) -> list[AuthSession]:
    user = await load_user(session, principal, user_id, roles=SECURITY_ADMIN)
    return await sessions.open_sessions(session, get_settings().auth, user.id)


async def end_sessions_of(session: AsyncSession, principal: Principal, user_id: int) -> int:
    """A security administrator ends every session of a user (audited `auth.sessions_ended`)."""
    user = await load_user(session, principal, user_id, roles=SECURITY_ADMIN)
    n = await sessions.end_user_sessions(session, user.id, "ended_by_admin")
    account_changed(session, user.id, "sessions")  # close their websockets too
    await audit.record(
        session, principal.actor, "auth.sessions_ended", "user", user.id, data={"ended": n}
    )
    return n
