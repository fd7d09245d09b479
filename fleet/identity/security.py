"""Password hashing (argon2id via argon2-cffi) and bearer tokens (JWT via PyJWT)."""

from __future__ import annotations

import time
from dataclasses import dataclass

import jwt
from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

from fleet.config import AuthSettings
from fleet.errors import Unauthenticated

_hasher = PasswordHasher()


def hash_password(password: str) -> str:
    return _hasher.hash(password)


def verify_password(password_hash: str, password: str) -> bool:
    try:
        return _hasher.verify(password_hash, password)
    except (VerificationError, InvalidHashError):
        return False


@dataclass(frozen=True)
class Token:
    access_token: str
    expires_at: int  # epoch seconds


def issue_token(
    auth: AuthSettings, user_id: int, *, ttl_s: int | None = None, sid: str | None = None
) -> Token:
    """A signed access token for `user_id` in server-side session `sid` (a token without one
    is refused unless FLEET_AUTH__ACCEPT_SESSIONLESS_TOKENS, which only the tests set)."""
    now = int(time.time())
    exp = now + (ttl_s if ttl_s is not None else auth.token_ttl_s)
    payload: dict[str, object] = {"sub": str(user_id), "iat": now, "exp": exp, "iss": "fleet"}
    if sid is not None:
        payload["sid"] = sid
    token = jwt.encode(payload, auth.secret.get_secret_value(), algorithm=auth.algorithm)
    return Token(access_token=token, expires_at=exp)


@dataclass(frozen=True)
class Claims:
    user_id: int
    expires_at: int  # epoch seconds
    sid: str | None = None  # the server-side session (fleet/identity/sessions.py)


def read_claims(auth: AuthSettings, token: str) -> Claims:
    """The user id and expiry of a valid token; expired, forged or malformed tokens are refused."""
    try:
        payload = jwt.decode(
            token,
            auth.secret.get_secret_value(),
            algorithms=[auth.algorithm],
            issuer="fleet",
            options={"require": ["exp", "sub", "iss"]},
        )
    except jwt.ExpiredSignatureError as exc:
        raise Unauthenticated("token expired", code="token_expired") from exc
    except jwt.PyJWTError as exc:
        raise Unauthenticated("invalid token", code="token_invalid") from exc
    try:
        sid = payload.get("sid")
        return Claims(
            user_id=int(payload["sub"]),
            expires_at=int(payload["exp"]),
            sid=sid if isinstance(sid, str) else None,
        )
    except (TypeError, ValueError) as exc:
        raise Unauthenticated("invalid token subject", code="token_invalid") from exc
