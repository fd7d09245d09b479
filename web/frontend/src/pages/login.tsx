import { useState } from "preact/hooks";
import { ApiError } from "../api";
import { lang, setLang, t, useLang } from "../i18n";
import { signIn } from "../session";

export function LoginPage() {
  useLang();
  const [username, setUsername] = useState("");
  const [password, setPassword] = useState("");
  const [error, setError] = useState<string | null>(null);
  const [busy, setBusy] = useState(false);
  const submit = async (e: Event) => {
    e.preventDefault();
    setBusy(true);
    setError(null);
    try {
      await signIn(username.trim(), password);
    } catch (err) {
      // 503 auth_busy: the server's password hashing is saturated (fleet/identity/hashing.py)
      // 429: the account is locked or this address throttled (fleet/identity/lockout.py)
      const status = err instanceof ApiError ? err.status : 0;
      const code = err instanceof ApiError ? err.code : "";
      setError(
        status === 401
          ? t("login_failed")
          : status === 503
            ? t("login_busy")
            : code === "account_locked"
              ? t("login_locked")
              : code === "source_throttled"
                ? t("login_throttled")
                : String((err as Error).message),
      );
    } finally {
      setBusy(false);
    }
  };
  return (
    <div class="login-wrap">
      <div class="login-card">
        <h1>{t("app_name")}</h1>
        <div class="sub">{t("login_hint")}</div>
        <form onSubmit={submit}>
          <label class="field">
            {t("username")}
            <input class="input" name="username" autoComplete="username" value={username}
              onInput={(e) => setUsername((e.target as HTMLInputElement).value)} autoFocus required />
          </label>
          <label class="field">
            {t("password")}
            <input class="input" name="password" type="password" autoComplete="current-password" value={password}
              onInput={(e) => setPassword((e.target as HTMLInputElement).value)} required />
          </label>
          {error && <div class="error-text" role="alert">{error}</div>}
          <button class="btn primary" type="submit" disabled={busy}>{t("login")}</button>
        </form>
        <div class="foot">
          <span>广西壮族自治区 · Guangxi</span>
          <button class="linkbtn" data-testid="lang-switch" onClick={() => setLang(lang() === "en" ? "zh-CN" : "en")}>{t("language")}</button>
        </div>
      </div>
    </div>
  );
}
