// Auditor pages (read-only): search trips and alerts, replay a trip or a vehicle-day track
// with planned vs actual and the findings' evidence, exports.
import { useEffect, useMemo, useState } from "preact/hooks";
import { type Alert, api, type Driver, get, type Org, type Page, type TrackGeoJSON, type Vehicle } from "../api";
import { download, withQuery } from "../download";
import { t, term, useLang } from "../i18n";
import { Link, navigate } from "../router";
import { fmtDateTime, fmtDuration, fmtShort, shanghaiDay, shanghaiMidnight } from "../time";
import { ErrorText, OrgName, StateTag, useAsync } from "../ui";
import { Playback, pointsOf, type TrackPoint } from "./playback";
import { Timeline } from "./trip";

const TRIP_STATES = ["submitted", "approved", "assigned", "accepted", "departed", "completed", "settled", "rejected", "cancelled", "reassigned"];
const ALERT_KINDS = ["overspeed", "geofence_exit", "off_hours_movement", "holiday_movement", "private_use", "not_at_depot", "terminal_offline", "terminal_refused", "trip_overtime", "destination_deviation"];

function daysAgo(n: number): string {
  return shanghaiDay(new Date(Date.now() - n * 86400_000));
}

/** Search box over organisations in scope; yields an org id. */
function OrgPicker(props: { value: Org | null; onChange: (o: Org | null) => void }) {
  const [q, setQ] = useState("");
  const [hits, setHits] = useState<Org[]>([]);
  useEffect(() => {
    if (q.trim().length < 1) return setHits([]);
    const h = window.setTimeout(() => api.orgs({ q: q.trim(), limit: 10 }).then((p) => setHits(p.items), () => setHits([])), 250);
    return () => window.clearTimeout(h);
  }, [q]);
  if (props.value)
    return (
      <span class="tag info" style={{ height: 32 }}>
        {props.value.name} <button class="linkbtn" onClick={() => props.onChange(null)}>✕</button>
      </span>
    );
  return (
    <div style={{ position: "relative" }}>
      <input class="input" placeholder={t("unit")} value={q} onInput={(e) => setQ((e.target as HTMLInputElement).value)} data-testid="org-picker" />
      {hits.length > 0 && (
        <div class="card" style={{ position: "absolute", zIndex: 10, left: 0, minWidth: 260, top: 34, maxHeight: 300, overflow: "auto" }}>
          {hits.map((o) => <div class="list-item" key={o.id} onClick={() => { props.onChange(o); setQ(""); setHits([]); }}>{o.name} <span class="muted small">{term(o.kind)}</span></div>)}
        </div>
      )}
    </div>
  );
}

/** The first hit of a search (null for an empty one); none is an error naming what was sought. */
async function firstHit<T>(what: string, q: string, search: (q: { q: string; limit: number }) => Promise<Page<T>>): Promise<T | null> {
  if (!q.trim()) return null;
  const p = await search({ q: q.trim(), limit: 1 });
  if (!p.items[0]) throw new Error(`${what}: ${q.trim()} — ${t("empty")}`);
  return p.items[0];
}

const vehicleByPlate = (plate: string): Promise<Vehicle | null> => firstHit(t("plate"), plate, api.vehicles);
const driverByName = (name: string): Promise<Driver | null> => firstHit(t("driver"), name, api.drivers);

export function AuditPage() {
  useLang();
  const [tab, setTab] = useState<"trips" | "alerts" | "vehicle">("trips");
  const [org, setOrg] = useState<Org | null>(null);
  // Default: the last 7 days and everything after, newest departure first. An auditor opening
  // the page expects the latest trips, including those due later today or tomorrow (a request
  // filed at 23:30 Shanghai departs the next day), so the end date is open unless one is set.
  const [from, setFrom] = useState(daysAgo(7));
  const [to, setTo] = useState("");
  const [day, setDay] = useState(shanghaiDay());
  const [kind, setKind] = useState("");
  const [plate, setPlate] = useState("");
  const [driver, setDriver] = useState("");
  const [run, setRun] = useState(0);
  const [err, setErr] = useState<unknown>(null);
  const [vehicle, setVehicle] = useState<Vehicle | null>(null);
  const [driverHit, setDriverHit] = useState<Driver | null>(null);

  const range = {
    start: from ? shanghaiMidnight(from).toISOString() : undefined,
    end: to ? new Date(shanghaiMidnight(to).getTime() + 86400_000).toISOString() : undefined,
  };
  const trips = useAsync(
    () => (tab === "trips" ? api.trips({ unit_id: org?.id, state: kind || undefined, vehicle_id: vehicle?.id, driver_id: driverHit?.id, departure_from: range.start, departure_to: range.end, limit: 200 }) : Promise.resolve(null)),
    [tab, run, vehicle?.id, driverHit?.id],
  );
  const alerts = useAsync(
    async () => (tab === "alerts" ? api.alerts({ under: org?.id, kind: kind || undefined, vehicle_id: vehicle?.id, start: range.start, end: range.end, limit: 200 }) : null),
    [tab, run, vehicle?.id],
  );
  const search = async () => {
    setErr(null);
    try {
      setVehicle(plate ? await vehicleByPlate(plate) : null);
      setDriverHit(tab === "trips" && driver ? await driverByName(driver) : null);
    } catch (e) {
      setErr(e);
    }
    setRun((n) => n + 1);
  };
  const exportFile = async (what: "trips" | "alerts", fmt: "csv" | "xlsx") => {
    try {
      const q = what === "trips"
        ? { unit_id: org?.id, state: kind || undefined, vehicle_id: vehicle?.id, driver_id: driverHit?.id, departure_from: range.start, departure_to: range.end }
        : { under: org?.id, kind: kind || undefined, vehicle_id: vehicle?.id, start: range.start, end: range.end };
      await download(withQuery(`/api/v1/exports/${what}.${fmt}`, q), `${what}.${fmt}`);
    } catch (e) {
      setErr(e);
    }
  };
  const openVehicleDay = async () => {
    setErr(null);
    try {
      const v = await vehicleByPlate(plate);
      if (!v) throw new Error(`${t("plate")}: ${plate} — ${t("empty")}`);
      navigate(`/audit/vehicles/${v.id}/${day || shanghaiDay()}`);
    } catch (e) {
      setErr(e);
    }
  };

  const tripItems = trips.data?.items ?? [];
  const filteredTrips = useMemo(() => tripItems, [trips.data]);
  return (
    <div class="page">
      <h1>{t("nav_audit")} <span class="tag">{t("auditor_readonly")}</span></h1>
      <div class="card">
        <div class="tabs">
          <button class={tab === "trips" ? "on" : ""} onClick={() => { setTab("trips"); setKind(""); }} data-testid="audit-tab-trips">{t("trips")}</button>
          <button class={tab === "alerts" ? "on" : ""} onClick={() => { setTab("alerts"); setKind(""); }} data-testid="audit-tab-alerts">{t("alerts")}</button>
          <button class={tab === "vehicle" ? "on" : ""} onClick={() => setTab("vehicle")} data-testid="audit-tab-vehicle">{t("vehicle_day")}</button>
        </div>
        <div class="body">
          <div class="row">
            {tab !== "vehicle" && <OrgPicker value={org} onChange={setOrg} />}
            <input class="input" style={{ width: 140 }} placeholder={t("plate")} value={plate} onInput={(e) => setPlate((e.target as HTMLInputElement).value)} data-testid="audit-plate" />
            {tab === "trips" && <input class="input" style={{ width: 120 }} placeholder={t("driver")} value={driver} data-testid="audit-driver" onInput={(e) => setDriver((e.target as HTMLInputElement).value)} />}
            {tab !== "vehicle" && <input class="input" type="date" value={from} onInput={(e) => setFrom((e.target as HTMLInputElement).value)} aria-label={t("from_date")} />}
            {tab !== "vehicle" ? (
              <input class="input" type="date" value={to} onInput={(e) => setTo((e.target as HTMLInputElement).value)} aria-label={t("to_date")} title={t("to_date_open")} data-testid="audit-to" />
            ) : (
              <input class="input" type="date" value={day} onInput={(e) => setDay((e.target as HTMLInputElement).value)} aria-label={t("date")} data-testid="audit-day" />
            )}
            {tab === "trips" && (
              <select class="input" value={kind} onChange={(e) => setKind((e.target as HTMLSelectElement).value)}>
                <option value="">{t("all_statuses")}</option>
                {TRIP_STATES.map((s) => <option key={s} value={s}>{term(s)}</option>)}
              </select>
            )}
            {tab === "alerts" && (
              <select class="input" value={kind} onChange={(e) => setKind((e.target as HTMLSelectElement).value)} data-testid="alert-kind">
                <option value="">{t("all_kinds")}</option>
                {ALERT_KINDS.map((s) => <option key={s} value={s}>{term(s)}</option>)}
              </select>
            )}
            {tab === "vehicle" ? (
              <button class="btn primary" onClick={openVehicleDay} data-testid="open-vehicle-day">{t("playback")}</button>
            ) : (
              <button class="btn primary" onClick={search} data-testid="audit-search">{t("query")}</button>
            )}
            <span class="spacer" style={{ flex: 1 }} />
            {tab !== "vehicle" && (
              <span class="row">
                <span class="muted small">{t("export")}</span>
                <button class="btn small" onClick={() => exportFile(tab, "csv")} data-testid="export-csv">CSV</button>
                <button class="btn small" onClick={() => exportFile(tab, "xlsx")} data-testid="export-xlsx">XLSX</button>
              </span>
            )}
          </div>
          <ErrorText error={err} />
          {tab === "trips" && (vehicle || driverHit) && (
            <div class="small muted" style={{ marginTop: 6 }} data-testid="audit-trip-filter">
              {vehicle && <>{t("plate")}: {vehicle.plate} </>}
              {driverHit && <>{t("driver")}: {driverHit.name}</>}
            </div>
          )}
        </div>
        {tab === "trips" && (
          <>
            <ErrorText error={trips.error} />
            <table class="table" data-testid="audit-trips">
              <thead><tr><th>#</th><th>{t("unit")}</th><th>{t("departure_time")}</th><th>{t("origin")}</th><th>{t("destination")}</th><th>{t("kind")}</th><th>{t("planned")} km</th><th>{t("ts_state")}</th><th /></tr></thead>
              <tbody>
                {filteredTrips.map((tr) => (
                  <tr key={tr.id} data-testid="audit-trip-row" data-trip={tr.id}>
                    <td>{tr.id}</td><td><OrgName id={tr.unit_id} /></td><td>{fmtShort(tr.departure_at)}</td>
                    <td>{tr.origin?.address}</td><td>{tr.destination?.address}</td><td>{term(tr.kind)}</td>
                    <td class="num">{tr.planned_km?.toFixed(1)}</td><td><StateTag state={tr.state} /></td>
                    <td><Link href={`/audit/trips/${tr.id}`}>{t("playback")}</Link> · <Link href={`/trips/${tr.id}/report`}>{t("trip_report")}</Link></td>
                  </tr>
                ))}
              </tbody>
            </table>
            {trips.data && filteredTrips.length === 0 && <div class="empty">{t("empty")}</div>}
          </>
        )}
        {tab === "alerts" && (
          <>
            <ErrorText error={alerts.error} />
            <AlertTable items={alerts.data?.items ?? []} />
            {alerts.data && alerts.data.items.length === 0 && <div class="empty">{t("empty")}</div>}
          </>
        )}
        {tab === "vehicle" && <div class="empty small">{t("plate")} + {t("date")} → {t("playback")}</div>}
      </div>
    </div>
  );
}

/** The alerts found on a trip or a vehicle-day; a row shows its evidence on the map. */
function FindingsCard(props: { alerts: Alert[]; onPick: (a: Alert) => void }) {
  return (
    <div class="card">
      <header>{t("findings")} <span class="badge grey">{props.alerts.length}</span></header>
      {props.alerts.length === 0 ? <div class="empty small">{t("empty")}</div> : <AlertTable items={props.alerts} onPick={props.onPick} />}
    </div>
  );
}

function AlertTable(props: { items: Alert[]; onPick?: (a: Alert) => void }) {
  return (
    <table class="table" data-testid="audit-alerts">
      <thead><tr><th>{t("when")}</th><th>{t("kind")}</th><th>{t("severity")}</th><th>{t("plate")}</th><th>{t("unit")}</th><th>{t("ts_state")}</th><th>{t("evidence")}</th></tr></thead>
      <tbody>
        {props.items.map((a) => (
          <tr key={a.id} data-testid="audit-alert-row">
            <td>{fmtShort(a.started_at)}</td><td>{term(a.kind)}</td><td><StateTag state={a.severity} /></td>
            <td>{a.plate ?? "—"}</td><td>{(a as Alert & { org_name?: string }).org_name ?? ""}</td><td><StateTag state={a.status} /></td>
            <td>
              {props.onPick ? <button class="btn small" onClick={() => props.onPick!(a)}>{t("view")}</button>
                : a.vehicle_id ? <Link href={`/audit/vehicles/${a.vehicle_id}/${shanghaiDay(new Date(a.started_at))}?alert=${a.id}`}>{t("view")}</Link> : "—"}
            </td>
          </tr>
        ))}
      </tbody>
    </table>
  );
}

function haversineM(a: [number, number], b: [number, number]): number {
  const R = 6371008.8;
  const toRad = (x: number) => (x * Math.PI) / 180;
  const dLat = toRad(b[1] - a[1]);
  const dLon = toRad(b[0] - a[0]);
  const h = Math.sin(dLat / 2) ** 2 + Math.cos(toRad(a[1])) * Math.cos(toRad(b[1])) * Math.sin(dLon / 2) ** 2;
  return 2 * R * Math.asin(Math.sqrt(h));
}

function trackDistanceKm(pts: TrackPoint[]): number {
  let d = 0;
  for (let i = 1; i < pts.length; i++) d += haversineM([pts[i - 1].lon, pts[i - 1].lat], [pts[i].lon, pts[i].lat]);
  return d / 1000;
}

/** Everything the trip pages show: trip, its assignment, track, findings. */
export function useTripAudit(id: number) {
  return useAsync(async () => {
    const trip = await api.trip(id);
    const [history, assignments] = await Promise.all([
      api.tripHistory(id).catch(() => []),
      api.tripAssignments(id).catch(() => []),
    ]);
    const a = assignments.find((x) => x.departed_at) ?? assignments[assignments.length - 1] ?? null;
    let track: TrackGeoJSON | null = null;
    let alerts: Alert[] = [];
    let vehicle: Vehicle | null = null;
    let trackError: unknown = null;
    if (a) {
      vehicle = await api.vehicle(a.vehicle_id).catch(() => null);
      const start = a.departed_at ?? a.starts_at;
      const end = a.completed_at ?? (a.departed_at ? new Date().toISOString() : a.ends_at);
      if (a.departed_at) {
        try {
          track = await api.track(a.vehicle_id, start, end);
        } catch (e) {
          trackError = e;
        }
        alerts = await api.alerts({ vehicle_id: a.vehicle_id, start, end, limit: 100 }).then((p) => p.items, () => []);
      }
    }
    return { trip, history, assignment: a, track, alerts, vehicle, trackError };
  }, [id]);
}

export function AuditTripPage(props: { id: number }) {
  useLang();
  const data = useTripAudit(props.id);
  const [evidence, setEvidence] = useState<GeoJSON.FeatureCollection | null>(null);
  const pts = useMemo(() => pointsOf(data.data?.track ?? null), [data.data]);
  if (data.loading) return <div class="empty">{t("loading")}</div>;
  if (data.error) return <div class="page"><ErrorText error={data.error} /></div>;
  const { trip, assignment: a, alerts, vehicle, history, trackError } = data.data!;
  const actualKm = a?.odometer_end_km != null && a.odometer_start_km != null ? a.odometer_end_km - a.odometer_start_km : null;
  const trackKm = pts.length > 1 ? trackDistanceKm(pts) : null;
  const plannedS = (Date.parse(trip.return_at) - Date.parse(trip.departure_at)) / 1000;
  const actualS = a?.departed_at && a.completed_at ? (Date.parse(a.completed_at) - Date.parse(a.departed_at)) / 1000 : null;
  const last = pts[pts.length - 1];
  const endDev = last ? haversineM([last.lon, last.lat], [trip.destination.lon, trip.destination.lat]) : null;
  const pickAlert = async (al: Alert) => {
    const full = await fetchAlert(al.id).catch(() => null);
    setEvidence((full?.evidence as GeoJSON.FeatureCollection | undefined) ?? null);
  };
  return (
    <div class="page" data-testid="audit-trip">
      <h1>
        {t("trip_report")} #{trip.id} <StateTag state={trip.state} />{" "}
        <span class="row" style={{ display: "inline-flex", marginLeft: 12 }}>
          <Link href={`/trips/${trip.id}/report`} class="btn small">{t("print")}</Link>
          {a?.departed_at && <button class="btn small" onClick={() => download(withQuery(`/api/v1/vehicles/${a.vehicle_id}/track`, { start: a.departed_at!, end: a.completed_at ?? new Date().toISOString() }), `track-${trip.id}.geojson`)} data-testid="export-geojson">GeoJSON</button>}
          {a?.departed_at && <button class="btn small" onClick={() => download(withQuery(`/api/v1/vehicles/${a.vehicle_id}/track`, { start: a.departed_at!, end: a.completed_at ?? new Date().toISOString(), format: "gpx" }), `track-${trip.id}.gpx`)} data-testid="export-gpx">GPX</button>}
        </span>
      </h1>
      <Timeline state={trip.state} />
      <div class="detail-grid">
        <div>
          {trackError ? <ErrorText error={trackError} /> : null}
          <Playback points={pts} planned={{ origin: [trip.origin.lon, trip.origin.lat], destination: [trip.destination.lon, trip.destination.lat] }} evidence={evidence} />
        </div>
        <div class="stack">
          <div class="card">
            <header>{t("planned")} / {t("actual")}</header>
            <div class="body compare" data-testid="planned-actual">
              <span class="h" /><span class="h">{t("planned")}</span><span class="h">{t("actual")}</span>
              <span class="muted">{t("departure_time")}</span><span>{fmtShort(trip.departure_at)}</span><span>{fmtShort(a?.departed_at)}</span>
              <span class="muted">{t("return_time")}</span><span>{fmtShort(trip.return_at)}</span><span>{fmtShort(a?.completed_at)}</span>
              <span class="muted">{t("duration")}</span><span>{fmtDuration(plannedS)}</span><span>{fmtDuration(actualS)}</span>
              <span class="muted">{t("distance_km")}</span><span class="num">{trip.planned_km?.toFixed(1)}</span>
              <span class="num">{actualKm != null ? actualKm.toFixed(1) : "—"}{trackKm != null ? ` (GPS ${trackKm.toFixed(1)})` : ""}</span>
              <span class="muted">{t("destination")}</span><span>{trip.destination.address}</span><span>{endDev != null ? `${(endDev / 1000).toFixed(2)} km` : "—"}</span>
            </div>
          </div>
          <div class="card">
            <header>{t("vehicle")}</header>
            <div class="body">
              <dl class="kv">
                <dt>{t("plate")}</dt><dd>{vehicle?.plate ?? "—"}</dd>
                <dt>{t("unit")}</dt><dd><OrgName id={trip.unit_id} /></dd>
                <dt>{t("purpose")}</dt><dd>{trip.purpose}</dd>
                <dt>{t("passengers")}</dt><dd>{trip.passengers}</dd>
                <dt>{t("odometer_km")}</dt><dd>{a?.odometer_start_km ?? "—"} → {a?.odometer_end_km ?? "—"}</dd>
                <dt>{t("tolls")}</dt><dd>{a?.tolls_cny ?? "—"}</dd>
                <dt>{t("parking")}</dt><dd>{a?.parking_cny ?? "—"}</dd>
                <dt>{t("fuel")}</dt><dd>{a?.energy_cny ?? "—"}</dd>
              </dl>
            </div>
          </div>
          <FindingsCard alerts={alerts} onPick={pickAlert} />
          <div class="card">
            <header>{t("ts_state")}</header>
            <div class="body small">
              {history.map((h, i) => (
                <div key={i} style={{ padding: "3px 0" }}>
                  <span class="mono">{fmtDateTime(h.at)}</span> · {h.actor} · {term(h.from_state)} → {term(h.to_state)} {h.reason ? `（${h.reason}）` : ""}
                </div>
              ))}
            </div>
          </div>
        </div>
      </div>
    </div>
  );
}

async function fetchAlert(id: number): Promise<Alert | null> {
  return get<Alert>(`/alerts/${id}`);
}

export function AuditVehicleDayPage(props: { id: number; day: string }) {
  useLang();
  const alertId = Number(new URLSearchParams(location.search).get("alert") || 0);
  const start = shanghaiMidnight(props.day).toISOString();
  const end = new Date(shanghaiMidnight(props.day).getTime() + 86400_000).toISOString();
  const data = useAsync(async () => {
    const vehicle = await api.vehicle(props.id);
    const track = await api.track(props.id, start, end);
    const alerts = await api.alerts({ vehicle_id: props.id, start, end, limit: 100 }).then((p) => p.items, () => [] as Alert[]);
    const ev = alertId ? await fetchAlert(alertId).catch(() => null) : null;
    return { vehicle, track, alerts, evidence: (ev?.evidence as GeoJSON.FeatureCollection | undefined) ?? null };
  }, [props.id, props.day]);
  const [evidence, setEvidence] = useState<GeoJSON.FeatureCollection | null>(null);
  const pts = useMemo(() => pointsOf(data.data?.track ?? null), [data.data]);
  if (data.loading) return <div class="empty">{t("loading")}</div>;
  if (data.error) return <div class="page"><ErrorText error={data.error} /></div>;
  const { vehicle, alerts } = data.data!;
  const maxSpeed = pts.reduce((m, p) => Math.max(m, p.speed), 0);
  const go = (d: number) => navigate(`/audit/vehicles/${props.id}/${shanghaiDay(new Date(shanghaiMidnight(props.day).getTime() + d * 86400_000 + 3600_000))}`);
  return (
    <div class="page" data-testid="vehicle-day">
      <h1 class="row">
        <span>{vehicle.plate} · {props.day}</span>
        <button class="btn small" onClick={() => go(-1)}>‹</button>
        <button class="btn small" onClick={() => go(1)}>›</button>
        <button class="btn small" onClick={() => download(withQuery(`/api/v1/vehicles/${props.id}/track`, { start, end }), `track-${props.id}-${props.day}.geojson`)} data-testid="export-geojson">GeoJSON</button>
        <button class="btn small" onClick={() => download(withQuery(`/api/v1/vehicles/${props.id}/track`, { start, end, format: "gpx" }), `track-${props.id}-${props.day}.gpx`)} data-testid="export-gpx">GPX</button>
      </h1>
      <div class="detail-grid">
        <Playback points={pts} evidence={evidence ?? data.data!.evidence} />
        <div class="stack">
          <div class="card">
            <header>{t("vehicle")}</header>
            <div class="body">
              <dl class="kv">
                <dt>{t("unit")}</dt><dd><OrgName id={vehicle.unit_id} /></dd>
                <dt>{t("body_type")}</dt><dd>{t(`bt_${vehicle.body_type}` as never)}</dd>
                <dt>{t("points")}</dt><dd data-testid="track-points">{pts.length}</dd>
                <dt>{t("distance_km")}</dt><dd>{trackDistanceKm(pts).toFixed(1)}</dd>
                <dt>{t("max_speed")}</dt><dd>{maxSpeed.toFixed(0)} km/h</dd>
              </dl>
            </div>
          </div>
          <FindingsCard alerts={alerts} onPick={async (al) => setEvidence(((await fetchAlert(al.id).catch(() => null))?.evidence as GeoJSON.FeatureCollection | undefined) ?? null)} />
        </div>
      </div>
    </div>
  );
}
