// The signed-in user, shared by every page.
import { api, type Me, type Role, setToken, token } from "./api";
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

export async function restore(): Promise<Me | null> {
  if (!token()) return null;
  try {
    me = await api.me();
  } catch {
    me = null;
  }
  emit();
  return me;
}

export async function signIn(username: string, password: string): Promise<Me> {
  const out = await api.login(username, password);
  setToken(out.access_token);
  me = out.user;
  emit();
  return me;
}

export function signOut(): void {
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
