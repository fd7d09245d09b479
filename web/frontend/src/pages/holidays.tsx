// 节假日管理: the official calendar by year (days off and adjusted working days), edited by
// region-level admins one day at a time or imported from a CSV/XLSX file (all or nothing).
import { useState } from "preact/hooks";
import { ApiError, api, type Holiday, type HolidayIn, type ImportRowError } from "../api";
import { download } from "../download";
import { t, useLang } from "../i18n";
import { shanghaiDay } from "../time";
import { useAsync } from "../ui";

const EMPTY: HolidayIn = { day: "", kind: "holiday", name: "", note: null };

function weekday(day: string): string {
  const names = t("weekday_names").split(",");
  return names[new Date(`${day}T12:00:00+08:00`).getUTCDay()] ?? "";
}

/** A message for the admin in the page's language: never a raw code or an English server sentence. */
function explain(e: unknown): string {
  if (!(e instanceof ApiError)) return String(e);
  if (e.status === 403) return t("holiday_region_only");
  if (e.code === "day_exists") return `${t("holiday_day")}: ${t("holiday_exists")}`;
  if (e.code === "invalid_day" || e.code === "import_invalid") return e.message; // Chinese from the server
  const field = e.field === "name" ? t("holiday_name") : e.field === "note" ? t("holiday_note") : e.field === "kind" ? t("holiday_kind") : t("holiday_day");
  return `${t("holiday_check")}${field}`;
}

export function HolidaysPage() {
  useLang();
  const thisYear = Number(shanghaiDay().slice(0, 4));
  const [year, setYear] = useState(thisYear);
  const [bump, setBump] = useState(0);
  const coverage = useAsync(() => api.holidayCoverage(), [bump]);
  const days = useAsync(() => api.holidays(year), [year, bump]);
  const [form, setForm] = useState<HolidayIn | null>(null);
  const [editing, setEditing] = useState<string | null>(null);
  const [confirm, setConfirm] = useState<string | null>(null);
  const [msg, setMsg] = useState<{ ok: boolean; text: string } | null>(null);
  const [file, setFile] = useState<File | null>(null);
  const [mode, setMode] = useState<"replace" | "merge">("replace");
  const [rowErrors, setRowErrors] = useState<ImportRowError[]>([]);

  const years = new Set<number>([thisYear - 1, thisYear, thisYear + 1, ...(coverage.data?.years.map((y) => y.year) ?? [])]);
  const stats = coverage.data?.years.find((y) => y.year === year);
  const missing = coverage.data?.missing_years ?? [];
  const done = (text: string) => {
    setMsg({ ok: true, text });
    setForm(null);
    setEditing(null);
    setConfirm(null);
    setBump((n) => n + 1);
  };
  const save = async () => {
    if (!form) return;
    setMsg(null);
    if (!form.day || !form.name.trim()) return setMsg({ ok: false, text: `${t("holiday_check")}${!form.day ? t("holiday_day") : t("holiday_name")}` });
    try {
      const body = { ...form, name: form.name.trim(), note: form.note?.trim() || null };
      if (editing) await api.updateHoliday(editing, { kind: body.kind, name: body.name, note: body.note });
      else await api.createHoliday(body);
      setYear(Number(form.day.slice(0, 4)));
      done(t("holiday_saved"));
    } catch (e) {
      setMsg({ ok: false, text: explain(e) });
    }
  };
  const remove = async (day: string) => {
    if (confirm !== day) return setConfirm(day);
    try {
      await api.deleteHoliday(day);
      done(t("holiday_deleted"));
    } catch (e) {
      setMsg({ ok: false, text: explain(e) });
    }
  };
  const runImport = async () => {
    setMsg(null);
    setRowErrors([]);
    if (!file) return setMsg({ ok: false, text: t("holiday_choose_file") });
    try {
      const r = await api.importHolidays(file, mode);
      setYear(r.years[0] ?? year);
      done(t("holiday_imported").replace("{n}", String(r.imported)).replace("{years}", r.years.join("、")));
    } catch (e) {
      setRowErrors((e as { rows?: ImportRowError[] }).rows ?? []);
      setMsg({ ok: false, text: e instanceof ApiError && e.code === "import_invalid" ? t("holiday_import_failed") : explain(e) });
    }
  };
  const template = (fmt: "csv" | "xlsx") => download(`/api/v1/holidays/template.${fmt}`, `holidays-template.${fmt}`).catch((e) => setMsg({ ok: false, text: explain(e) }));

  return (
    <div class="page" data-testid="holidays-page">
      <h1>{t("holidays_title")}</h1>
      <p class="muted small">{t("holidays_hint")}</p>
      {missing.length > 0 && (
        <div class="notice" data-testid="holiday-missing">
          {t("holidays_missing")} {missing.map((y) => `${y}`).join("、")}
        </div>
      )}
      <div class="card" style={{ marginTop: 12 }}>
        <div class="body row">
          <label class="row small">
            {t("holiday_year")}
            <select class="input" value={year} onChange={(e) => setYear(Number((e.target as HTMLSelectElement).value))} data-testid="holiday-year">
              {[...years].sort((a, b) => b - a).map((y) => <option key={y} value={y}>{y}</option>)}
            </select>
          </label>
          <span class="muted small" data-testid="holiday-year-stats">
            {stats ? t("holiday_year_days").replace("{h}", String(stats.holidays)).replace("{w}", String(stats.workdays)) : t("empty")}
          </span>
          <span style={{ flex: 1 }} />
          <button class="btn primary" onClick={() => { setForm({ ...EMPTY, day: `${year}-01-01` }); setEditing(null); setMsg(null); }} data-testid="holiday-add">{t("holiday_add")}</button>
        </div>
        {form && (
          <div class="body row" data-testid="holiday-form" style={{ borderTop: "1px solid var(--line)" }}>
            <label class="field small">{t("holiday_day")}<input class="input" type="date" value={form.day} disabled={!!editing} onInput={(e) => setForm({ ...form, day: (e.target as HTMLInputElement).value })} data-testid="holiday-form-day" /></label>
            <label class="field small">{t("holiday_kind")}
              <select class="input" value={form.kind} onChange={(e) => setForm({ ...form, kind: (e.target as HTMLSelectElement).value as HolidayIn["kind"] })} data-testid="holiday-form-kind">
                <option value="holiday">{t("kind_holiday")}</option>
                <option value="workday">{t("kind_workday")}</option>
              </select>
            </label>
            <label class="field small">{t("holiday_name")}<input class="input" maxLength={40} value={form.name} placeholder="春节" onInput={(e) => setForm({ ...form, name: (e.target as HTMLInputElement).value })} data-testid="holiday-form-name" /></label>
            <label class="field small">{t("holiday_note")}<input class="input" maxLength={200} value={form.note ?? ""} onInput={(e) => setForm({ ...form, note: (e.target as HTMLInputElement).value })} data-testid="holiday-form-note" /></label>
            <button class="btn primary" onClick={save} data-testid="holiday-save">{t("holiday_save")}</button>
            <button class="btn" onClick={() => { setForm(null); setEditing(null); }}>{t("holiday_cancel")}</button>
          </div>
        )}
        {msg && <div class={msg.ok ? "notice info" : "error-text"} style={{ margin: "0 12px 8px" }} role={msg.ok ? "status" : "alert"} data-testid="holiday-msg">{msg.text}</div>}
        {rowErrors.length > 0 && (
          <div style={{ overflowX: "auto", margin: "0 12px 12px" }}>
            <table class="table" data-testid="import-errors">
              <thead><tr><th>{t("holiday_row")}</th><th>{t("holiday_column")}</th><th>{t("holiday_reason")}</th></tr></thead>
              <tbody>{rowErrors.map((r, i) => <tr key={i} data-testid="import-error"><td class="num">{r.row}</td><td>{r.column || "—"}</td><td>{r.reason}</td></tr>)}</tbody>
            </table>
          </div>
        )}
        <div style={{ overflowX: "auto" }}>
          <table class="table" data-testid="holiday-table">
            <thead><tr><th>{t("holiday_day")}</th><th>{t("holiday_weekday")}</th><th>{t("holiday_kind")}</th><th>{t("holiday_name")}</th><th>{t("holiday_note")}</th><th>{t("holiday_source")}</th><th /></tr></thead>
            <tbody>
              {(days.data ?? []).map((h: Holiday) => (
                <tr key={h.day} data-testid="holiday-row" data-day={h.day} data-kind={h.kind}>
                  <td class="mono">{h.day}</td>
                  <td>{weekday(h.day)}</td>
                  <td><span class={`tag ${h.kind === "holiday" ? "ok" : "warn"}`}>{t(h.kind === "holiday" ? "kind_holiday" : "kind_workday")}</span></td>
                  <td>{h.name}</td>
                  <td class="small">{h.note ?? ""}</td>
                  <td class="small muted">{t(`source_${h.source}` as "source_manual")}</td>
                  <td class="row" style={{ flexWrap: "nowrap" }}>
                    <button class="btn small" onClick={() => { setForm({ day: h.day, kind: h.kind, name: h.name, note: h.note }); setEditing(h.day); setMsg(null); }} data-testid="holiday-edit">{t("holiday_edit")}</button>
                    <button class="btn small" onClick={() => remove(h.day)} data-testid="holiday-delete">{confirm === h.day ? t("holiday_confirm_delete") : t("holiday_delete")}</button>
                  </td>
                </tr>
              ))}
            </tbody>
          </table>
          {days.data && days.data.length === 0 && <div class="empty" data-testid="holiday-empty">{t("empty")}</div>}
        </div>
      </div>
      <div class="card" style={{ marginTop: 12 }}>
        <header>{t("holiday_import")}</header>
        <div class="body row">
          {/* the browser's own file button speaks the browser's language: a labelled one instead */}
          <label class="btn">
            {t("holiday_pick_file")}
            <input type="file" style={{ display: "none" }} accept=".csv,.xlsx,text/csv,application/vnd.openxmlformats-officedocument.spreadsheetml.sheet" onChange={(e) => setFile((e.target as HTMLInputElement).files?.[0] ?? null)} data-testid="holiday-file" />
          </label>
          <span class="small muted" data-testid="holiday-file-name">{file?.name ?? t("holiday_no_file")}</span>
          <select class="input" value={mode} onChange={(e) => setMode((e.target as HTMLSelectElement).value as "replace" | "merge")} data-testid="holiday-import-mode" aria-label={t("holiday_import")}>
            <option value="replace">{t("holiday_import_mode_replace")}</option>
            <option value="merge">{t("holiday_import_mode_merge")}</option>
          </select>
          <button class="btn primary" onClick={runImport} data-testid="holiday-import">{t("holiday_import_go")}</button>
          <span style={{ flex: 1 }} />
          <span class="muted small">{t("holiday_template")}</span>
          <button class="btn small" onClick={() => template("xlsx")} data-testid="holiday-template-xlsx">XLSX</button>
          <button class="btn small" onClick={() => template("csv")} data-testid="holiday-template-csv">CSV</button>
        </div>
      </div>
    </div>
  );
}
