// Printable trip report (A4, print CSS): the trip, its execution, the track and findings.
import { useMemo } from "preact/hooks";
import { t, term, useLang } from "../i18n";
import { fmtDateTime, fmtDuration } from "../time";
import { ErrorText, OrgName } from "../ui";
import { useTripAudit } from "./audit";
import { Playback, pointsOf } from "./playback";

export function TripReportPage(props: { id: number }) {
  useLang();
  const data = useTripAudit(props.id);
  const pts = useMemo(() => pointsOf(data.data?.track ?? null), [data.data]);
  if (data.loading) return <div class="empty">{t("loading")}</div>;
  if (data.error) return <div class="page"><ErrorText error={data.error} /></div>;
  const { trip, assignment: a, alerts, vehicle, history } = data.data!;
  return (
    <div class="report" data-testid="trip-report">
      <div class="no-print row" style={{ justifyContent: "flex-end", marginBottom: 12 }}>
        <button class="btn primary" onClick={() => window.print()}>{t("print")}</button>
      </div>
      <h1>公务用车行程报告 · Trip report</h1>
      <div class="sub">#{trip.id} · {fmtDateTime(new Date())}</div>
      <table>
        <tbody>
          <tr><th>{t("unit")}</th><td><OrgName id={trip.unit_id} /></td><th>{t("ts_state")}</th><td>{term(trip.state)}</td></tr>
          <tr><th>{t("trip_nature")}</th><td>{term(trip.nature)} · {term(trip.kind)}</td><th>{t("passengers")}</th><td>{trip.passengers}</td></tr>
          <tr><th>{t("purpose")}</th><td colSpan={3}>{trip.purpose}</td></tr>
          <tr><th>{t("origin")}</th><td>{trip.origin.address}</td><th>{t("destination")}</th><td>{trip.destination.address}</td></tr>
          <tr><th>{t("departure_time")}</th><td>{fmtDateTime(trip.departure_at)}</td><th>{t("return_time")}</th><td>{fmtDateTime(trip.return_at)}</td></tr>
          <tr><th>{t("plate")}</th><td>{vehicle?.plate ?? "—"}</td><th>{t("planned")} km</th><td>{trip.planned_km?.toFixed(1)}</td></tr>
          <tr><th>{t("depart")}</th><td>{fmtDateTime(a?.departed_at)}</td><th>{t("complete")}</th><td>{fmtDateTime(a?.completed_at)}</td></tr>
          <tr><th>{t("odometer_km")}</th><td>{a?.odometer_start_km ?? "—"} → {a?.odometer_end_km ?? "—"}</td><th>{t("duration")}</th>
            <td>{a?.departed_at && a.completed_at ? fmtDuration((Date.parse(a.completed_at) - Date.parse(a.departed_at)) / 1000) : "—"}</td></tr>
          <tr><th>{t("tolls")}</th><td>{a?.tolls_cny ?? "—"}</td><th>{t("parking")} / {t("fuel")}</th><td>{a?.parking_cny ?? "—"} / {a?.energy_cny ?? "—"}</td></tr>
        </tbody>
      </table>
      <Playback points={pts} planned={{ origin: [trip.origin.lon, trip.origin.lat], destination: [trip.destination.lon, trip.destination.lat] }} height={340} />
      <h3>{t("findings")}</h3>
      <table>
        <tbody>
          {alerts.length === 0 && <tr><td>{t("empty")}</td></tr>}
          {alerts.map((al) => <tr key={al.id}><th>{term(al.kind)}</th><td>{fmtDateTime(al.started_at)}</td><td>{al.message}</td><td>{term(al.status)}</td></tr>)}
        </tbody>
      </table>
      <h3>{t("ts_state")}</h3>
      <table>
        <tbody>
          {history.map((h, i) => <tr key={i}><td>{fmtDateTime(h.at)}</td><td>{h.actor}</td><td>{term(h.from_state)} → {term(h.to_state)}</td><td>{h.reason ?? ""}</td></tr>)}
        </tbody>
      </table>
      <div class="sign"><span>审核人 Reviewer：__________</span><span>日期 Date：__________</span></div>
    </div>
  );
}
