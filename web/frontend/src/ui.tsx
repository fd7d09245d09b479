// Small shared components: modal, pending-API notice, async loading state, tags.
import type { ComponentChildren } from "preact";
import { useCallback, useEffect, useState } from "preact/hooks";
import { ApiError, get } from "./api";
import { t, term } from "./i18n";

export function Modal(props: { title: string; onClose: () => void; children: ComponentChildren; footer?: ComponentChildren }) {
  useEffect(() => {
    const f = (e: KeyboardEvent) => e.key === "Escape" && props.onClose();
    window.addEventListener("keydown", f);
    return () => window.removeEventListener("keydown", f);
  }, []);
  return (
    <div class="modal-bg" onClick={(e) => e.target === e.currentTarget && props.onClose()}>
      <div class="modal" role="dialog" aria-label={props.title}>
        <header>{props.title}</header>
        <div class="body">{props.children}</div>
        {props.footer && <footer>{props.footer}</footer>}
      </div>
    </div>
  );
}

export function ErrorText(props: { error: unknown }) {
  if (!props.error) return null;
  const e = props.error;
  if (e instanceof ApiError && e.status === 403) return <div class="notice pending">{t("forbidden")}</div>;
  // Out of scope and missing are one answer (404): say both, never the server's English.
  if (e instanceof ApiError && e.status === 404) return <div class="notice pending">{t("not_found_or_hidden")}</div>;
  const msg = e instanceof ApiError ? `${e.message}${e.field ? ` (${e.field})` : ""}` : String(e);
  return <div class="error-text">{msg}</div>;
}

export interface Action {
  busy: boolean; // an action is running (its button disables)
  error: unknown; // the last one's failure, for ErrorText
  setError: (e: unknown) => void;
  /** Run `f` with `busy` set and the last error cleared; a failure becomes `error`. */
  run: (f: () => Promise<void>) => Promise<void>;
}

/** What a button starts: a busy flag and the error to show. */
export function useAction(): Action {
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState<unknown>(null);
  const run = async (f: () => Promise<void>) => {
    setBusy(true);
    setError(null);
    try {
      await f();
    } catch (e) {
      setError(e);
    } finally {
      setBusy(false);
    }
  };
  return { busy, error, setError, run };
}

export interface Async<T> {
  data: T | null;
  error: unknown;
  loading: boolean;
  reload: () => void;
}

/** Load data with a loading flag; a stale answer (deps changed meanwhile) is dropped. */
export function useAsync<T>(f: () => Promise<T>, deps: unknown[]): Async<T> {
  const [state, set] = useState<{ data: T | null; error: unknown; loading: boolean }>({ data: null, error: null, loading: true });
  const [n, setN] = useState(0);
  useEffect(() => {
    let alive = true;
    set((s) => ({ ...s, loading: true }));
    f().then(
      (data) => alive && set({ data, error: null, loading: false }),
      (error) => alive && set({ data: null, error, loading: false }),
    );
    return () => {
      alive = false;
    };
  }, [...deps, n]);
  const reload = useCallback(() => setN((x) => x + 1), []);
  return { ...state, reload };
}

/** Loading (until the first answer: a reload keeps the data shown) and the error of `of`. */
export function AsyncStatus(props: { of: Async<unknown> }) {
  const a = props.of;
  return (
    <>
      {a.loading && !a.data && <div class="empty">{t("loading")}</div>}
      <ErrorText error={a.error} />
    </>
  );
}

const STATE_CLASS: Record<string, string> = {
  submitted: "warn", approved: "info", assigned: "purple", accepted: "purple", departed: "purple",
  arrived: "purple", completed: "ok", settled: "ok", rejected: "bad", cancelled: "", returned: "warn",
  open: "bad", acknowledged: "info", closed: "", critical: "bad", warning: "warn", info: "info",
};

export function StateTag(props: { state: string | null | undefined }) {
  const s = props.state ?? "";
  return <span class={`tag ${STATE_CLASS[s] ?? ""}`} data-state={s}>{term(s)}</span>;
}

export const STATUS_COLORS: Record<string, string> = {
  moving: "#16a34a",
  parked: "#2563eb",
  on_trip: "#7c3aed",
  offline: "#9ca3af",
  alarm: "#dc2626",
};
export const STATUSES = ["moving", "parked", "on_trip", "offline", "alarm"] as const;
export type VStatus = (typeof STATUSES)[number];

export function StatusDot(props: { status: string }) {
  return <i class="dot" style={{ background: STATUS_COLORS[props.status] ?? "#999" }} />;
}

const orgNames = new Map<number, Promise<string>>();
/** An organisation's name by id (cached for the session). */
export function useOrgName(id: number | null | undefined): string {
  const [name, setName] = useState("");
  useEffect(() => {
    if (!id) return;
    let p = orgNames.get(id);
    if (!p) {
      p = get<{ name: string }>(`/orgs/${id}`).then((o) => o.name, () => `#${id}`);
      orgNames.set(id, p);
    }
    p.then(setName);
  }, [id]);
  return name;
}

export function OrgName(props: { id: number | null | undefined }) {
  return <>{useOrgName(props.id)}</>;
}
