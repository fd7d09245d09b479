// All times are stored in UTC and shown in Asia/Shanghai, whatever the browser's zone.
import { lang } from "./i18n";

export const TZ = "Asia/Shanghai";
const cache = new Map<string, Intl.DateTimeFormat>();

function fmt(kind: "dt" | "t" | "d" | "hm"): Intl.DateTimeFormat {
  const key = `${lang()}:${kind}`;
  let f = cache.get(key);
  if (!f) {
    const base: Intl.DateTimeFormatOptions = { timeZone: TZ, hour12: false };
    const opts: Record<typeof kind, Intl.DateTimeFormatOptions> = {
      dt: { ...base, year: "numeric", month: "2-digit", day: "2-digit", hour: "2-digit", minute: "2-digit", second: "2-digit" },
      t: { ...base, hour: "2-digit", minute: "2-digit", second: "2-digit" },
      hm: { ...base, month: "2-digit", day: "2-digit", hour: "2-digit", minute: "2-digit" },
      d: { ...base, year: "numeric", month: "2-digit", day: "2-digit" },
    };
    f = new Intl.DateTimeFormat(lang(), opts[kind]);
    cache.set(key, f);
  }
  return f;
}

const toDate = (v: string | number | Date) => (v instanceof Date ? v : new Date(v));
export const fmtDateTime = (v?: string | number | Date | null) => (v ? fmt("dt").format(toDate(v)) : "—");
export const fmtTime = (v?: string | number | Date | null) => (v ? fmt("t").format(toDate(v)) : "—");
export const fmtShort = (v?: string | number | Date | null) => (v ? fmt("hm").format(toDate(v)) : "—");
export const fmtDate = (v?: string | number | Date | null) => (v ? fmt("d").format(toDate(v)) : "—");
/** HH:MM (a planned pickup, a command sent today). */
export const fmtHourMinute = (v?: string | number | Date | null) => fmtTime(v).slice(0, 5);

/** Today's date in Shanghai as YYYY-MM-DD. */
export function shanghaiDay(d: Date = new Date()): string {
  return new Intl.DateTimeFormat("en-CA", { timeZone: TZ, year: "numeric", month: "2-digit", day: "2-digit" }).format(d);
}

/** UTC instant of 00:00 Shanghai (UTC+8, no DST) on a YYYY-MM-DD day. */
export function shanghaiMidnight(day: string): Date {
  return new Date(`${day}T00:00:00+08:00`);
}

/** `<input type=datetime-local>` value (Shanghai wall time) -> RFC 3339 UTC. */
export function localInputToIso(v: string): string {
  return new Date(`${v}:00+08:00`).toISOString();
}

export function isoToLocalInput(d: Date): string {
  const p = new Intl.DateTimeFormat("en-CA", {
    timeZone: TZ, year: "numeric", month: "2-digit", day: "2-digit", hour: "2-digit", minute: "2-digit", hour12: false,
  }).formatToParts(d);
  const g = (t: string) => p.find((x) => x.type === t)?.value ?? "00";
  return `${g("year")}-${g("month")}-${g("day")}T${g("hour") === "24" ? "00" : g("hour")}:${g("minute")}`;
}

export function fmtDuration(seconds: number | null | undefined): string {
  if (seconds == null) return "—";
  const h = Math.floor(seconds / 3600);
  const m = Math.round((seconds % 3600) / 60);
  return lang() === "en" ? `${h}h ${m}m` : `${h}小时${m}分`;
}
