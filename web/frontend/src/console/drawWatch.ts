// What the console measures of its own map, for bench/console_load.py and the browser tests
// (window.__fleetStats): frames, renders, ping -> pixels latency, the worker's build times;
// and the handshake that paces the worker: a new frame only once the last one is painted.
import type { GeoJSONSource, Map as MLMap, MapSourceDataEvent } from "maplibre-gl";
import type { FromWorker } from "../fleetProtocol";

export interface FleetStats {
  frames: number; // requestAnimationFrame callbacks
  renders: number; // MapLibre render events
  latencies: number[]; // ms, newest ping ts -> first frame drawing it
  arrivals: number[]; // ms, newest ping ts in a websocket batch -> its arrival in the page
  redrawMs: number[]; // ms the worker spent on each map update (filters, clustering, GeoJSON text)
  positions: number; // positions received
  batches: number;
  shown: number;
  total: number;
  features: number; // features in the vehicle source (clusters + single vehicles of the view)
  viewSeq: number; // views posted to the worker (one per zoom, pan end, and 4/s while panning)
  drawnView: { seq: number; at: number }; // the view of the data last drawn, and when (performance.now())
}

declare global {
  interface Window {
    __fleetStats?: FleetStats;
  }
}

type Features = Extract<FromWorker, { type: "features" }>;

/** Frames and MapLibre renders, counted for the stats; returns the stop. */
export function countFrames(map: MLMap, stats: FleetStats): () => void {
  let raf = 0;
  const count = () => {
    stats.frames++;
    raf = requestAnimationFrame(count);
  };
  raf = requestAnimationFrame(count);
  map.on("render", () => {
    stats.renders++;
  });
  return () => cancelAnimationFrame(raf);
}

/** Hands the worker's features to the map and tells when they are painted: the worker waits
 * for "drawn" before its next frame (back-pressure), the stats time ping -> pixels. */
export class DrawWatch {
  private pendingTs = 0; // newest ping ts in data handed to the map but not yet painted
  private pendingView = -1; // view seq of data handed to the map but not yet painted
  private awaitingDraw = false; // a frame was handed to the map and has not finished loading
  private rebuilt = false; // the vehicle tiles were rebuilt from the newest data
  private readonly urls: string[] = []; // blob URLs handed to the map, oldest first

  constructor(
    private readonly map: MLMap,
    private readonly stats: FleetStats,
    private readonly ack: () => void,
  ) {
    map.on("sourcedata", (e) => this.onSourceData(e));
  }

  hand(m: Features): void {
    const url = URL.createObjectURL(m.geojson);
    (this.map.getSource("vehicles") as GeoJSONSource).setData(url);
    this.awaitingDraw = true;
    this.rebuilt = false;
    this.urls.push(url);
    if (m.newestTs) {
      this.pendingTs = m.newestTs;
      this.stats.redrawMs.push(m.buildMs);
      if (this.stats.redrawMs.length > 2000) this.stats.redrawMs.splice(0, 500);
    }
    this.pendingView = m.view;
    this.stats.features = m.features;
  }

  revokeAll(): void {
    for (const u of this.urls) URL.revokeObjectURL(u);
  }

  // "Drawn" = the first render after the vehicle tiles were rebuilt from the newest data.
  // MapLibre reports the source loaded already when its worker has read the data
  // ("metadata", before the tiles are rebuilt); the tiles follow the "content" event.
  private onSourceData(e: MapSourceDataEvent): void {
    if (e.sourceId !== "vehicles") return;
    if (e.sourceDataType === "metadata") this.rebuilt = false;
    if (e.sourceDataType === "content") this.rebuilt = true;
    if (!e.isSourceLoaded) return;
    if (this.urls.length > 1) {
      // Nothing is loading: every blob URL but the newest was read or skipped by now.
      // (Revoking one earlier can pull it from under a fetch in MapLibre's worker.)
      for (const u of this.urls.splice(0, this.urls.length - 1)) URL.revokeObjectURL(u);
    }
    if (!this.rebuilt) return;
    if (this.awaitingDraw) {
      this.awaitingDraw = false;
      this.ack();
    }
    const stats = this.stats;
    if (this.pendingView >= 0) {
      const seq = this.pendingView;
      this.pendingView = -1;
      this.map.once("render", () => (stats.drawnView = { seq, at: performance.now() }));
    }
    if (this.pendingTs) {
      const ts = this.pendingTs;
      this.pendingTs = 0;
      this.map.once("render", () => {
        stats.latencies.push(Date.now() - ts);
        if (stats.latencies.length > 5000) stats.latencies.splice(0, 1000);
      });
    }
  }
}
