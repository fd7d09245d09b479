// Approver inbox: approve, reject (with reason) or return a request for changes, with the
// request's whole approval chain beside it (who decided, who decides now, who comes next).
import { useEffect, useState } from "preact/hooks";
import { ApiError, api, type Trip } from "../api";
import { t, term, useLang, type Key } from "../i18n";
import { subscribe } from "../live";
import { fmtDateTime, fmtShort } from "../time";
import { ErrorText, OrgName, StateTag, useAction, useAsync } from "../ui";
import { ApprovalChainView } from "./chain";

export function ApprovalsPage() {
  useLang();
  const [bump, setBump] = useState(0);
  const inbox = useAsync(() => api.inbox(), [bump]);
  const [sel, setSel] = useState<Trip | null>(null);
  const [reason, setReason] = useState("");
  const { error: err, run } = useAction();
  useEffect(() => subscribe((m) => (m.type === "trip" || m.type === "notification") && setBump((n) => n + 1)), []);
  const act = async (action: "approve" | "reject" | "return") => {
    if (!sel) return;
    await run(async () => {
      await api.tripAction(sel.id, action, action === "approve" ? { comment: reason || null } : { reason });
      setSel(null);
      setReason("");
      setBump((n) => n + 1);
    });
  };
  // An account without the approver role (an admin, say) may open this page: the API refuses
  // its inbox (403), which is said plainly rather than shown as an empty table.
  if (inbox.error instanceof ApiError && inbox.error.status === 403) {
    return (
      <div class="page">
        <h1>{t("inbox")}</h1>
        <div class="notice" data-testid="not-approver">{t("not_approver")}</div>
      </div>
    );
  }
  const selected = inbox.data?.items.find((x) => x.trip.id === sel?.id);
  return (
    <div class="page">
      <h1>{t("inbox")} {inbox.data && <span class="badge">{inbox.data.total}</span>}</h1>
      <ErrorText error={inbox.error} />
      <div class="approvals-grid">
        <div class="card">
          <table class="table" data-testid="inbox">
            <thead><tr><th>#</th><th>{t("requester")}</th><th>{t("unit")}</th><th>{t("departure_time")}</th><th>{t("destination")}</th><th>{t("approval_level")}</th><th>{t("passengers")}</th><th>{t("ts_state")}</th></tr></thead>
            <tbody>
              {inbox.data?.items.map(({ trip: tr, step, requester }) => (
                <tr key={tr.id} class={sel?.id === tr.id ? "selected" : ""} onClick={() => setSel(tr)} style={{ cursor: "pointer" }} data-testid="inbox-row" data-trip={tr.id}>
                  <td>{tr.id}</td><td>{requester}</td><td><OrgName id={tr.unit_id} /></td><td>{fmtShort(tr.departure_at)}</td>
                  <td>{tr.destination?.address}</td><td>{t(`lvl_${step.level}` as Key)}</td><td class="num">{tr.passengers}</td><td><StateTag state={tr.state} /></td>
                </tr>
              ))}
            </tbody>
          </table>
          {inbox.data?.items.length === 0 && <div class="empty">{t("empty")}</div>}
        </div>
        <div class="card">
          <header>{sel ? `#${sel.id}` : t("inbox")}</header>
          <div class="body">
            {!sel && <div class="empty small">{t("view")}</div>}
            {sel && (
              <div style={{ display: "flex", flexDirection: "column", gap: 12 }}>
                <dl class="kv">
                  <dt>{t("requester")}</dt><dd>{selected?.requester}</dd>
                  <dt>{t("unit")}</dt><dd><OrgName id={sel.unit_id} /></dd>
                  <dt>{t("kind")}</dt><dd>{term(sel.kind)} · {sel.allowed_body_types.map((b) => t(`bt_${b}` as never)).join("、")}</dd>
                  <dt>{t("trip_nature")}</dt><dd>{term(sel.nature)}</dd>
                  <dt>{t("purpose")}</dt><dd>{sel.purpose}</dd>
                  <dt>{t("origin")}</dt><dd>{sel.origin?.address}</dd>
                  <dt>{t("destination")}</dt><dd>{sel.destination?.address}</dd>
                  <dt>{t("departure_time")}</dt><dd>{fmtDateTime(sel.departure_at)}</dd>
                  <dt>{t("distance_km")}</dt><dd>{sel.planned_km?.toFixed(1)}</dd>
                  <dt>{t("return_time")}</dt><dd>{fmtDateTime(sel.return_at)}</dd>
                  <dt>{t("passengers")}</dt><dd>{sel.passengers}</dd>
                  <dt>{t("ts_state")}</dt><dd><StateTag state={sel.state} /></dd>
                </dl>
                <ApprovalChainView tripId={sel.id} />
                <label class="field">{t("reason")}<textarea class="input" rows={2} value={reason} data-testid="approval-reason" onInput={(e) => setReason((e.target as HTMLTextAreaElement).value)} /></label>
                <ErrorText error={err} />
                <div class="row">
                  <button class="btn primary" onClick={() => act("approve")} data-testid="approve">{t("approve")}</button>
                  <button class="btn" onClick={() => act("return")} data-testid="return">{t("return_req")}</button>
                  <button class="btn danger" onClick={() => act("reject")} data-testid="reject">{t("reject")}</button>
                </div>
              </div>
            )}
          </div>
        </div>
      </div>
    </div>
  );
}
