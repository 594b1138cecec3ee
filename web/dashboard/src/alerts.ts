// The alert feed: newest first, bounded (the store keeps MAX_ALERTS).

import { h, setText } from "./dom";
import { fieldLabel, formatClock, formatValue, unitFor } from "./format";
import { MAX_ALERTS, type AlertEntry, type Store } from "./store";

export class AlertFeed {
  readonly el: HTMLElement;
  private list: HTMLOListElement;
  private empty: HTMLElement;
  private count: HTMLElement;
  private filter: HTMLInputElement;
  private pending: AlertEntry[] = [];
  private frame = 0;
  private unsubscribe: () => void;

  constructor(
    private readonly store: Store,
    private readonly onOpenDevice: (id: string, from: HTMLElement) => void,
  ) {
    this.count = h("span", { class: "count-pill", "data-testid": "alerts-firing", title: "firing now" }, "0");
    this.filter = h("input", { type: "checkbox", id: "alerts-firing-only" });
    this.filter.addEventListener("change", () => this.el.classList.toggle("firing-only", this.filter.checked));
    this.list = h("ol", { class: "alert-list", "data-testid": "alert-list", "aria-live": "polite", "aria-relevant": "additions" });
    this.empty = h("p", { class: "empty muted" }, "No alerts yet. Firing and resolved alerts show up here as they happen.");
    this.el = h(
      "section",
      { class: "alerts panel", "aria-labelledby": "alerts-h" },
      h(
        "div",
        { class: "panel-head" },
        h("h2", { id: "alerts-h" }, "Alerts ", this.count),
        h("label", { class: "check", for: "alerts-firing-only" }, this.filter, "Firing only"),
      ),
      this.empty,
      this.list,
    );
    this.list.addEventListener("click", (ev) => {
      const btn = (ev.target as HTMLElement).closest<HTMLElement>("[data-open-device]");
      if (btn) this.onOpenDevice(btn.dataset.openDevice!, btn);
    });
    for (const e of [...store.alerts].reverse()) this.pending.push(e);
    this.flush();
    this.unsubscribe = store.onAlert((e) => {
      this.pending.push(e);
      if (!this.frame) this.frame = requestAnimationFrame(() => this.flush());
    });
  }

  destroy(): void {
    cancelAnimationFrame(this.frame);
    this.unsubscribe();
  }

  private flush(): void {
    this.frame = 0;
    if (this.pending.length) {
      const frag = document.createDocumentFragment();
      for (let i = this.pending.length - 1; i >= 0; i--) frag.appendChild(this.item(this.pending[i]!));
      this.pending = [];
      this.list.prepend(frag);
      while (this.list.childElementCount > MAX_ALERTS) this.list.lastElementChild!.remove();
    }
    this.empty.hidden = this.list.childElementCount > 0;
    const firing = this.store.firingCount();
    setText(this.count, String(firing));
    this.count.classList.toggle("is-hot", firing > 0);
  }

  private item(e: AlertEntry): HTMLLIElement {
    const a = e.alert;
    const state = a.state ?? "firing";
    const sev = ["critical", "warning", "info"].includes(a.severity) ? a.severity : "info";
    const at = Date.parse(a.timestamp) || e.receivedAt;
    const unit = unitFor(a.field);
    const value = `${fieldLabel(a.field)} ${formatValue(a.value)}${unit ? " " + unit : ""} (threshold ${formatValue(a.threshold)})`;
    return h(
      "li",
      { class: `alert-item sev-${sev} state-${state}`, "data-testid": "alert-item", "data-state": state, "data-severity": a.severity, "data-device-id": a.device_id },
      h(
        "div",
        { class: "alert-top" },
        h("span", { class: "sev" }, a.severity),
        h("span", { class: "alert-state" }, state),
        h("time", { datetime: a.timestamp, class: "muted" }, formatClock(at)),
      ),
      h("p", { class: "alert-rule" }, a.rule_name || a.rule_id || "alert"),
      h("p", { class: "alert-detail" }, h("button", { type: "button", class: "link", "data-open-device": a.device_id }, a.device_id), " · ", value),
    );
  }
}
