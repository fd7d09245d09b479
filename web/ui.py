"""Routes for the web front end: runtime UI config and the console's compact fleet index.

The fleet index is a read model for the map console only (one request instead of 54 pages of
/vehicles): id, plate, unit, body type and category of every vehicle in the caller's scope,
plus the vehicle's departed trip and driver, as parallel arrays. Live positions come from the
telematics API (/positions/latest) and the websocket.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends
from pydantic import BaseModel, Field
from pydantic_settings import BaseSettings, SettingsConfigDict
from sqlalchemy import and_, select

from dispatch.assignments.models import Assignment as TripAssignment
from fleet.config import ROOT, Settings, get_settings
from fleet.deps import CurrentPrincipal, Session
from fleet.registry.models import Driver, Vehicle
from fleet.registry.visibility import UnitOrg, vehicle_visibility
from fleet.schemas import ERROR_RESPONSES

router = APIRouter(responses=ERROR_RESPONSES, tags=["ui"])

CONSOLE_ROLES = ("dispatcher", "admin", "auditor")


class TileSource(BaseModel):
    id: str
    name: str
    url: str | None = Field(description="raster XYZ template; null = offline borders only")
    crs: Literal["wgs84", "gcj02"] = "wgs84"
    attribution: str = ""
    max_zoom: int = 18


class WebSettings(BaseSettings):
    """Env FLEET_WEB__*: which base maps the consoles offer (the offline borders always work)."""

    model_config = SettingsConfigDict(
        env_prefix="FLEET_WEB__", env_file=str(ROOT / ".env"), extra="ignore"
    )

    default_tiles: str = "offline"
    # Tianditu needs a key (tk); its tiles are CGCS2000, i.e. WGS-84 to within centimetres.
    tianditu_key: str | None = None
    osm: bool = True
    amap: bool = True
    extra_tiles: list[TileSource] = Field(default_factory=list)
    center_lon: float = 108.9
    center_lat: float = 23.7
    zoom: float = 6.3
    offline_after_s: int = 600


class UiConfig(BaseModel):
    tiles: list[TileSource]
    default_tiles: str
    center: tuple[float, float]
    zoom: float
    offline_after_s: int
    timezone: str
    exports: dict[str, str]


def tile_sources(ws: WebSettings) -> list[TileSource]:
    out = [TileSource(id="offline", name="离线底图 Offline borders", url=None)]
    if ws.osm:
        out.append(
            TileSource(
                id="osm",
                name="OpenStreetMap",
                url="https://tile.openstreetmap.org/{z}/{x}/{y}.png",
                attribution="© OpenStreetMap contributors",
                max_zoom=19,
            )
        )
    if ws.tianditu_key:
        out.append(
            TileSource(
                id="tianditu",
                name="天地图 Tianditu",
                url="https://t0.tianditu.gov.cn/DataServer?T=vec_w&x={x}&y={y}&l={z}&tk="
                + ws.tianditu_key,
                attribution="© 天地图",
            )
        )
    if ws.amap:
        out.append(
            TileSource(
                id="amap",
                name="高德 AMap (GCJ-02)",
                url="https://webrd01.is.autonavi.com/appmaptile?lang=zh_cn&size=1&scale=1"
                "&style=8&x={x}&y={y}&z={z}",
                crs="gcj02",
                attribution="© 高德地图 AutoNavi",
            )
        )
    out.extend(ws.extra_tiles)
    return out


def get_web_settings() -> WebSettings:
    return WebSettings()


@router.get("/ui-config", response_model=UiConfig)
async def ui_config(
    settings: Annotated[Settings, Depends(get_settings)],
    ws: Annotated[WebSettings, Depends(get_web_settings)],
) -> UiConfig:
    """Runtime configuration of the web front end (no login needed: nothing secret in it)."""
    tiles = tile_sources(ws)
    default = ws.default_tiles if any(t.id == ws.default_tiles for t in tiles) else "offline"
    return UiConfig(
        tiles=tiles,
        default_tiles=default,
        center=(ws.center_lon, ws.center_lat),
        zoom=ws.zoom,
        offline_after_s=ws.offline_after_s,
        timezone=settings.timezone,
        exports={
            "trips_csv": "/api/v1/exports/trips.csv",
            "trips_xlsx": "/api/v1/exports/trips.xlsx",
            "alerts_csv": "/api/v1/exports/alerts.csv",
            "alerts_xlsx": "/api/v1/exports/alerts.xlsx",
            "track_geojson": "/api/v1/vehicles/{vehicle_id}/track",
            "track_gpx": "/api/v1/vehicles/{vehicle_id}/track?format=gpx",
        },
    )


class FleetIndex(BaseModel):
    fields: list[str]
    rows: list[list[Any]]
    units: dict[str, str]
    generated_at: datetime


FIELDS = ["id", "plate", "unit_id", "body_type", "category", "trip_id", "driver"]


@router.get("/ui/fleet-index", response_model=FleetIndex)
async def fleet_index(session: Session, principal: CurrentPrincipal) -> FleetIndex:
    """Every vehicle in scope as parallel arrays (console map and search), with the trip it is
    out on and its driver."""
    on_trip = and_(TripAssignment.vehicle_id == Vehicle.id, TripAssignment.state.in_(("departed",)))
    stmt = (
        select(
            Vehicle.id,
            Vehicle.plate,
            Vehicle.unit_id,
            Vehicle.body_type,
            Vehicle.category,
            TripAssignment.trip_id,
            Driver.name,
            UnitOrg.name,
        )
        .join(UnitOrg, UnitOrg.id == Vehicle.unit_id)
        .outerjoin(TripAssignment, on_trip)
        .outerjoin(Driver, Driver.id == TripAssignment.driver_id)
        .where(vehicle_visibility(principal, CONSOLE_ROLES))
        .order_by(Vehicle.id)
    )
    rows: list[list[Any]] = []
    units: dict[str, str] = {}
    seen: set[int] = set()
    for vid, plate, unit_id, body, cat, trip_id, driver, unit_name in await session.execute(stmt):
        if vid in seen:  # at most one departed assignment per vehicle; guard anyway
            continue
        seen.add(vid)
        rows.append([vid, plate, unit_id, body, cat, trip_id, driver])
        units[str(unit_id)] = unit_name
    return FleetIndex(fields=FIELDS, rows=rows, units=units, generated_at=datetime.now(UTC))
