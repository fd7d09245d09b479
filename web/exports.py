"""Tabular exports for the auditor pages: trips and alerts as CSV (UTF-8 with BOM, so Excel
opens Chinese text) or XLSX (openpyxl). Times are written in Asia/Shanghai with the offset.

Filtering and scoping are the owning services' (dispatch trips, telematics alerts); this
module only pages through their results and shapes files. Track exports (GeoJSON, GPX) are
the telematics track API's own (`/vehicles/{id}/track?format=gpx`).
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterable, Sequence
from datetime import datetime
from typing import Annotated, Any, Literal
from zoneinfo import ZoneInfo

from fastapi import APIRouter, Depends, Query
from fastapi.responses import Response
from openpyxl import Workbook
from openpyxl.styles import Font

from dispatch.trips import service as trip_service
from fleet.config import Settings, get_settings
from fleet.deps import CurrentPrincipal, Session
from fleet.schemas import ERROR_RESPONSES, Id
from telematics import alerts as alert_service

router = APIRouter(responses=ERROR_RESPONSES, tags=["exports"])

MAX_ROWS = 20_000
PAGE = 500
Fmt = Literal["csv", "xlsx"]

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


def _cell(value: Any, tz: ZoneInfo) -> Any:
    if isinstance(value, datetime):
        return value.astimezone(tz).isoformat(timespec="seconds")
    if isinstance(value, dict):
        return value.get("address") or ", ".join(f"{k}={v}" for k, v in value.items())
    if isinstance(value, list):
        return ", ".join(map(str, value))
    if value is None or isinstance(value, (int, float, str)):
        return value
    return str(value)


def render(
    fmt: Fmt,
    name: str,
    columns: Sequence[tuple[str, str]],
    rows: Iterable[dict[str, Any]],
    tz: ZoneInfo,
) -> Response:
    """One file from rows of dicts; the header row carries zh + en column names."""
    if fmt == "csv":
        buf = io.StringIO()
        w = csv.writer(buf)
        w.writerow([label for _, label in columns])
        for r in rows:
            w.writerow([_cell(r.get(k), tz) for k, _ in columns])
        return Response(
            "\ufeff" + buf.getvalue(),
            media_type="text/csv; charset=utf-8",
            headers={"Content-Disposition": f'attachment; filename="{name}.csv"'},
        )
    wb = Workbook(write_only=False)
    ws = wb.active
    assert ws is not None
    ws.title = name[:31]
    ws.append([label for _, label in columns])
    for c in ws[1]:
        c.font = Font(bold=True)
    for r in rows:
        ws.append([_cell(r.get(k), tz) for k, _ in columns])
    for i, (_, label) in enumerate(columns):
        ws.column_dimensions[chr(ord("A") + i)].width = max(12, min(40, len(label) + 4))
    ws.freeze_panes = "A2"
    out = io.BytesIO()
    wb.save(out)
    return Response(
        out.getvalue(),
        media_type="application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
        headers={"Content-Disposition": f'attachment; filename="{name}.xlsx"'},
    )


@router.get("/exports/trips.{fmt}", response_class=Response)
async def export_trips(
    fmt: Fmt,
    session: Session,
    principal: CurrentPrincipal,
    settings: Annotated[Settings, Depends(get_settings)],
    state: Annotated[str | None, Query(max_length=20)] = None,
    unit_id: Id | None = None,
    departure_from: datetime | None = None,
    departure_to: datetime | None = None,
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
        rows.extend(trip_service.trip_out(t).model_dump() for t in page)
        if not page or len(rows) >= total:
            break
    return render(fmt, "trips", TRIP_COLUMNS, rows, ZoneInfo(settings.timezone))


@router.get("/exports/alerts.{fmt}", response_class=Response)
async def export_alerts(
    fmt: Fmt,
    session: Session,
    principal: CurrentPrincipal,
    settings: Annotated[Settings, Depends(get_settings)],
    start: datetime | None = None,
    end: datetime | None = None,
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
    return render(fmt, "alerts", ALERT_COLUMNS, rows, ZoneInfo(settings.timezone))
