// Dispatcher console: live fleet map, filters, queue of approved requests, optimizer proposal,
// alerts feed and a vehicle panel.
import { useMemo, useRef, useState } from "preact/hooks";
import { type Alert, api } from "../api";
import { type Filters, useLiveMap } from "../console/useLiveMap";
import { Fleet, type VehicleState } from "../fleet";
import { t, term, useLang } from "../i18n";
import type { LiveMessage } from "../live";
import { chooseTiles, currentTiles, uiConfig } from "../map/base";
import { toMap } from "../map/coords";
import { fmtDateTime, fmtShort, fmtTime } from "../time";
import { ErrorText, Modal, StateTag, STATUS_COLORS, STATUSES, StatusDot, useAsync, type VStatus } from "../ui";
import { playSos, SosBanner, type SosAlert, sosOf } from "../sos";
import { ProposalPanel } from "../console/proposalPanel";
import { QueuePanel } from "../console/queuePanel";
import { VehiclePanel } from "../console/vehiclePanel";

const BODY_TYPES = ["sedan", "suv", "mpv", "minibus", "bus"];

export function ConsolePage() {
  useLang();
  const mapEl = useRef<HTMLDivElement>(null);
  const fleet = useMemo(() => new Fleet(), []);
  const [filters, setFilters] = useState<Filters>({ q: "", unit: "", body: "", statuses: new Set(STATUSES) });
  const [selected, setSelectedId] = useState<number | null>(null);
  const [tab, setTab] = useState<"queue" | "proposal" | "alerts">("queue");
  const [alertBump, setAlertBump] = useState(0);
  // Alerts acknowledged or closed since the list was fetched (id -> new status), from live
  // events: the open-alerts list drops them at once, before its re-fetch answers.
  const [alertChanges, setAlertChanges] = useState<Record<number, string>>({});
  const [sos, setSos] = useState<SosAlert[]>([]); // emergency alarms not yet dismissed here
  const onEvent = (m: LiveMessage, known: boolean) => {
    const emergency = sosOf(m, (id) => fleet.byId.get(id)?.plate);
    if (emergency) {
      setSos((xs) => (xs.some((x) => x.id === emergency.id) ? xs : [emergency, ...xs]));
      playSos();
    }
    if (m.type === "alert") {
      const d = m.data as { id?: number; status?: string };
      if (typeof d.id === "number" && d.status && d.status !== "open") setSos((xs) => xs.filter((x) => x.id !== d.id));
      if (typeof d.id === "number" && d.status && d.status !== "open") {
        const id = d.id;
        const status = d.status;
        setAlertChanges((c) => ({ ...c, [id]: status }));
        setAlertBump((n) => n + 1);
      } else if (known) setAlertBump((n) => n + 1);
    }
    if (m.type === "trip") setAlertBump((n) => n + 1);
  };
  const { map: mapRef, loaded, loadError, live, counts, shown, units, tick } = useLiveMap(mapEl, fleet, { filters, selected, onSelect: setSelectedId, onEvent });

  const matches = useMemo(() => {
    const q = filters.q.trim().toUpperCase();
    const out: VehicleState[] = [];
    const unit = Number(filters.unit || 0);
    const now = Date.now();
    for (const v of fleet.byId.values()) {
      if (q && !v.plate.toUpperCase().includes(q)) continue;
      if (unit && v.unit_id !== unit) continue;
      if (filters.body && v.body_type !== filters.body) continue;
      if (!filters.statuses.has(fleet.status(v, now))) continue;
      out.push(v);
      if (out.length >= 100) break;
    }
    return out;
  }, [filters, loaded, Math.floor(tick / 5)]);

  const focus = (v: VehicleState) => {
    setSelectedId(v.id);
    if (v.lon != null && v.lat != null) mapRef.current?.easeTo({ center: toMap(v.lon, v.lat), zoom: Math.max(mapRef.current.getZoom(), 13) });
    fleet.version++;
  };

  const toggleStatus = (s: VStatus) => {
    const next = new Set(filters.statuses);
    if (next.has(s)) next.delete(s);
    else next.add(s);
    setFilters({ ...filters, statuses: next });
  };

  const sel = selected != null ? fleet.byId.get(selected) ?? null : null;
  const total = fleet.byId.size;
  const tiles = uiConfig()?.tiles ?? [];

  return (
    <div class="console">
      <aside class="left">
        <div class="section-title">
          <span>{t("vehicles")}</span>
          <span class="muted small num" data-testid="vehicle-count">
            {shown.toLocaleString()} / {total.toLocaleString()} {t("shown")}
          </span>
        </div>
        <div class="filters">
          <input class="input" data-testid="plate-search" placeholder={`${t("search_plate")} / ${t("search")}`} value={filters.q}
            onInput={(e) => setFilters({ ...filters, q: (e.target as HTMLInputElement).value })} />
          <div class="row">
            <select class="input" data-testid="unit-filter" value={filters.unit} onChange={(e) => setFilters({ ...filters, unit: (e.target as HTMLSelectElement).value })}>
              <option value="">{t("unit")}: {t("all")}</option>
              {units.map(([id, name]) => <option key={id} value={id}>{name}</option>)}
            </select>
            <select class="input" data-testid="body-filter" value={filters.body} onChange={(e) => setFilters({ ...filters, body: (e.target as HTMLSelectElement).value })}>
              <option value="">{t("all_types")}</option>
              {BODY_TYPES.map((b) => <option key={b} value={b}>{t(`bt_${b}` as never)}</option>)}
            </select>
          </div>
          <div class="chips">
            {STATUSES.map((s) => (
              <span key={s} class={`chip ${filters.statuses.has(s) ? "on" : ""}`} data-testid={`status-chip-${s}`} onClick={() => toggleStatus(s)}>
                <StatusDot status={s} /> {t(`st_${s}` as never)} <b class="num">{counts[s].toLocaleString()}</b>
              </span>
            ))}
          </div>
        </div>
        <div class="scroll" data-testid="vehicle-results">
          {loadError ? <div class="inset"><ErrorText error={loadError} /></div> : null}
          {!loaded && !loadError && <div class="empty">{t("loading")}</div>}
          {loaded && matches.length === 0 && <div class="empty small">{t("empty")}</div>}
          {matches.map((v) => {
            const s = fleet.status(v, Date.now());
            return (
              <div key={v.id} class={`list-item ${selected === v.id ? "sel" : ""}`} onClick={() => focus(v)} data-testid="vehicle-row">
                <div class="title"><span>{v.plate}</span><span class="tag"><StatusDot status={s} />&nbsp;{t(`st_${s}` as never)}</span></div>
                <div class="meta"><span>{v.unit}</span><span>{t(`bt_${v.body_type}` as never)}</span><span>{fmtShort(v.ts || null)}</span></div>
              </div>
            );
          })}
        </div>
      </aside>

      <section class="mapbox">
        <div class="map" ref={mapEl} data-testid="console-map" />
        <SosBanner alerts={sos} onLocate={(id) => { const v = fleet.byId.get(id); if (v) focus(v); }}
          onDismiss={(id) => setSos((xs) => xs.filter((x) => x.id !== id))} />
        <div class="map-overlay">
          <div class="legend" data-testid="legend">
            <span class={`livebadge ${live}`} data-testid="live-state" data-state={live}>
              <i class="dot" /> {live === "open" ? t("live") : live === "connecting" ? t("connecting") : t("disconnected")}
            </span>
            {STATUSES.map((s) => (
              <span key={s}><i class="dot" style={{ background: STATUS_COLORS[s] }} />{t(`st_${s}` as never)} <b class="count" data-testid={`count-${s}`}>{counts[s].toLocaleString()}</b></span>
            ))}
          </div>
        </div>
        {tiles.length > 1 && (
          <div class="map-tools">
            <select aria-label="tiles" value={currentTiles()?.id} onChange={(e) => chooseTiles((e.target as HTMLSelectElement).value)}>
              {tiles.map((x) => <option key={x.id} value={x.id}>{x.name}</option>)}
            </select>
          </div>
        )}
        {sel && <VehiclePanel v={sel} fleet={fleet} map={mapRef.current} onClose={() => { setSelectedId(null); fleet.version++; }} />}
      </section>

      <aside class="right">
        <div class="tabs">
          <button class={tab === "queue" ? "on" : ""} onClick={() => setTab("queue")} data-testid="tab-queue">{t("queue")}</button>
          <button class={tab === "proposal" ? "on" : ""} onClick={() => setTab("proposal")} data-testid="tab-proposal">{t("proposal")}</button>
          <button class={tab === "alerts" ? "on" : ""} onClick={() => setTab("alerts")} data-testid="tab-alerts">{t("alerts")}</button>
        </div>
        {tab === "queue" && <QueuePanel fleet={fleet} bump={alertBump} />}
        {tab === "proposal" && <ProposalPanel fleet={fleet} />}
        {tab === "alerts" && <AlertsPanel bump={alertBump} changes={alertChanges} fleet={fleet} onFocus={(id) => { const v = fleet.byId.get(id); if (v) focus(v); }} />}
      </aside>
    </div>
  );
}

function AlertsPanel(props: { bump: number; changes: Record<number, string>; fleet: Fleet; onFocus: (vehicleId: number) => void }) {
  const a = useAsync(() => api.alerts({ status: "open", limit: 100 }), [props.bump]);
  const [acking, setAcking] = useState<Alert | null>(null);
  // Another console acknowledged or closed it: gone from the open list (and its dialog here).
  const still = (al: Alert) => (props.changes[al.id] ?? al.status) === "open";
  const items = (a.data?.items ?? []).filter(still);
  return (
    <div class="scroll" data-testid="alerts">
      {a.loading && !a.data && <div class="empty">{t("loading")}</div>}
      <ErrorText error={a.error} />
      {a.data && items.length === 0 && <div class="empty">{t("empty")}</div>}
      {items.map((al) => (
        <div key={al.id} class={`list-item alert-item sev-${al.severity} kind-${al.kind}`} data-testid="alert-item" data-alert-id={al.id} onClick={() => al.vehicle_id && props.onFocus(al.vehicle_id)}>
          <div class="title"><span>{al.kind === "sos" && <span class="sos-badge">SOS</span>}{term(al.kind)}</span><StateTag state={al.severity} /></div>
          <div class="meta"><span>{al.plate ?? (al.vehicle_id ? props.fleet.byId.get(al.vehicle_id)?.plate : "")}</span><span>{fmtTime(al.started_at)}</span></div>
          <div class="meta">{al.message}</div>
          <div class="row" style={{ marginTop: 6 }}>
            <button class="btn small" onClick={(e) => { e.stopPropagation(); setAcking(al); }} data-testid="ack-open">{t("ack")}</button>
          </div>
        </div>
      ))}
      {acking && still(acking) && <AckModal alert={acking} onClose={() => setAcking(null)} onDone={() => { setAcking(null); a.reload(); }} />}
    </div>
  );
}

function AckModal(props: { alert: Alert; onClose: () => void; onDone: () => void }) {
  const [comment, setComment] = useState("");
  const [err, setErr] = useState<unknown>(null);
  const submit = async () => {
    try {
      await api.ackAlert(props.alert.id, comment);
      props.onDone();
    } catch (e) {
      setErr(e);
    }
  };
  return (
    <Modal title={`${t("ack")} · ${term(props.alert.kind)}`} onClose={props.onClose}
      footer={<><button class="btn" onClick={props.onClose}>{t("cancel")}</button><button class="btn primary" onClick={submit} data-testid="ack-submit">{t("confirm")}</button></>}>
      <div class="small muted">{fmtDateTime(props.alert.started_at)} · {props.alert.message}</div>
      <label class="field">{t("ack_comment")}
        <textarea class="input" rows={3} value={comment} data-testid="ack-comment" onInput={(e) => setComment((e.target as HTMLTextAreaElement).value)} />
      </label>
      <ErrorText error={err} />
    </Modal>
  );
}
