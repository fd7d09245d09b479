"""The FastAPI application: routers, error handlers, engine lifecycle."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, AsyncExitStack, asynccontextmanager
from typing import Any

import asyncpg
from fastapi import APIRouter, FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from sqlalchemy.exc import DataError, DBAPIError, IntegrityError
from starlette.exceptions import HTTPException as StarletteHTTPException

from dispatch import api as dispatch_api
from fleet.config import Settings, get_settings
from fleet.db import make_engine, make_sessionmaker
from fleet.errors import FleetError
from fleet.holidays import api as holidays_api
from fleet.identity import api as identity_api
from fleet.logging import get_logger
from fleet.registry import api as registry_api
from telematics import api as telematics_api
from telematics.jt808 import api as jt808_api
from telematics.registry import api as terminals_api
from web import exports, live, live_auth, refusals, ui
from web.body_limit import BodySizeLimit
from web.methods import methods_at
from web.static import install_frontend

log = get_logger("web")


# Each package's routes, included under /api/v1 in this order; listed once, here.
ROUTERS: tuple[APIRouter, ...] = (
    identity_api.router,
    registry_api.router,
    terminals_api.router,
    telematics_api.router,
    jt808_api.router,
    dispatch_api.router,
    live_auth.router,
    live.router,
    ui.router,
    exports.router,
    holidays_api.router,
)
# The API process's resources of the packages (e.g. the live fan-out subscriber): async
# context managers entered in this order at start-up, left in reverse at shutdown.
LIFESPANS: tuple[Callable[[FastAPI], AbstractAsyncContextManager[None]], ...] = (
    dispatch_api.lifespan,
    live.lifespan,
    holidays_api.lifespan,
)


def _error(
    status: int, code: str, message: str, field: str | None = None, **extra: Any
) -> JSONResponse:
    body: dict[str, Any] = {"code": code, "message": message}
    if field is not None:
        body["field"] = field
    body.update(extra)
    return JSONResponse({"error": body}, status_code=status)


def _loc_to_field(loc: tuple[Any, ...]) -> str:
    parts = [str(p) for p in loc if p not in ("body", "query", "path", "header")]
    return ".".join(parts) or str(loc[0] if loc else "")


# A value the database cannot take (out of bigint range, a NUL in text, a year 0 date) that
# slipped past request validation: the client's fault, so 422, never a 500.
_BAD_VALUE = (asyncpg.DataError, asyncpg.exceptions._base.DataError, OverflowError, ValueError)
# The database is down or restarting: 503 with Retry-After, not a 500.
_DB_DOWN = (
    OSError,
    asyncpg.PostgresConnectionError,
    asyncpg.CannotConnectNowError,
    asyncpg.exceptions.ConnectionDoesNotExistError,
)


def _root_causes(exc: BaseException) -> list[BaseException]:
    chain: list[BaseException] = []
    cur: BaseException | None = exc
    while cur is not None and len(chain) < 10:
        chain.append(cur)
        cur = cur.__cause__ or getattr(cur, "orig", None)
        if cur is not None and cur in chain:
            break
    return chain


def _db_failure(exc: BaseException) -> JSONResponse | None:
    chain = _root_causes(exc)
    if any(isinstance(e, _BAD_VALUE) for e in chain):
        log.info("api.bad_value", error=str(chain[-1])[:200])
        return _error(422, "invalid_value", str(chain[-1]).split("\n")[0][:200])
    if any(isinstance(e, _DB_DOWN) for e in chain):
        log.warning("api.db_unavailable", error=repr(chain[-1])[:200])
        response = _error(503, "database_unavailable", "the database is unavailable; retry shortly")
        response.headers["Retry-After"] = "5"
        return response
    return None


def install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(FleetError)
    async def _fleet(request: Request, exc: FleetError) -> JSONResponse:
        if exc.status in (401, 403):
            await refusals.audit_refusal(request, exc.status, exc.code, exc)
        retry = exc.extra.get("retry_after_s")
        headers = {"Retry-After": str(retry)} if retry is not None else None
        return JSONResponse({"error": exc.to_dict()}, status_code=exc.status, headers=headers)

    @app.exception_handler(RequestValidationError)
    async def _validation(_: Request, exc: RequestValidationError) -> JSONResponse:
        errors = [
            {
                "code": str(e.get("type", "invalid")),
                "field": _loc_to_field(tuple(e.get("loc", ()))),
                "message": str(e.get("msg", "invalid value")),
            }
            for e in exc.errors()
        ]
        first = errors[0] if errors else {"code": "invalid", "field": None, "message": "invalid"}
        body = {"error": {**first, "code": "validation_error"}, "errors": errors}
        return JSONResponse(body, status_code=422)

    @app.exception_handler(IntegrityError)
    async def _integrity(_: Request, exc: IntegrityError) -> JSONResponse:
        diag = getattr(getattr(exc.orig, "__cause__", None), "constraint_name", None)
        log.info("db.integrity", constraint=diag, error=str(exc.orig)[:200])
        return _error(
            409,
            "constraint_violation",
            "the change conflicts with existing data",
            field=None,
            constraint=diag,
        )

    @app.exception_handler(DataError)
    async def _data(_: Request, exc: DataError) -> JSONResponse:
        return _error(422, "invalid_value", str(exc.orig).split("\n")[0][:200])

    @app.exception_handler(DBAPIError)
    async def _dbapi(_: Request, exc: DBAPIError) -> JSONResponse:
        known = _db_failure(exc)
        if known is not None:
            return known
        log.error("api.db_error", error=repr(exc.orig)[:300])
        return _error(500, "internal_error", "unexpected database error; it has been logged")

    @app.exception_handler(asyncpg.DataError)
    @app.exception_handler(asyncpg.exceptions._base.DataError)
    @app.exception_handler(asyncpg.PostgresConnectionError)
    async def _asyncpg(_: Request, exc: Exception) -> JSONResponse:
        known = _db_failure(exc)
        if known is not None:
            return known
        log.error("api.db_error", error=repr(exc)[:300])
        return _error(500, "internal_error", "unexpected database error; it has been logged")

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        code = {404: "not_found", 405: "method_not_allowed"}.get(exc.status_code, "http_error")
        if exc.status_code in (401, 403):
            await refusals.audit_refusal(request, exc.status_code, code, exc)
        response = _error(exc.status_code, code, str(exc.detail))
        if exc.status_code == 405:
            response.headers["Allow"] = ", ".join(methods_at(request))
        return response

    @app.exception_handler(Exception)
    async def _unexpected(_: Request, exc: Exception) -> JSONResponse:
        log.error("api.unhandled", error=repr(exc))
        return _error(500, "internal_error", "unexpected error; it has been logged")


def create_app(settings: Settings | None = None, *, manage_engine: bool = True) -> FastAPI:
    settings = settings or get_settings()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        engine = None
        if manage_engine:
            engine = make_engine(settings.db, application_name="api")
            app.state.sessionmaker = make_sessionmaker(engine)
        app.state.settings = settings
        try:
            async with AsyncExitStack() as stack:
                for enter in LIFESPANS:
                    await stack.enter_async_context(enter(app))
                yield
        finally:
            if engine is not None:
                await engine.dispose()

    app = FastAPI(
        title="Fleet 公务用车管理平台 API",
        version="1.0",
        description="Dispatch and telematics for government official vehicles. "
        "All times are UTC (RFC 3339); coordinates are WGS-84 degrees.",
        lifespan=lifespan,
        openapi_url="/api/v1/openapi.json",
        docs_url="/api/docs",
        redoc_url=None,
    )
    install_error_handlers(app)
    refusals.install(app, settings.audit)
    app.add_middleware(
        BodySizeLimit,
        max_bytes=settings.api.max_body_bytes,
        max_import_bytes=settings.api.max_import_body_bytes,
    )
    for router in ROUTERS:
        app.include_router(router, prefix="/api/v1")

    @app.get("/api/v1/health", tags=["meta"])
    async def health() -> dict[str, str]:
        return {"status": "ok"}

    # Last: the built front end and its SPA fallback (never answers under /api).
    install_frontend(app)
    return app
