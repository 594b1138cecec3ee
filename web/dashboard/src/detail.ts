// The detail panel of one device: current values, a live chart per numeric
// field, and commands with their live status.
//
// Charts redraw at most 4 times a second, only while the panel is open, and
// only the charts on screen whose data or time window moved.

import { isFinalStatus, type CommandCall, type CommandResult, type CommandStatus, type SensorcastClient } from "@sensorcast/client";
import { mayCommand, mayCommandAnything, type Claims } from "./auth";
import { drawChart, readChartColors, type ChartColors } from "./chart";
import { h, icon, ICONS, setAttr, setText } from "./dom";
import { fieldLabel, formatAge, formatClock, formatValue, unitFor } from "./format";
import { MAX_AGE_MS } from "./series";
import type { DeviceState, Store } from "./store";

const REDRAW_MS = 250;
const MAX_COMMANDS_PER_DEVICE = 20;
const MAX_DEVICES_WITH_COMMANDS = 100;
const STEPS: CommandStatus[] = ["accepted", "delivered"];

interface CommandEntry {
  id: number;
  name: string;
  params: Record<string, unknown> | undefined;
  sentAt: number;
  status: CommandStatus | "sending" | "error";
  history: { status: string; at: number }[];
  result?: unknown;
  error?: string;
  el?: HTMLLIElement;
}

interface ChartView {
  field: string;
  canvas: HTMLCanvasElement;
  value: HTMLElement;
  range: HTMLElement;
  visible: boolean;
  drawnVersion: number;
  drawnAt: number;
  drawnWindow: number;
}

let nextCommandId = 1;

export class DetailPanel {
  readonly el: HTMLElement;
  private body: HTMLElement;
  private title: HTMLElement;
  private subtitle: HTMLElement;
  private badge: HTMLElement;
  private seen: HTMLElement;
  private meta: HTMLElement;
  private values: HTMLElement;
  private charts: HTMLElement;
  private chartViews = new Map<string, ChartView>();
  private commandLog: HTMLOListElement;
  private commandHint: HTMLElement;
  private blinkBtn: HTMLButtonElement;
  private form: HTMLFormElement;
  private formError: HTMLElement;
  private windowSelect: HTMLSelectElement;
  private windowMs = 5 * 60_000;
  private id: string | null = null;
  private shape = -1;
  private infoKey = "";
  private timer: ReturnType<typeof setInterval> | null = null;
  private observer: IntersectionObserver;
  private colors: ChartColors | null = null;
  private returnFocus: HTMLElement | null = null;
  private commands = new Map<string, CommandEntry[]>();
  private valuesDirty = true;

  constructor(
    private readonly store: Store,
    private readonly claims: Claims,
    private readonly client: () => SensorcastClient | null,
    private readonly onClose: () => void,
  ) {
    this.title = h("h2", { id: "detail-title", class: "detail-title" });
    this.subtitle = h("p", { class: "detail-sub" });
    this.badge = h("span", { class: "badge", "data-testid": "detail-status" });
    this.seen = h("span", { class: "detail-seen", "data-testid": "detail-last-seen" });
    const closeBtn = h("button", { type: "button", class: "icon-btn", "aria-label": "Close device details", "data-testid": "detail-close", onclick: () => this.close() }, icon(ICONS.close));
    this.meta = h("dl", { class: "meta" });
    this.values = h("dl", { class: "values", "data-testid": "detail-values" });
    this.windowSelect = h(
      "select",
      { id: "chart-window", onchange: () => this.setWindow(Number(this.windowSelect.value)) },
      h("option", { value: String(60_000) }, "Last minute"),
      h("option", { value: String(5 * 60_000), selected: true }, "Last 5 minutes"),
      h("option", { value: String(MAX_AGE_MS) }, "Last 10 minutes"),
    );
    this.charts = h("div", { class: "charts", "data-testid": "charts" });

    this.blinkBtn = h(
      "button",
      { type: "button", class: "btn btn-primary", "data-testid": "command-blink", onclick: () => this.send("blink", { times: 3 }) },
      icon(ICONS.bolt),
      "Blink ×3",
    );
    const nameInput = h("input", { id: "cmd-name", name: "name", type: "text", required: true, autocomplete: "off", spellcheck: "false", placeholder: "e.g. reboot", "data-testid": "command-name", maxlength: 128 });
    const paramsInput = h("textarea", { id: "cmd-params", name: "params", rows: 2, spellcheck: "false", placeholder: '{"key": "value"}', "data-testid": "command-params" });
    const timeoutInput = h("input", { id: "cmd-timeout", name: "timeout", type: "number", min: 1, max: 3600, step: 1, value: 30, inputmode: "numeric", "data-testid": "command-timeout" });
    this.formError = h("p", { class: "form-error", role: "alert", hidden: true });
    this.form = h(
      "form",
      { class: "command-form", novalidate: true, "aria-label": "Send a command" },
      h(
        "div",
        { class: "form-cols" },
        h("div", { class: "form-row" }, h("label", { for: "cmd-name" }, "Command"), nameInput),
        h("div", { class: "form-row form-timeout" }, h("label", { for: "cmd-timeout" }, "Timeout (s)"), timeoutInput),
      ),
      h("div", { class: "form-row" }, h("label", { for: "cmd-params" }, "Parameters ", h("span", { class: "muted" }, "(JSON object, optional)")), paramsInput),
      this.formError,
      h("div", { class: "form-actions" }, h("button", { type: "submit", class: "btn", "data-testid": "command-send" }, icon(ICONS.send), "Send command")),
    );
    this.form.addEventListener("submit", (ev) => {
      ev.preventDefault();
      const name = nameInput.value.trim();
      if (!name) return this.showFormError("Enter a command name.", nameInput);
      let params: Record<string, unknown> | undefined;
      const text = paramsInput.value.trim();
      if (text) {
        try {
          const v = JSON.parse(text);
          if (!v || typeof v !== "object" || Array.isArray(v)) return this.showFormError("Parameters must be a JSON object, like {\"times\": 3}.", paramsInput);
          params = v as Record<string, unknown>;
        } catch (e) {
          return this.showFormError("Parameters are not valid JSON: " + (e as Error).message, paramsInput);
        }
      }
      const secs = Number(timeoutInput.value);
      if (!Number.isFinite(secs) || secs < 1 || secs > 3600) return this.showFormError("Timeout must be between 1 and 3600 seconds.", timeoutInput);
      this.formError.hidden = true;
      this.send(name, params, Math.round(secs * 1000));
    });
    this.commandHint = h("p", { class: "hint", hidden: true });
    this.commandLog = h("ol", { class: "command-log", "data-testid": "command-log", "aria-live": "polite" });

    this.body = h(
      "div",
      { class: "detail-body" },
      this.meta,
      h("section", { class: "detail-section", "aria-labelledby": "values-h" }, h("h3", { id: "values-h" }, "Current values"), this.values),
      h(
        "section",
        { class: "detail-section", "aria-labelledby": "commands-h" },
        h("h3", { id: "commands-h" }, "Commands"),
        this.commandHint,
        h("div", { class: "command-quick" }, this.blinkBtn),
        this.form,
        this.commandLog,
      ),
      h(
        "section",
        { class: "detail-section", "aria-labelledby": "charts-h" },
        h("div", { class: "section-head" }, h("h3", { id: "charts-h" }, "History"), h("label", { class: "sr-only", for: "chart-window" }, "Chart window"), this.windowSelect),
        this.charts,
      ),
    );
    this.el = h(
      "aside",
      { class: "detail", "data-testid": "device-detail", "aria-labelledby": "detail-title", hidden: true, tabindex: -1 },
      h(
        "header",
        { class: "detail-head" },
        h("div", { class: "detail-heading" }, h("div", { class: "detail-title-row" }, this.title, this.badge), this.subtitle, this.seen),
        closeBtn,
      ),
      this.body,
    );
    this.el.addEventListener("keydown", (ev) => {
      if (ev.key === "Escape") {
        ev.stopPropagation();
        this.close();
      }
    });
    this.observer = new IntersectionObserver((entries) => {
      for (const e of entries) {
        const field = (e.target as HTMLElement).dataset.field!;
        const cv = this.chartViews.get(field);
        if (cv) cv.visible = e.isIntersecting;
      }
    });
  }

  get deviceId(): string | null {
    return this.id;
  }

  open(id: string, from?: HTMLElement): void {
    const switching = this.id !== null;
    this.id = id;
    this.returnFocus = from ?? (document.activeElement as HTMLElement | null);
    this.shape = -1;
    this.infoKey = "";
    this.valuesDirty = true;
    this.el.hidden = false;
    this.el.dataset.deviceId = id;
    this.colors = readChartColors(this.el);
    this.renderCommands();
    this.update(true);
    if (!this.timer) this.timer = setInterval(() => this.update(false), REDRAW_MS);
    if (!switching) this.el.focus({ preventScroll: true });
    this.body.scrollTop = 0;
  }

  close(): void {
    if (this.id === null) return;
    this.id = null;
    this.el.hidden = true;
    delete this.el.dataset.deviceId;
    if (this.timer) clearInterval(this.timer);
    this.timer = null;
    for (const cv of this.chartViews.values()) this.observer.unobserve(cv.canvas);
    this.chartViews.clear();
    this.charts.replaceChildren();
    this.onClose();
    this.returnFocus?.focus({ preventScroll: true });
    this.returnFocus = null;
  }

  destroy(): void {
    if (this.timer) clearInterval(this.timer);
    this.observer.disconnect();
  }

  /** The store changed this device: values are refreshed on the next tick. */
  markDirty(id: string): void {
    if (id === this.id) this.valuesDirty = true;
  }

  private setWindow(ms: number): void {
    this.windowMs = ms;
    this.update(true);
  }

  private update(force: boolean): void {
    const id = this.id;
    if (id === null) return;
    const d = this.store.devices.get(id) ?? this.store.device(id);
    const now = Date.now();
    setText(this.seen, d.lastSeen ? `Last seen ${formatAge(now - d.lastSeen)}` + (d.lastSeen ? ` · ${formatClock(d.lastSeen)}` : "") : "No readings yet");
    if (this.valuesDirty || force) {
      this.valuesDirty = false;
      this.renderHeader(d);
      this.renderValues(d);
    }
    this.renderCharts(d, now, force);
  }

  private renderHeader(d: DeviceState): void {
    const name = d.info?.name && d.info.name !== d.id ? d.info.name : "";
    setText(this.title, name || d.id);
    setText(this.subtitle, [name ? d.id : "", d.info?.type ?? ""].filter(Boolean).join(" · "));
    this.subtitle.hidden = !this.subtitle.textContent;
    setText(this.badge, d.status === "unknown" ? "no data" : d.status);
    setAttr(this.badge, "data-status", d.status);

    const infoKey = JSON.stringify([d.info, d.tags, [...d.firing.keys()]]);
    if (infoKey === this.infoKey) return;
    this.infoKey = infoKey;
    const rows: [string, Node | string][] = [];
    if (d.info?.groups?.length) rows.push(["Groups", d.info.groups.join(", ")]);
    const labels = Object.entries(d.info?.labels ?? {});
    if (labels.length) rows.push(["Labels", labels.map(([k, v]) => `${k}=${v}`).join("  ")]);
    const tags = Object.entries(d.tags);
    if (tags.length) rows.push(["Tags", tags.map(([k, v]) => `${k}=${v}`).join("  ")]);
    if (d.info && d.info.enabled === false) rows.push(["Registry", "disabled"]);
    if (d.firing.size) rows.push(["Alerts", [...d.firing.values()].map((a) => `${a.rule_name} (${a.severity})`).join(", ")]);
    this.meta.replaceChildren(...rows.map(([k, v]) => h("div", {}, h("dt", {}, k), h("dd", {}, v))));
    this.meta.hidden = rows.length === 0;

    const allowed = d.info?.groups ? mayCommand(this.claims, d.id, d.info.groups) : mayCommandAnything(this.claims);
    this.commandHint.hidden = allowed;
    if (!allowed) {
      setText(
        this.commandHint,
        this.claims.commands.length ? "Your token's commands grant does not cover this device: commands will be rejected." : "Your token carries no commands grant: this dashboard is watch-only.",
      );
    }
  }

  private renderValues(d: DeviceState): void {
    const keys = [...d.fields.keys()].sort();
    if (this.values.childElementCount !== keys.length || this.shape !== d.shapeVersion) {
      this.values.replaceChildren(
        ...keys.map((k) =>
          h(
            "div",
            { class: "value-row", "data-testid": "detail-field-" + k, "data-field": k },
            h("dt", { title: k }, fieldLabel(k)),
            h("dd", {}, h("span", { class: "num" }), h("span", { class: "unit" }, unitFor(k))),
          ),
        ),
      );
      if (keys.length === 0) this.values.replaceChildren(h("p", { class: "muted" }, "No readings yet."));
    }
    for (const row of this.values.children) {
      const k = (row as HTMLElement).dataset.field;
      if (!k) continue;
      const v = d.fields.get(k);
      if (v === undefined) continue;
      setText(row.querySelector(".num")!, formatValue(v));
      (row as HTMLElement).dataset.value = String(v);
      if (typeof v === "boolean") (row as HTMLElement).dataset.bool = String(v);
    }
  }

  private renderCharts(d: DeviceState, now: number, force: boolean): void {
    if (this.shape !== d.shapeVersion) {
      this.shape = d.shapeVersion;
      const numeric = [...d.series.keys()].sort();
      for (const [f, cv] of this.chartViews) {
        if (!d.series.has(f)) {
          this.observer.unobserve(cv.canvas);
          cv.canvas.closest(".chart")?.remove();
          this.chartViews.delete(f);
        }
      }
      const frag = document.createDocumentFragment();
      for (const f of numeric) {
        let cv = this.chartViews.get(f);
        if (!cv) {
          const canvas = h("canvas", { class: "chart-canvas", role: "img", "aria-label": `${fieldLabel(f)} over time`, "data-field": f });
          const value = h("span", { class: "chart-value" });
          const range = h("span", { class: "chart-range muted" });
          const card = h(
            "figure",
            { class: "chart", "data-testid": "chart-" + f },
            h("figcaption", {}, h("span", { class: "chart-name" }, fieldLabel(f)), value, range),
            canvas,
          );
          cv = { field: f, canvas, value, range, visible: true, drawnVersion: -1, drawnAt: 0, drawnWindow: 0 };
          this.chartViews.set(f, cv);
          this.observer.observe(canvas);
          frag.appendChild(card);
        } else frag.appendChild(cv.canvas.closest(".chart")!);
      }
      this.charts.replaceChildren(frag);
      if (numeric.length === 0) this.charts.replaceChildren(h("p", { class: "muted" }, "No numeric fields to chart yet."));
      force = true;
    }
    if (!this.colors) return;
    for (const cv of this.chartViews.values()) {
      if (!cv.visible && !force) continue;
      const s = d.series.get(cv.field);
      if (!s) continue;
      // The window slides with time, so redraw at least once a second even without new data.
      if (!force && s.version === cv.drawnVersion && cv.drawnWindow === this.windowMs && now - cv.drawnAt < 1000) continue;
      // Until the history fills the window, the chart spans what there is (a minute at least).
      const span = s.length ? now - s.timeAt(0) : 0;
      const windowMs = Math.min(this.windowMs, Math.max(60_000, span));
      const r = drawChart(cv.canvas, s, windowMs, now, this.colors);
      cv.drawnVersion = s.version;
      cv.drawnAt = now;
      cv.drawnWindow = this.windowMs;
      const v = d.fields.get(cv.field);
      setText(cv.value, v === undefined ? "" : `${formatValue(v)} ${unitFor(cv.field)}`.trim());
      setText(cv.range, r.points ? `min ${formatValue(r.min)} · max ${formatValue(r.max)}` : "");
    }
  }

  // Commands.

  private showFormError(msg: string, field: HTMLElement): void {
    this.formError.textContent = msg;
    this.formError.hidden = false;
    field.focus();
  }

  private send(name: string, params?: Record<string, unknown>, timeoutMs?: number): void {
    const id = this.id;
    if (id === null) return;
    const entry: CommandEntry = { id: nextCommandId++, name, params, sentAt: Date.now(), status: "sending", history: [] };
    let list = this.commands.get(id);
    if (!list) {
      if (this.commands.size >= MAX_DEVICES_WITH_COMMANDS) this.commands.delete(this.commands.keys().next().value!);
      this.commands.set(id, (list = []));
    }
    list.unshift(entry);
    if (list.length > MAX_COMMANDS_PER_DEVICE) list.length = MAX_COMMANDS_PER_DEVICE;
    this.renderCommands();

    const client = this.client();
    if (!client || client.state !== "open") {
      entry.status = "error";
      entry.error = "Not connected: try again when the connection is live.";
      this.refreshEntry(id, entry);
      return;
    }
    const call = client.command({ deviceId: id, name, params, timeoutMs });
    // Every status, the final one included, comes through onResult, once.
    call.onResult((r: CommandResult) => {
      entry.history.push({ status: r.status, at: Date.now() });
      entry.status = r.status;
      if (r.result !== undefined) entry.result = r.result;
      this.refreshEntry(id, entry);
    });
    call.done.catch((e: Error) => {
      entry.status = "error";
      entry.error = e?.message || "The connection was lost before the command finished; its outcome is unknown.";
      this.refreshEntry(id, entry);
    });
  }

  private renderCommands(): void {
    const id = this.id;
    const list = id ? (this.commands.get(id) ?? []) : [];
    this.commandLog.replaceChildren(...list.map((e) => this.commandItem(e)));
    this.commandLog.hidden = list.length === 0;
  }

  private refreshEntry(deviceId: string, e: CommandEntry): void {
    if (deviceId !== this.id || !e.el) return;
    e.el.replaceWith(this.commandItem(e));
  }

  private commandItem(e: CommandEntry): HTMLLIElement {
    const statusText = e.status === "sending" ? "sending…" : e.status;
    const steps = h("ol", { class: "steps", "aria-label": "progress" });
    const reached = new Set(e.history.map((x) => x.status));
    for (const s of STEPS) {
      const at = e.history.find((x) => x.status === s)?.at;
      steps.appendChild(h("li", { class: "step" + (reached.has(s) ? " done" : ""), title: at ? formatClock(at) : "" }, s));
    }
    const final = e.history.find((x) => isFinalStatus(x.status));
    steps.appendChild(h("li", { class: "step" + (final ? " done final-" + final.status : "") }, final ? final.status : "outcome"));
    const paramsText = e.params && Object.keys(e.params).length ? JSON.stringify(e.params) : "";
    let detail = "";
    if (e.error) detail = e.error;
    else if (e.result !== undefined) {
      const r = e.result as { reason?: unknown };
      detail = e.status === "rejected" && r && typeof r.reason === "string" ? r.reason : JSON.stringify(e.result);
    }
    const li = h(
      "li",
      { class: "command", "data-testid": "command-entry", "data-command": e.name, "data-status": e.status },
      h(
        "div",
        { class: "command-head" },
        h("code", { class: "command-name" }, e.name),
        paramsText ? h("code", { class: "command-params muted" }, paramsText) : null,
        h("span", { class: "command-status", "data-testid": "command-status", "data-status": e.status }, statusText),
      ),
      steps,
      detail ? h("p", { class: "command-detail" + (e.status === "succeeded" ? "" : " is-problem") }, detail) : null,
      h("p", { class: "command-time muted" }, "sent " + formatClock(e.sentAt)),
    );
    e.el = li;
    return li;
  }
}
