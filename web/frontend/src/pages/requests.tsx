// Requester: file a trip request (places picked on the map or by name) and follow it live.
import type { Map as MLMap } from "maplibre-gl";
import { useEffect, useRef, useState } from "preact/hooks";
import { api, type Place, type Trip } from "../api";
import { t, term, useLang } from "../i18n";
import { subscribe } from "../live";
import { createMap } from "../map/base";
import { fromMap } from "../map/coords";
import { Link } from "../router";
import { fmtShort, isoToLocalInput, localInputToIso } from "../time";
import { ErrorText, StateTag, useAsync } from "../ui";
import { PlaceSearch, setPins, Timeline } from "./trip";

const NATURES = ["official", "meeting", "inspection", "reception", "emergency", "law_enforcement", "courier", "special"];

/** Origin or destination: search by name or pick on the map, then the address is editable
 * (a map pick names the county and coordinates; the requester writes the street address). */
function PlaceField(props: {
  which: "origin" | "destination";
  color: string;
  place: Place | null;
  onChange: (p: Place) => void;
  picking: boolean;
  onPickOnMap: () => void;
}) {
  const { which, place } = props;
  return (
    <>
      <div class="field small muted">{t(which)}</div>
      <div class="row">
        <div style={{ flex: 1 }}><PlaceSearch testid={`${which}-search`} onPick={props.onChange} /></div>
        <button type="button" class={`btn ${props.picking ? "primary" : ""}`} onClick={props.onPickOnMap} data-testid={`pick-${which}`}>{t("pick_on_map")}</button>
      </div>
      {place && (
        <div class="row small" data-testid={`${which}-value`}>
          <i class="pin-dot" style={{ background: props.color }} />
          <input class="input" style={{ flex: 1 }} maxLength={300} required aria-label={`${t(which)} · ${t("address")}`} value={place.address}
            data-testid={`${which}-address`} onInput={(e) => props.onChange({ ...place, address: (e.target as HTMLInputElement).value })} />
        </div>
      )}
    </>
  );
}

export function RequestsPage() {
  useLang();
  const mapEl = useRef<HTMLDivElement>(null);
  const mapRef = useRef<MLMap | null>(null);
  const [picking, setPicking] = useState<"origin" | "destination" | null>(null);
  const pickingRef = useRef(picking);
  pickingRef.current = picking;
  const inHour = new Date(Date.now() + 3600_000);
  const [form, setForm] = useState({
    passengers: 2,
    nature: "official",
    purpose: "",
    depart: isoToLocalInput(inHour),
    ret: isoToLocalInput(new Date(inHour.getTime() + 4 * 3600_000)),
    round_trip: true,
    urgency: "normal",
  });
  const [origin, setOrigin] = useState<Place | null>(null);
  const [destination, setDestination] = useState<Place | null>(null);
  const [err, setErr] = useState<unknown>(null);
  const [bump, setBump] = useState(0);
  const [created, setCreated] = useState<Trip | null>(null);
  const mine = useAsync(() => api.trips({ mine: true, limit: 50 }), [bump]);

  useEffect(() => {
    const map = createMap(mapEl.current!, { zoom: 9, center: [108.37, 22.82] });
    mapRef.current = map;
    // For the browser tests (as the console's __map): click a place by its coordinates.
    (window as unknown as { __requestMap?: MLMap }).__requestMap = map;
    map.on("click", (e) => {
      const which = pickingRef.current;
      if (!which) return;
      const [lon, lat] = fromMap(e.lngLat.lng, e.lngLat.lat);
      // Name the county under the click from the offline borders (no geocoder needed).
      const county = map.getLayer("county-line")
        ? map.queryRenderedFeatures(e.point).find((f) => f.source === "counties")?.properties?.name
        : undefined;
      const coords = `${lat.toFixed(5)}, ${lon.toFixed(5)}`;
      const p = { lon, lat, address: county ? `${county} (${coords})` : coords };
      if (which === "origin") setOrigin(p);
      else setDestination(p);
      setPicking(null);
    });
    const unsub = subscribe((m) => {
      if (m.type === "trip" || m.type === "notification") setBump((n) => n + 1);
    });
    return () => {
      unsub();
      map.remove();
    };
  }, []);
  useEffect(() => {
    if (mapRef.current) setPins(mapRef.current, { origin, destination });
    if (mapRef.current) mapRef.current.getCanvas().style.cursor = picking ? "crosshair" : "";
  }, [origin, destination, picking]);

  const submit = async (e: Event) => {
    e.preventDefault();
    setErr(null);
    if (!origin || !destination) {
      setErr(t("pick_on_map"));
      return;
    }
    try {
      const trip = await api.createTrip({
        passengers: form.passengers,
        nature: form.nature,
        purpose: form.purpose,
        origin,
        destination,
        departure_at: localInputToIso(form.depart),
        return_at: localInputToIso(form.ret),
        round_trip: form.round_trip,
        urgency: form.urgency,
        submit: true,
      });
      setCreated(trip);
      setBump((n) => n + 1);
    } catch (ex) {
      setErr(ex);
    }
  };
  const set = (k: keyof typeof form) => (e: Event) => {
    const el = e.target as HTMLInputElement;
    setForm({ ...form, [k]: el.type === "number" ? Number(el.value) : el.type === "checkbox" ? el.checked : el.value });
  };

  return (
    <div class="split">
      <div class="stack">
        <form class="card" onSubmit={submit} data-testid="request-form">
          <header>{t("new_request")}</header>
          <div class="body" style={{ display: "flex", flexDirection: "column", gap: 10 }}>
            <PlaceField which="origin" color="#16a34a" place={origin} onChange={setOrigin} picking={picking === "origin"} onPickOnMap={() => setPicking("origin")} />
            <PlaceField which="destination" color="#dc2626" place={destination} onChange={setDestination} picking={picking === "destination"} onPickOnMap={() => setPicking("destination")} />
            <div class="grid2">
              <label class="field">{t("departure_time")}<input class="input" type="datetime-local" value={form.depart} onInput={set("depart")} /></label>
              <label class="field">{t("return_time")}<input class="input" type="datetime-local" value={form.ret} onInput={set("ret")} /></label>
              <label class="field">{t("passengers")}<input class="input" type="number" min={1} max={60} value={form.passengers} onInput={set("passengers")} /></label>
              <label class="field">{t("trip_nature")}
                <select class="input" value={form.nature} onChange={set("nature")}>{NATURES.map((n) => <option key={n} value={n}>{term(n)}</option>)}</select>
              </label>
              <label class="field">{t("urgency")}
                <select class="input" value={form.urgency} onChange={set("urgency")}>
                  <option value="normal">{t("urgency_normal")}</option><option value="urgent">{t("urgency_urgent")}</option><option value="emergency">{term("emergency")}</option>
                </select>
              </label>
              <label class="field">&nbsp;<span class="row"><input type="checkbox" checked={form.round_trip} onChange={set("round_trip")} /> {t("round_trip")}</span></label>
            </div>
            <label class="field">{t("purpose")}<textarea class="input" rows={2} value={form.purpose} onInput={set("purpose")} data-testid="purpose" required minLength={2} /></label>
            <ErrorText error={err} />
            {created && <div class="notice info" data-testid="request-created">#{created.id} · {term(created.state)}</div>}
            <div class="row"><button class="btn primary" type="submit" data-testid="request-submit">{t("submit")}</button></div>
          </div>
        </form>
        <div class="card" style={{ flex: 1, minHeight: 0, display: "flex", flexDirection: "column" }}>
          <header>{t("my_requests")}</header>
          <div class="scroll" data-testid="my-requests">
            {mine.data?.items.length === 0 && <div class="empty">{t("empty")}</div>}
            {mine.data?.items.map((tr) => (
              <div class="list-item" key={tr.id} data-testid="my-request" data-state={tr.state}>
                <div class="title"><Link href={`/trips/${tr.id}`}><span data-testid="my-request-link">#{tr.id} {tr.destination?.address}</span></Link><StateTag state={tr.state} /></div>
                <div class="meta"><span>{fmtShort(tr.departure_at)}</span><span>{tr.passengers} 人</span>{tr.state_reason && <span>{tr.state_reason}</span>}
                  {["completed", "settled"].includes(tr.state) && <Link href={`/trips/${tr.id}/report`}>{t("trip_report")}</Link>}
                </div>
                <Timeline state={tr.state} />
              </div>
            ))}
          </div>
        </div>
      </div>
      <div class="card mapcard">
        <div class="map" ref={mapEl} data-testid="request-map" />
        {picking && <div class="map-overlay"><div class="legend">{picking === "origin" ? t("pick_origin") : t("pick_destination")}</div></div>}
      </div>
    </div>
  );
}
