import { render } from "preact";
import { useEffect, useState } from "preact/hooks";
import { api } from "./api";
import { lang, setLang, t, useLang } from "./i18n";
import { setUiConfig } from "./map/base";
import { ApprovalsPage } from "./pages/approvals";
import { AuditPage, AuditTripPage, AuditVehicleDayPage } from "./pages/audit";
import { ConsolePage } from "./pages/console";
import { DriverPage } from "./pages/driver";
import { HolidaysPage } from "./pages/holidays";
import { LoginPage } from "./pages/login";
import { ChangePasswordPage } from "./pages/password";
import { RequestPage } from "./pages/request";
import { RequestsPage } from "./pages/requests";
import { TripReportPage } from "./pages/report";
import { subscribe } from "./live";
import { NotificationBell } from "./notifications";
import { Link, match, navigate, useLocation } from "./router";
import { hasRole, homeFor, restore, signOut, useUser } from "./session";
import type { Role } from "./api";
import "./styles.css";

interface Route {
  path: string;
  roles: Role[];
  nav?: "nav_console" | "nav_requests" | "nav_approvals" | "nav_driver" | "nav_audit" | "nav_holidays";
  page: (p: Record<string, string>) => preact.JSX.Element;
  bare?: boolean; // full-screen pages without the desktop top bar
}

const ROUTES: Route[] = [
  { path: "/console", roles: ["dispatcher", "admin"], nav: "nav_console", page: () => <ConsolePage /> },
  { path: "/requests", roles: ["requester", "admin"], nav: "nav_requests", page: () => <RequestsPage /> },
  { path: "/approvals", roles: ["approver", "admin"], nav: "nav_approvals", page: () => <ApprovalsPage /> },
  { path: "/audit", roles: ["auditor", "admin"], nav: "nav_audit", page: () => <AuditPage /> },
  { path: "/audit/trips/:id", roles: ["auditor", "admin", "dispatcher"], page: (p) => <AuditTripPage id={Number(p.id)} /> },
  {
    path: "/audit/vehicles/:id/:day",
    roles: ["auditor", "admin", "dispatcher"],
    page: (p) => <AuditVehicleDayPage id={Number(p.id)} day={p.day} />,
  },
  { path: "/trips/:id", roles: ["requester", "approver", "dispatcher", "auditor", "admin"], page: (p) => <RequestPage id={Number(p.id)} /> },
  { path: "/trips/:id/report", roles: ["auditor", "admin", "dispatcher", "approver", "requester"], page: (p) => <TripReportPage id={Number(p.id)} /> },
  { path: "/driver", roles: ["driver"], nav: "nav_driver", page: () => <DriverPage />, bare: true },
  { path: "/holidays", roles: ["admin"], nav: "nav_holidays", page: () => <HolidaysPage /> },
];

function TopBar(props: { active: string }) {
  const user = useUser();
  useLang();
  return (
    <header class="topbar">
      <div class="brand">
        <img src="/icons/icon.svg" alt="" />
        <span>{t("app_name")}</span>
      </div>
      <nav>
        {ROUTES.filter((r) => r.nav && hasRole(...r.roles)).map((r) => (
          <Link key={r.path} href={r.path} class={props.active === r.path ? "active" : ""}>
            {t(r.nav!)}
          </Link>
        ))}
      </nav>
      <div class="spacer" />
      <div class="user">
        <NotificationBell />
        <button data-testid="lang-switch" onClick={() => setLang(lang() === "en" ? "zh-CN" : "en")}>
          {t("language")}
        </button>
        <span data-testid="whoami">
          {user?.display_name} · {user?.roles.map((b) => b.org_name).filter((v, i, a) => a.indexOf(v) === i).join("、")}
        </span>
        <button
          onClick={() => {
            signOut();
            navigate("/login");
          }}
        >
          {t("logout")}
        </button>
      </div>
    </header>
  );
}

function Toasts() {
  const [items, setItems] = useState<{ id: number; text: string }[]>([]);
  useEffect(() => {
    let n = 0;
    return subscribe((m) => {
      if (m.type !== "notification") return;
      const id = ++n;
      const d = (m.data ?? {}) as { message?: string; title?: string };
      const text = String(d.message ?? d.title ?? "");
      if (!text) return;
      setItems((xs) => [...xs.slice(-3), { id, text }]);
      window.setTimeout(() => setItems((xs) => xs.filter((x) => x.id !== id)), 8000);
    });
  }, []);
  return (
    <div class="toasts" data-testid="toasts">
      {items.map((x) => <div class="toast" key={x.id}>{x.text}</div>)}
    </div>
  );
}

function App() {
  const [ready, setReady] = useState(false);
  const user = useUser();
  const { path } = useLocation();
  useLang();
  useEffect(() => {
    Promise.all([restore(), api.uiConfig().then(setUiConfig).catch(() => undefined)]).finally(() => setReady(true));
  }, []);
  if (!ready) return <div class="empty">{t("loading")}</div>;
  if (!user) {
    if (path !== "/login") {
      const next = path === "/" ? "" : `?next=${encodeURIComponent(path + location.search)}`;
      navigate(`/login${next}`, true);
    }
    return <LoginPage />;
  }
  if (user.password_change_required) return <ChangePasswordPage />;
  if (path === "/" || path === "/login") {
    const next = new URLSearchParams(location.search).get("next");
    navigate(next && next.startsWith("/") ? next : homeFor(user), true);
    return null;
  }
  for (const r of ROUTES) {
    const params = match(r.path, path);
    if (!params) continue;
    const allowed = hasRole(...r.roles);
    const body = allowed ? r.page(params) : <div class="empty">{t("forbidden")}</div>;
    if (r.bare) return <>{body}<Toasts /></>;
    const navPath = ROUTES.find((x) => x.nav && path.startsWith(x.path))?.path ?? r.path;
    return (
      <div class="shell">
        <TopBar active={navPath} />
        <main class="main">{body}</main>
        <Toasts />
      </div>
    );
  }
  return (
    <div class="shell">
      <TopBar active="" />
      <main class="main">
        <div class="empty">{t("page_not_found")}</div>
      </main>
    </div>
  );
}

render(<App />, document.getElementById("app")!);

if ("serviceWorker" in navigator && location.protocol !== "file:") {
  window.addEventListener("load", () => navigator.serviceWorker.register("/sw.js").catch(() => undefined));
}
