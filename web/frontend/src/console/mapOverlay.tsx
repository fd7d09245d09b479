// What the console shows over its map: the live feed's state, the legend with the count per
// status, and the choice of base tiles where there is more than one.
import { t } from "../i18n";
import type { LiveState } from "../live";
import { chooseTiles, currentTiles, uiConfig } from "../map/base";
import { STATUS_COLORS, STATUSES, type VStatus } from "../ui";

export function MapOverlay(props: { live: LiveState; counts: Record<VStatus, number> }) {
  const { live, counts } = props;
  const tiles = uiConfig()?.tiles ?? [];
  return (
    <>
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
    </>
  );
}
