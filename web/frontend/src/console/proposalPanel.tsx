// The console's optimizer proposal: compute a plan for today's queue, follow its progress,
// change a vehicle or drop a trip, and accept it.
import { useEffect, useState } from "preact/hooks";
import { api, type Proposal, type ProposalItem } from "../api";
import type { Fleet } from "../fleet";
import { t, term } from "../i18n";
import { useUser } from "../session";
import { fmtHourMinute, shanghaiDay } from "../time";
import { ErrorText, StateTag, useAction, useAsync } from "../ui";

export function ProposalPanel(props: { fleet: Fleet }) {
  const user = useUser();
  const orgId = user?.roles.find((r) => r.role === "dispatcher")?.org_id ?? user?.org_id ?? 0;
  const [p, setP] = useState<Proposal | null>(null);
  const { busy, error: err, setError: setErr, run } = useAction();
  const [result, setResult] = useState<string | null>(null);
  const input = useAsync(() => api.planningInput(), []);
  // Poll a queued/running proposal once a second (bounded by the solver's own time limit).
  useEffect(() => {
    if (!p || (p.state !== "queued" && p.state !== "running")) return;
    const h = window.setTimeout(() => api.proposal(p.id).then(setP, setErr), 1000);
    return () => window.clearTimeout(h);
  }, [p]);
  const compute = () => run(async () => {
    setResult(null);
    setP(await api.createProposal({ org_id: orgId, day: shanghaiDay(), time_limit_s: 10 }));
  });
  const edit = (items: { trip_id: number; vehicle_id?: number; drop?: boolean }[]) => run(async () => setP(await api.editProposal(p!.id, items)));
  const changePlate = (it: ProposalItem) => {
    const plate = window.prompt(t("choose_vehicle"), it.plate)?.trim();
    if (!plate || plate === it.plate) return;
    const v = [...props.fleet.byId.values()].find((x) => x.plate === plate);
    if (!v) return setErr(`${t("plate")} ${plate}: ${t("empty")}`);
    edit([{ trip_id: it.trip_id, vehicle_id: v.id }]);
  };
  const accept = () => run(async () => {
    const r = await api.acceptProposal(p!.id);
    const bad = r.results.filter((x) => !x.ok);
    setResult(`${t("saved")}: ${r.accepted}` + (bad.length ? ` · ${bad.length} × ${bad[0].error?.message ?? ""}` : ""));
    setP(await api.proposal(p!.id));
  });
  const live = p && (p.state === "queued" || p.state === "running");
  return (
    <div class="scroll" data-testid="proposal">
      {input.data && (
        <div class="section-title small muted" data-testid="planning-input">
          <span>{t("queue")} {input.data.requests.length} · {t("vehicles")} {input.data.vehicles.length} · {t("driver")} {input.data.drivers.length}</span>
        </div>
      )}
      <div class="section-title">
        <span>{t("proposal")} {p && <StateTag state={p.state} />}</span>
        <span class="row">
          <button class="btn small primary" onClick={compute} disabled={busy || !!live} data-testid="proposal-compute">{t("request_proposal")}</button>
          {p && !live && p.state === "done" && <button class="btn small" onClick={() => run(async () => setP(await api.discardProposal(p.id)))}>{t("cancel")}</button>}
        </span>
      </div>
      <ErrorText error={err} />
      {!p && !err && <div class="empty">{t("no_proposal")}</div>}
      {live && (
        <div class="inset small muted">
          {term(p!.state)} · {p!.progress.phase ?? ""} {p!.progress.elapsed_s != null ? `${p!.progress.elapsed_s.toFixed(0)} / ${p!.progress.time_limit_s} s` : ""}
        </div>
      )}
      {p?.error && <div class="inset error-text">{p.error}</div>}
      {p && p.items.length > 0 && (
        <>
          <div class="small muted" style={{ padding: "0 14px 6px" }}>
            {p.vehicles_used != null && <>{t("vehicles")} {p.vehicles_used} · </>}{p.distance_km != null && <>{p.distance_km.toFixed(1)} km</>}
          </div>
          <table class="table">
            <thead><tr><th>#</th><th>{t("vehicle")}</th><th>{t("driver")}</th><th>{t("when")}</th><th /></tr></thead>
            <tbody>
              {p.items.map((it) => (
                <tr key={it.trip_id} style={it.dropped ? { opacity: 0.45 } : undefined} title={it.why} data-testid="proposal-item">
                  <td>{it.trip_id}</td>
                  <td><button class="linkbtn" disabled={p.state !== "done"} onClick={() => changePlate(it)}>{it.plate}</button>{it.edited ? " ✎" : ""}</td>
                  <td>{it.driver_name}</td>
                  <td class="num">{fmtHourMinute(it.pickup_at)}</td>
                  <td>
                    {p.state === "done" && (
                      <button class={`btn small ${it.dropped ? "" : "danger"}`} onClick={() => edit([{ trip_id: it.trip_id, drop: !it.dropped }])}>
                        {it.dropped ? t("confirm") : t("remove")}
                      </button>
                    )}
                  </td>
                </tr>
              ))}
            </tbody>
          </table>
        </>
      )}
      {p && p.unserved.length > 0 && (
        <div class="inset small">
          {p.unserved.map((u) => <div key={u.trip_id}>#{u.trip_id}: {u.reason} {u.detail}</div>)}
        </div>
      )}
      {p?.state === "done" && (
        <div class="row" style={{ padding: 12 }}>
          <button class="btn primary" onClick={accept} disabled={busy || !p.items.some((i) => !i.dropped)} data-testid="proposal-accept">{t("accept_proposal")}</button>
        </div>
      )}
      {result && <div class="inset notice info" data-testid="proposal-result">{result}</div>}
    </div>
  );
}
