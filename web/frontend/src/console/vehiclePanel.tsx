// The console's vehicle panel: the selected vehicle's state, today's track on the map, the
// way to its playback, and its terminal (terminalPanel.tsx).
import type { Map as MLMap } from "maplibre-gl";
import maplibregl from "maplibre-gl";
import { useEffect, useState } from "preact/hooks";
import { api } from "../api";
import type { Fleet, VehicleState } from "../fleet";
import { t, term } from "../i18n";
import { geojsonToMap } from "../map/coords";
import { Link } from "../router";
import { fmtDateTime, shanghaiDay, shanghaiMidnight } from "../time";
import { ErrorText, StatusDot } from "../ui";
import { TerminalSection } from "./terminalPanel";

export function VehiclePanel(props: { v: VehicleState; fleet: Fleet; map: MLMap | null; onClose: () => void }) {
  const { v, map } = props;
  const s = props.fleet.status(v, Date.now());
  const [trackInfo, setTrackInfo] = useState<string | null>(null);
  const [trackErr, setTrackErr] = useState<unknown>(null);
  useEffect(() => () => clearTrack(map), [v.id]);
  const showTrack = async () => {
    if (!map) return;
    setTrackErr(null);
    const day = shanghaiDay();
    try {
      const g = await api.track(v.id, shanghaiMidnight(day).toISOString(), new Date().toISOString());
      const line = g.features.filter((f) => f.geometry.type === "LineString");
      drawTrack(map, geojsonToMap({ type: "FeatureCollection", features: line }) as GeoJSON.FeatureCollection);
      const n = g.features.reduce((acc, f) => acc + (f.geometry.type === "LineString" ? (f.geometry.coordinates as number[][]).length : 0), 0);
      setTrackInfo(`${n} ${t("points")}`);
    } catch (e) {
      setTrackErr(e);
    }
  };
  return (
    <div class="vehicle-panel card" data-testid="vehicle-panel">
      <header>
        <span class="plate">{v.plate}</span>
        <span class="row">
          <span class="tag"><StatusDot status={s} />&nbsp;{t(`st_${s}` as never)}</span>
          <button class="btn small" onClick={props.onClose}>{t("close")}</button>
        </span>
      </header>
      <div class="body">
        <dl class="kv">
          <dt>{t("unit")}</dt><dd>{v.unit}</dd>
          <dt>{t("body_type")}</dt><dd>{t(`bt_${v.body_type}` as never)} · {term(v.category)}</dd>
          <dt>{t("last_ping")}</dt><dd data-testid="panel-last-ping">{fmtDateTime(v.ts || null)}</dd>
          <dt>{t("speed")}</dt><dd>{v.speed.toFixed(0)} km/h · {Math.round(v.heading)}°</dd>
          <dt>{t("driver")}</dt><dd>{v.driver ?? "—"}</dd>
          <dt>{t("current_trip")}</dt><dd>{v.trip ? <Link href={`/audit/trips/${v.trip}`}>#{v.trip}</Link> : "—"}</dd>
          <dt>{t("today_track")}</dt>
          <dd>
            <span class="row">
              <button class="btn small" onClick={showTrack} data-testid="show-track">{t("show_track")}</button>
              <Link href={`/audit/vehicles/${v.id}/${shanghaiDay()}`}>{t("playback")}</Link>
            </span>
            {trackInfo && <div class="small muted">{trackInfo}</div>}
            {trackErr ? <ErrorText error={trackErr} /> : null}
          </dd>
        </dl>
        <TerminalSection vehicleId={v.id} />
      </div>
    </div>
  );
}

function drawTrack(map: MLMap, fc: GeoJSON.FeatureCollection) {
  const src = map.getSource("track") as maplibregl.GeoJSONSource | undefined;
  if (src) src.setData(fc);
  else {
    map.addSource("track", { type: "geojson", data: fc });
    map.addLayer({ id: "track-line", type: "line", source: "track", paint: { "line-color": "#1677ff", "line-width": 3, "line-opacity": 0.85 } }, "v-cluster");
  }
  const coords = fc.features.flatMap((f) => (f.geometry as GeoJSON.LineString).coordinates);
  if (coords.length > 1) {
    const b = coords.reduce((bb, c) => bb.extend(c as [number, number]), new maplibregl.LngLatBounds(coords[0] as [number, number], coords[0] as [number, number]));
    map.fitBounds(b, { padding: 80, maxZoom: 15 });
  }
}

function clearTrack(map: MLMap | null) {
  const src = map?.getSource("track") as maplibregl.GeoJSONSource | undefined;
  src?.setData({ type: "FeatureCollection", features: [] });
}
