"""A cap on request bodies for the whole API: 413 before a byte past the limit is parsed.

A 26.8 MB geofence once took 17.5 s to accept and then slowed every reader; no JSON body of
this API needs more than `api.max_body_bytes` (1 MiB), file imports (a path containing
`/import`) get `api.max_import_body_bytes`. A declared Content-Length is checked before the
body is read; a body without one (chunked) is read up to the limit and refused beyond it.
"""

from __future__ import annotations

import orjson
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from fleet.errors import FleetError


class BodyTooLarge(FleetError):
    status = 413
    code = "body_too_large"


class BodySizeLimit:
    """Pure ASGI middleware (it must see the body as a stream, before anything parses it)."""

    def __init__(self, app: ASGIApp, *, max_bytes: int, max_import_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes
        self.max_import_bytes = max_import_bytes

    def limit_for(self, path: str) -> int:
        return self.max_import_bytes if "/import" in path else self.max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        limit = self.limit_for(scope["path"])
        declared = dict(scope["headers"]).get(b"content-length")
        if declared is not None:
            # The server holds the body to its declared length; only the length is checked.
            if not declared.isdigit() or int(declared) > limit:
                await _refuse(limit, send)
                return
            await self.app(scope, receive, send)
            return
        # No declared length (chunked): read up to the limit here, then hand it on. Refusing
        # from inside the app's body read would surface as a parse error, not a 413.
        chunks: list[bytes] = []
        seen = 0
        while True:
            message = await receive()
            if message["type"] != "http.request":
                break  # the client went away; the app sees the disconnect below
            chunks.append(message.get("body", b""))
            seen += len(chunks[-1])
            if seen > limit:
                await _refuse(limit, send)
                return
            if not message.get("more_body", False):
                break
        body = b"".join(chunks)
        replayed = False

        async def replay() -> Message:
            nonlocal replayed
            if not replayed:
                replayed = True
                return {"type": "http.request", "body": body, "more_body": False}
            return await receive()

        await self.app(scope, replay, send)


def too_large(limit: int) -> BodyTooLarge:
    return BodyTooLarge(
        f"the request body is larger than the limit of {limit:,} bytes", limit_bytes=limit
    )


async def _refuse(limit: int, send: Send) -> None:
    body = orjson.dumps({"error": too_large(limit).to_dict()})
    await send(
        {
            "type": "http.response.start",
            "status": 413,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(body)).encode()),
                (b"connection", b"close"),
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})
