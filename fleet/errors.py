"""Domain errors: each carries an HTTP status, a machine-readable code and the offending field."""

from __future__ import annotations

from typing import Any


class FleetError(Exception):
    status: int = 400
    code: str = "bad_request"

    def __init__(
        self, message: str, *, field: str | None = None, code: str | None = None, **extra: Any
    ) -> None:
        super().__init__(message)
        self.message = message
        self.field = field
        if code is not None:
            self.code = code
        self.extra = extra

    def to_dict(self) -> dict[str, Any]:
        body: dict[str, Any] = {"code": self.code, "message": self.message}
        if self.field is not None:
            body["field"] = self.field
        body.update(self.extra)
        return body


class NotFound(FleetError):
    status = 404
    code = "not_found"


class Conflict(FleetError):
    status = 409
    code = "conflict"


class Invalid(FleetError):
    status = 422
    code = "invalid"


class Unauthenticated(FleetError):
    status = 401
    code = "unauthenticated"


class BadCredentials(Unauthenticated):
    """A failed login. Carries what the audit entry needs: the username attempted and why
    (`unknown_user`, `wrong_password`, `disabled`) — never echoed to the client, and the
    password is never kept at all."""

    code = "bad_credentials"

    def __init__(self, username: str, *, reason: str) -> None:
        super().__init__("wrong username or password", field="password")
        self.username = username
        self.reason = reason


class Forbidden(FleetError):
    status = 403
    code = "forbidden"


class Busy(FleetError):
    """Too much work in flight to take this request now; the client may retry after
    ``retry_after_s`` (sent as the Retry-After header too)."""

    status = 503
    code = "busy"


class TooManyAttempts(FleetError):
    """Logins refused for a while (a locked account, a source past its failure budget),
    whatever the password; ``retry_after_s`` is sent as the Retry-After header too."""

    status = 429
    code = "too_many_attempts"
