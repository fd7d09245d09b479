// Emergency (SOS) alarms on the console: a terminal's emergency bit becomes an alert of kind
// "sos" (telematics/ingest/alarms.py), pushed live. The console sounds a distinct
// two-tone alarm and shows a red banner until someone dismisses it; the alert feed marks it
// apart. Another issue
// reworks alarm triage; this stays small on purpose.
import { useEffect, useState } from "preact/hooks";
import type { LiveMessage } from "./live";
import { t } from "./i18n";
import { fmtTime } from "./time";

export interface SosAlert {
  id: number;
  vehicle_id: number;
  started_at: string;
  plate: string;
}

declare global {
  interface Window {
    __sosPlayed?: number; // how many times the SOS sound started (browser tests)
  }
}

let audio: AudioContext | null = null;

// Browsers only let a page make sound after a user gesture: the first click unlocks it.
function unlock() {
  if (!audio) {
    const Ctx = window.AudioContext ?? (window as unknown as { webkitAudioContext?: typeof AudioContext }).webkitAudioContext;
    if (Ctx) audio = new Ctx();
  }
  void audio?.resume();
}
window.addEventListener("pointerdown", unlock, { capture: true });
window.addEventListener("keydown", unlock, { capture: true });

/** A siren unlike any other console sound: three rounds of a high-low pair (~2.4 s). */
export function playSos(): void {
  window.__sosPlayed = (window.__sosPlayed ?? 0) + 1;
  if (!audio) unlock();
  if (!audio) return;
  const start = audio.currentTime + 0.05;
  for (let i = 0; i < 6; i++) {
    const osc = audio.createOscillator();
    const gain = audio.createGain();
    osc.type = "square";
    osc.frequency.value = i % 2 === 0 ? 1320 : 880;
    const at = start + i * 0.4;
    gain.gain.setValueAtTime(0.0001, at);
    gain.gain.exponentialRampToValueAtTime(0.25, at + 0.02);
    gain.gain.exponentialRampToValueAtTime(0.0001, at + 0.36);
    osc.connect(gain).connect(audio.destination);
    osc.start(at);
    osc.stop(at + 0.38);
  }
}

/** A new SOS alert in a live message, or null. */
export function sosOf(m: LiveMessage, plateOf: (vehicleId: number) => string | undefined): SosAlert | null {
  if (m.type !== "alert") return null;
  const d = m.data as { id?: number; kind?: string; status?: string; vehicle_id?: number; started_at?: string };
  if (d.kind !== "sos" || (d.status && d.status !== "open") || typeof d.id !== "number" || typeof d.vehicle_id !== "number") return null;
  return { id: d.id, vehicle_id: d.vehicle_id, started_at: d.started_at ?? new Date().toISOString(), plate: plateOf(d.vehicle_id) ?? `#${d.vehicle_id}` };
}

/** The red banner: newest SOS first; the sound repeats every 20 s until dismissed. */
export function SosBanner(props: { alerts: SosAlert[]; onLocate: (vehicleId: number) => void; onDismiss: (id: number) => void }) {
  const [, tick] = useState(0);
  useEffect(() => {
    if (!props.alerts.length) return;
    const h = window.setInterval(() => { playSos(); tick((n) => n + 1); }, 20_000);
    return () => window.clearInterval(h);
  }, [props.alerts.length]);
  if (!props.alerts.length) return null;
  return (
    <div class="sos-banner" role="alert" aria-live="assertive" data-testid="sos-banner">
      {props.alerts.map((a) => (
        <div class="sos-row" key={a.id} data-alert-id={a.id}>
          <span class="sos-badge">SOS</span>
          <b>{t("sos_title")}</b>
          <span class="plate">{a.plate}</span>
          <span class="small">{fmtTime(a.started_at)} · {t("sos_body")}</span>
          <span class="row">
            <button class="btn small" onClick={() => props.onLocate(a.vehicle_id)} data-testid="sos-locate">{t("sos_locate")}</button>
            <button class="btn small" onClick={() => props.onDismiss(a.id)} data-testid="sos-dismiss">{t("sos_dismiss")}</button>
          </span>
        </div>
      ))}
    </div>
  );
}
