// One signed-in session: the SDK client, the store, and the views on it.

import { SensorcastClient, type ClientEvents, type ConnectionState, type Presence } from "@sensorcast/client";
import { AlertFeed } from "./alerts";
import type { Claims } from "./auth";
import { DetailPanel } from "./detail";
import { DeviceList, type ListState } from "./devicelist";
import { h, icon, ICONS, setAttr, setText } from "./dom";
import { describeClose, formatDateTime, formatDuration, formatClock } from "./format";
import { TileGrid } from "./grid";
import { planRooms } from "./rooms";
import { Store } from "./store";

// The server announces joins and leaves (presence_join / presence_leave) to a
// client that asked for a room's presence; they are optional in the
// contract, so the count is also asked for again now and then.
const PRESENCE_REFRESH_MS = 60_000;
const SEARCH_DEBOUNCE_MS = 250;

export interface SessionHooks {
  logo: () => HTMLElement;
  signOut: () => void;
  unauthorized: (message: string) => void;
}

export function describeExpiry(claims: Claims, now = Date.now()): string {
  if (claims.exp === undefined) return "no expiry";
  const left = claims.exp * 1000 - now;
  return left <= 0 ? "expired" : `expires in ${formatDuration(left)}`;
}

const STATE_LABEL: Record<ConnectionState, string> = {
  connecting: "Connecting…",
  open: "Live",
  reconnecting: "Reconnecting…",
  unauthorized: "Unauthorized",
  closed: "Disconnected",
};

export class Session {
  private client: SensorcastClient | null = null;
  private readonly store = new Store();
  private grid!: TileGrid;
  private list!: DeviceList;
  private detail!: DetailPanel;
  private alerts!: AlertFeed;
  private offs: Array<() => void> = [];
  private timers: Array<ReturnType<typeof setInterval>> = [];
  private stopped = false;

  // Header.
  private conn!: HTMLElement;
  private connText!: HTMLElement;
  private connAnnounce!: HTMLElement;
  private lastClose!: HTMLElement;
  private presenceCount!: HTMLElement;
  private presenceBox!: HTMLElement;
  private expiry!: HTMLElement;
  // Devices.
  private search!: HTMLInputElement;
  private groupSelect!: HTMLSelectElement;
  private summary!: HTMLElement;
  private listNote!: HTMLElement;
  private listCount!: HTMLElement;
  private loadMore!: HTMLButtonElement;
  private banner!: HTMLElement;
  private toasts!: HTMLElement;
  private layout!: HTMLElement;

  private state: ConnectionState = "connecting";
  private retryAt = 0;
  private attempt = 0;
  private lastOpenAt = 0;
  private presenceRoom = "global";
  private presence: Presence | null = null;
  private notes: string[] = [];
  private plannedRooms: string[] = [];
  private summaryTimer: ReturnType<typeof setTimeout> | null = null;

  constructor(
    private readonly root: HTMLElement,
    private readonly token: string,
    private readonly claims: Claims,
    private readonly hooks: SessionHooks,
  ) {}

  async start(): Promise<void> {
    this.build();
    this.list = new DeviceList(this.store, this.token, (s) => this.onList(s), (msg) => this.refused(msg));
    const listed = this.list.start().then(() => this.renderGroups());

    const plan = await planRooms(this.claims, this.token);
    if (this.stopped) return;
    this.notes = plan.notes;
    this.plannedRooms = plan.rooms;
    this.presenceRoom = plan.rooms.includes("global") ? "global" : (plan.rooms[0] ?? "global");
    this.renderBanner();
    if (plan.rooms.length === 0) {
      this.notes.push("Your token grants no room this dashboard can join.");
      this.renderBanner();
    }

    const url = `${location.protocol === "https:" ? "wss:" : "ws:"}//${location.host}/api/v1/ws`;
    const client = new SensorcastClient({ url, token: this.token, rooms: plan.rooms, latest: true, autoConnect: false });
    this.client = client;
    this.offs.push(
      client.on("telemetry", (m) => this.store.telemetry(m)),
      client.on("device_status", (m) => this.store.deviceStatus(m)),
      client.on("alert", (m) => this.store.alert(m)),
      client.on("state", (e) => this.onState(e)),
      client.on("presence_join", (e) => this.onPresenceEvent(e, +1)),
      client.on("presence_leave", (e) => this.onPresenceEvent(e, -1)),
      client.on("gap", (e) => this.toast(`Some messages of ${e.room} were missed while disconnected; showing the latest state.`)),
      client.on("error", (e) => this.onClientError(e)),
    );
    // Rooms are joined (or refused) once subscribed: presence counts this
    // connection from then on.
    this.offs.push(
      client.on("subscribed", () => {
        void this.refreshPresence();
        this.checkRooms();
      }),
    );
    // Connect once the first page of tiles is built (or after a short wait):
    // building hundreds of tiles while the `latest` snapshot of a large fleet
    // streams in can stall the page long enough for the server to drop it
    // as a slow consumer (1013).
    await Promise.race([listed, new Promise((r) => setTimeout(r, 2000))]);
    if (this.stopped) return;
    client.connect();
    // For the perf check and debugging from the console.
    (window as unknown as { __sensorcast?: unknown }).__sensorcast = { store: this.store, grid: this.grid, client };
  }

  stop(): void {
    if (this.stopped) return;
    this.stopped = true;
    for (const off of this.offs) off();
    this.offs = [];
    for (const t of this.timers) clearInterval(t);
    if (this.summaryTimer) clearTimeout(this.summaryTimer);
    this.client?.close();
    this.client = null;
    this.list?.destroy();
    this.grid?.destroy();
    this.detail?.destroy();
    this.alerts?.destroy();
    this.store.clear();
    delete (window as unknown as { __sensorcast?: unknown }).__sensorcast;
  }

  // Layout.

  private build(): void {
    const c = this.claims;
    this.connText = h("span", { class: "conn-text" }, STATE_LABEL.connecting);
    this.conn = h(
      "div",
      { class: "conn", "data-testid": "connection-state", "data-state": "connecting", "aria-hidden": "true" },
      h("span", { class: "dot" }),
      this.connText,
    );
    // Screen readers hear state changes, not every tick of the countdown.
    this.connAnnounce = h("span", { class: "sr-only", role: "status" }, "Connection: connecting");
    this.lastClose = h("span", { class: "last-close", "data-testid": "last-close", hidden: true });
    this.presenceCount = h("span", { class: "presence-count", "data-testid": "presence-count", "data-count": "0" }, "–");
    this.presenceBox = h("div", { class: "presence", "data-testid": "presence", title: "Who is watching" }, icon(ICONS.users), this.presenceCount, h("span", { class: "presence-label" }, " watching"));
    this.expiry = h("span", { class: "user-exp", "data-testid": "token-expiry", title: c.exp ? formatDateTime(c.exp * 1000) : "" }, describeExpiry(c));
    const signOut = h(
      "button",
      { type: "button", class: "btn btn-ghost", "data-testid": "sign-out", onclick: () => this.hooks.signOut() },
      icon(ICONS.logout),
      h("span", { class: "hide-sm" }, "Sign out"),
    );
    const header = h(
      "header",
      { class: "topbar" },
      this.hooks.logo(),
      h("div", { class: "conn-wrap" }, this.conn, this.connAnnounce, this.lastClose),
      h("div", { class: "spacer" }),
      this.presenceBox,
      h("div", { class: "user", title: "Signed in user" }, h("span", { class: "user-name", "data-testid": "user-sub" }, c.sub ?? "?"), this.expiry),
      signOut,
    );

    this.search = h("input", {
      id: "search",
      type: "search",
      placeholder: "Search by id or name",
      autocomplete: "off",
      spellcheck: "false",
      "data-testid": "search",
    });
    let debounce: ReturnType<typeof setTimeout> | null = null;
    this.search.addEventListener("input", () => {
      if (debounce) clearTimeout(debounce);
      debounce = setTimeout(() => this.list.setFilter(this.search.value, this.groupSelect.value), SEARCH_DEBOUNCE_MS);
    });
    this.search.addEventListener("keydown", (ev) => {
      if (ev.key === "Enter") {
        if (debounce) clearTimeout(debounce);
        this.list.setFilter(this.search.value, this.groupSelect.value);
      }
    });
    this.groupSelect = h("select", { id: "group-filter", "data-testid": "group-filter", disabled: true }, h("option", { value: "" }, "All groups"));
    this.groupSelect.addEventListener("change", () => this.list.setFilter(this.search.value, this.groupSelect.value));
    this.summary = h("p", { class: "summary", "data-testid": "summary" });
    this.listNote = h("p", { class: "list-note muted", "data-testid": "list-note", hidden: true });
    this.listCount = h("span", { class: "muted", "data-testid": "list-count" });
    this.loadMore = h("button", { type: "button", class: "btn", "data-testid": "load-more", hidden: true, onclick: () => this.list.loadMore() }, "Load more");
    const gridEl = h("ul", { class: "grid", "data-testid": "device-grid", "aria-label": "Devices", "aria-busy": "true" });

    const devices = h(
      "section",
      { class: "devices panel", "aria-labelledby": "devices-h" },
      h(
        "div",
        { class: "panel-head" },
        h("h2", { id: "devices-h" }, "Devices"),
        this.summary,
      ),
      h(
        "div",
        { class: "toolbar", role: "search" },
        h("div", { class: "search" }, h("label", { for: "search", class: "sr-only" }, "Search devices"), icon(ICONS.search), this.search),
        h("div", { class: "group" }, h("label", { for: "group-filter", class: "sr-only" }, "Group"), this.groupSelect),
      ),
      this.listNote,
      gridEl,
      h("div", { class: "list-foot" }, this.listCount, this.loadMore),
    );

    this.banner = h("div", { class: "banner", role: "status", hidden: true, "data-testid": "banner" });
    this.toasts = h("div", { class: "toasts", "aria-live": "polite" });
    this.grid = new TileGrid(gridEl, this.store, (id, from) => this.openDevice(id, from));
    this.detail = new DetailPanel(this.store, this.claims, () => this.client, () => this.grid.select(null));
    this.alerts = new AlertFeed(this.store, (id, from) => this.openDevice(id, from));
    this.layout = h("main", { class: "layout" }, devices, this.alerts.el);
    this.root.replaceChildren(h("div", { class: "shell" }, header, this.banner, this.layout, this.detail.el, this.toasts));

    this.offs.push(
      this.store.onDirty((id) => {
        this.grid.markDirty(id);
        this.detail.markDirty(id);
        this.scheduleSummary();
      }),
    );
    this.timers.push(
      setInterval(() => this.tickConnection(), 250),
      setInterval(() => this.tickExpiry(), 30_000),
      setInterval(() => {
        if (this.state === "open") void this.refreshPresence();
      }, PRESENCE_REFRESH_MS),
    );
    document.addEventListener("keydown", this.onKey);
    this.offs.push(() => document.removeEventListener("keydown", this.onKey));
    this.renderSummary();
  }

  private tickExpiry(): void {
    setText(this.expiry, describeExpiry(this.claims));
    const exp = this.claims.exp;
    const note = "Your token has expired: the live connection carries on, but reconnecting will need a new token.";
    if (exp !== undefined && exp * 1000 <= Date.now() && !this.notes.includes(note)) {
      this.notes.push(note);
      this.renderBanner();
    }
  }

  private onKey = (ev: KeyboardEvent): void => {
    if (ev.key === "/" && document.activeElement?.tagName !== "INPUT" && document.activeElement?.tagName !== "TEXTAREA") {
      ev.preventDefault();
      this.search.focus();
    } else if (ev.key === "Escape" && this.detail.deviceId) {
      this.detail.close();
    }
  };

  private openDevice(id: string, from: HTMLElement): void {
    this.grid.select(id);
    this.detail.open(id, from);
  }

  // Device list.

  private onList(s: ListState): void {
    this.grid.setIds(s.ids);
    setAttr(this.grid.root, "aria-busy", String(s.loading));
    this.loadMore.hidden = !s.hasMore;
    this.loadMore.disabled = s.loading;
    const filtered = this.list.filter.q || this.list.filter.group;
    if (s.mode === "pending") setText(this.listCount, "Loading devices…");
    else if (s.ids.length === 0) setText(this.listCount, filtered ? "No device matches the filter." : s.mode === "local" ? "Waiting for devices to report…" : "No devices.");
    else setText(this.listCount, `Showing ${s.ids.length} of ${s.total} ${filtered ? "matching " : ""}device${s.total === 1 ? "" : "s"}`);
    const note = s.error ?? (s.mode === "local" ? s.localReason : null);
    this.listNote.hidden = !note;
    if (note) setText(this.listNote, note);
    this.listNote.classList.toggle("is-error", !!s.error);
  }

  private renderGroups(): void {
    const groups = this.list.groups;
    const current = this.groupSelect.value;
    this.groupSelect.replaceChildren(
      h("option", { value: "" }, groups.length ? "All groups" : "No groups"),
      ...groups.map((g) => h("option", { value: g.id }, `${g.name || g.id}${typeof g.devices === "number" ? ` (${g.devices})` : ""}`)),
    );
    this.groupSelect.value = current;
    this.groupSelect.disabled = groups.length === 0;
    this.groupSelect.title = groups.length ? "" : "Groups come from the device registry, which this server does not expose.";
  }

  /** The counts change with every message: recount at most three times a second. */
  private scheduleSummary(): void {
    if (this.summaryTimer || this.stopped) return;
    this.summaryTimer = setTimeout(() => {
      this.summaryTimer = null;
      this.renderSummary();
    }, 300);
  }

  private renderSummary(): void {
    let online = 0;
    let offline = 0;
    for (const d of this.store.devices.values()) {
      if (d.status === "online") online++;
      else if (d.status === "offline") offline++;
    }
    const known = this.store.devices.size;
    const firing = this.store.firingCount();
    const parts = [
      h("span", {}, `${known} device${known === 1 ? "" : "s"}`),
      h("span", { class: "sum-online" }, `${online} online`),
      h("span", { class: "sum-offline" }, `${offline} offline`),
    ];
    if (firing) parts.push(h("span", { class: "sum-alerts" }, `${firing} alert${firing === 1 ? "" : "s"} firing`));
    const key = parts.map((p) => p.textContent).join("|");
    if (key !== this.summary.dataset.key) {
      this.summary.dataset.key = key;
      this.summary.replaceChildren(...parts);
    }
  }

  // Connection.

  private onState(e: ClientEvents["state"]): void {
    this.state = e.state;
    this.attempt = e.attempt;
    this.retryAt = e.retryAt ?? 0;
    // The close of the live connection is the one worth showing; failed
    // attempts after it (1006, connection refused) only while none is known.
    if (e.closeCode !== undefined && e.state !== "closed" && (e.previous === "open" || this.lastClose.hidden)) {
      this.lastClose.hidden = false;
      setText(this.lastClose, `Last disconnect ${formatClock(Date.now())}: ${describeClose(e.closeCode, e.closeReason)}`);
      this.lastClose.title = "Close code and reason of the last connection";
    }
    this.layout.classList.toggle("is-stale", e.state !== "open");
    setText(this.connAnnounce, `Connection: ${STATE_LABEL[e.state].replace("…", "")}`);
    this.tickConnection();
    // Presence is asked for once the rooms are joined (on `subscribed`); a
    // refused token is explained by the `error` event that follows.
    if (e.state === "open") this.lastOpenAt = Date.now();
    this.renderBanner();
  }

  private onClientError(e: ClientEvents["error"]): void {
    switch (e.code) {
      case "unauthorized":
        this.refused(e.error || "no reason given");
        return;
      case "forbidden_origin":
        this.notes.push(`The server does not accept connections from this page's origin (${location.origin}): ${e.error}. See SENSORCAST_ALLOWED_ORIGINS.`);
        this.renderBanner();
        return;
      case "rate_limited":
        return; // commands report their own rejection
      default:
        this.toast(e.error || e.code, "error");
    }
  }

  private tickConnection(): void {
    const s = this.state;
    setAttr(this.conn, "data-state", s);
    let text = STATE_LABEL[s];
    if (s === "reconnecting" && this.retryAt) {
      const left = this.retryAt - Date.now();
      text = left > 0 ? `Reconnecting in ${Math.ceil(left / 1000)} s` : "Reconnecting…";
    }
    setText(this.connText, text);
    this.conn.title = s === "reconnecting" ? `attempt ${this.attempt}` : s === "open" ? `connected since ${formatClock(this.lastOpenAt)}` : "";
  }

  private refused(message: string): void {
    if (this.stopped) return;
    const why = message.replace(/^unauthorized:\s*/i, "").replace(/\.$/, "");
    this.hooks.unauthorized(`The server refused this token: ${why}. Sign in with another one.`);
  }

  private checkRooms(): void {
    const client = this.client;
    if (!client) return;
    const joined = new Set(client.rooms());
    const missing = this.plannedRooms.filter((r) => !joined.has(r));
    const note = missing.length ? `The server refused ${missing.length === 1 ? "room" : "rooms"} ${missing.slice(0, 5).join(", ")}${missing.length > 5 ? "…" : ""}.` : "";
    this.notes = this.notes.filter((n) => !n.startsWith("The server refused"));
    if (note && joined.size) this.notes.push(note);
    this.renderBanner();
  }

  private renderBanner(): void {
    const lines = [...this.notes];
    if (this.state !== "open" && this.lastOpenAt && this.state !== "unauthorized") {
      lines.unshift(`Connection lost: values are as of ${formatClock(this.lastOpenAt)} or later, and resume when it is back.`);
    }
    this.banner.hidden = lines.length === 0;
    this.banner.classList.toggle("is-warning", this.state !== "open" && this.lastOpenAt > 0);
    this.banner.replaceChildren(...lines.map((l) => h("p", {}, l)));
  }

  private toast(text: string, kind: "info" | "error" = "info"): void {
    const t = h("div", { class: "toast toast-" + kind, role: kind === "error" ? "alert" : "status" }, text);
    this.toasts.appendChild(t);
    while (this.toasts.childElementCount > 4) this.toasts.firstElementChild!.remove();
    setTimeout(() => t.remove(), 6000);
  }

  // Presence.

  private async refreshPresence(): Promise<void> {
    const client = this.client;
    if (!client || client.state !== "open") return;
    try {
      const p = await client.presence(this.presenceRoom);
      if (this.stopped) return;
      this.presence = p;
      this.renderPresence();
    } catch {
      // Not connected any more, or the room is not granted: keep the last count.
    }
  }

  private onPresenceEvent(e: { room: string; user_id: string }, delta: 1 | -1): void {
    if (e.room !== this.presenceRoom) return;
    const p = this.presence ?? { room: e.room, count: 0, members: [] };
    const m = p.members.find((x) => x.user_id === e.user_id);
    if (delta > 0 && !m) p.members.push({ user_id: e.user_id, connections: 1 });
    else if (delta < 0 && m) p.members = p.members.filter((x) => x !== m);
    p.count = p.members.length;
    this.presence = p;
    this.renderPresence();
  }

  private renderPresence(): void {
    const p = this.presence;
    if (!p) return;
    setText(this.presenceCount, String(p.count));
    this.presenceCount.dataset.count = String(p.count);
    const who = p.members
      .slice(0, 20)
      .map((m) => `${m.user_id}${m.connections > 1 ? ` (${m.connections} connections)` : ""}`)
      .join("\n");
    this.presenceBox.title = `${p.count} ${p.count === 1 ? "person" : "people"} watching ${p.room}${who ? ":\n" + who : ""}`;
    this.presenceBox.setAttribute("aria-label", `${p.count} ${p.count === 1 ? "person" : "people"} watching`);
  }
}
