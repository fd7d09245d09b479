"""Tabular exports for the auditor pages: trips and alerts as CSV (UTF-8 with BOM, so Excel
opens Chinese text) or XLSX (openpyxl), written by `fleet.tabular` (formula and control
character neutralisation, stored values that cannot break the file). Times are written in
Asia/Shanghai with the offset.

Filtering and scoping are the owning services' (dispatch trips, telematics alerts); this
module only pages through their results and shapes files. Track exports (GeoJSON, GPX) are
the telematics track API's own (`/vehicles/{id}/track?format=gpx`).
"""

from __future__ import annotations

from typing import Annotated, Any
from zoneinfo import ZoneInfo

from fastapi import APIRouter, Depends, Query
from fastapi.responses import Response

from dispatch.trips import schemas as trip_schemas
from dispatch.trips import service as trip_service
from fleet.config import Settings, get_settings
from fleet.deps import CurrentPrincipal, Session
from fleet.fields import Instant
from fleet.schemas import ERROR_RESPONSES, Id
from fleet.tabular import Fmt, file_response
from telematics import alerts as alert_service

router = APIRouter(responses=ERROR_RESPONSES, tags=["exports"])

MAX_ROWS = 20_000
PAGE = 500

TRIP_COLUMNS = [
    ("id", "编号 ID"),
    ("state", "状态 State"),
    ("unit_id", "单位 Unit"),
    ("requester_id", "申请人 Requester"),
    ("kind", "类型 Kind"),
    ("nature", "性质 Nature"),
    ("purpose", "事由 Purpose"),
    ("passengers", "人数 Passengers"),
    ("origin", "出发地 Origin"),
    ("destination", "目的地 Destination"),
    ("departure_at", "出发时间 Departure"),
    ("return_at", "返回时间 Return"),
    ("planned_km", "计划里程 Planned km"),
]
ALERT_COLUMNS = [
    ("id", "编号 ID"),
    ("kind", "类型 Kind"),
    ("severity", "级别 Severity"),
    ("status", "状态 Status"),
    ("plate", "车牌 Plate"),
    ("org_name", "单位 Unit"),
    ("trip_id", "行程 Trip"),
    ("started_at", "开始 Started"),
    ("ended_at", "结束 Ended"),
    ("message", "说明 Message"),
    ("ack_comment", "处理意见 Comment"),
]


@router.get("/exports/trips.{fmt}", response_class=Response)
async def export_trips(
    fmt: Fmt,
    session: Session,
    principal: CurrentPrincipal,
    settings: Annotated[Settings, Depends(get_settings)],
    state: Annotated[str | None, Query(max_length=20)] = None,
    unit_id: Id | None = None,
    departure_from: Instant | None = None,
    departure_to: Instant | None = None,
    vehicle_id: Id | None = None,
    driver_id: Id | None = None,
) -> Response:
    """Trips in scope (same filters and scope as GET /trips), at most 20,000 rows."""
    rows: list[dict[str, Any]] = []
    while len(rows) < MAX_ROWS:
        page, total = await trip_service.list_trips(
            session,
            principal,
            state=state,
            mine=False,
            unit_id=unit_id,
            departure_from=departure_from,
            departure_to=departure_to,
            vehicle_id=vehicle_id,
            driver_id=driver_id,
            limit=PAGE,
            offset=len(rows),
        )
        rows.extend(trip_schemas.trip_out(t).model_dump() for t in page)
        if not page or len(rows) >= total:
            break
    return file_response(fmt, "trips", TRIP_COLUMNS, rows, ZoneInfo(settings.timezone))


@router.get("/exports/alerts.{fmt}", response_class=Response)
async def export_alerts(
    fmt: Fmt,
    session: Session,
    principal: CurrentPrincipal,
    settings: Annotated[Settings, Depends(get_settings)],
    start: Instant | None = None,
    end: Instant | None = None,
    vehicle_id: Id | None = None,
    kind: Annotated[str | None, Query(pattern="^[a-z_]{3,40}$")] = None,
    status: Annotated[str | None, Query(pattern="^[a-z_]{3,20}$")] = None,
    under: Id | None = None,
) -> Response:
    """Alerts in scope (same filters and scope as GET /alerts), at most 20,000 rows."""
    rows: list[dict[str, Any]] = []
    while len(rows) < MAX_ROWS:
        page, total = await alert_service.list_alerts(
            session,
            principal,
            start=start,
            end=end,
            vehicle_id=vehicle_id,
            kind=kind,
            status=status,
            under=under,
            limit=PAGE,
            offset=len(rows),
        )
        rows.extend(page)
        if not page or len(rows) >= total:
            break
    return file_response(fmt, "alerts", ALERT_COLUMNS, rows, ZoneInfo(settings.timezone))
