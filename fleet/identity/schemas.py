"""Identity edge schemas."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal

from pydantic import Field

from fleet.fields import TEXT, Text
from fleet.schemas import Id, Out, Point, Strict

Name = Annotated[str, Field(min_length=1, max_length=200), TEXT]

Role = Literal["requester", "approver", "dispatcher", "driver", "auditor", "admin"]
OrgKind = Literal["region", "city", "county", "unit", "system"]


USERNAME = r"^[A-Za-z0-9_.-]{3,64}$"
"""What a username may be (the users table checks the same): a login naming anything else is
refused on the field, never looked up (a NUL would reach the database)."""


class LoginIn(Strict):
    username: str = Field(pattern=USERNAME)
    password: str = Field(min_length=1, max_length=256)


class BindingOut(Out):
    role: Role
    org_id: int
    org_name: str


class MeOut(Out):
    id: int
    username: str
    display_name: str
    org_id: int
    locale: str
    roles: list[BindingOut]
    # Set while the user must change their password before anything else.
    password_change_required: Literal["initial", "expired"] | None = None


class TokenOut(Out):
    access_token: str
    token_type: Literal["bearer"] = "bearer"
    expires_at: datetime
    # The session ends after this long without use (the web app signs out after this long
    # without input, so an unattended console does not keep its session alive).
    session_idle_s: int
    user: MeOut


class PasswordChangeIn(Strict):
    current_password: str = Field(min_length=1, max_length=256)
    new_password: str = Field(min_length=1, max_length=256)


class SessionOut(Out):
    id: str
    created_at: datetime
    last_seen_at: datetime
    expires_at: datetime
    source: str | None
    user_agent: str | None
    current: bool


class OrgIn(Strict):
    kind: OrgKind
    code: str = Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_.-]+$")
    name: Name
    name_en: Annotated[str, Field(max_length=200), TEXT] | None = None
    parent_id: Id | None = None
    system_id: Id | None = Field(default=None, description="vertical system the unit belongs to")
    location: Point | None = None


class OrgPatch(Strict):
    name: Name | None = None
    name_en: Annotated[str, Field(max_length=200), TEXT] | None = None
    location: Point | None = None


class OrgOut(Out):
    id: int
    parent_id: int | None
    kind: OrgKind
    code: str
    name: str
    name_en: str | None
    path: str
    system_id: int | None
    location: dict[str, float] | None


class BindingIn(Strict):
    role: Role
    org_id: Id


class UserIn(Strict):
    username: str = Field(pattern=USERNAME)
    password: str = Field(min_length=8, max_length=256)
    display_name: Text = Field(min_length=1, max_length=100)
    phone: Annotated[str, Field(max_length=32), TEXT] | None = None
    org_id: Id
    locale: Literal["zh-CN", "en"] = "zh-CN"
    roles: list[BindingIn] = Field(default_factory=list)


class UserPatch(Strict):
    display_name: Annotated[str, Field(min_length=1, max_length=100), TEXT] | None = None
    phone: Annotated[str, Field(max_length=32), TEXT] | None = None
    locale: Literal["zh-CN", "en"] | None = None
    active: bool | None = None
    password: str | None = Field(default=None, min_length=8, max_length=256)
    roles: list[BindingIn] | None = None


class UserOut(Out):
    id: int
    username: str
    display_name: str
    phone: str | None
    org_id: int
    locale: str
    active: bool
    roles: list[BindingOut]
