// The console's vehicle list: search by plate, unit, body type and status (the map follows the
// same filters, applied in the worker), and the first 100 vehicles that match.
import { useMemo } from "preact/hooks";
import { type Fleet, passesFilter, type VehicleFilter, type VehicleState } from "../fleet";
import { t } from "../i18n";
import { fmtShort } from "../time";
import { ErrorText, STATUSES, StatusDot, type VStatus } from "../ui";
import type { Filters, LiveMap } from "./useLiveMap";

const BODY_TYPES = ["sedan", "suv", "mpv", "minibus", "bus"];

export function VehicleList(props: { fleet: Fleet; live: LiveMap; filters: Filters; onFilters: (f: Filters) => void; selected: number | null; onFocus: (v: VehicleState) => void }) {
  const { fleet, filters, selected, onFilters: setFilters, onFocus: focus } = props;
  const { loaded, loadError, counts, shown, units, tick } = props.live;
  const matches = useMemo(() => {
    const f: VehicleFilter = { q: filters.q.trim().toUpperCase(), unit: Number(filters.unit || 0), body: filters.body, statuses: filters.statuses };
    const out: VehicleState[] = [];
    const now = Date.now();
    for (const v of fleet.byId.values()) {
      if (!passesFilter(v, fleet.status(v, now), f)) continue;
      out.push(v);
      if (out.length >= 100) break;
    }
    return out;
  }, [filters, loaded, Math.floor(tick / 5)]);

  const toggleStatus = (s: VStatus) => {
    const next = new Set(filters.statuses);
    if (next.has(s)) next.delete(s);
    else next.add(s);
    setFilters({ ...filters, statuses: next });
  };

  const total = fleet.byId.size;

  return (
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
  );
}
