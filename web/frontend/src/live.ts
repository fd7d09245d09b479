// The live websocket (/api/v1/live): one connection per tab, reconnecting with backoff.
// Messages follow telematics/bus.py: {"type": "positions", "items": [...]}, and
// {"type": "status" | "alert" | "trip" | "notification", "data": {...}}. An "alert" event is a
// new alert (no status) or an acknowledgement/closing (data.status, data.vehicle_open_alerts).
import { token } from "./api";

export interface LivePosition {
  vehicle_id: number;
  org_path?: string;
  ts: string;
  lat: number;
  lon: number;
  speed_kmh: number | null;
  heading_deg: number | null;
  acc: boolean | null;
  flags: number | null;
}
export type LiveMessage =
  | { type: "positions"; items: LivePosition[] }
  | { type: "status" | "alert" | "trip" | "notification"; data: Record<string, unknown> };

type Handler = (m: LiveMessage) => void;
export type LiveState = "connecting" | "open" | "closed";

const handlers = new Set<Handler>();
const stateListeners = new Set<(s: LiveState) => void>();
let ws: WebSocket | null = null;
let state: LiveState = "closed";
let retry = 0;
let timer: number | undefined;
let wanted = false;

function setState(s: LiveState) {
  state = s;
  stateListeners.forEach((f) => f(s));
}

let external = false;

/** While a page feeds events itself (the console's worker owns the socket), do not connect. */
export function setExternal(on: boolean): void {
  external = on;
  if (on) {
    window.clearTimeout(timer);
    ws?.close();
  } else if (wanted) connect();
}

/** Deliver a message from an external feed to every subscriber. */
export function inject(m: LiveMessage): void {
  handlers.forEach((h) => h(m));
}

export function injectState(s: LiveState): void {
  setState(s);
}

function connect() {
  const tk = token();
  if (!wanted || !tk || external) return;
  const proto = location.protocol === "https:" ? "wss" : "ws";
  setState("connecting");
  ws = new WebSocket(`${proto}://${location.host}/api/v1/live?token=${encodeURIComponent(tk)}`);
  ws.onopen = () => {
    retry = 0;
    setState("open");
  };
  ws.onmessage = (ev) => {
    let msg: LiveMessage;
    try {
      msg = JSON.parse(ev.data as string);
    } catch {
      return;
    }
    handlers.forEach((h) => h(msg));
  };
  ws.onclose = (ev) => {
    ws = null;
    if (external) return;
    setState("closed");
    if (wanted && !external && ev.code !== 4401) {
      retry = Math.min(retry + 1, 6);
      timer = window.setTimeout(connect, 500 * 2 ** retry);
    }
  };
}

export function subscribe(h: Handler): () => void {
  handlers.add(h);
  if (!wanted) {
    wanted = true;
    connect();
  }
  return () => {
    handlers.delete(h);
    if (handlers.size === 0) {
      wanted = false;
      window.clearTimeout(timer);
      ws?.close();
    }
  };
}

export function onState(f: (s: LiveState) => void): () => void {
  stateListeners.add(f);
  f(state);
  return () => stateListeners.delete(f);
}
