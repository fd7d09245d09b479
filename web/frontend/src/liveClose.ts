// Close codes of the live websocket (web/live_auth.py) and the reconnect policy, shared by
// live.ts and the console's feed worker (which must not pull in the HTTP client).
export const CLOSE_UNAUTHENTICATED = 4401; // the login no longer admits us: a new ticket decides
export const CLOSE_SCOPE_CHANGED = 4403; // our roles changed: reload with the new scope

/** Delay before reconnecting: at once after a 4401 on a connection that had opened (a new
 * ticket decides whether the login still holds), otherwise exponential backoff up to 32 s. */
export function reconnectDelay(code: number, retry: number): number {
  return code === CLOSE_UNAUTHENTICATED && retry <= 1 ? 0 : 500 * 2 ** retry;
}
