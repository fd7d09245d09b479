// The bell in the top bar: stored notifications (GET /me/notifications), unread count, mark read.
// Live `notification` events refresh it, so it agrees with the toasts; missed ones are there
// after a reload because the server stores them.
import { useEffect, useState } from "preact/hooks";
import { type AppNotification, api } from "./api";
import { subscribe } from "./live";
import { t, useLang } from "./i18n";
import { navigate } from "./router";
import { fmtDateTime } from "./time";

export function NotificationBell() {
  useLang();
  const [open, setOpen] = useState(false);
  const [items, setItems] = useState<AppNotification[]>([]);
  const [unread, setUnread] = useState(0);
  const load = () =>
    api.notifications({ limit: 20 }).then(
      (p) => {
        setItems(p.items);
        setUnread(p.unread);
      },
      () => undefined,
    );
  useEffect(() => {
    load();
    return subscribe((m) => {
      if (m.type === "notification") load();
    });
  }, []);
  const read = async (body: { ids: number[] } | { all: true }) => {
    const r = await api.markRead(body).catch(() => null);
    if (r) setUnread(r.unread);
    await load();
  };
  const openItem = (n: AppNotification) => {
    if (!n.read_at) read({ ids: [n.id] });
    const trip = n.data.trip_id;
    setOpen(false);
    if (typeof trip === "number" && n.kind === "approval_needed") navigate("/approvals");
    if (n.kind === "holiday_calendar_missing") navigate("/holidays");
  };
  return (
    <span class="bell">
      <button onClick={() => setOpen(!open)} data-testid="bell" aria-label={t("notifications")}>
        <svg viewBox="0 0 24 24" width="15" height="15" aria-hidden="true" style={{ verticalAlign: "-2px" }}>
          <path fill="currentColor" d="M12 22a2.5 2.5 0 0 0 2.45-2h-4.9A2.5 2.5 0 0 0 12 22Zm7-6V11a7 7 0 0 0-5.5-6.84V3.5a1.5 1.5 0 0 0-3 0v.66A7 7 0 0 0 5 11v5l-2 2v1h18v-1l-2-2Z" />
        </svg>
        {unread > 0 && <b class="badge" data-testid="bell-count">{unread}</b>}
      </button>
      {open && (
        <div class="bell-panel" data-testid="bell-panel">
          <header>
            <span>{t("notifications")}</span>
            <button class="linkbtn" disabled={unread === 0} onClick={() => read({ all: true })} data-testid="mark-all-read">
              {t("mark_all_read")}
            </button>
          </header>
          {items.length === 0 && <div class="empty small">{t("no_notifications")}</div>}
          {items.map((n) => (
            <div key={n.id} class={`bell-item${n.read_at ? "" : " unread"}`} onClick={() => openItem(n)} data-testid="bell-item">
              <div>{n.message}</div>
              <div class="muted small">{fmtDateTime(n.created_at)}</div>
            </div>
          ))}
        </div>
      )}
    </span>
  );
}
