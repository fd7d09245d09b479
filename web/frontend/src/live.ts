// The live websocket (/api/v1/live): one connection per tab, reconnecting with backoff.
// Messages follow telematics/bus.py: {"type": "positions", "items": [...]}, and
// {"type": "status" | "alert" | "trip" | "notification", "data": {...}}. An "alert" event is a
// new alert (no status) or an acknowledgement/closing (data.status, data.vehicle_open_alerts);
// "terminal_command": a console command to a JT/T 808 terminal changed status.
// Every (re)connect first buys a single-use ticket over HTTP (the bearer token never goes into
// a URL, which servers log); close codes follow web/live_auth.py: 4401 the login no longer
// admits us (a new ticket tells: if it is refused, the api layer signs out and the login page
// shows), 4403 our roles changed (reload: every page and the stream take the new scope).
import { ApiError, api, token } from "./api";
import { CLOSE_SCOPE_CHANGED, reconnectDelay } from "./liveClose";


/** The websocket URL with a fresh ticket; null when the login no longer holds (signed out). */
export async function liveUrl(): Promise<string | null> {
  try {
    const { ticket } = await api.liveTicket();
    const proto = location.protocol === "https:" ? "wss" : "ws";
    return `${proto}://${location.host}/api/v1/live?ticket=${encodeURIComponent(ticket)}`;
  } catch (e) {
    if (e instanceof ApiError && e.status === 401) return null;
    throw e;
  }
}

/** After a close: false when the page reloads for a changed scope (do not reconnect). */
export function afterClose(code: number): boolean {
  if (code === CLOSE_SCOPE_CHANGED) {
    location.reload();
    return false;
  }
  return true;
}


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
  | { type: "status" | "alert" | "trip" | "notification" | "terminal_command"; data: Record<string, unknown> };

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
  if (on) disconnect();
  else if (wanted) void connect();
}

/** Deliver a message from an external feed to every subscriber. */
export function inject(m: LiveMessage): void {
  handlers.forEach((h) => h(m));
}

export function injectState(s: LiveState): void {
  setState(s);
}

let attempt = 0; // bumps on every connect, so a late ticket of an abandoned attempt is dropped

/** Close the socket and abandon a retry or a connect waiting for its ticket. */
function disconnect() {
  window.clearTimeout(timer);
  attempt++;
  ws?.close();
  ws = null;
}

function retryLater(code: number) {
  retry = Math.min(retry + 1, 6);
  window.clearTimeout(timer);
  timer = window.setTimeout(connect, reconnectDelay(code, retry));
}

async function connect() {
  if (!wanted || !token() || external || ws) return;
  const mine = ++attempt;
  setState("connecting");
  let url: string | null;
  try {
    url = await liveUrl();
  } catch {
    if (mine === attempt) {
      setState("closed");
      retryLater(0);
    }
    return;
  }
  if (mine !== attempt || !wanted || external || ws) return;
  if (url === null) return setState("closed"); // signed out: the login page takes over
  const sock = new WebSocket(url);
  ws = sock;
  sock.onopen = () => {
    retry = 0;
    setState("open");
  };
  sock.onmessage = (ev) => {
    let msg: LiveMessage;
    try {
      msg = JSON.parse(ev.data as string);
    } catch {
      return;
    }
    handlers.forEach((h) => h(msg));
  };
  sock.onclose = (ev) => {
    if (ws !== sock) return; // closed by us (unsubscribed, or the console's worker took over)
    ws = null;
    if (external) return;
    setState("closed");
    if (wanted && afterClose(ev.code)) retryLater(ev.code);
  };
}

export function subscribe(h: Handler): () => void {
  handlers.add(h);
  if (!wanted) {
    wanted = true;
    void connect();
  }
  return () => {
    handlers.delete(h);
    if (handlers.size === 0) {
      wanted = false;
      disconnect();
    }
  };
}

export function onState(f: (s: LiveState) => void): () => void {
  stateListeners.add(f);
  f(state);
  return () => stateListeners.delete(f);
}
