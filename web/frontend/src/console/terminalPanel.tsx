// The vehicle panel's terminal section: online state, a text to the driver's terminal
// (JT/T 808 0x8300) and "where are you now" (0x8201), with the terminal's answers. The API
// queues the command; the gateway holding the terminal's connection delivers it and records
// the answer, which arrives here as a live `terminal_command` event.
import { useEffect, useState } from "preact/hooks";
import { api, type TerminalCommand } from "../api";
import { t, term } from "../i18n";
import { subscribe } from "../live";
import { roles } from "../session";
import { fmtDateTime, fmtHourMinute } from "../time";
import { ErrorText, useAction, useAsync } from "../ui";

export function TerminalSection(props: { vehicleId: number }) {
  const link = useAsync(() => api.vehicleTerminal(props.vehicleId), [props.vehicleId]);
  const [text, setText] = useState("");
  const [urgent, setUrgent] = useState(false);
  const { busy, error: err, run } = useAction();
  const mine = roles();
  const canSend = mine.has("dispatcher") || mine.has("admin");

  useEffect(
    () =>
      subscribe((m) => {
        if (m.type !== "terminal_command" && m.type !== "status") return;
        const d = (m as { data?: { vehicle_id?: number } }).data;
        if (d?.vehicle_id === props.vehicleId) link.reload();
      }),
    [props.vehicleId],
  );

  const send = (body: { kind: "text" | "position_query"; text?: string; urgent?: boolean }) =>
    run(async () => {
      await api.sendTerminalCommand(props.vehicleId, body);
      if (body.kind === "text") setText("");
      link.reload();
    });

  const l = link.data;
  return (
    <div class="terminal-section" data-testid="terminal-section">
      <div class="section-title small">
        <span>{t("terminal")} {l?.terminal_id ?? ""}</span>
        {l && l.protocol === "jt808" && (
          <span class={`tag ${l.online ? "ok" : ""}`} data-testid="terminal-online" data-online={l.online}>
            {l.online ? t("terminal_online") : t("terminal_offline_now")}
            {!l.online && l.reason ? ` · ${term(l.reason)}` : ""}
          </span>
        )}
      </div>
      <ErrorText error={link.error} />
      {l && !l.commands_supported && <div class="small muted">{t("commands_unsupported")}</div>}
      {l?.commands_supported && canSend && (
        <div class="terminal-send">
          <textarea class="input" rows={2} maxLength={200} placeholder={t("send_text_hint")} value={text} data-testid="terminal-text"
            onInput={(e) => setText((e.target as HTMLTextAreaElement).value)} />
          <div class="row">
            <label class="small"><input type="checkbox" checked={urgent} onChange={(e) => setUrgent((e.target as HTMLInputElement).checked)} /> {t("urgent_flag")}</label>
            <button class="btn small primary" disabled={busy || !text.trim()} data-testid="terminal-send-text"
              onClick={() => send({ kind: "text", text: text.trim(), urgent })}>{t("send_text")}</button>
            <button class="btn small" disabled={busy} data-testid="terminal-query" onClick={() => send({ kind: "position_query" })}>{t("query_position")}</button>
          </div>
        </div>
      )}
      <ErrorText error={err} />
      {l && l.commands.length === 0 && l.commands_supported && <div class="small muted">{t("commands_none")}</div>}
      {l?.commands.slice(0, 5).map((c: TerminalCommand) => (
        <div class="small command" key={c.id} data-testid="terminal-command" data-status={c.status}>
          <span class="muted">{fmtHourMinute(c.created_at)}</span>{" "}
          <b>{c.kind === "text" ? `“${c.text}”` : term("position_query")}</b>{" · "}
          <span class={`cmd-${c.status}`}>{t(`cmd_${c.status}` as never)}</span>
          {c.reply?.lat != null && c.reply.lon != null && (
            <span class="muted"> · {c.reply.lat.toFixed(5)}, {c.reply.lon.toFixed(5)} ({fmtDateTime(c.reply.ts ?? null)})</span>
          )}
        </div>
      ))}
    </div>
  );
}
