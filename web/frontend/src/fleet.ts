// The console's in-memory fleet: one record per vehicle in scope, fed by the compact index
// (/api/v1/ui/fleet-index) and then by live position batches and status/alert/trip events.
import type { FleetIndex, LatestPositions } from "./api";
import type { LiveMessage, LivePosition } from "./live";
import type { VStatus } from "./ui";

export interface VehicleState {
  id: number;
  plate: string;
  unit_id: number;
  unit: string;
  body_type: string;
  category: string;
  lon: number | null;
  lat: number | null;
  ts: number; // ms epoch of the last ping, 0 if none
  speed: number;
  heading: number;
  acc: boolean | null;
  moving: boolean;
  base: "moving" | "parked" | "offline";
  trip: number | null;
  alarm: boolean;
  driver: string | null;
}

/** The console's filters, as the map (in the worker) and the vehicle list apply them. */
export interface VehicleFilter {
  q: string; // part of the plate, trimmed and in upper case; "" for any
  unit: number; // unit id, 0 for any
  body: string; // body type, "" for any
  statuses: Set<VStatus>;
}

/** Whether a vehicle, with its status `s` now, passes the console's filters. */
export function passesFilter(v: VehicleState, s: VStatus, f: VehicleFilter): boolean {
  return f.statuses.has(s) && (!f.unit || v.unit_id === f.unit) && (!f.body || v.body_type === f.body) && (!f.q || v.plate.toUpperCase().includes(f.q));
}

export const OFFLINE_AFTER_MS = 10 * 60 * 1000;
const MOVING_KMH = 3;

export class Fleet {
  byId = new Map<number, VehicleState>();
  version = 0; // bumped on every change; the map redraws at most once a second when it moved
  lastBatchTs = 0; // newest ping ts seen in the last batch (ms)
  lastBatchAt = 0; // performance.now() when it arrived
  batches = 0;
  lastNewest = 0; // newest ping (ms) of the last batch applied
  offlineAfterMs = OFFLINE_AFTER_MS;

  load(idx: FleetIndex): void {
    const f = Object.fromEntries(idx.fields.map((k, i) => [k, i]));
    for (const r of idx.rows) {
      const id = r[f.id] as number;
      const trip = (r[f.trip_id] as number | null) ?? null;
      this.byId.set(id, {
        id,
        plate: r[f.plate] as string,
        unit_id: r[f.unit_id] as number,
        unit: idx.units[String(r[f.unit_id])] ?? "",
        body_type: r[f.body_type] as string,
        category: r[f.category] as string,
        lon: null,
        lat: null,
        ts: 0,
        speed: 0,
        heading: 0,
        acc: null,
        moving: false,
        base: "offline",
        trip,
        alarm: false,
        driver: (r[f.driver] as string | null) ?? null,
      });
    }
    this.version++;
  }

  /** The telematics snapshot (GET /positions/latest) before live batches take over. */
  applyLatest(fc: LatestPositions): void {
    for (const feat of fc.features) {
      const p = feat.properties;
      const v = this.byId.get(p.vehicle_id);
      if (!v) continue;
      const ts = Date.parse(p.ts);
      if (ts < v.ts) continue;
      [v.lon, v.lat] = feat.geometry.coordinates;
      v.ts = ts;
      v.speed = p.speed_kmh ?? 0;
      v.heading = p.heading_deg ?? 0;
      v.acc = p.acc;
      v.moving = p.status === "moving";
      v.base = p.status === "moving" || p.status === "parked" ? p.status : "offline";
    }
    this.version++;
  }

  /** Vehicles with an open alert show as "alarm". */
  markAlarms(vehicleIds: Iterable<number>): void {
    for (const id of vehicleIds) {
      const v = this.byId.get(id);
      if (v) v.alarm = true;
    }
    this.version++;
  }

  /** The page's copy, refreshed from the worker's snapshot (see fleetWorker.ts). */
  applySnapshot(snap: Float64Array, fields: number, codes: readonly VStatus[]): void {
    for (let k = 0; k < snap.length; k += fields) {
      const v = this.byId.get(snap[k]);
      if (!v) continue;
      if (!Number.isNaN(snap[k + 1])) {
        v.lon = snap[k + 1];
        v.lat = snap[k + 2];
      }
      v.ts = snap[k + 3];
      v.speed = snap[k + 4];
      v.heading = snap[k + 5];
      const s = codes[snap[k + 6]];
      v.moving = s === "moving" || (s === "on_trip" && v.speed >= MOVING_KMH);
      v.base = s === "offline" ? "offline" : v.moving ? "moving" : "parked";
      v.alarm = s === "alarm";
    }
    this.version++;
  }

  /** Apply one batch; returns the newest ping time in it (ms). */
  applyPositions(items: LivePosition[]): number {
    let newest = 0;
    for (const p of items) {
      const v = this.byId.get(p.vehicle_id);
      if (!v) continue;
      const ts = Date.parse(p.ts);
      if (ts < v.ts) continue; // a late buffered ping never drags the live position back
      v.ts = ts;
      v.lon = p.lon;
      v.lat = p.lat;
      v.speed = p.speed_kmh ?? 0;
      v.heading = p.heading_deg ?? v.heading;
      v.acc = p.acc;
      v.moving = v.speed >= MOVING_KMH;
      v.base = v.moving ? "moving" : "parked";
      if (ts > newest) newest = ts;
    }
    if (newest > this.lastBatchTs) this.lastBatchTs = newest;
    this.lastBatchAt = performance.now();
    this.batches++;
    this.version++;
    return newest;
  }

  applyEvent(m: LiveMessage): boolean {
    if (m.type === "positions") {
      this.lastNewest = this.applyPositions(m.items);
      return true;
    }
    const d = (m as { data?: Record<string, unknown> }).data;
    if (!d) return false; // hello, pong, subscribed
    const v = typeof d.vehicle_id === "number" ? this.byId.get(d.vehicle_id) : undefined;
    if (!v) return false;
    if (m.type === "status" && typeof d.status === "string") {
      if (d.status === "moving" || d.status === "parked" || d.status === "offline") v.base = d.status;
    } else if (m.type === "alert") {
      // A new alert has no status (it is open); an acknowledgement or closing says whether
      // the vehicle still has another open alert (telematics/alerts.py).
      v.alarm = d.status === undefined || d.status === "open" || (typeof d.vehicle_open_alerts === "number" && d.vehicle_open_alerts > 0);
    }
    this.version++;
    return true;
  }

  /** A trip departed or ended (trip events carry no vehicle: the caller looks it up). */
  setTrip(vehicleId: number, tripId: number | null, driver: string | null): void {
    const v = this.byId.get(vehicleId);
    if (!v) return;
    v.trip = tripId;
    if (driver !== null) v.driver = driver;
    this.version++;
  }

  status(v: VehicleState, now: number): VStatus {
    if (v.alarm) return "alarm";
    if (!v.ts || now - v.ts > this.offlineAfterMs || v.base === "offline") return "offline";
    if (v.trip) return "on_trip";
    return v.moving ? "moving" : "parked";
  }
}
