// A trip's approval chain as the requester and the approvers see it: every level, the one
// deciding now, and who can decide it (names and the org they approve for, never ids).
import { useEffect, useState } from "preact/hooks";
import { api, type ChainLevel, type ChainPerson } from "../api";
import { t, term, useLang, type Key } from "../i18n";
import { subscribe } from "../live";
import { fmtDateTime } from "../time";
import { ErrorText, useAsync } from "../ui";

const STEP_CLASS: Record<string, string> = { pending: "warn", approved: "ok", rejected: "bad", returned: "warn", cancelled: "" };

const person = (p: ChainPerson) => `${p.name}（${p.org}）`;

function Level(props: { lv: ChainLevel }) {
  const { lv } = props;
  const open = ["planned", "waiting", "pending"].includes(lv.state);
  return (
    <li class={`chain-level ${lv.current ? "current" : ""}`} data-testid="chain-level" data-level={lv.level} data-state={lv.state} data-current={String(lv.current)}>
      <div class="row" style={{ justifyContent: "space-between", gap: 8 }}>
        <strong>{t("chain_level_pre")}{lv.seq}{t("chain_level_post")} · {t(`lvl_${lv.level}` as Key)}</strong>
        <span class={`tag ${STEP_CLASS[lv.state] ?? ""}`}>{t(`step_${lv.state}` as Key)}</span>
      </div>
      <div class="small muted">{lv.scope}</div>
      {lv.decided_by && (
        <div class="small" data-testid="chain-decided-by">
          {t("chain_decided_by")}：{person(lv.decided_by)} · {fmtDateTime(lv.decided_at)}{lv.comment ? ` · ${lv.comment}` : ""}
        </div>
      )}
      {open && lv.deciders.length > 0 && (
        <div class="small" data-testid="chain-deciders">
          {t("chain_deciders")}{lv.delegated ? `（${t("chain_delegated")}）` : ""}：{lv.deciders.map(person).join("、")}
          {lv.deciders_total > lv.deciders.length && ` …（${t("chain_total")} ${lv.deciders_total} ${t("chain_people")}）`}
        </div>
      )}
      {open && lv.deciders.length === 0 && <div class="notice" data-testid="chain-no-decider">{t("chain_no_decider")}</div>}
      {lv.current && lv.due_at && (
        <div class="small muted">
          {t("chain_due")}：{fmtDateTime(lv.due_at)}{lv.escalations > 0 ? ` · ${t("chain_escalated")} ×${lv.escalations}` : ""}
        </div>
      )}
    </li>
  );
}

/** The chain of one trip; reloads on trip and notification events. */
export function ApprovalChainView(props: { tripId: number }) {
  useLang();
  const [bump, setBump] = useState(0);
  useEffect(() => subscribe((m) => (m.type === "trip" || m.type === "notification") && setBump((n) => n + 1)), []);
  const chain = useAsync(() => api.approvalChain(props.tripId), [props.tripId, bump]);
  const c = chain.data;
  return (
    <section class="chain" data-testid="approval-chain" data-kind={c?.kind}>
      <div class="row" style={{ justifyContent: "space-between" }}>
        <strong>{t("approval_chain")}</strong>
        {c && <span class="tag info">{term(c.kind)}</span>}
      </div>
      <ErrorText error={chain.error} />
      {c?.destination_county && <div class="small muted">{t("destination_county")}：{c.destination_county}</div>}
      {c?.dispatch_first && <div class="notice info small">{t("chain_dispatch_first")}</div>}
      {c && c.levels.length === 0 && <div class="small muted">{t("chain_none")}</div>}
      {c && (
        <ol class="chain-levels">
          {c.levels.map((lv) => <Level key={lv.seq} lv={lv} />)}
        </ol>
      )}
    </section>
  );
}
