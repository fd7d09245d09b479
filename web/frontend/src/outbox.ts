// Driver actions taken without network: kept in localStorage in order, sent when it returns.
import { api, ApiError } from "./api";

export interface QueuedAction {
  key: string;
  assignment_id: number;
  action: string;
  body: Record<string, unknown>;
  at: string; // when the driver acted (RFC 3339), kept for the record
}

const KEY = "fleet.outbox";
const listeners = new Set<() => void>();

export function pending(): QueuedAction[] {
  try {
    return JSON.parse(localStorage.getItem(KEY) ?? "[]") as QueuedAction[];
  } catch {
    return [];
  }
}
function save(q: QueuedAction[]) {
  localStorage.setItem(KEY, JSON.stringify(q));
  listeners.forEach((f) => f());
}
export function onChange(f: () => void): () => void {
  listeners.add(f);
  return () => listeners.delete(f);
}

/** Send now if possible; on a network failure, queue it. Server refusals are thrown. */
export async function perform(id: number, action: string, body: Record<string, unknown>): Promise<"sent" | "queued"> {
  const item: QueuedAction = { key: `${id}:${action}:${Date.now()}`, assignment_id: id, action, body, at: new Date().toISOString() };
  if (!navigator.onLine || pending().length > 0) {
    save([...pending(), item]);
    return "queued";
  }
  try {
    await api.assignmentAction(id, action, body);
    return "sent";
  } catch (e) {
    if (e instanceof ApiError) throw e;
    save([...pending(), item]); // fetch failed: no network
    return "queued";
  }
}

let flushing = false;
/** Send queued actions in order; stop at the first network failure, drop server refusals. */
export async function flush(): Promise<{ sent: number; refused: { item: QueuedAction; error: ApiError }[] }> {
  const refused: { item: QueuedAction; error: ApiError }[] = [];
  let sent = 0;
  if (flushing) return { sent, refused };
  flushing = true;
  try {
    for (;;) {
      const q = pending();
      if (!q.length) break;
      const [head, ...rest] = q;
      try {
        await api.assignmentAction(head.assignment_id, head.action, { ...head.body, ...(head.action === "accept" || head.action === "decline" ? {} : { at: head.at }) });
        sent++;
      } catch (e) {
        if (!(e instanceof ApiError)) break;
        refused.push({ item: head, error: e });
      }
      save(rest);
    }
  } finally {
    flushing = false;
  }
  return { sent, refused };
}
