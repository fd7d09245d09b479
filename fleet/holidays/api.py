"""HTTP routes of the official calendar (节假日管理), and the API process's start-up check."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Annotated, Literal

import asyncpg
from fastapi import APIRouter, Depends, FastAPI, File, Path, Query, Response, UploadFile

from fleet.deps import CurrentPrincipal, Session
from fleet.fields import Day
from fleet.holidays import calendar, importer, schemas, service
from fleet.logging import get_logger
from fleet.schemas import ERROR_RESPONSES
from fleet.tabular import XLSX_MEDIA_TYPE

router = APIRouter(responses=ERROR_RESPONSES, tags=["holidays"])
log = get_logger("holidays")
Year = Annotated[int, Query(ge=2000, le=2100, description="calendar year")]
DayParam = Annotated[Day, Path(description="YYYY-MM-DD")]


async def region_admin(session: Session, principal: CurrentPrincipal) -> None:
    """Writes are refused (403) before the body is read: an auditor posting no file learns
    that they may not import, not that the file is missing."""
    await service.require_region_admin(session, principal)


RegionAdmin = [Depends(region_admin)]


@asynccontextmanager
async def lifespan(app: FastAPI) -> AsyncIterator[None]:
    """`fleet serve` says at start-up when this or (from 1 November) next year is missing."""
    try:
        conn = await asyncpg.connect(
            app.state.settings.db.dsn(), server_settings={"application_name": "api"}
        )
        try:
            cal = await calendar.load(conn)
        finally:
            await conn.close()
        calendar.warn_missing(cal, service.today_shanghai(), "api")
    except (OSError, asyncpg.PostgresError) as exc:  # the API still starts; the check is advice
        log.warning("holidays.check_failed", error=repr(exc)[:200])
    yield


@router.get("/holidays", response_model=list[schemas.HolidayOut])
async def list_holidays(
    session: Session, principal: CurrentPrincipal, year: Year
) -> list[schemas.HolidayOut]:
    """Holidays (放假) and adjusted working days (调休上班) of one year, by date."""
    rows = await service.list_year(session, principal, year)
    return [schemas.HolidayOut.model_validate(r) for r in rows]


@router.get("/holidays/coverage", response_model=schemas.Coverage)
async def coverage(session: Session, principal: CurrentPrincipal) -> schemas.Coverage:
    """Which years the calendar covers, and which are missing as of today (Shanghai)."""
    return await service.coverage(session, principal)


@router.get(
    "/holidays/template.{fmt}",
    response_class=Response,
    responses={200: {"content": {"text/csv": {}, XLSX_MEDIA_TYPE: {}}}},
)
async def template(fmt: Literal["csv", "xlsx"], principal: CurrentPrincipal) -> Response:
    """An empty import file with the right headings (XLSX: with a sheet of instructions)."""
    principal.require(service.READ)
    if fmt == "csv":
        body, media = importer.template_csv(), "text/csv; charset=utf-8"
    else:
        body, media = importer.template_xlsx(), XLSX_MEDIA_TYPE
    return Response(
        body,
        media_type=media,
        headers={"Content-Disposition": f'attachment; filename="holidays-template.{fmt}"'},
    )


@router.post(
    "/holidays", response_model=schemas.HolidayOut, status_code=201, dependencies=RegionAdmin
)
async def create_holiday(
    body: schemas.HolidayIn, session: Session, principal: CurrentPrincipal
) -> schemas.HolidayOut:
    """Add a day (region admins)."""
    return schemas.HolidayOut.model_validate(await service.create(session, principal, body))


@router.put("/holidays/{day}", response_model=schemas.HolidayOut, dependencies=RegionAdmin)
async def update_holiday(
    day: DayParam, body: schemas.HolidayBody, session: Session, principal: CurrentPrincipal
) -> schemas.HolidayOut:
    """Change a day's kind, name or note (region admins)."""
    return schemas.HolidayOut.model_validate(await service.update(session, principal, day, body))


@router.delete("/holidays/{day}", status_code=204, dependencies=RegionAdmin)
async def delete_holiday(day: DayParam, session: Session, principal: CurrentPrincipal) -> Response:
    """Remove a day (region admins); it becomes an ordinary weekday or weekend day."""
    await service.delete(session, principal, day)
    return Response(status_code=204)


@router.post("/holidays/import", response_model=schemas.ImportReport, dependencies=RegionAdmin)
async def import_holidays(
    session: Session,
    principal: CurrentPrincipal,
    file: Annotated[UploadFile, File(description="CSV or XLSX with 日期, 类型, 名称, 备注")],
    mode: Annotated[
        Literal["replace", "merge"],
        Query(description="replace: the file's years are replaced whole; merge: day by day"),
    ] = "replace",
) -> schemas.ImportReport:
    """Import a file, all or nothing; a bad file is a 422 listing every bad row (row, column,
    reason in Chinese) under `error.rows`."""
    content = await file.read(importer.MAX_BYTES + 1)
    return await service.import_file(session, principal, content, file.filename or "", mode)
