// The base map: Guangxi's city and county borders shipped with the bundle (works with no tile
// server at all), optionally under a raster tile layer chosen at run time (/api/v1/ui-config).
import maplibregl, { type Map as MLMap, type StyleSpecification } from "maplibre-gl";
import "maplibre-gl/dist/maplibre-gl.css";
import type { UiConfig } from "../api";
import { geojsonToMap, setDisplayCrs } from "./coords";

const TILE_KEY = "fleet.tiles";
let config: UiConfig | null = null;
const geoCache = new Map<string, Promise<unknown>>();

export function setUiConfig(c: UiConfig): void {
  config = c;
  const sel = currentTiles();
  setDisplayCrs(sel?.crs ?? "wgs84");
}

export function uiConfig(): UiConfig | null {
  return config;
}

export function currentTiles() {
  if (!config) return null;
  const want = localStorage.getItem(TILE_KEY) ?? config.default_tiles;
  return config.tiles.find((t) => t.id === want) ?? config.tiles[0] ?? null;
}

export function chooseTiles(id: string): void {
  localStorage.setItem(TILE_KEY, id);
  location.reload(); // the display CRS of every layer changes with it
}

function loadGeo(name: string): Promise<unknown> {
  let p = geoCache.get(name);
  if (!p) {
    p = fetch(`/geo/${name}.geojson`)
      .then((r) => r.json())
      .then((g) => geojsonToMap(g));
    geoCache.set(name, p);
  }
  return p;
}

function style(): StyleSpecification {
  const tiles = currentTiles();
  const raster: { sources: StyleSpecification["sources"]; layers: StyleSpecification["layers"] } = tiles?.url
    ? {
        sources: {
          tiles: {
            type: "raster" as const,
            tiles: [tiles.url],
            tileSize: 256,
            maxzoom: tiles.max_zoom,
            attribution: tiles.attribution,
          },
        },
        layers: [{ id: "tiles", type: "raster" as const, source: "tiles" }],
      }
    : { sources: {} as StyleSpecification["sources"], layers: [] };
  return {
    version: 8,
    // Only non-CJK label text asks for glyphs; CJK is drawn with local fonts.
    glyphs: "/geo/glyphs/{fontstack}/{range}.pbf",
    sources: { ...raster.sources },
    layers: [{ id: "bg", type: "background", paint: { "background-color": "#e9eef3" } }, ...raster.layers],
  };
}

export interface BaseMapOptions {
  interactive?: boolean;
  center?: [number, number];
  zoom?: number;
}

/** A map with the offline borders; resolves once borders are on it. */
export function createMap(container: HTMLElement, opts: BaseMapOptions = {}): MLMap {
  const tiles = currentTiles();
  const map = new maplibregl.Map({
    container,
    style: style(),
    center: opts.center ?? config?.center ?? [108.9, 23.6],
    zoom: opts.zoom ?? config?.zoom ?? 6.3,
    minZoom: 4,
    maxZoom: 18,
    attributionControl: tiles?.url ? { compact: true } : false,
    localIdeographFontFamily: "'Noto Sans CJK SC', 'PingFang SC', 'Microsoft YaHei', sans-serif",
    interactive: opts.interactive ?? true,
    dragRotate: false,
    pitchWithRotate: false,
    fadeDuration: 0,
  });
  map.touchZoomRotate.disableRotation();
  if (opts.interactive !== false) map.addControl(new maplibregl.NavigationControl({ showCompass: false }), "bottom-right");
  map.addControl(new maplibregl.ScaleControl({ unit: "metric" }), "bottom-left");
  const onTiles = !!tiles?.url;
  map.on("load", async () => {
    const [counties, cities, labels] = await Promise.all([
      loadGeo("guangxi-counties"),
      loadGeo("guangxi-cities"),
      loadGeo("guangxi-labels"),
    ]);
    map.addSource("counties", { type: "geojson", data: counties as never });
    map.addSource("cities", { type: "geojson", data: cities as never });
    map.addSource("labels", { type: "geojson", data: labels as never });
    if (!onTiles) {
      map.addLayer({ id: "region-fill", type: "fill", source: "cities", paint: { "fill-color": "#fbfcfd" } });
      map.addLayer({
        id: "county-fill",
        type: "fill",
        source: "counties",
        paint: { "fill-color": ["case", ["boolean", ["feature-state", "hover"], false], "#eef4fb", "#fbfcfd"] },
      });
    }
    map.addLayer({
      id: "county-line",
      type: "line",
      source: "counties",
      paint: { "line-color": "#b7c3d0", "line-width": ["interpolate", ["linear"], ["zoom"], 6, 0.4, 10, 1.2] },
    });
    map.addLayer({
      id: "city-line",
      type: "line",
      source: "cities",
      paint: { "line-color": "#6f8aa6", "line-width": ["interpolate", ["linear"], ["zoom"], 5, 0.8, 10, 2.2] },
    });
    map.addLayer({
      id: "county-label",
      type: "symbol",
      source: "labels",
      minzoom: 7.2,
      layout: {
        "text-field": ["get", "name"],
        "text-size": ["interpolate", ["linear"], ["zoom"], 7, 11, 11, 14],
        "text-font": ["Noto Sans Regular"],
        "text-allow-overlap": false,
      },
      paint: { "text-color": "#6b7b8c", "text-halo-color": "#ffffff", "text-halo-width": 1.2 },
    });
    map.fire("fleet:base-ready");
  });
  return map;
}

/** Run `f` once the offline borders are loaded (immediately if they already are). */
export function whenBaseReady(map: MLMap, f: () => void): void {
  if (map.getSource("counties") && map.isStyleLoaded()) f();
  else map.once("fleet:base-ready" as never, f);
}
