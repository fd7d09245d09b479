// The console's live map: MapLibre with the vehicle layers, the worker that owns the live feed
// (fleetWorker.ts: websocket, fleet state, filters, clustering) and the page's share of its
// events. The page only lays out the panels around it.
import type { Map as MLMap } from "maplibre-gl";
import type { RefObject } from "preact";
import { useEffect, useRef, useState } from "preact/hooks";
import { api } from "../api";
import type { Fleet } from "../fleet";
import { type FromWorker, SNAP_FIELDS, STATUS_CODES, type ToWorker } from "../fleetProtocol";
import { afterClose, inject, injectState, type LiveMessage, type LiveState, liveUrl, onState, setExternal, subscribe } from "../live";
import { createMap, uiConfig, whenBaseReady } from "../map/base";
import { displayCrs, toMap } from "../map/coords";
import { addVehicleLayers, ClusterLabels, setSelected } from "../map/vehicles";
import { countFrames, DrawWatch, type FleetStats } from "./drawWatch";
import type { VStatus } from "../ui";

export interface Filters {
  q: string;
  unit: string;
  body: string;
  statuses: Set<VStatus>;
}

export interface LiveMapOptions {
  filters: Filters;
  selected: number | null; // highlighted on the map with each snapshot
  onSelect: (vehicleId: number) => void; // a vehicle clicked on the map
  /** Every live event, after the fleet applied it (`known`: it concerned a vehicle in scope). */
  onEvent: (m: LiveMessage, known: boolean) => void;
}

export interface LiveMap {
  map: RefObject<MLMap | null>;
  loaded: boolean; // the fleet index is in and the worker started
  loadError: unknown;
  live: LiveState;
  counts: Record<VStatus, number>;
  shown: number; // vehicles passing the filters
  units: [string, string][]; // [id, name] of the units in scope, by name
  tick: number; // bumps with each snapshot (about once a second)
}

type Frame = Extract<FromWorker, { type: "frame" }>;

/** Map, index, live feed (in the worker) and the lists' snapshot at most once a second. */
export function useLiveMap(mapEl: RefObject<HTMLDivElement>, fleet: Fleet, opts: LiveMapOptions): LiveMap {
  const mapRef = useRef<MLMap | null>(null);
  const workerRef = useRef<Worker | null>(null);
  const optsRef = useRef(opts);
  optsRef.current = opts;
  const [loaded, setLoaded] = useState(false);
  const [loadError, setLoadError] = useState<unknown>(null);
  const [live, setLive] = useState<LiveState>("closed");
  const [counts, setCounts] = useState<Record<VStatus, number>>({ moving: 0, parked: 0, on_trip: 0, offline: 0, alarm: 0 });
  const [shown, setShown] = useState(0);
  const [units, setUnits] = useState<[string, string][]>([]);
  const [tick, setTick] = useState(0);

  useEffect(() => {
    const map = createMap(mapEl.current!);
    mapRef.current = map;
    let alive = true;
    const stats: FleetStats = { frames: 0, renders: 0, latencies: [], arrivals: [], redrawMs: [], positions: 0, batches: 0, shown: 0, total: 0, features: 0, viewSeq: 0, drawnView: { seq: 0, at: 0 } };
    window.__fleetStats = stats;
    // Handles for the browser tests and bench/console_load.py (read-only use).
    (window as unknown as { __fleet: Fleet; __map: MLMap }).__fleet = fleet;
    (window as unknown as { __fleet: Fleet; __map: MLMap }).__map = map;
    const stopCounting = countFrames(map, stats);
    const draws = new DrawWatch(map, stats, () => {
      const ack: ToWorker = { type: "drawn" };
      workerRef.current?.postMessage(ack);
    });

    // The live feed runs in a worker (fleetWorker.ts): it owns the websocket, clusters the
    // fleet and sends the features of the current view as a GeoJSON Blob (MapLibre's worker
    // parses it from a blob: URL), plus once a second a snapshot for the lists and panels.
    const worker = new Worker(new URL("../fleetWorker.ts", import.meta.url), { type: "module" });
    workerRef.current = worker;
    setExternal(true);
    const onFrame = (m: Frame) => {
      for (const a of m.arrivals) stats.arrivals.push(a);
      if (stats.arrivals.length > 20000) stats.arrivals.splice(0, 5000);
      stats.positions += m.positions;
      stats.batches++;
      fleet.applySnapshot(m.snapshot, SNAP_FIELDS, STATUS_CODES);
      stats.shown = m.shown;
      stats.total = fleet.byId.size;
      setCounts(m.counts);
      setShown(m.shown);
      const selected = optsRef.current.selected;
      const sel = selected != null ? fleet.byId.get(selected) : null;
      setSelected(map, sel?.lon != null && sel.lat != null ? toMap(sel.lon, sel.lat) : null);
      setTick((n) => n + 1);
    };
    worker.onmessage = (ev: MessageEvent<FromWorker>) => {
      const m = ev.data;
      if (m.type === "need_url") {
        liveUrl()
          .catch(() => null)
          .then((url) => {
            const reply: ToWorker = { type: "live_url", url };
            workerRef.current?.postMessage(reply);
          });
        return;
      }
      if (m.type === "state") {
        if (m.code !== undefined) afterClose(m.code); // 4403: reload with the new scope
        return injectState(m.state);
      }
      if (m.type === "event") return inject(m.msg);
      if (!alive || !map.getSource("vehicles")) return;
      if (m.type === "features") return draws.hand(m);
      onFrame(m);
    };
    const views = postViews(map, worker, stats);

    whenBaseReady(map, () => {
      addVehicleLayers(map);
      new ClusterLabels(map);
      onVehicleClicks(map, (id) => optsRef.current.onSelect(id));
      (async () => {
        const idx = await api.fleetIndex();
        if (!alive) return;
        fleet.offlineAfterMs = (uiConfig()?.offline_after_s ?? 600) * 1000;
        fleet.load(idx);
        setUnits(Object.entries(idx.units).sort((a, b) => a[1].localeCompare(b[1], "zh-CN")));
        const [latest, open] = await Promise.all([
          api.latestPositions().catch((e) => (setLoadError(e), null)),
          api.alerts({ status: "open", limit: 500 }).catch(() => null),
        ]);
        const alarms = open ? open.items.map((a) => a.vehicle_id).filter((x): x is number => x != null) : [];
        if (latest) fleet.applyLatest(latest);
        fleet.markAlarms(alarms);
        const msg: ToWorker = {
          type: "init",
          index: idx,
          latest,
          alarms,
          offlineAfterMs: fleet.offlineAfterMs,
          crs: displayCrs(),
        };
        worker.postMessage(msg);
        postFilter(worker, optsRef.current.filters);
        setLoaded(true);
        fitToFleet(map, fleet);
        views.post();
      })().catch((e) => setLoadError(e));
    });

    const unsub = subscribe((m) => {
      const known = fleet.applyEvent(m);
      optsRef.current.onEvent(m, known);
      if (m.type === "trip") {
        const d = m.data as { trip_id?: number; to?: string; vehicle_id?: number };
        // Departure and completion events name the booked vehicle (dispatch/trips/state.py).
        if (d.trip_id && d.vehicle_id && (d.to === "departed" || d.to === "completed")) {
          const tripId = d.to === "departed" ? d.trip_id : null;
          fleet.setTrip(d.vehicle_id, tripId, null);
          const tm: ToWorker = { type: "trip", vehicleId: d.vehicle_id, tripId };
          worker.postMessage(tm);
        }
      }
    });
    const unstate = onState(setLive);
    return () => {
      alive = false;
      const stop: ToWorker = { type: "stop" };
      worker.postMessage(stop);
      workerRef.current = null;
      setExternal(false);
      draws.revokeAll();
      views.cancel();
      stopCounting();
      unsub();
      unstate();
      map.remove();
    };
  }, []);

  // Filters are applied in the worker, which redraws at once.
  useEffect(() => {
    if (workerRef.current) postFilter(workerRef.current, opts.filters);
  }, [opts.filters]);

  return { map: mapRef, loaded, loadError, live, counts, shown, units, tick };
}

/** The worker only sends what the view needs: tell it where the map is, at once on a zoom or
 * the end of a pan, and a few times a second while panning. */
function postViews(map: MLMap, worker: Worker, stats: FleetStats): { post: () => void; cancel: () => void } {
  let viewTimer = 0;
  let lastView = 0;
  const post = () => {
    window.clearTimeout(viewTimer);
    viewTimer = 0;
    lastView = performance.now();
    const b = map.getBounds();
    const seq = ++stats.viewSeq;
    const msg: ToWorker = { type: "view", view: { bbox: [b.getWest(), b.getSouth(), b.getEast(), b.getNorth()], zoom: map.getZoom(), seq } };
    worker.postMessage(msg);
  };
  map.on("moveend", post);
  map.on("move", () => {
    if (!viewTimer) viewTimer = window.setTimeout(post, Math.max(0, 250 - (performance.now() - lastView)));
  });
  return { post, cancel: () => window.clearTimeout(viewTimer) };
}

/** A cluster zooms in; a vehicle is selected. */
function onVehicleClicks(map: MLMap, select: (vehicleId: number) => void): void {
  map.on("click", "v-cluster", (e) => {
    const f = e.features?.[0];
    if (!f) return;
    // The worker put each cluster's expansion zoom on it (supercluster's getClusterExpansionZoom).
    const z = Number(f.properties.expand ?? map.getZoom() + 2);
    map.easeTo({ center: (f.geometry as GeoJSON.Point).coordinates as [number, number], zoom: z + 0.2 });
  });
  map.on("click", "v-point", (e) => {
    const id = e.features?.[0]?.properties?.id;
    if (typeof id === "number") select(id);
  });
  for (const l of ["v-cluster", "v-point"]) {
    map.on("mouseenter", l, () => (map.getCanvas().style.cursor = "pointer"));
    map.on("mouseleave", l, () => (map.getCanvas().style.cursor = ""));
  }
}

/** The filters go to the worker, which applies them and redraws at once. */
function postFilter(worker: Worker, f: Filters) {
  const m: ToWorker = { type: "filter", q: f.q, unit: f.unit ? Number(f.unit) : 0, body: f.body, statuses: [...f.statuses] };
  worker.postMessage(m);
}

/** A county dispatcher starts on their county, not on the whole region. */
function fitToFleet(map: MLMap, fleet: Fleet) {
  let w = 180, so = 90, e = -180, n = -90, k = 0;
  for (const v of fleet.byId.values()) {
    if (v.lon == null || v.lat == null) continue;
    const [x, y] = toMap(v.lon, v.lat);
    w = Math.min(w, x); e = Math.max(e, x); so = Math.min(so, y); n = Math.max(n, y); k++;
  }
  if (k > 0) map.fitBounds([[w, so], [e, n]], { padding: 80, maxZoom: 12, duration: 0 });
}
