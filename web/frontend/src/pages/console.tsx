// Dispatcher console: live fleet map, filters, queue of approved requests, optimizer proposal,
// alerts feed and a vehicle panel. The map and its live feed are one hook and each panel one
// file in ../console/; this page holds what they share (filters, selection, tab) and lays out.
import { useMemo, useRef, useState } from "preact/hooks";
import { AlertsPanel, useAlertFeed } from "../console/alertsPanel";
import { MapOverlay } from "../console/mapOverlay";
import { ProposalPanel } from "../console/proposalPanel";
import { QueuePanel } from "../console/queuePanel";
import { type Filters, useLiveMap } from "../console/useLiveMap";
import { VehicleList } from "../console/vehicleList";
import { VehiclePanel } from "../console/vehiclePanel";
import { Fleet, type VehicleState } from "../fleet";
import { t, useLang } from "../i18n";
import { toMap } from "../map/coords";
import { SosBanner } from "../sos";
import { STATUSES } from "../ui";

export function ConsolePage() {
  useLang();
  const mapEl = useRef<HTMLDivElement>(null);
  const fleet = useMemo(() => new Fleet(), []);
  const [filters, setFilters] = useState<Filters>({ q: "", unit: "", body: "", statuses: new Set(STATUSES) });
  const [selected, setSelectedId] = useState<number | null>(null);
  const [tab, setTab] = useState<"queue" | "proposal" | "alerts">("queue");
  const alerts = useAlertFeed(fleet);
  const liveMap = useLiveMap(mapEl, fleet, { filters, selected, onSelect: setSelectedId, onEvent: alerts.onEvent });

  const focus = (v: VehicleState) => {
    setSelectedId(v.id);
    if (v.lon != null && v.lat != null) liveMap.map.current?.easeTo({ center: toMap(v.lon, v.lat), zoom: Math.max(liveMap.map.current.getZoom(), 13) });
    fleet.version++;
  };
  const focusId = (vehicleId: number) => {
    const v = fleet.byId.get(vehicleId);
    if (v) focus(v);
  };

  const sel = selected != null ? fleet.byId.get(selected) ?? null : null;

  return (
    <div class="console">
      <VehicleList fleet={fleet} live={liveMap} filters={filters} onFilters={setFilters} selected={selected} onFocus={focus} />

      <section class="mapbox">
        <div class="map" ref={mapEl} data-testid="console-map" />
        <SosBanner alerts={alerts.sos} onLocate={focusId} onDismiss={alerts.dismissSos} />
        <MapOverlay live={liveMap.live} counts={liveMap.counts} />
        {sel && <VehiclePanel v={sel} fleet={fleet} map={liveMap.map.current} onClose={() => { setSelectedId(null); fleet.version++; }} />}
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
