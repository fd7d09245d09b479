// Pieces shared by the trip pages: the lifecycle timeline and a place picker.
import type { Map as MLMap } from "maplibre-gl";
import maplibregl from "maplibre-gl";
import { useEffect, useState } from "preact/hooks";
import { api, type Org, type Place } from "../api";
import { t, term } from "../i18n";
import { toMap } from "../map/coords";

const FLOW = ["submitted", "approved", "assigned", "accepted", "departed", "completed", "settled"];

export function Timeline(props: { state: string }) {
  const idx = FLOW.indexOf(props.state);
  if (idx < 0) return <div class="small muted">{term(props.state)}</div>;
  return (
    <div class="timeline">
      {FLOW.map((s, i) => <div key={s} class={`step ${i <= idx ? "done" : ""}`}>{term(s)}</div>)}
    </div>
  );
}

/** Address search over organisations with a location (units, county seats): offline "geocoding". */
export function PlaceSearch(props: { onPick: (p: Place) => void; testid: string }) {
  const [q, setQ] = useState("");
  const [hits, setHits] = useState<Org[]>([]);
  useEffect(() => {
    if (q.trim().length < 2) {
      setHits([]);
      return;
    }
    const h = window.setTimeout(() => {
      api.orgs({ q: q.trim(), limit: 8 }).then((p) => setHits(p.items.filter((o) => (o as Org & { location?: unknown }).location)), () => setHits([]));
    }, 250);
    return () => window.clearTimeout(h);
  }, [q]);
  return (
    <div style={{ position: "relative" }}>
      <input class="input" style={{ width: "100%" }} placeholder={`${t("address")} / ${t("search")}`} value={q} data-testid={props.testid}
        onInput={(e) => setQ((e.target as HTMLInputElement).value)} />
      {hits.length > 0 && (
        <div class="card" style={{ position: "absolute", zIndex: 10, left: 0, right: 0, top: 34 }}>
          {hits.map((o) => {
            const loc = (o as Org & { location: { lat: number; lon: number } }).location;
            return (
              <div class="list-item" key={o.id} onClick={() => { props.onPick({ lat: loc.lat, lon: loc.lon, address: o.name }); setQ(""); setHits([]); }}>
                {o.name}
              </div>
            );
          })}
        </div>
      )}
    </div>
  );
}

const markers = new WeakMap<MLMap, Record<string, maplibregl.Marker>>();

/** Origin/destination pins (green / red). */
export function setPins(map: MLMap, pins: { origin?: Place | null; destination?: Place | null }) {
  const m = markers.get(map) ?? {};
  markers.set(map, m);
  for (const [k, color] of [["origin", "#16a34a"], ["destination", "#dc2626"]] as const) {
    const p = pins[k];
    if (!p) {
      m[k]?.remove();
      delete m[k];
      continue;
    }
    const ll = toMap(p.lon, p.lat);
    if (m[k]) m[k].setLngLat(ll);
    else m[k] = new maplibregl.Marker({ color }).setLngLat(ll).addTo(map);
  }
}
