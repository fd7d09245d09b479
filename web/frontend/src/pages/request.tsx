// One request as its requester follows it: what was asked, where it stands, and its approval
// chain (who decides now, who comes next).
import { useEffect, useState } from "preact/hooks";
import { api } from "../api";
import { t, term, useLang } from "../i18n";
import { subscribe } from "../live";
import { Link } from "../router";
import { fmtDateTime } from "../time";
import { ErrorText, OrgName, StateTag, useAsync } from "../ui";
import { ApprovalChainView } from "./chain";
import { Timeline } from "./trip";

export function RequestPage(props: { id: number }) {
  useLang();
  const [bump, setBump] = useState(0);
  useEffect(() => subscribe((m) => (m.type === "trip" || m.type === "notification") && setBump((n) => n + 1)), []);
  const trip = useAsync(() => api.trip(props.id), [props.id, bump]);
  if (trip.error) return <div class="page"><ErrorText error={trip.error} /></div>;
  const tr = trip.data;
  if (!tr) return <div class="empty">{t("loading")}</div>;
  return (
    <div class="page" data-testid="request-page" data-state={tr.state}>
      <h1>
        <Link href="/requests">{t("my_requests")}</Link> / {t("request_detail")} #{tr.id} <StateTag state={tr.state} />
      </h1>
      <div class="request-grid">
        <div class="card">
          <div class="body" style={{ display: "flex", flexDirection: "column", gap: 12 }}>
            <Timeline state={tr.state} />
            {tr.state_reason && <div class="small muted">{tr.state_reason}</div>}
            <dl class="kv">
              <dt>{t("unit")}</dt><dd><OrgName id={tr.unit_id} /></dd>
              <dt>{t("kind")}</dt><dd>{term(tr.kind)}</dd>
              <dt>{t("trip_nature")}</dt><dd>{term(tr.nature)}</dd>
              <dt>{t("purpose")}</dt><dd>{tr.purpose}</dd>
              <dt>{t("origin")}</dt><dd>{tr.origin?.address}</dd>
              <dt>{t("destination")}</dt><dd>{tr.destination?.address}</dd>
              <dt>{t("departure_time")}</dt><dd>{fmtDateTime(tr.departure_at)}</dd>
              <dt>{t("return_time")}</dt><dd>{fmtDateTime(tr.return_at)}</dd>
              <dt>{t("passengers")}</dt><dd>{tr.passengers}</dd>
              <dt>{t("distance_km")}</dt><dd>{tr.planned_km?.toFixed(1)}</dd>
            </dl>
            {["completed", "settled"].includes(tr.state) && <Link href={`/trips/${tr.id}/report`}>{t("trip_report")}</Link>}
          </div>
        </div>
        <div class="card"><div class="body"><ApprovalChainView tripId={tr.id} /></div></div>
      </div>
    </div>
  );
}
