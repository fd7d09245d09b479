// The console's live feed off the main thread: this worker owns the websocket, keeps the
// fleet state, and once a second (when something moved) hands the page a ready GeoJSON Blob
// for the map (MapLibre's own worker parses it) plus a compact typed-array snapshot for the
// lists and panels. The page's main thread never parses 26,638 positions a second.
/// <reference lib="webworker" />
import { Fleet, type VehicleState } from "./fleet";
import { type FromWorker, SNAP_FIELDS, STATUS_CODES, type ToWorker } from "./fleetProtocol";
import type { LiveMessage } from "./live";
import { setDisplayCrs, toMap } from "./map/coords";
import type { VStatus } from "./ui";

const ctx = self as unknown as DedicatedWorkerGlobalScope;
const fleet = new Fleet();
let filter: Extract<ToWorker, { type: "filter" }> = { type: "filter", q: "", unit: 0, body: "", statuses: STATUS_CODES };
let ws: WebSocket | null = null;
let wsUrl = "";
let stopped = false;
let retry = 0;
let drawn = -1;
let lastFrame = 0;
let arrivals: number[] = [];
let positions = 0;
let newestPending = 0;

const post = (m: FromWorker, transfer: Transferable[] = []) => ctx.postMessage(m, transfer);

function connect() {
  if (stopped) return;
  post({ type: "state", state: "connecting" });
  ws = new WebSocket(wsUrl);
  ws.onopen = () => {
    retry = 0;
    post({ type: "state", state: "open" });
  };
  ws.onmessage = (ev) => {
    let m: LiveMessage;
    try {
      m = JSON.parse(ev.data as string);
    } catch {
      return;
    }
    if (m.type === "positions") {
      const newest = fleet.applyPositions(m.items);
      positions += m.items.length;
      if (newest) {
        arrivals.push(Date.now() - newest);
        if (newest > newestPending) newestPending = newest;
      }
      return;
    }
    fleet.applyEvent(m);
    post({ type: "event", msg: m });
  };
  ws.onclose = (ev) => {
    ws = null;
    post({ type: "state", state: "closed" });
    if (!stopped && ev.code !== 4401) {
      retry = Math.min(retry + 1, 6);
      setTimeout(connect, 500 * 2 ** retry);
    }
  };
}

let awaiting = 0; // performance.now() of a frame the map has not finished loading, else 0
const ACK_TIMEOUT_MS = 5000;

/** The vehicles as GeoJSON text, written directly (faster than building objects). */
function geojsonText(keep: (v: VehicleState, s: VStatus) => boolean): { text: string; counts: Record<VStatus, number>; shown: number } {
  const now = Date.now();
  const counts: Record<VStatus, number> = { moving: 0, parked: 0, on_trip: 0, offline: 0, alarm: 0 };
  const parts: string[] = [];
  for (const v of fleet.byId.values()) {
    const s = fleet.status(v, now);
    counts[s]++;
    if (v.lon == null || v.lat == null || !keep(v, s)) continue;
    const [x, y] = toMap(v.lon, v.lat);
    parts.push(`{"type":"Feature","id":${v.id},"geometry":{"type":"Point","coordinates":[${Math.round(x * 1e6) / 1e6},${Math.round(y * 1e6) / 1e6}]},"properties":{"id":${v.id},"s":"${s}"}}`);
  }
  return { text: `{"type":"FeatureCollection","features":[${parts.join(",")}]}`, counts, shown: parts.length };
}

function frame() {
  const now = performance.now();
  if (awaiting && now - awaiting < ACK_TIMEOUT_MS) return; // back-pressure: the map is still busy
  if (now - lastFrame < 1000 || drawn === fleet.version) return;
  awaiting = now;
  lastFrame = now;
  drawn = fleet.version;
  const t0 = performance.now();
  const q = filter.q.trim().toUpperCase();
  const statuses = new Set(filter.statuses);
  const { text, counts, shown } = geojsonText(
    (v, s) =>
      statuses.has(s) &&
      (!filter.unit || v.unit_id === filter.unit) &&
      (!filter.body || v.body_type === filter.body) &&
      (!q || v.plate.toUpperCase().includes(q)),
  );
  const geojson = new Blob([text], { type: "application/geo+json" });
  const snapshot = new Float64Array(fleet.byId.size * SNAP_FIELDS);
  const tnow = Date.now();
  let k = 0;
  for (const v of fleet.byId.values()) {
    snapshot[k++] = v.id;
    snapshot[k++] = v.lon ?? NaN;
    snapshot[k++] = v.lat ?? NaN;
    snapshot[k++] = v.ts;
    snapshot[k++] = v.speed;
    snapshot[k++] = v.heading;
    snapshot[k++] = STATUS_CODES.indexOf(fleet.status(v, tnow));
  }
  post(
    { type: "frame", geojson, counts, shown, newestTs: newestPending, arrivals, positions, buildMs: performance.now() - t0, snapshot },
    [snapshot.buffer],
  );
  arrivals = [];
  positions = 0;
  newestPending = 0;
}

ctx.onmessage = (ev: MessageEvent<ToWorker>) => {
  const m = ev.data;
  if (m.type === "init") {
    setDisplayCrs(m.crs);
    fleet.offlineAfterMs = m.offlineAfterMs;
    fleet.load(m.index);
    if (m.latest) fleet.applyLatest(m.latest);
    fleet.markAlarms(m.alarms);
    wsUrl = m.wsUrl;
    connect();
    setInterval(frame, 100);
    frame();
  } else if (m.type === "filter") {
    filter = m;
    fleet.version++;
    lastFrame = 0;
    awaiting = 0;
    frame();
  } else if (m.type === "trip") {
    fleet.setTrip(m.vehicleId, m.tripId, null);
  } else if (m.type === "drawn") {
    awaiting = 0;
  } else if (m.type === "stop") {
    stopped = true;
    ws?.close();
    ctx.close();
  }
};
