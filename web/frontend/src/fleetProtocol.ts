// Messages between the console page and its fleet worker (fleetWorker.ts).
import type { FleetIndex, LatestPositions } from "./api";
import type { LiveMessage } from "./live";
import type { Crs } from "./map/coords";
import type { VStatus } from "./ui";

/** The map's view in display coordinates: [west, south, east, north] and zoom. */
export interface View {
  bbox: [number, number, number, number];
  zoom: number;
  seq: number; // counts the page's view messages
}

export type ToWorker =
  | { type: "init"; index: FleetIndex; latest: LatestPositions | null; alarms: number[]; offlineAfterMs: number; crs: Crs }
  // The answer to "need_url": the websocket URL with a fresh single-use ticket, or null (no
  // ticket now: the worker retries later; if the login is gone the page unmounts and stops it).
  | { type: "live_url"; url: string | null }
  | { type: "filter"; q: string; unit: number; body: string; statuses: VStatus[] }
  | { type: "trip"; vehicleId: number; tripId: number | null }
  | { type: "view"; view: View } // the map moved: the worker answers with that view's features
  | { type: "drawn" } // the map finished loading the last frame: the next one may come
  | { type: "stop" };

export const STATUS_CODES: VStatus[] = ["moving", "parked", "on_trip", "offline", "alarm"];
export const SNAP_FIELDS = 7; // id, lon, lat, ts, speed, heading, status code

// Clustering (done in the worker with supercluster, the library MapLibre itself uses):
// clusters up to this zoom, single vehicles above it; radius in pixels of a 512-px tile.
export const CLUSTER_MAX_ZOOM = 10;
export const CLUSTER_RADIUS = 46;

export type FromWorker =
  | { type: "state"; state: "connecting" | "open" | "closed"; code?: number } // code: the close code
  | { type: "need_url" } // the worker is about to (re)connect: the page buys a ticket (it holds the token)
  | { type: "event"; msg: LiveMessage }
  | {
      // What the map draws for the current view: clusters (low zoom) or the single vehicles in
      // and around the viewport (high zoom) — hundreds to a few thousand features, not 26,638.
      type: "features";
      geojson: Blob;
      features: number;
      view: number; // seq of the view these features were built for
      newestTs: number; // newest ping (ms) in these features' data, 0 for a view-only change
      buildMs: number; // worker time: filters, clustering (when data changed), GeoJSON text
    }
  | {
      // Once a second when something changed: counts and a snapshot for the lists and panels.
      type: "frame";
      counts: Record<VStatus, number>;
      shown: number;
      arrivals: number[]; // ms, newest ping of each batch -> its arrival here
      positions: number; // positions received since the last frame
      snapshotMs: number;
      snapshot: Float64Array;
    };
