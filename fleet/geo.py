"""Conversions between API shapes (lat/lon, GeoJSON) and PostGIS values."""

from __future__ import annotations

from typing import Any

from geoalchemy2 import WKBElement
from geoalchemy2.shape import from_shape, to_shape
from shapely import MultiPolygon, Polygon
from shapely.geometry import Point as ShapelyPoint
from shapely.geometry import mapping, shape

from fleet.errors import Invalid


def point_to_db(lat: float, lon: float) -> WKBElement:
    return from_shape(ShapelyPoint(lon, lat), srid=4326)


def point_from_db(value: WKBElement | None) -> dict[str, float] | None:
    if value is None:
        return None
    p = to_shape(value)
    return {"lat": round(p.y, 7), "lon": round(p.x, 7)}


def multipolygon_to_db(geojson: dict[str, Any], *, field: str = "geometry") -> WKBElement:
    """A GeoJSON Polygon or MultiPolygon, validated, as a WGS-84 MultiPolygon."""
    try:
        geom = shape(geojson)
    except Exception as exc:  # shapely raises several types for malformed input
        raise Invalid(f"not a valid GeoJSON geometry: {exc}", field=field) from exc
    if isinstance(geom, Polygon):
        geom = MultiPolygon([geom])
    if not isinstance(geom, MultiPolygon):
        raise Invalid("geometry must be a Polygon or MultiPolygon", field=field)
    if geom.is_empty or not geom.is_valid:
        raise Invalid("polygon is empty or self-intersecting", field=field)
    minx, miny, maxx, maxy = geom.bounds
    if minx < -180 or maxx > 180 or miny < -90 or maxy > 90:
        raise Invalid("coordinates must be WGS-84 [lon, lat] degrees", field=field)
    return from_shape(geom, srid=4326)


def geometry_from_db(value: WKBElement) -> dict[str, Any]:
    return dict(mapping(to_shape(value)))
