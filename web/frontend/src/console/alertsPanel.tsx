// The console's alerts: the open-alerts feed with its acknowledgement dialog, and what live
// events do to it (another console's acknowledgement, a new alert, an SOS for the banner).
import { useState } from "preact/hooks";
import { type Alert, api } from "../api";
import type { Fleet } from "../fleet";
import { t, term } from "../i18n";
import type { LiveMessage } from "../live";
import { playSos, type SosAlert, sosOf } from "../sos";
import { fmtDateTime, fmtTime } from "../time";
import { AsyncStatus, ErrorText, Modal, StateTag, useAsync } from "../ui";

export interface AlertFeed {
  bump: number; // bumps when the open alerts (or the queue) may have changed: lists re-fetch
  // Alerts acknowledged or closed since the list was fetched (id -> new status), from live
  // events: the open-alerts list drops them at once, before its re-fetch answers.
  changes: Record<number, string>;
  sos: SosAlert[]; // emergency alarms not yet dismissed here
  dismissSos: (alertId: number) => void;
  /** For useLiveMap: a live event, after the fleet applied it. */
  onEvent: (m: LiveMessage, known: boolean) => void;
}

export function useAlertFeed(fleet: Fleet): AlertFeed {
  const [bump, setBump] = useState(0);
  const [changes, setChanges] = useState<Record<number, string>>({});
  const [sos, setSos] = useState<SosAlert[]>([]);
  const onEvent = (m: LiveMessage, known: boolean) => {
    const emergency = sosOf(m, (id) => fleet.byId.get(id)?.plate);
    if (emergency) {
      setSos((xs) => (xs.some((x) => x.id === emergency.id) ? xs : [emergency, ...xs]));
      playSos();
    }
    if (m.type === "alert") {
      const d = m.data as { id?: number; status?: string };
      if (typeof d.id === "number" && d.status && d.status !== "open") {
        const id = d.id;
        const status = d.status;
        setSos((xs) => xs.filter((x) => x.id !== id));
        setChanges((c) => ({ ...c, [id]: status }));
        setBump((n) => n + 1);
      } else if (known) setBump((n) => n + 1);
    }
    if (m.type === "trip") setBump((n) => n + 1);
  };
  const dismissSos = (alertId: number) => setSos((xs) => xs.filter((x) => x.id !== alertId));
  return { bump, changes, sos, dismissSos, onEvent };
}

export function AlertsPanel(props: { bump: number; changes: Record<number, string>; fleet: Fleet; onFocus: (vehicleId: number) => void }) {
  const a = useAsync(() => api.alerts({ status: "open", limit: 100 }), [props.bump]);
  const [acking, setAcking] = useState<Alert | null>(null);
  // Another console acknowledged or closed it: gone from the open list (and its dialog here).
  const still = (al: Alert) => (props.changes[al.id] ?? al.status) === "open";
  const items = (a.data?.items ?? []).filter(still);
  return (
    <div class="scroll" data-testid="alerts">
      <AsyncStatus of={a} />
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
