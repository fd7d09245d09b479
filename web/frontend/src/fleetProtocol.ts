// Messages between the console page and its fleet worker (fleetWorker.ts).
import type { FleetIndex, LatestPositions } from "./api";
import type { LiveMessage } from "./live";
import type { Crs } from "./map/coords";
import type { VStatus } from "./ui";

export type ToWorker =
  | { type: "init"; wsUrl: string; index: FleetIndex; latest: LatestPositions | null; alarms: number[]; offlineAfterMs: number; crs: Crs }
  | { type: "filter"; q: string; unit: number; body: string; statuses: VStatus[] }
  | { type: "trip"; vehicleId: number; tripId: number | null }
  | { type: "drawn" } // the map finished loading the last frame: the next one may come
  | { type: "stop" };

export const STATUS_CODES: VStatus[] = ["moving", "parked", "on_trip", "offline", "alarm"];
export const SNAP_FIELDS = 7; // id, lon, lat, ts, speed, heading, status code

export type FromWorker =
  | { type: "state"; state: "connecting" | "open" | "closed" }
  | { type: "event"; msg: LiveMessage }
  | {
      type: "frame";
      geojson: Blob;
      counts: Record<VStatus, number>;
      shown: number;
      newestTs: number; // newest ping (ms) in this frame
      arrivals: number[]; // ms, newest ping of each batch -> its arrival here
      positions: number; // positions received since the last frame
      buildMs: number;
      snapshot: Float64Array;
    };

