// HTTP client for /api/v1: bearer token, JSON errors, and the list of endpoints the pages use.
// Endpoints owned by the telematics and dispatch packages are called through this one module,
// so a contract change is a one-line change here (see docs/web.md, "API contract").

// The access token lives in memory only (issue 11): short-lived (10 min), renewed with the
// refresh token, which is in an HttpOnly SameSite=Strict cookie the page cannot read, plus the
// session's CSRF token from the readable `fleet_csrf` cookie. A reload renews it the same way.
let accessToken: string | null = null;
let renewTimer: number | undefined;
// Left by builds that kept a 12-hour bearer token in localStorage: removed on load.
localStorage.removeItem("fleet.token");

export class ApiError extends Error {
  constructor(
    public status: number,
    public code: string,
    message: string,
    public field?: string,
  ) {
    super(message);
  }
}

export function token(): string | null {
  return accessToken;
}
/** Keep `v` in memory; with its expiry, renew it a minute before it runs out. */
export function setToken(v: string | null, expiresAt?: string): void {
  accessToken = v;
  window.clearTimeout(renewTimer);
  if (v && expiresAt) {
    const ms = Date.parse(expiresAt) - Date.now() - 60_000;
    renewTimer = window.setTimeout(() => void refreshAccess(), Math.max(5_000, ms));
  }
}

function cookie(name: string): string | null {
  for (const part of document.cookie.split("; ")) {
    const i = part.indexOf("=");
    if (part.slice(0, i) === name) return decodeURIComponent(part.slice(i + 1));
  }
  return null;
}

export interface TokenOut {
  access_token: string;
  expires_at: string;
  session_idle_s: number;
  user: Me;
}

// The server ends a session unused for `session_idle_s`; the page's own renewals would keep
// it alive, so they stop once the user has not touched the page that long.
let idleLimitMs = 30 * 60_000;
let lastInput = Date.now();
for (const ev of ["pointerdown", "keydown", "wheel", "touchstart"]) {
  window.addEventListener(ev, () => (lastInput = Date.now()), { passive: true, capture: true });
}
export function noteSession(out: TokenOut): void {
  idleLimitMs = out.session_idle_s * 1000;
  setToken(out.access_token, out.expires_at);
}

let refreshing: Promise<TokenOut | null> | null = null;
/** A new access token from the session cookie (null: no session, sign in again). */
export function refreshAccess(): Promise<TokenOut | null> {
  refreshing ??= (async () => {
    const csrf = cookie("fleet_csrf");
    if (!csrf) return null;
    if (accessToken && Date.now() - lastInput > idleLimitMs) {
      // Idle: end the session instead of renewing it; the login page shows.
      void fetch("/api/v1/auth/logout", { method: "POST", headers: { Authorization: `Bearer ${accessToken}` } }).catch(
        () => undefined,
      );
      setToken(null);
      window.dispatchEvent(new Event("fleet:unauthenticated"));
      return null;
    }
    try {
      const res = await fetch("/api/v1/auth/refresh", {
        method: "POST",
        headers: { Accept: "application/json", "X-CSRF-Token": csrf },
      });
      if (!res.ok) return null;
      const out = (await res.json()) as TokenOut;
      noteSession(out);
      return out;
    } catch {
      return null;
    }
  })().finally(() => {
    refreshing = null;
  });
  return refreshing;
}

const NO_RENEW = new Set(["/auth/login", "/auth/refresh", "/auth/logout"]);

type Query = Record<string, string | number | boolean | null | undefined>;

function qs(q?: Query): string {
  if (!q) return "";
  const p = new URLSearchParams();
  for (const [k, v] of Object.entries(q)) if (v !== undefined && v !== null && v !== "") p.set(k, String(v));
  const s = p.toString();
  return s ? `?${s}` : "";
}

export async function request<T>(method: string, path: string, body?: unknown, q?: Query, retried = false): Promise<T> {
  const headers: Record<string, string> = { Accept: "application/json" };
  const tk = token();
  if (tk) headers.Authorization = `Bearer ${tk}`;
  if (body !== undefined) headers["Content-Type"] = "application/json";
  const res = await fetch(`/api/v1${path}${qs(q)}`, {
    method,
    headers,
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  if (res.status === 401 && !NO_RENEW.has(path) && !retried && (await refreshAccess())) {
    return request<T>(method, path, body, q, true);
  }
  if (res.status === 204) return undefined as T;
  const data = await res.json().catch(() => null);
  if (!res.ok) {
    const e = data?.error ?? {};
    if (res.status === 401 && path !== "/auth/login") {
      setToken(null);
      window.dispatchEvent(new Event("fleet:unauthenticated"));
    }
    if (res.status === 403 && e.code === "password_change_required") {
      window.dispatchEvent(new Event("fleet:password-change"));
    }
    throw new ApiError(res.status, e.code ?? "http_error", e.message ?? res.statusText, e.field);
  }
  return data as T;
}

export const get = <T>(path: string, q?: Query) => request<T>("GET", path, undefined, q);
export const post = <T>(path: string, body?: unknown) => request<T>("POST", path, body ?? {});

export interface Page<T> {
  items: T[];
  total: number;
  limit: number;
  offset: number;
}

// ---- identity and registry (foundation, available) ----
export type Role = "requester" | "approver" | "dispatcher" | "driver" | "auditor" | "admin";
export interface Binding {
  role: Role;
  org_id: number;
  org_name: string;
}
export interface Me {
  id: number;
  username: string;
  display_name: string;
  org_id: number;
  locale: string;
  roles: Binding[];
  // Set while the user must change their password before anything else (issue 11).
  password_change_required?: "initial" | "expired" | null;
}
export interface Vehicle {
  id: number;
  plate: string;
  body_type: string;
  category: string;
  energy: string;
  seats: number;
  unit_id: number;
  status: string;
  shared_pool: string;
}
export interface Driver {
  id: number;
  name: string;
  phone: string | null;
  unit_id: number;
  licence_class: string;
  status: string;
  user_id: number | null;
}
export interface Org {
  id: number;
  name: string;
  kind: string;
  path: string;
  code: string;
}

export interface AppNotification {
  id: number;
  kind: string;
  message: string;
  data: Record<string, unknown>;
  created_at: string;
  read_at: string | null;
}

export interface TerminalCommand {
  id: number;
  vehicle_id: number | null;
  terminal_id: string;
  kind: "text" | "position_query";
  text: string | null;
  status: "queued" | "sent" | "acknowledged" | "failed" | "unsupported" | "answered" | "expired";
  created_at: string;
  created_by: string | null;
  sent_at: string | null;
  replied_at: string | null;
  result: number | null;
  reply: { lat?: number; lon?: number; ts?: string; speed_kmh?: number } | null;
}
export interface TerminalLink {
  vehicle_id: number;
  terminal_id: string | null;
  protocol: string | null;
  active: boolean | null;
  commands_supported: boolean;
  online: boolean;
  connected_at: string | null;
  last_seen_at: string | null;
  disconnected_at: string | null;
  reason: string | null;
  commands: TerminalCommand[];
}

export const api = {
  login: (username: string, password: string) => post<TokenOut>("/auth/login", { username, password }),
  logout: () => post<void>("/auth/logout"),
  changePassword: (current_password: string, new_password: string) =>
    post<Me>("/auth/password", { current_password, new_password }),
  me: () => get<Me>("/auth/me"),
  // A single-use websocket ticket (30 s): the bearer token never goes into a URL (web/live_auth.py).
  liveTicket: () => post<{ ticket: string; expires_at: string; ttl_s: number }>("/live/ticket"),
  orgs: (q: Query) => get<Page<Org>>("/orgs", q),
  vehicles: (q: Query) => get<Page<Vehicle>>("/vehicles", q),
  vehicle: (id: number) => get<Vehicle>(`/vehicles/${id}`),
  drivers: (q: Query) => get<Page<Driver>>("/drivers", q),

  // ---- web (this package): runtime config and the console's compact fleet index ----
  uiConfig: () => get<UiConfig>("/ui-config"),
  fleetIndex: () => get<FleetIndex>("/ui/fleet-index"),

  // ---- telematics (issue 3) ----
  track: (vehicleId: number, start: string, end: string) =>
    get<TrackGeoJSON>(`/vehicles/${vehicleId}/track`, { start, end }),
  alerts: (q: Query) => get<Page<Alert>>("/alerts", q),
  ackAlert: (id: number, comment: string) => post<Alert>(`/alerts/${id}/acknowledge`, { comment }),
  latestPositions: () => get<LatestPositions>("/positions/latest"),
  // The vehicle's terminal and the console's commands to it (JT/T 808: telematics/jt808/api.py).
  vehicleTerminal: (vehicleId: number) => get<TerminalLink>(`/vehicles/${vehicleId}/terminal`),
  sendTerminalCommand: (vehicleId: number, body: { kind: "text" | "position_query"; text?: string; urgent?: boolean }) =>
    post<TerminalCommand>(`/vehicles/${vehicleId}/terminal/commands`, body),

  // ---- dispatch (issue 4) ----
  trips: (q: Query) => get<Page<Trip>>("/trips", q),
  trip: (id: number) => get<Trip>(`/trips/${id}`),
  tripHistory: (id: number) => get<TripHistory[]>(`/trips/${id}/history`),
  tripAssignments: (id: number) => get<Assignment[]>(`/trips/${id}/assignments`),
  createTrip: (body: TripIn) => post<Trip>("/trips", body),
  /** approve {comment?} · reject/return {reason} · assign {vehicle_id, driver_id} · settle. */
  tripAction: (id: number, action: string, body: Record<string, unknown> = {}) =>
    post<Trip>(`/trips/${id}/${action}`, body),
  inbox: () => get<Page<{ step: { id: number; level: ApprovalLevel; due_at: string | null }; trip: Trip; requester: string }>>("/approvals/inbox", { limit: 200 }),
  /** The trip's approval chain: levels, the current one, who can decide each (names, not ids). */
  approvalChain: (id: number) => get<ApprovalChain>(`/trips/${id}/approval-chain`),
  queue: () => get<Trip[]>("/dispatch/queue"),
  myAssignments: () => get<Page<MyAssignment>>("/me/assignments", { limit: 50 }),
  /** accept · decline {reason} · depart {odometer_km, at} · arrive {at} · complete {odometer_km, tolls_cny, ...}. */
  assignmentAction: (id: number, action: string, body: Record<string, unknown> = {}) =>
    post<Assignment>(`/assignments/${id}/${action}`, body),
  planningInput: () => get<{ requests: unknown[]; vehicles: unknown[]; drivers: unknown[] }>("/dispatch/planning-input"),
  // Auto-assign: create -> poll -> edit -> accept | discard (dispatch/optimize/api.py).
  createProposal: (body: { org_id: number; day: string; time_limit_s: number }) => post<Proposal>("/dispatch/proposals", body),
  proposal: (id: number) => get<Proposal>(`/dispatch/proposals/${id}`),
  editProposal: (id: number, items: { trip_id: number; vehicle_id?: number; driver_id?: number; drop?: boolean }[]) =>
    request<Proposal>("PATCH", `/dispatch/proposals/${id}`, { items }),
  acceptProposal: (id: number) => post<{ accepted: number; refused: number; results: { trip_id: number; ok: boolean; error: { message?: string } | null }[] }>(`/dispatch/proposals/${id}/accept`),
  discardProposal: (id: number) => post<Proposal>(`/dispatch/proposals/${id}/discard`),
  // Urgent suggestions (dispatch/optimize/suggestions.py): read-only; assign with tripAction.
  suggestions: (tripId: number, limit = 5) => get<Suggestions>(`/dispatch/trips/${tripId}/suggestions`, { limit }),
  applyAssignments: (items: { trip_id: number; vehicle_id: number; driver_id: number }[]) =>
    post<{ trip_id: number; ok: boolean; error: { message?: string } | null }[]>("/dispatch/assignments", { items, source: "optimizer" }),
  // Stored notifications (dispatch/notifications): the inbox behind the bell in the top bar.
  notifications: (q: Query) => get<Page<AppNotification> & { unread: number }>("/me/notifications", q),
  markRead: (body: { ids: number[] } | { all: true }) => post<{ marked: number; unread: number }>("/me/notifications/read", body),

  // ---- the official calendar (fleet/holidays): region admins edit, everyone reads ----
  holidays: (year: number) => get<Holiday[]>("/holidays", { year }),
  holidayCoverage: () => get<HolidayCoverage>("/holidays/coverage"),
  createHoliday: (body: HolidayIn) => post<Holiday>("/holidays", body),
  updateHoliday: (day: string, body: Omit<HolidayIn, "day">) => request<Holiday>("PUT", `/holidays/${day}`, body),
  deleteHoliday: (day: string) => request<void>("DELETE", `/holidays/${day}`),
  importHolidays: (file: File, mode: "replace" | "merge") => upload<HolidayImport>(`/holidays/import?mode=${mode}`, file),
};

export interface HolidayIn {
  day: string;
  kind: "holiday" | "workday";
  name: string;
  note: string | null;
}
export interface Holiday extends HolidayIn {
  source: "package" | "manual" | "import";
  updated_at: string;
  updated_by: number | null;
}
export interface HolidayCoverage {
  today: string;
  years: { year: number; holidays: number; workdays: number }[];
  missing_years: number[];
}
export interface HolidayImport {
  imported: number;
  years: number[];
  replaced: number;
  mode: "replace" | "merge";
}
export interface ImportRowError {
  row: number;
  column: string;
  reason: string;
}

/** Multipart upload of one file (field "file"); errors as ApiError, with `rows` when the server lists bad rows. */
export async function upload<T>(path: string, file: File): Promise<T> {
  const form = new FormData();
  form.append("file", file);
  const send = () => {
    const tk = token();
    return fetch(`/api/v1${path}`, { method: "POST", body: form, headers: tk ? { Authorization: `Bearer ${tk}` } : {} });
  };
  let res = await send();
  if (res.status === 401 && (await refreshAccess())) res = await send();
  const data = await res.json().catch(() => null);
  if (!res.ok) {
    const e = data?.error ?? {};
    const err = new ApiError(res.status, e.code ?? "http_error", e.message ?? res.statusText, e.field);
    (err as ApiError & { rows?: ImportRowError[] }).rows = e.rows;
    throw err;
  }
  return data as T;
}

export interface UiConfig {
  tiles: { id: string; name: string; url: string | null; crs: "wgs84" | "gcj02"; attribution: string; max_zoom: number }[];
  default_tiles: string;
  center: [number, number];
  zoom: number;
  offline_after_s: number;
  exports: Record<string, string>;
  timezone: string;
}
export interface FleetIndex {
  // Parallel arrays keep 26,638 vehicles to a few hundred kB.
  fields: string[];
  rows: (string | number | null)[][];
  units: Record<string, string>;
  generated_at: string;
}
export interface TrackGeoJSON {
  type: "FeatureCollection";
  features: {
    type: "Feature";
    geometry: { type: "LineString" | "Point"; coordinates: number[] | number[][] };
    properties: Record<string, unknown>;
  }[];
}
export interface Alert {
  id: number;
  kind: string;
  severity: string;
  vehicle_id: number | null;
  plate?: string | null;
  org_id: number | null;
  trip_id: number | null;
  started_at: string;
  ended_at: string | null;
  location?: { lat: number; lon: number } | null;
  message: string;
  evidence: Record<string, unknown> | null;
  status: string;
  ack_by?: number | null;
  ack_at?: string | null;
  ack_comment?: string | null;
}
export interface Place {
  lat: number;
  lon: number;
  address: string;
}
/** What a requester asks for: filed as TripIn, read back in Trip. */
interface TripAsk {
  passengers: number;
  nature: string;
  purpose: string;
  origin: Place;
  destination: Place;
  departure_at: string;
  return_at: string;
  round_trip: boolean;
  urgency: string;
}
export interface TripIn extends TripAsk {
  submit: boolean;
}
export interface Trip extends TripAsk {
  id: number;
  state: string;
  state_reason?: string | null;
  requester_id: number;
  unit_id: number;
  serving_unit_id?: number | null;
  kind: string;
  allowed_body_types: string[];
  planned_km: number;
  approval_status?: string;
  created_at: string;
  updated_at: string;
}
export interface ChainPerson {
  name: string;
  org: string;
}
/** The approval levels, lowest first: `dispatch.approvals.levels.Level` (tests/dispatch/test_levels.py holds them equal). */
export type ApprovalLevel = "unit" | "county" | "city" | "region";
export interface ChainLevel {
  seq: number;
  level: ApprovalLevel;
  scope: string;
  state: "planned" | "waiting" | "pending" | "approved" | "rejected" | "returned" | "cancelled";
  current: boolean;
  due_at: string | null;
  escalations: number;
  delegated: boolean;
  deciders: ChainPerson[];
  deciders_total: number;
  decided_by: ChainPerson | null;
  decided_at: string | null;
  comment: string | null;
}
export interface ApprovalChain {
  trip_id: number;
  kind: string;
  dispatch_first: boolean;
  approval_status: string;
  round: number;
  unit: string;
  destination_county: string | null;
  current_seq: number | null;
  current_level: ApprovalLevel | null;
  levels: ChainLevel[];
}
export interface Suggestion {
  rank: number;
  vehicle: { id: number; plate: string; body_type: string; seats: number; energy: string; unit_id: number; unit_name: string; shared_pool: string; start: "live" | "depot"; position_at: string | null; distance_km: number };
  driver: { id: number; name: string; licence_class: string; unit_id: number };
  added_km: number;
  pickup_at: string;
  late_min: number;
  score: number;
  bookings_before: number;
  bookings_after: number;
  why: string;
}
export interface Suggestions {
  trip_id: number;
  state: string;
  urgency: string;
  departure_at: string;
  vehicles_visible: number;
  eligible: number;
  excluded: Record<string, number>;
  suggestions: Suggestion[];
  complete: boolean;
  timings_ms: Record<string, number>;
}
export interface TripHistory {
  at: string;
  actor: string;
  action: string;
  from_state: string | null;
  to_state: string | null;
  reason: string | null;
}
export interface Assignment {
  id: number;
  trip_id: number;
  vehicle_id: number;
  driver_id: number;
  starts_at: string;
  ends_at: string;
  state: string;
  decline_reason: string | null;
  departed_at: string | null;
  arrived_at: string | null;
  completed_at: string | null;
  odometer_start_km: number | null;
  odometer_end_km: number | null;
  tolls_cny: string | number | null;
  parking_cny: string | number | null;
  energy_cny: string | number | null;
  notes: string | null;
}
export interface MyAssignment extends Assignment {
  plate: string;
  trip_state: string;
  purpose: string;
  origin_address: string;
  destination_address: string;
  passengers: number;
}
export interface ProposalItem {
  trip_id: number;
  label: string;
  vehicle_id: number;
  plate: string;
  driver_id: number;
  driver_name: string;
  pickup_at: string | null;
  sequence: number;
  why: string;
  dropped: boolean;
  edited: boolean;
}
export interface Proposal {
  id: number;
  state: "queued" | "running" | "done" | "failed" | "accepted" | "discarded";
  counts: Record<string, number>;
  progress: { elapsed_s: number | null; time_limit_s: number; phase: string | null; best_objective: number | null };
  items: ProposalItem[];
  unserved: { trip_id: number; reason: string; detail: string }[];
  vehicles_used: number | null;
  distance_km: number | null;
  error: string | null;
}
export interface LatestPositions {
  type: "FeatureCollection";
  features: {
    id: number;
    geometry: { type: "Point"; coordinates: [number, number] };
    properties: { vehicle_id: number; ts: string; speed_kmh: number | null; heading_deg: number | null; acc: boolean | null; status: string };
  }[];
}
