// The console's live feed off the main thread: this worker owns the websocket, keeps the
// fleet state, clusters it, and hands the map only what the current view needs — clusters at
// low zoom, the single vehicles in and around the viewport at high zoom — as a small GeoJSON
// Blob (MapLibre's own worker parses it). Every FRAME_MS, when something moved and the map has
// drawn the previous update, it rebuilds the clusters; once a second it also sends a compact
// typed-array snapshot for the lists and panels. The page's main thread never parses 26,638
// positions a second, and MapLibre never re-clusters them: it gets hundreds to a few
// thousand features.
/// <reference lib="webworker" />
import Supercluster from "supercluster";
import { Fleet, passesFilter, type VehicleFilter } from "./fleet";
import { CLUSTER_MAX_ZOOM, CLUSTER_RADIUS, type FromWorker, SNAP_FIELDS, STATUS_CODES, type ToWorker, type View } from "./fleetProtocol";
import type { LiveMessage } from "./live";
import { CLOSE_SCOPE_CHANGED, reconnectDelay } from "./liveClose";
import { setDisplayCrs, toMap } from "./map/coords";
import type { VStatus } from "./ui";

type PointProps = { id: number; s: VStatus };
type ClusterProps = { alarm: number; moving: number };
type Point = GeoJSON.Feature<GeoJSON.Point, PointProps>;

const ctx = self as unknown as DedicatedWorkerGlobalScope;
const fleet = new Fleet();
let filter: Extract<ToWorker, { type: "filter" }> = { type: "filter", q: "", unit: 0, body: "", statuses: STATUS_CODES };
let ws: WebSocket | null = null;
let stopped = false;
let retry = 0;
let drawn = -1;
// Map updates on a fixed 750 ms clock: every vehicle reports at most once a second (the
// websocket coalesces), so an update moves most of the fleet; the map changes more than once
// a second even when a draw is slow (back-pressure skips a tick rather than queueing). A 1 s
// clock measured 0.92–0.98 updates/s under load; 500 ms gave ~2/s but cost a third of the
// frame rate on a loaded 2-core box with software WebGL (bench/console_load.py).
const FRAME_MS = 750;
// performance.now() of the last snapshot for the lists (once a second). -Infinity: the first
// frame (and the first after a filter change) always sends one, however early it runs.
let lastSnapshot = -Infinity;
let nextFrame = 0; // performance.now() at which the next update is due
let arrivals: number[] = [];
let positions = 0;
let newestPending = 0;

// The vehicles that pass the filters, in display coordinates (one feature object per vehicle,
// updated in place), and the cluster index over them, built lazily when a view needs it.
const pointById = new Map<number, Point>();
let points: Point[] = [];
let index: Supercluster<PointProps, ClusterProps> | null = null;
let view: View | null = null;

const post = (m: FromWorker, transfer: Transferable[] = []) => ctx.postMessage(m, transfer);

// The page holds the bearer token (workers have no localStorage): before every (re)connect the
// worker asks it for a URL with a fresh single-use ticket (see live.ts).
let urlWaiter: ((url: string | null) => void) | null = null;
const askUrl = () =>
  new Promise<string | null>((resolve) => {
    urlWaiter = resolve;
    post({ type: "need_url" });
  });

function retryLater(code: number) {
  retry = Math.min(retry + 1, 6);
  setTimeout(connect, reconnectDelay(code, retry));
}

async function connect() {
  if (stopped) return;
  post({ type: "state", state: "connecting" });
  const url = await askUrl();
  if (stopped) return;
  if (url === null) {
    post({ type: "state", state: "closed" });
    return retryLater(0);
  }
  ws = new WebSocket(url);
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
    post({ type: "state", state: "closed", code: ev.code });
    // 4403 (roles changed): the page reloads; anything else: reconnect with a new ticket
    if (!stopped && ev.code !== CLOSE_SCOPE_CHANGED) retryLater(ev.code);
  };
}

let awaiting = 0; // performance.now() of features the map has not finished loading, else 0
const ACK_TIMEOUT_MS = 5000;

/** Refresh `points` from the fleet (filters applied) and count every vehicle by status. */
function refreshPoints(): { counts: Record<VStatus, number>; shown: number } {
  const now = Date.now();
  const counts: Record<VStatus, number> = { moving: 0, parked: 0, on_trip: 0, offline: 0, alarm: 0 };
  const keep: VehicleFilter = { q: filter.q.trim().toUpperCase(), unit: filter.unit, body: filter.body, statuses: new Set(filter.statuses) };
  const out: Point[] = [];
  for (const v of fleet.byId.values()) {
    const s = fleet.status(v, now);
    counts[s]++;
    if (v.lon == null || v.lat == null) continue;
    if (!passesFilter(v, s, keep)) continue;
    let f = pointById.get(v.id);
    if (!f) {
      f = { type: "Feature", id: v.id, geometry: { type: "Point", coordinates: [0, 0] }, properties: { id: v.id, s } };
      pointById.set(v.id, f);
    }
    f.geometry.coordinates = toMap(v.lon, v.lat);
    f.properties.s = s;
    out.push(f);
  }
  points = out;
  index = null;
  return { counts, shown: out.length };
}

function clusterIndex(): Supercluster<PointProps, ClusterProps> {
  if (!index) {
    // Same options MapLibre's clustered source used (cluster:true, clusterMaxZoom 10,
    // clusterRadius 46, the alarm/moving cluster properties), so the map looks the same.
    index = new Supercluster<PointProps, ClusterProps>({
      maxZoom: CLUSTER_MAX_ZOOM,
      radius: CLUSTER_RADIUS,
      extent: 512,
      map: (p) => ({ alarm: p.s === "alarm" ? 1 : 0, moving: p.s === "moving" || p.s === "on_trip" ? 1 : 0 }),
      reduce: (acc, p) => {
        acc.alarm += p.alarm;
        acc.moving += p.moving;
      },
    }).load(points);
  }
  return index;
}

const r6 = (x: number) => Math.round(x * 1e6) / 1e6;
const pointText = (f: Point) =>
  `{"type":"Feature","id":${f.properties.id},"geometry":{"type":"Point","coordinates":[${r6(f.geometry.coordinates[0])},${r6(f.geometry.coordinates[1])}]},"properties":{"id":${f.properties.id},"s":"${f.properties.s}"}}`;

/** The view's bbox grown by half its size on every side, so a pan stays covered until the next update. */
function margin(v: View): [number, number, number, number] {
  const [w, s, e, n] = v.bbox;
  const dx = (e - w) / 2;
  const dy = (n - s) / 2;
  return [Math.max(-180, w - dx), Math.max(-85, s - dy), Math.min(180, e + dx), Math.min(85, n + dy)];
}

/** GeoJSON text of what the map draws for `v`: clusters up to CLUSTER_MAX_ZOOM, single vehicles above. */
function viewText(v: View | null): { text: string; n: number } {
  const zoom = Math.max(0, Math.floor(v?.zoom ?? 0));
  const [w, s, e, n] = v ? margin(v) : [-180, -85, 180, 85];
  const parts: string[] = [];
  if (zoom > CLUSTER_MAX_ZOOM) {
    for (const f of points) {
      const [x, y] = f.geometry.coordinates;
      if (x >= w && x <= e && y >= s && y <= n) parts.push(pointText(f));
    }
  } else {
    const idx = clusterIndex();
    for (const f of idx.getClusters([w, s, e, n], zoom)) {
      const p = f.properties;
      if ("cluster" in p && p.cluster) {
        const [x, y] = f.geometry.coordinates;
        const expand = Math.min(idx.getClusterExpansionZoom(p.cluster_id), 20);
        parts.push(
          `{"type":"Feature","id":${p.cluster_id},"geometry":{"type":"Point","coordinates":[${r6(x)},${r6(y)}]},"properties":{"cluster":true,"cluster_id":${p.cluster_id},"point_count":${p.point_count},"point_count_abbreviated":${JSON.stringify(p.point_count_abbreviated)},"alarm":${p.alarm},"moving":${p.moving},"expand":${expand}}}`,
        );
      } else {
        parts.push(pointText(f as Point));
      }
    }
  }
  return { text: `{"type":"FeatureCollection","features":[${parts.join(",")}]}`, n: parts.length };
}

function postFeatures(newestTs: number, t0: number) {
  const { text, n } = viewText(view);
  const geojson = new Blob([text], { type: "application/geo+json" });
  awaiting = performance.now();
  post({ type: "features", geojson, features: n, view: view?.seq ?? 0, newestTs, buildMs: awaiting - t0 });
}

function frame() {
  const now = performance.now();
  if (awaiting && now - awaiting < ACK_TIMEOUT_MS) return; // back-pressure: the map is still busy
  if (now < nextFrame || drawn === fleet.version) return;
  // A fixed clock (not "FRAME_MS after the last one", which the 100 ms tick and any delay
  // would stretch); after a long stall the clock restarts from now.
  nextFrame = now - nextFrame < FRAME_MS ? nextFrame + FRAME_MS : now + FRAME_MS;
  drawn = fleet.version;
  const t0 = performance.now();
  const { counts, shown } = refreshPoints();
  postFeatures(newestPending, t0);
  newestPending = 0;
  if (now - lastSnapshot < 1000 - FRAME_MS / 2) return;
  lastSnapshot = now;
  const t1 = performance.now();
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
  post({ type: "frame", counts, shown, arrivals, positions, snapshotMs: performance.now() - t1, snapshot }, [snapshot.buffer]);
  arrivals = [];
  positions = 0;
}

ctx.onmessage = (ev: MessageEvent<ToWorker>) => {
  const m = ev.data;
  if (m.type === "init") {
    setDisplayCrs(m.crs);
    fleet.offlineAfterMs = m.offlineAfterMs;
    fleet.load(m.index);
    if (m.latest) fleet.applyLatest(m.latest);
    fleet.markAlarms(m.alarms);
    void connect();
    setInterval(frame, 100);
    frame();
  } else if (m.type === "live_url") {
    urlWaiter?.(m.url);
    urlWaiter = null;
  } else if (m.type === "filter") {
    filter = m;
    fleet.version++;
    nextFrame = 0;
    lastSnapshot = -Infinity;
    awaiting = 0;
    frame();
  } else if (m.type === "view") {
    // A pan or zoom: answer at once from the current index (no re-clustering).
    view = m.view;
    if (drawn >= 0) postFeatures(0, performance.now());
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
