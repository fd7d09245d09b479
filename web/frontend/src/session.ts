// The signed-in user, shared by every page.
import { api, type Me, noteSession, type Role, refreshAccess, setToken } from "./api";
import { useRerenderOn } from "./rerender";

let me: Me | null = null;
const listeners = new Set<() => void>();
const emit = () => listeners.forEach((f) => f());

export function currentUser(): Me | null {
  return me;
}

export function roles(): Set<Role> {
  return new Set((me?.roles ?? []).map((b) => b.role));
}

export function hasRole(...rs: Role[]): boolean {
  const mine = roles();
  return rs.some((r) => mine.has(r));
}

/** After a reload: the session cookie gives a new access token (none in storage). */
export async function restore(): Promise<Me | null> {
  const out = await refreshAccess();
  me = out ? out.user : null;
  emit();
  return me;
}

export async function signIn(username: string, password: string): Promise<Me> {
  const out = await api.login(username, password);
  noteSession(out);
  me = out.user;
  emit();
  return me;
}

/** Change one's own password; the session continues, without the change requirement. */
export async function changePassword(current: string, next: string): Promise<Me> {
  me = await api.changePassword(current, next);
  emit();
  return me;
}

/** End the session on the server (its cookies are cleared), then forget it here. */
export function signOut(): void {
  void api.logout().catch(() => undefined);
  setToken(null);
  me = null;
  emit();
}

export function useUser(): Me | null {
  useRerenderOn(listeners);
  return me;
}

/** The page a role lands on after sign-in. */
export function homeFor(u: Me | null): string {
  const r = new Set((u?.roles ?? []).map((b) => b.role));
  if (r.has("dispatcher") || r.has("admin")) return "/console";
  if (r.has("driver")) return "/driver";
  if (r.has("approver")) return "/approvals";
  if (r.has("auditor")) return "/audit";
  return "/requests";
}

window.addEventListener("fleet:unauthenticated", () => {
  me = null;
  emit();
});

window.addEventListener("fleet:password-change", () => {
  void api
    .me()
    .then((m) => {
      me = m;
      emit();
    })
    .catch(() => undefined);
});
