// The change of one's own password, shown instead of every page while the server requires it
// (an initial or administrator-set password, or an expired one: issue 11).
import { useState } from "preact/hooks";
import { ApiError } from "../api";
import { type Key, t, useLang } from "../i18n";
import { changePassword, signOut, useUser } from "../session";

const ERRORS: Record<string, Key> = {
  wrong_password: "pw_wrong_current",
  password_too_weak: "pw_too_weak",
  password_has_username: "pw_has_username",
  password_common: "pw_common",
  password_reused: "pw_reused",
};

export function ChangePasswordPage() {
  useLang();
  const user = useUser();
  const [current, setCurrent] = useState("");
  const [next, setNext] = useState("");
  const [again, setAgain] = useState("");
  const [error, setError] = useState<string | null>(null);
  const [busy, setBusy] = useState(false);
  const submit = async (e: Event) => {
    e.preventDefault();
    setError(null);
    if (next !== again) {
      setError(t("pw_mismatch"));
      return;
    }
    setBusy(true);
    try {
      await changePassword(current, next);
    } catch (err) {
      const key = err instanceof ApiError ? ERRORS[err.code] : undefined;
      setError(key ? t(key) : String((err as Error).message));
    } finally {
      setBusy(false);
    }
  };
  const field = (name: string, label: Key, value: string, set: (v: string) => void, auto: string) => (
    <label class="field">
      {t(label)}
      <input class="input" name={name} type="password" autoComplete={auto} value={value} required
        onInput={(e) => set((e.target as HTMLInputElement).value)} />
    </label>
  );
  return (
    <div class="login-wrap" data-testid="change-password">
      <div class="login-card">
        <h1>{t("pw_title")}</h1>
        <div class="sub">{user?.password_change_required === "expired" ? t("pw_expired") : t("pw_initial")}</div>
        <form onSubmit={submit}>
          {field("current_password", "pw_current", current, setCurrent, "current-password")}
          {field("new_password", "pw_new", next, setNext, "new-password")}
          {field("confirm_password", "pw_confirm", again, setAgain, "new-password")}
          <div class="sub">{t("pw_rules")}</div>
          {error && <div class="error-text" role="alert">{error}</div>}
          <button class="btn primary" type="submit" disabled={busy}>{t("pw_submit")}</button>
        </form>
        <div class="foot">
          <span>{user?.display_name}</span>
          <button class="linkbtn" onClick={() => signOut()}>{t("logout")}</button>
        </div>
      </div>
    </div>
  );
}
