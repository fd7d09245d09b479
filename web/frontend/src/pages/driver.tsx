// Driver phone client (PWA): today's assignments, accept/decline, depart/complete with
// odometer and costs, navigation links; works offline with a queue of actions.
import { useEffect, useState } from "preact/hooks";
import { api, ApiError, type MyAssignment, type Place } from "../api";
import { lang, setLang, t, useLang } from "../i18n";
import { subscribe } from "../live";
import { flush, onChange, pending, perform } from "../outbox";
import { navigate } from "../router";
import { signOut, useUser } from "../session";
import { fmtShort } from "../time";
import { ErrorText, Modal, StateTag } from "../ui";

const CACHE = "fleet.driver.trips";
const DEST = "fleet.driver.dest";
// The state an assignment reaches after each action, shown at once even while offline.
const NEXT: Record<string, string> = { accept: "accepted", decline: "declined", depart: "departed", arrive: "arrived", complete: "completed" };

type Task = MyAssignment & { arrived?: boolean };

/** Navigation link: AMap's URI API (converts WGS-84 itself with coordinate=wgs84); geo: otherwise. */
export function navUrl(d: Place | undefined, address: string): string {
  if (!d) return `https://uri.amap.com/search?keyword=${encodeURIComponent(address)}`;
  if (/Android/i.test(navigator.userAgent)) return `geo:${d.lat},${d.lon}?q=${d.lat},${d.lon}(${encodeURIComponent(address)})`;
  return `https://uri.amap.com/marker?position=${d.lon},${d.lat}&name=${encodeURIComponent(address)}&coordinate=wgs84&callnative=1`;
}

export function DriverPage() {
  useLang();
  const user = useUser();
  const [trips, setTrips] = useState<Task[]>(() => JSON.parse(localStorage.getItem(CACHE) ?? "[]"));
  const [dest, setDest] = useState<Record<number, Place>>(() => JSON.parse(localStorage.getItem(DEST) ?? "{}"));
  const [online, setOnline] = useState(navigator.onLine);
  const [queued, setQueued] = useState(pending().length);
  const [err, setErr] = useState<unknown>(null);
  const [form, setForm] = useState<{ trip: Task; action: "decline" | "depart" | "complete" } | null>(null);

  const load = async () => {
    try {
      const page = await api.myAssignments();
      setTrips(page.items);
      localStorage.setItem(CACHE, JSON.stringify(page.items));
      // Destinations (for the navigation link) come from the trips; cached for offline use.
      const known: Record<number, Place> = JSON.parse(localStorage.getItem(DEST) ?? "{}");
      await Promise.all(
        page.items
          .filter((a) => !known[a.trip_id] && !["completed", "declined", "cancelled", "failed"].includes(a.state))
          .map((a) => api.trip(a.trip_id).then((tr) => (known[a.trip_id] = tr.destination), () => undefined)),
      );
      localStorage.setItem(DEST, JSON.stringify(known));
      setDest({ ...known });
    } catch (e) {
      if (e instanceof ApiError) setErr(e);
    }
  };
  const sync = async () => {
    const r = await flush();
    if (r.refused.length) setErr(r.refused[0].error);
    if (r.sent || r.refused.length) await load();
  };
  useEffect(() => {
    void sync().then(load);
    const up = () => {
      setOnline(true);
      void sync();
    };
    const down = () => setOnline(false);
    window.addEventListener("online", up);
    window.addEventListener("offline", down);
    const off = onChange(() => setQueued(pending().length));
    const unsub = subscribe((m) => (m.type === "trip" || m.type === "notification") && navigator.onLine && load());
    return () => {
      window.removeEventListener("online", up);
      window.removeEventListener("offline", down);
      off();
      unsub();
    };
  }, []);

  const act = async (tr: Task, action: string, body: Record<string, unknown> = {}) => {
    setErr(null);
    try {
      const how = await perform(tr.id, action, body);
      const next = trips.map((x) => (x.id === tr.id ? (action === "arrive" ? { ...x, arrived_at: new Date().toISOString() } : { ...x, state: NEXT[action] ?? x.state }) : x));
      setTrips(next);
      localStorage.setItem(CACHE, JSON.stringify(next));
      if (how === "sent") void load();
    } catch (e) {
      setErr(e);
    }
  };

  const visible = trips.filter((x) => !["declined", "cancelled", "failed"].includes(x.state) && (x.state !== "completed" || Date.now() - Date.parse(x.completed_at ?? x.ends_at) < 12 * 3600_000));
  return (
    <div class="phone" data-testid="driver-page">
      <div class="phone-top">
        <div>
          <div class="title">{t("today_tasks")}</div>
          <div class="small" style={{ opacity: 0.8 }}>{user?.display_name}</div>
        </div>
        <div class="row">
          <button onClick={() => setLang(lang() === "en" ? "zh-CN" : "en")}>{t("language")}</button>
          <button onClick={() => { signOut(); navigate("/login"); }}>{t("logout")}</button>
        </div>
      </div>
      {!online && <div class="offline-bar" data-testid="offline-banner">{t("offline_banner")}</div>}
      {queued > 0 && <div class="queue-bar" data-testid="outbox-count">{t("offline_queue")}: {queued}</div>}
      <div class="content">
        <ErrorText error={err} />
        {visible.length === 0 && <div class="empty">{t("no_tasks")}</div>}
        {visible.map((tr) => (
          <div class="task" key={tr.id} data-testid="task" data-trip={tr.trip_id} data-state={tr.state}>
            <div class="head">
              <span class="time">{fmtShort(tr.starts_at)}</span>
              <StateTag state={tr.state} />
            </div>
            <div class="route">
              <i class="pin" style={{ background: "#16a34a" }} /><span>{tr.origin_address}</span>
              <i class="pin" style={{ background: "#dc2626" }} /><span>{tr.destination_address}</span>
            </div>
            <div class="small muted">
              <b>{tr.plate}</b> · {tr.passengers} 人 · {t("return_time")} {fmtShort(tr.ends_at)} · #{tr.trip_id}
            </div>
            <div class="small">{tr.purpose}</div>
            <div class="actions">
              {tr.state === "assigned" && <>
                <button class="btn primary" onClick={() => act(tr, "accept")} data-testid="accept">{t("accept")}</button>
                <button class="btn danger" onClick={() => setForm({ trip: tr, action: "decline" })} data-testid="decline">{t("decline")}</button>
              </>}
              {tr.state === "accepted" && <button class="btn primary" onClick={() => setForm({ trip: tr, action: "depart" })} data-testid="depart">{t("depart")}</button>}
              {tr.state === "departed" && <>
                {!tr.arrived_at && <button class="btn" onClick={() => act(tr, "arrive")} data-testid="arrive">{t("arrive")}</button>}
                <button class="btn primary" onClick={() => setForm({ trip: tr, action: "complete" })} data-testid="complete">{t("complete")}</button>
              </>}
              {["accepted", "departed"].includes(tr.state) && (
                <a class="btn" href={navUrl(dest[tr.trip_id], tr.destination_address)} target="_blank" rel="noopener" data-testid="navigate">{t("navigate")}</a>
              )}
            </div>
          </div>
        ))}
      </div>
      {form && <ActionForm {...form} onClose={() => setForm(null)} onSubmit={(body) => { void act(form.trip, form.action, body); setForm(null); }} />}
    </div>
  );
}

function ActionForm(props: { trip: Task; action: "decline" | "depart" | "complete"; onClose: () => void; onSubmit: (b: Record<string, unknown>) => void }) {
  const [v, setV] = useState<Record<string, string>>({});
  const set = (k: string) => (e: Event) => setV({ ...v, [k]: (e.target as HTMLInputElement).value });
  const num = (k: string) => (v[k] ? Number(v[k]) : undefined);
  const submit = () => {
    if (props.action === "decline") props.onSubmit({ reason: v.reason ?? "" });
    else if (props.action === "depart") props.onSubmit({ odometer_km: num("odo") });
    else props.onSubmit({ odometer_km: num("odo"), tolls_cny: num("tolls") ?? 0, parking_cny: num("parking") ?? 0, energy_cny: num("fuel") ?? 0, notes: v.notes || undefined });
  };
  const title = t(props.action === "decline" ? "decline" : props.action === "depart" ? "depart" : "complete");
  return (
    <Modal title={`${title} · #${props.trip.trip_id}`} onClose={props.onClose}
      footer={<><button class="btn" onClick={props.onClose}>{t("cancel")}</button><button class="btn primary" onClick={submit} data-testid="action-submit">{t("confirm")}</button></>}>
      {props.action === "decline" && <label class="field">{t("decline_reason")}<textarea class="input" rows={3} onInput={set("reason")} data-testid="decline-reason" /></label>}
      {props.action !== "decline" && <label class="field">{t("odometer_km")}<input class="input" type="number" inputMode="decimal" step="0.1" onInput={set("odo")} data-testid="odometer" /></label>}
      {props.action === "complete" && <>
        <div class="grid2">
          <label class="field">{t("tolls")}<input class="input" type="number" inputMode="decimal" onInput={set("tolls")} data-testid="tolls" /></label>
          <label class="field">{t("parking")}<input class="input" type="number" inputMode="decimal" onInput={set("parking")} data-testid="parking" /></label>
          <label class="field">{t("fuel")}<input class="input" type="number" inputMode="decimal" onInput={set("fuel")} data-testid="fuel" /></label>
        </div>
        <label class="field">{t("notes")}<input class="input" onInput={set("notes")} /></label>
      </>}
    </Modal>
  );
}
