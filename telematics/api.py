"""HTTP routes: latest positions (live map first paint), tracks, trips, stops, mileage, alerts."""

from __future__ import annotations

import gzip
from datetime import timedelta
from typing import Annotated, Literal

import orjson
from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import Response

from fleet.deps import CurrentPrincipal, Session
from fleet.errors import Invalid
from fleet.fields import Day, Instant
from fleet.registry.visibility import TRACK_READ, visibility_sql, visible_vehicle
from fleet.schemas import ERROR_RESPONSES, Id, Page, PageParams, page_params
from telematics import alerts as alert_service
from telematics.api_schemas import (
    AlertAction,
    AlertDetail,
    AlertOut,
    AlertStatus,
    GeoJSONCollection,
    MileageOut,
    StopOut,
    TripOut,
)
from telematics.positions import track as track_service

router = APIRouter(responses=ERROR_RESPONSES)
Paging = Annotated[PageParams, Depends(page_params)]
Start = Annotated[Instant, Query(description="range start, RFC 3339 with offset")]
End = Annotated[
    Instant,
    Query(
        description="range end (exclusive), RFC 3339 with offset; after start, within 31 "
        "days of it for a track, 366 for trips and stops"
    ),
]

GEOJSON = "application/geo+json"


def _json(body: bytes, request: Request, media_type: str = GEOJSON) -> Response:
    """Large GeoJSON bodies are gzipped when the client accepts it (~5x smaller)."""
    if len(body) > 32_768 and "gzip" in request.headers.get("accept-encoding", ""):
        return Response(
            gzip.compress(body, compresslevel=1),
            media_type=media_type,
            headers={"Content-Encoding": "gzip", "Vary": "Accept-Encoding"},
        )
    return Response(body, media_type=media_type)


def _bbox(value: str | None) -> tuple[float, float, float, float] | None:
    if value is None:
        return None
    try:
        w, s, e, n = (float(x) for x in value.split(","))
    except ValueError as exc:
        raise Invalid("bbox is west,south,east,north in degrees", field="bbox") from exc
    if not (-180 <= w < e <= 180 and -90 <= s < n <= 90):
        raise Invalid("bbox is west,south,east,north in degrees", field="bbox")
    return w, s, e, n


@router.get(
    "/positions/latest",
    response_model=GeoJSONCollection,
    tags=["positions"],
    responses={200: {"content": {GEOJSON: {}}}},
)
async def latest_positions(
    request: Request,
    session: Session,
    principal: CurrentPrincipal,
    bbox: Annotated[
        str | None,
        Query(
            pattern=r"^-?[0-9]{1,3}(\.[0-9]+)?(,-?[0-9]{1,3}(\.[0-9]+)?){3}$",
            description="west,south,east,north (degrees; west < east, south < north)",
        ),
    ] = None,
    status: Literal["moving", "parked", "offline"] | None = None,
    limit: Annotated[int, Query(ge=1, le=50_000, description="page size")] = 50_000,
    offset: Annotated[int, Query(ge=0, le=2**31 - 1, description="rows to skip")] = 0,
) -> Response:
    """Latest position of every vehicle in scope, as a GeoJSON FeatureCollection (one Point per
    vehicle, id = vehicle id). Complete in one response by default (the whole region is
    ~27k features); gzip when accepted."""
    clause, params = visibility_sql(principal, TRACK_READ, org="o", vehicle="v")
    body = await track_service.latest_geojson(
        session, clause, params, bbox=_bbox(bbox), status=status, limit=limit, offset=offset
    )
    return _json(body, request)


@router.get(
    "/vehicles/{vehicle_id}/track",
    response_model=GeoJSONCollection,
    tags=["tracks"],
    responses={200: {"content": {GEOJSON: {}, "application/gpx+xml": {}}}},
)
async def vehicle_track(
    vehicle_id: Id,
    request: Request,
    session: Session,
    principal: CurrentPrincipal,
    start: Start,
    end: End,
    max_points: Annotated[
        int,
        Query(
            ge=2,
            le=50_000,
            description="above this, points are decimated and the line simplified (ST_Simplify)",
        ),
    ] = 10_000,
    points: Annotated[bool, Query(description="include one Point feature per ping")] = True,
    format: Annotated[Literal["geojson", "gpx"], Query(description="geojson or gpx")] = "geojson",
) -> Response:
    """A vehicle's track (轨迹回放): a LineString feature, then Points with ts/speed/heading."""
    track_service.check_range(start, end)
    vehicle = await visible_vehicle(session, principal, vehicle_id)
    conn = await track_service.raw_connection(session)
    track = await track_service.fetch_track(conn, vehicle_id, start, end, max_points=max_points)
    if format == "gpx":
        xml = track_service.track_gpx(track, vehicle)
        return Response(
            xml,
            media_type="application/gpx+xml",
            headers={
                "Content-Disposition": f'attachment; filename="track-{vehicle_id}-'
                f'{start:%Y%m%dT%H%M}.gpx"'
            },
        )
    body = orjson.dumps(track_service.track_geojson(track, vehicle, points=points))
    return _json(body, request)


@router.get("/vehicles/{vehicle_id}/trips", response_model=Page[TripOut], tags=["tracks"])
async def vehicle_trips(
    vehicle_id: Id,
    session: Session,
    principal: CurrentPrincipal,
    start: Start,
    end: End,
    paging: Paging,
) -> Page[TripOut]:
    """Trips segmented from ignition and motion that overlap the range."""
    track_service.check_range(start, end, max_range=timedelta(days=366))
    await visible_vehicle(session, principal, vehicle_id)
    items, total = await track_service.list_trips(
        session, vehicle_id, start, end, paging.limit, paging.offset
    )
    return Page(
        items=[TripOut.model_validate(i) for i in items], total=total, **paging.model_dump()
    )


@router.get("/vehicles/{vehicle_id}/stops", response_model=Page[StopOut], tags=["tracks"])
async def vehicle_stops(
    vehicle_id: Id,
    session: Session,
    principal: CurrentPrincipal,
    start: Start,
    end: End,
    paging: Paging,
) -> Page[StopOut]:
    """Stops (standing ≥ the stop threshold, or ignition off) that overlap the range."""
    track_service.check_range(start, end, max_range=timedelta(days=366))
    await visible_vehicle(session, principal, vehicle_id)
    items, total = await track_service.list_stops(
        session, vehicle_id, start, end, paging.limit, paging.offset
    )
    return Page(
        items=[StopOut.model_validate(i) for i in items], total=total, **paging.model_dump()
    )


@router.get("/vehicles/{vehicle_id}/mileage", response_model=list[MileageOut], tags=["tracks"])
async def vehicle_mileage(
    vehicle_id: Id,
    session: Session,
    principal: CurrentPrincipal,
    from_: Annotated[Day, Query(alias="from", description="first local day")],
    to: Annotated[
        Day,
        Query(description="last local day (inclusive), not before from, at most 366 days after"),
    ],
) -> list[MileageOut]:
    """Daily mileage: odometer span when the terminal reports one, else track length."""
    await visible_vehicle(session, principal, vehicle_id)
    rows = await track_service.daily_mileage(session, vehicle_id, from_, to)
    return [MileageOut.model_validate(r) for r in rows]


@router.get("/vehicles/{vehicle_id}/alerts", response_model=Page[AlertOut], tags=["alerts"])
async def vehicle_alerts(
    vehicle_id: Id,
    session: Session,
    principal: CurrentPrincipal,
    paging: Paging,
    start: Annotated[Instant | None, Query(description="overlapping from")] = None,
    end: Annotated[Instant | None, Query(description="started before; after start")] = None,
    kind: Annotated[str | None, Query(pattern="^[a-z_]{3,40}$")] = None,
    status: AlertStatus | None = None,
) -> Page[AlertOut]:
    await visible_vehicle(session, principal, vehicle_id)
    items, total = await alert_service.list_alerts(
        session,
        principal,
        start=start,
        end=end,
        vehicle_id=vehicle_id,
        kind=kind,
        status=status,
        under=None,
        limit=paging.limit,
        offset=paging.offset,
    )
    return Page(
        items=[AlertOut.model_validate(i) for i in items], total=total, **paging.model_dump()
    )


@router.get("/alerts", response_model=Page[AlertOut], tags=["alerts"])
async def list_alerts(
    session: Session,
    principal: CurrentPrincipal,
    paging: Paging,
    start: Annotated[Instant | None, Query(description="overlapping from")] = None,
    end: Annotated[Instant | None, Query(description="started before; after start")] = None,
    vehicle_id: Id | None = None,
    kind: Annotated[str | None, Query(pattern="^[a-z_]{3,40}$")] = None,
    status: AlertStatus | None = None,
    under: Annotated[Id | None, Query(description="only this org's subtree")] = None,
) -> Page[AlertOut]:
    """Supervision alerts in the caller's scope, newest first (evidence: GET /alerts/{id})."""
    items, total = await alert_service.list_alerts(
        session,
        principal,
        start=start,
        end=end,
        vehicle_id=vehicle_id,
        kind=kind,
        status=status,
        under=under,
        limit=paging.limit,
        offset=paging.offset,
    )
    return Page(
        items=[AlertOut.model_validate(i) for i in items], total=total, **paging.model_dump()
    )


@router.get("/alerts/{alert_id}", response_model=AlertDetail, tags=["alerts"])
async def get_alert(alert_id: Id, session: Session, principal: CurrentPrincipal) -> AlertDetail:
    """One alert with its evidence (GeoJSON an auditor can open on the map)."""
    return AlertDetail.model_validate(await alert_service.read_alert(session, principal, alert_id))


@router.post("/alerts/{alert_id}/acknowledge", response_model=AlertDetail, tags=["alerts"])
async def acknowledge_alert(
    alert_id: Id, body: AlertAction, session: Session, principal: CurrentPrincipal
) -> AlertDetail:
    """Acknowledge an open alert with a comment (dispatcher/admin; audited)."""
    return AlertDetail.model_validate(
        await alert_service.acknowledge(session, principal, alert_id, body.comment)
    )


@router.post("/alerts/{alert_id}/close", response_model=AlertDetail, tags=["alerts"])
async def close_alert(
    alert_id: Id, body: AlertAction, session: Session, principal: CurrentPrincipal
) -> AlertDetail:
    """Close an open or acknowledged alert with a comment (dispatcher/admin; audited)."""
    return AlertDetail.model_validate(
        await alert_service.close(session, principal, alert_id, body.comment)
    )
