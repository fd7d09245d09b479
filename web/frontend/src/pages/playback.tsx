// Track playback: the line on the map, a marker moved by a time slider (or by play), and a
// speed chart (uPlot) whose cursor follows the same instant.
import type { GeoJSONSource, Map as MLMap } from "maplibre-gl";
import maplibregl from "maplibre-gl";
import { useEffect, useRef, useState } from "preact/hooks";
import uPlot from "uplot";
import "uplot/dist/uPlot.min.css";
import type { TrackGeoJSON } from "../api";
import { t } from "../i18n";
import { createMap, whenBaseReady } from "../map/base";
import { toMap } from "../map/coords";
import { fmtDateTime, fmtTime, TZ } from "../time";

const GAP_S = 300;
const hm = new Intl.DateTimeFormat("en-GB", { timeZone: TZ, hour: "2-digit", minute: "2-digit", second: "2-digit", hour12: false });
/** Axis label in Shanghai time: HH:MM, or HH:MM:SS when seconds matter. */
function fmtHM(ms: number): string {
  const s = hm.format(new Date(ms));
  return s.endsWith(":00") ? s.slice(0, 5) : s;
}

export interface TrackPoint {
  ts: number; // ms
  lon: number;
  lat: number;
  speed: number;
  flags: number;
}

export function pointsOf(g: TrackGeoJSON | null): TrackPoint[] {
  if (!g) return [];
  return g.features
    .filter((f) => f.geometry?.type === "Point")
    .map((f) => {
      const [lon, lat] = f.geometry.coordinates as number[];
      const p = f.properties as { ts: string; speed_kmh: number | null; flags: number | null };
      return { ts: Date.parse(p.ts), lon, lat, speed: p.speed_kmh ?? 0, flags: p.flags ?? 0 };
    })
    .sort((a, b) => a.ts - b.ts);
}

export function Playback(props: {
  points: TrackPoint[];
  planned?: { origin: [number, number]; destination: [number, number] } | null;
  evidence?: GeoJSON.FeatureCollection | null;
  height?: number;
}) {
  const mapEl = useRef<HTMLDivElement>(null);
  const chartEl = useRef<HTMLDivElement>(null);
  const mapRef = useRef<MLMap | null>(null);
  const plotRef = useRef<uPlot | null>(null);
  const markerRef = useRef<maplibregl.Marker | null>(null);
  const [i, setI] = useState(0);
  const [playing, setPlaying] = useState(false);
  const pts = props.points;

  useEffect(() => {
    const map = createMap(mapEl.current!);
    mapRef.current = map;
    whenBaseReady(map, () => {
      // Split the line where pings stop for more than GAP_S: a parked night is not a straight drive.
      const parts: [number, number][][] = [];
      pts.forEach((p, k) => {
        if (k === 0 || p.ts - pts[k - 1].ts > GAP_S * 1000) parts.push([]);
        parts[parts.length - 1].push(toMap(p.lon, p.lat));
      });
      const line: GeoJSON.Feature = { type: "Feature", properties: {}, geometry: { type: "MultiLineString", coordinates: parts.filter((x) => x.length > 1) } };
      map.addSource("pb-track", { type: "geojson", data: { type: "FeatureCollection", features: pts.length > 1 ? [line] : [] } });
      map.addLayer({ id: "pb-track-casing", type: "line", source: "pb-track", paint: { "line-color": "#ffffff", "line-width": 6 } });
      map.addLayer({ id: "pb-track", type: "line", source: "pb-track", paint: { "line-color": "#1677ff", "line-width": 3.5 } });
      const plannedFeatures: GeoJSON.Feature[] = [];
      if (props.planned) {
        plannedFeatures.push({ type: "Feature", properties: {}, geometry: { type: "LineString", coordinates: [toMap(...props.planned.origin), toMap(...props.planned.destination)] } });
        new maplibregl.Marker({ color: "#16a34a" }).setLngLat(toMap(...props.planned.origin)).addTo(map);
        new maplibregl.Marker({ color: "#dc2626" }).setLngLat(toMap(...props.planned.destination)).addTo(map);
      }
      map.addSource("pb-planned", { type: "geojson", data: { type: "FeatureCollection", features: plannedFeatures } });
      map.addLayer({ id: "pb-planned", type: "line", source: "pb-planned", paint: { "line-color": "#7c3aed", "line-width": 2, "line-dasharray": [2, 2] } }, "pb-track-casing");
      if (props.evidence?.features?.length) {
        const ev = { ...props.evidence, features: props.evidence.features.filter((f) => f.geometry?.type === "Point").map((f) => ({ ...f, geometry: { type: "Point" as const, coordinates: toMap(...((f.geometry as GeoJSON.Point).coordinates as [number, number])) } })) };
        map.addSource("pb-evidence", { type: "geojson", data: ev });
        map.addLayer({ id: "pb-evidence", type: "circle", source: "pb-evidence", paint: { "circle-radius": 5, "circle-color": "#dc2626", "circle-stroke-color": "#fff", "circle-stroke-width": 1.5 } });
      }
      const coords = pts.map((p) => toMap(p.lon, p.lat));
      if (props.planned) coords.push(toMap(...props.planned.origin), toMap(...props.planned.destination));
      if (coords.length) {
        const b = coords.reduce((bb, c) => bb.extend(c), new maplibregl.LngLatBounds(coords[0], coords[0]));
        map.fitBounds(b, { padding: 50, maxZoom: 15, duration: 0 });
      }
      if (pts.length) {
        const el = document.createElement("div");
        el.className = "pb-marker";
        markerRef.current = new maplibregl.Marker({ element: el }).setLngLat(toMap(pts[0].lon, pts[0].lat)).addTo(map);
      }
      map.fire("fleet:playback-ready");
      (window as unknown as { __playbackReady?: boolean }).__playbackReady = true;
    });
    return () => map.remove();
  }, [pts]);

  useEffect(() => {
    if (!chartEl.current || pts.length < 2) return;
    // A null between pings more than GAP_S apart leaves a gap in the chart instead of a ramp.
    const xs: number[] = [];
    const ys: (number | null)[] = [];
    const toPoint: number[] = []; // chart index -> point index
    pts.forEach((p, k) => {
      if (k > 0 && p.ts - pts[k - 1].ts > GAP_S * 1000) {
        xs.push((pts[k - 1].ts + 1000) / 1000);
        ys.push(null);
        toPoint.push(k - 1);
      }
      xs.push(p.ts / 1000);
      ys.push(p.speed);
      toPoint.push(k);
    });
    const width = chartEl.current.clientWidth || 600;
    const plot = new uPlot(
      {
        width,
        height: 150,
        tzDate: (ts) => uPlot.tzDate(new Date(ts * 1000), TZ),
        legend: { show: false },
        cursor: { drag: { x: false, y: false } },
        scales: { x: { time: true } },
        axes: [
          { stroke: "#6b7785", grid: { stroke: "#eef1f5" }, values: (_u, splits) => splits.map((v) => fmtHM(v * 1000)) },
          { stroke: "#6b7785", grid: { stroke: "#eef1f5" }, size: 42 },
        ],
        series: [{}, { label: t("speed_kmh"), stroke: "#1677ff", width: 1.5, fill: "rgba(22,119,255,0.08)" }],
        hooks: {
          setCursor: [
            (u) => {
              const idx = u.cursor.idx;
              if (idx != null && u.cursor.event) setI(toPoint[idx] ?? 0);
            },
          ],
        },
      },
      [xs, ys as number[]],
      chartEl.current,
    );
    plotRef.current = plot;
    const ro = new ResizeObserver(() => plot.setSize({ width: chartEl.current!.clientWidth, height: 150 }));
    ro.observe(chartEl.current);
    return () => {
      ro.disconnect();
      plot.destroy();
    };
  }, [pts]);

  // Move the marker to point i.
  useEffect(() => {
    const p = pts[i];
    if (!p) return;
    markerRef.current?.setLngLat(toMap(p.lon, p.lat));
    const src = mapRef.current?.getSource("pb-track") as GeoJSONSource | undefined;
    void src;
  }, [i, pts]);

  useEffect(() => {
    if (!playing) return;
    const h = window.setInterval(() => {
      setI((x) => {
        if (x >= pts.length - 1) {
          setPlaying(false);
          return x;
        }
        return x + Math.max(1, Math.round(pts.length / 300));
      });
    }, 50);
    return () => window.clearInterval(h);
  }, [playing, pts]);

  const cur = pts[Math.min(i, pts.length - 1)];
  return (
    <div class="card" style={{ display: "flex", flexDirection: "column" }}>
      <div style={{ position: "relative", height: props.height ?? 420 }}>
        <div class="map" ref={mapEl} style={{ position: "absolute", inset: 0 }} data-testid="playback-map" />
        {pts.length === 0 && <div class="map-overlay"><div class="legend">{t("no_track")}</div></div>}
      </div>
      <div class="playback no-print">
        <button class="btn small primary" disabled={pts.length < 2} onClick={() => { if (i >= pts.length - 1) setI(0); setPlaying(!playing); }} data-testid="play">
          {playing ? t("pause") : t("play")}
        </button>
        <input type="range" min={0} max={Math.max(0, pts.length - 1)} value={i} data-testid="time-slider"
          onInput={(e) => { setPlaying(false); setI(Number((e.target as HTMLInputElement).value)); }} />
        <span class="mono small" data-testid="playback-time" style={{ minWidth: 170 }}>
          {cur ? `${fmtTime(cur.ts)} · ${cur.speed.toFixed(0)} km/h` : "—"}
        </span>
      </div>
      <div class="chart" ref={chartEl} data-testid="speed-chart" />
      {pts.length > 0 && <div class="small muted" style={{ padding: "0 14px 10px" }}>{fmtDateTime(pts[0].ts)} — {fmtDateTime(pts[pts.length - 1].ts)} · {pts.length} {t("points")}</div>}
    </div>
  );
}
