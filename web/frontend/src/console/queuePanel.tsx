// The console's queue: approved requests waiting for a vehicle, with the manual assignment
// and, for urgent trips, the ranked suggestions.
import { useMemo, useState } from "preact/hooks";
import { api, type Driver, type Suggestion, type Trip } from "../api";
import type { Fleet, VehicleState } from "../fleet";
import { t, term } from "../i18n";
import { fmtHourMinute, fmtShort } from "../time";
import { AsyncStatus, ErrorText, Modal, OrgName, StateTag, useAction, useAsync } from "../ui";

export function QueuePanel(props: { fleet: Fleet; bump: number }) {
  const q = useAsync(() => api.queue(), [props.bump]);
  const [assigning, setAssigning] = useState<Trip | null>(null);
  const [suggesting, setSuggesting] = useState<Trip | null>(null);
  return (
    <div class="scroll" data-testid="queue">
      <AsyncStatus of={q} />
      {q.data && q.data.length === 0 && <div class="empty">{t("empty")}</div>}
      {q.data?.map((trip) => (
        <div class="list-item" key={trip.id} data-testid="queue-item" data-trip={trip.id}>
          <div class="title">
            <span>#{trip.id} <OrgName id={trip.unit_id} /></span>
            <StateTag state={trip.state} />
          </div>
          <div class="meta">
            <span>{fmtShort(trip.departure_at)} → {fmtShort(trip.return_at)}</span>
            <span>{trip.passengers} 人</span>
            <span>{trip.allowed_body_types.map((b) => t(`bt_${b}` as never)).join("/")}</span>
          </div>
          <div class="meta"><span>{trip.origin?.address} → {trip.destination?.address}</span></div>
          <div class="row" style={{ marginTop: 6 }}>
            <button class="btn small primary" onClick={() => setAssigning(trip)} data-testid="assign-open">{t("assign")}</button>
            {(trip.urgency === "urgent" || trip.urgency === "emergency") && (
              <button class="btn small" onClick={() => setSuggesting(trip)} data-testid="suggest-open">{t("suggest")}</button>
            )}
          </div>
        </div>
      ))}
      {assigning && <AssignModal trip={assigning} fleet={props.fleet} onClose={() => setAssigning(null)} onDone={() => { setAssigning(null); q.reload(); }} />}
      {suggesting && <SuggestModal trip={suggesting} onClose={() => setSuggesting(null)} onDone={() => { setSuggesting(null); q.reload(); }} />}
    </div>
  );
}

/** Urgent dispatch: the ranked vehicles + drivers for one trip; one click books a suggestion
 * through the manual assignment (so every manual check applies). */
function SuggestModal(props: { trip: Trip; onClose: () => void; onDone: () => void }) {
  const s = useAsync(() => api.suggestions(props.trip.id, 5), [props.trip.id]);
  const { busy, error: err, run } = useAction();
  const assign = (sg: Suggestion) =>
    run(async () => {
      // Refused: the ranking is asked for again (it may have changed meanwhile).
      await api.tripAction(props.trip.id, "assign", { vehicle_id: sg.vehicle.id, driver_id: sg.driver.id }).catch((e) => {
        s.reload();
        throw e;
      });
      props.onDone();
    });
  const d = s.data;
  return (
    <Modal title={`${t("suggest")} · #${props.trip.id} ${term(props.trip.urgency)}`} onClose={props.onClose}
      footer={<button class="btn" onClick={props.onClose}>{t("cancel")}</button>}>
      <AsyncStatus of={s} />
      {d && (
        <div class="small muted" data-testid="suggest-counts">
          {t("suggest_eligible")} {d.eligible} / {d.vehicles_visible}
          {Object.keys(d.excluded).length > 0 && <> · {t("suggest_excluded")}: {Object.entries(d.excluded).map(([k, n]) => `${term(k)} ${n}`).join(", ")}</>}
        </div>
      )}
      {d && d.suggestions.length === 0 && <div class="empty">{t("suggest_none")}</div>}
      {d?.suggestions.map((sg) => (
        <div class="list-item" key={sg.vehicle.id} data-testid="suggestion" data-vehicle={sg.vehicle.id} title={sg.why}>
          <div class="title">
            <span>{sg.rank}. <b>{sg.vehicle.plate}</b> · {t(`bt_${sg.vehicle.body_type}` as never)} · {sg.vehicle.unit_name}</span>
            <button class="btn small primary" disabled={busy} onClick={() => assign(sg)} data-testid="suggest-assign">{t("suggest_assign")}</button>
          </div>
          <div class="meta">
            <span>{sg.vehicle.distance_km.toFixed(1)} km ({sg.vehicle.start === "live" ? t("start_live") : t("start_depot")})</span>
            <span>{t("driver")} {sg.driver.name} · {sg.driver.licence_class}</span>
          </div>
          <div class="meta">
            <span>{t("added_km")} +{sg.added_km.toFixed(1)} km</span>
            <span>{t("pickup_plan")} {fmtHourMinute(sg.pickup_at)} {sg.late_min >= 0.5 ? `(${t("late_by")} ${sg.late_min.toFixed(0)} min)` : `(${t("on_time")})`}</span>
          </div>
          <div class="meta small muted">{sg.why}</div>
        </div>
      ))}
      <ErrorText error={err} />
    </Modal>
  );
}

function AssignModal(props: { trip: Trip; fleet: Fleet; onClose: () => void; onDone: () => void }) {
  const [plate, setPlate] = useState("");
  const [driverId, setDriverId] = useState("");
  const { error: err, run } = useAction();
  const drivers = useAsync(() => api.drivers({ limit: 200 }), []);
  const candidates = useMemo(() => {
    const out: VehicleState[] = [];
    const p = plate.trim().toUpperCase();
    for (const v of props.fleet.byId.values()) {
      if (p && !v.plate.toUpperCase().includes(p)) continue;
      out.push(v);
      if (out.length >= 30) break;
    }
    return out;
  }, [plate]);
  const chosen = [...props.fleet.byId.values()].find((v) => v.plate === plate.trim());
  const submit = () =>
    run(async () => {
      await api.tripAction(props.trip.id, "assign", { vehicle_id: chosen?.id, driver_id: Number(driverId) });
      props.onDone();
    });
  return (
    <Modal title={`${t("assign_manual")} · #${props.trip.id}`} onClose={props.onClose}
      footer={<><button class="btn" onClick={props.onClose}>{t("cancel")}</button><button class="btn primary" disabled={!chosen || !driverId} onClick={submit} data-testid="assign-submit">{t("confirm")}</button></>}>
      <label class="field">{t("choose_vehicle")}
        <input class="input" list="assign-plates" value={plate} data-testid="assign-plate" onInput={(e) => setPlate((e.target as HTMLInputElement).value)} placeholder="桂A…" />
        <datalist id="assign-plates">{candidates.map((v) => <option key={v.id} value={v.plate}>{v.unit} · {t(`bt_${v.body_type}` as never)}</option>)}</datalist>
      </label>
      <label class="field">{t("choose_driver")}
        <select class="input" value={driverId} data-testid="assign-driver" onChange={(e) => setDriverId((e.target as HTMLSelectElement).value)}>
          <option value="">—</option>
          {drivers.data?.items.map((d: Driver) => <option key={d.id} value={d.id}>{d.name} · {d.licence_class}</option>)}
        </select>
      </label>
      <ErrorText error={err} />
    </Modal>
  );
}
