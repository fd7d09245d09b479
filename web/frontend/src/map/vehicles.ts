// The vehicles layer: one GeoJSON source drawn by circle layers on the GPU. The console's
// fleet worker clusters the fleet itself (supercluster) and hands this source only what the
// view needs — cluster features (point_count, alarm, moving, expand) at low zoom, single
// vehicles in and around the viewport at high zoom — so MapLibre never re-clusters 26,638
// points a second. Cluster counts are a handful of HTML labels for the clusters on screen (no
// glyph server is needed offline); single vehicles are never DOM nodes.
import maplibregl, { type GeoJSONSource, type Map as MLMap } from "maplibre-gl";
import { STATUS_COLORS } from "../ui";

export function addVehicleLayers(map: MLMap): void {
  map.addSource("vehicles", { type: "geojson", data: { type: "FeatureCollection", features: [] } });
  map.addLayer({
    id: "v-cluster",
    type: "circle",
    source: "vehicles",
    filter: ["has", "point_count"],
    paint: {
      "circle-color": ["case", [">", ["get", "alarm"], 0], "#e0524f", [">", ["get", "moving"], 0], "#2f7fd8", "#7d8fa3"],
      "circle-opacity": 0.82,
      "circle-radius": ["step", ["get", "point_count"], 13, 50, 17, 300, 22, 1500, 28, 5000, 34],
      "circle-stroke-width": 3,
      "circle-stroke-color": "rgba(255,255,255,0.75)",
    },
  });
  const color: maplibregl.ExpressionSpecification = [
    "match", ["get", "s"],
    "moving", STATUS_COLORS.moving,
    "parked", STATUS_COLORS.parked,
    "on_trip", STATUS_COLORS.on_trip,
    "alarm", STATUS_COLORS.alarm,
    STATUS_COLORS.offline,
  ];
  map.addLayer({
    id: "v-point",
    type: "circle",
    source: "vehicles",
    filter: ["!", ["has", "point_count"]],
    paint: {
      "circle-color": color,
      "circle-radius": ["interpolate", ["linear"], ["zoom"], 8, 3.5, 12, 6, 16, 8],
      "circle-stroke-width": ["interpolate", ["linear"], ["zoom"], 8, 0.8, 14, 2],
      "circle-stroke-color": "#ffffff",
    },
  });
  map.addSource("selected", { type: "geojson", data: { type: "FeatureCollection", features: [] } });
  map.addLayer({
    id: "v-selected",
    type: "circle",
    source: "selected",
    paint: { "circle-radius": 13, "circle-color": "rgba(22,119,255,0.12)", "circle-stroke-color": "#1677ff", "circle-stroke-width": 2 },
  });
}

export function setSelected(map: MLMap, lonlat: [number, number] | null): void {
  (map.getSource("selected") as GeoJSONSource | undefined)?.setData({
    type: "FeatureCollection",
    features: lonlat ? [{ type: "Feature", geometry: { type: "Point", coordinates: lonlat }, properties: {} }] : [],
  });
}

/** HTML count labels over the clusters currently on screen (tens, not thousands). */
export class ClusterLabels {
  private markers = new Map<number, maplibregl.Marker>();
  private pending = false;
  private last = 0;
  constructor(private map: MLMap) {
    // Follow what was actually drawn: after each render, at most four times a second, so the
    // labels never lag behind circles that moved with a data update or a pan.
    map.on("render", () => this.schedule());
    map.on("moveend", () => {
      this.last = 0;
      this.schedule();
    });
  }
  schedule(): void {
    if (this.pending) return;
    const wait = Math.max(0, 250 - (performance.now() - this.last));
    this.pending = true;
    window.setTimeout(() => {
      this.pending = false;
      this.last = performance.now();
      this.update();
    }, wait);
  }
  private update(): void {
    const seen = new Set<number>();
    const feats = this.map.queryRenderedFeatures({ layers: ["v-cluster"] });
    for (const f of feats) {
      const id = f.properties.cluster_id as number;
      if (seen.has(id)) continue;
      seen.add(id);
      const coords = (f.geometry as GeoJSON.Point).coordinates as [number, number];
      const text = String(f.properties.point_count_abbreviated ?? f.properties.point_count);
      let m = this.markers.get(id);
      if (!m) {
        const el = document.createElement("div");
        el.className = "cluster-label";
        m = new maplibregl.Marker({ element: el }).setLngLat(coords).addTo(this.map);
        this.markers.set(id, m);
      } else {
        m.setLngLat(coords);
      }
      const el = m.getElement();
      if (el.textContent !== text) el.textContent = text;
    }
    for (const [id, m] of this.markers) {
      if (!seen.has(id)) {
        m.remove();
        this.markers.delete(id);
      }
    }
  }
}
