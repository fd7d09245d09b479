// Dispatcher console: live fleet map, filters, queue of approved requests, optimizer proposal,
// alerts feed and a vehicle panel.
import { useMemo, useRef, useState } from "preact/hooks";
import { type Filters, useLiveMap } from "../console/useLiveMap";
import { Fleet, type VehicleState } from "../fleet";
import { t, useLang } from "../i18n";
import { chooseTiles, currentTiles, uiConfig } from "../map/base";
import { toMap } from "../map/coords";
import { fmtShort } from "../time";
import { ErrorText, STATUS_COLORS, STATUSES, StatusDot, type VStatus } from "../ui";
import { SosBanner } from "../sos";
import { AlertsPanel, useAlertFeed } from "../console/alertsPanel";
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
  const alerts = useAlertFeed(fleet);
  const { map: mapRef, loaded, loadError, live, counts, shown, units, tick } = useLiveMap(mapEl, fleet, { filters, selected, onSelect: setSelectedId, onEvent: alerts.onEvent });

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
  const focusId = (vehicleId: number) => {
    const v = fleet.byId.get(vehicleId);
    if (v) focus(v);
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
        <SosBanner alerts={alerts.sos} onLocate={focusId} onDismiss={alerts.dismissSos} />
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
        {tab === "queue" && <QueuePanel fleet={fleet} bump={alerts.bump} />}
        {tab === "proposal" && <ProposalPanel fleet={fleet} />}
        {tab === "alerts" && <AlertsPanel bump={alerts.bump} changes={alerts.changes} fleet={fleet} onFocus={focusId} />}
      </aside>
    </div>
  );
}
