// The tile grid. Messages only mark devices dirty; once per animation frame
// the grid renders the dirty tiles that are on screen (an IntersectionObserver
// tracks which are), and leaves the others stale until they scroll into view.
// Tiles render within a time budget per frame, so a burst (the `latest`
// snapshot of 1,000 devices) spreads over a few frames instead of one long one.

import { h, setAttr, setText } from "./dom";
import { fieldLabel, formatAge, formatValue, unitFor } from "./format";
import type { DeviceState, FieldValue, Store } from "./store";

const MAX_TILE_FIELDS = 6;
const FRAME_BUDGET_MS = 6;

interface FieldView {
  root: HTMLElement;
  value: HTMLElement;
  unit: HTMLElement;
  last?: FieldValue;
}

interface Tile {
  id: string;
  el: HTMLLIElement;
  title: HTMLButtonElement;
  sub: HTMLElement;
  badge: HTMLElement;
  fields: HTMLElement;
  fieldViews: Map<string, FieldView>;
  tags: HTMLElement;
  tagsKey: string;
  alertFlag: HTMLElement;
  age: HTMLElement;
  shape: number;
  infoKey: string;
  empty: HTMLElement;
}

/** Fields shown on a tile: numbers first, then the rest, each alphabetically. */
export function tileFieldOrder(d: DeviceState): string[] {
  const nums: string[] = [];
  const rest: string[] = [];
  for (const [k, v] of d.fields) (typeof v === "number" ? nums : rest).push(k);
  nums.sort();
  rest.sort();
  return nums.concat(rest);
}

export class TileGrid {
  private tiles = new Map<string, Tile>();
  private order: string[] = [];
  private visible = new Set<string>();
  private dirty = new Set<string>();
  private frame = 0;
  private observer: IntersectionObserver;
  private ageTimer: ReturnType<typeof setInterval>;
  private selected: string | null = null;
  /** Frame statistics for the perf check (window.__sensorcast). */
  stats = { frames: 0, rendered: 0, maxFrameMs: 0 };

  constructor(
    readonly root: HTMLElement,
    private readonly store: Store,
    private readonly onOpen: (id: string, from: HTMLElement) => void,
  ) {
    this.observer = new IntersectionObserver(
      (entries) => {
        for (const e of entries) {
          const id = (e.target as HTMLElement).dataset.deviceId!;
          if (e.isIntersecting) {
            this.visible.add(id);
            if (this.dirty.has(id)) this.schedule();
          } else this.visible.delete(id);
        }
      },
      { rootMargin: "200px 0px" },
    );
    this.ageTimer = setInterval(() => this.tickAges(), 1000);
    root.addEventListener("click", (ev) => {
      const tile = (ev.target as HTMLElement).closest<HTMLElement>("[data-testid=device-tile]");
      if (tile?.dataset.deviceId) this.onOpen(tile.dataset.deviceId, tile.querySelector("button") ?? tile);
    });
  }

  destroy(): void {
    cancelAnimationFrame(this.frame);
    clearInterval(this.ageTimer);
    this.observer.disconnect();
    this.tiles.clear();
    this.root.replaceChildren();
  }

  /** Shows exactly these devices, in this order, reusing existing tiles. */
  setIds(ids: string[]): void {
    const keep = new Set(ids);
    for (const [id, t] of this.tiles) {
      if (!keep.has(id)) {
        this.observer.unobserve(t.el);
        t.el.remove();
        this.tiles.delete(id);
        this.visible.delete(id);
        this.dirty.delete(id);
      }
    }
    // Only touch the DOM where the order actually differs.
    let prev: Element | null = null;
    for (const id of ids) {
      let t = this.tiles.get(id);
      if (!t) {
        t = this.createTile(id);
        this.tiles.set(id, t);
        this.observer.observe(t.el);
        this.render(t);
      }
      const expected: Element | null = prev ? prev.nextElementSibling : this.root.firstElementChild;
      if (expected !== t.el) this.root.insertBefore(t.el, expected);
      prev = t.el;
    }
    this.order = ids.slice();
  }

  select(id: string | null): void {
    if (this.selected) this.tiles.get(this.selected)?.el.classList.remove("is-selected");
    this.selected = id;
    if (id) this.tiles.get(id)?.el.classList.add("is-selected");
  }

  markDirty(id: string): void {
    if (!this.tiles.has(id)) return;
    this.dirty.add(id);
    if (this.visible.has(id)) this.schedule();
  }

  private schedule(): void {
    if (!this.frame) this.frame = requestAnimationFrame(() => this.flush());
  }

  private flush(): void {
    this.frame = 0;
    const start = performance.now();
    let n = 0;
    // The tiles on screen are few; the dirty ones may be the whole fleet.
    for (const id of this.visible) {
      if (!this.dirty.has(id)) continue;
      const t = this.tiles.get(id);
      this.dirty.delete(id);
      if (t) {
        this.render(t);
        n++;
      }
      if ((n & 7) === 0 && performance.now() - start > FRAME_BUDGET_MS) {
        this.schedule();
        break;
      }
    }
    const took = performance.now() - start;
    this.stats.frames++;
    this.stats.rendered += n;
    if (took > this.stats.maxFrameMs) this.stats.maxFrameMs = took;
  }

  private tickAges(): void {
    const now = Date.now();
    for (const id of this.visible) {
      const t = this.tiles.get(id);
      const d = this.store.devices.get(id);
      if (t && d) setText(t.age, d.lastSeen ? formatAge(Math.max(0, now - d.lastSeen)) : "never");
    }
  }

  private createTile(id: string): Tile {
    const title = h("button", { type: "button", class: "tile-open", "data-testid": "tile-open" }, id);
    const badge = h("span", { class: "badge", "data-testid": "status-badge" }, "unknown");
    const sub = h("p", { class: "tile-sub" });
    const fields = h("dl", { class: "fields" });
    const empty = h("p", { class: "tile-empty" }, "Waiting for the first reading…");
    const tags = h("ul", { class: "tags", "aria-label": "tags" });
    const alertFlag = h("span", { class: "alert-flag", hidden: true, "data-testid": "tile-alert" });
    const age = h("span", { class: "age", "data-testid": "last-seen" }, "never");
    const el = h(
      "li",
      { class: "tile", "data-testid": "device-tile", "data-device-id": id, "data-status": "unknown" },
      h("div", { class: "tile-head" }, h("h3", { class: "tile-title" }, title), badge),
      sub,
      fields,
      empty,
      tags,
      h("div", { class: "tile-foot" }, alertFlag, h("span", { class: "seen" }, h("span", { class: "sr-only" }, "last seen "), age)),
    );
    return { id, el, title, sub, badge, fields, fieldViews: new Map(), tags, tagsKey: "", alertFlag, age, shape: -1, infoKey: "", empty };
  }

  private render(t: Tile): void {
    const d = this.store.devices.get(t.id);
    if (!d) return;
    // Registry facts (name, type) change rarely.
    const name = d.info?.name && d.info.name !== d.id ? d.info.name : "";
    const infoKey = name + "\u0000" + (d.info?.type ?? "");
    if (infoKey !== t.infoKey) {
      t.infoKey = infoKey;
      setText(t.sub, [name, d.info?.type ?? ""].filter(Boolean).join(" · "));
      t.sub.title = t.sub.textContent ?? "";
      t.sub.hidden = !t.sub.textContent;
      t.title.setAttribute("aria-label", `${d.id}${name ? ` (${name})` : ""}: open details`);
    }
    setAttr(t.el, "data-status", d.status);
    setText(t.badge, d.status === "unknown" ? "no data" : d.status);
    setAttr(t.badge, "data-status", d.status);

    if (t.shape !== d.shapeVersion) {
      t.shape = d.shapeVersion;
      t.fieldViews.clear();
      const frag = document.createDocumentFragment();
      for (const key of tileFieldOrder(d).slice(0, MAX_TILE_FIELDS)) {
        const value = h("span", { class: "num" });
        const unit = h("span", { class: "unit" }, unitFor(key));
        const root = h(
          "div",
          { class: "field", "data-testid": "field-" + key, "data-field": key },
          h("dt", { title: key }, fieldLabel(key)),
          h("dd", {}, value, unit),
        );
        frag.appendChild(root);
        t.fieldViews.set(key, { root, value, unit });
      }
      t.fields.replaceChildren(frag);
      t.empty.hidden = d.fields.size > 0;
    }
    for (const [key, fv] of t.fieldViews) {
      const v = d.fields.get(key);
      if (v === undefined || v === fv.last) continue;
      fv.last = v;
      setText(fv.value, formatValue(v));
      fv.root.dataset.value = String(v);
      if (typeof v === "boolean") fv.root.dataset.bool = String(v);
      else delete fv.root.dataset.bool;
    }

    let tagsKey = "";
    for (const k in d.tags) tagsKey += k + "=" + d.tags[k] + "\n";
    if (tagsKey !== t.tagsKey) {
      t.tagsKey = tagsKey;
      t.tags.replaceChildren(
        ...Object.keys(d.tags)
          .sort()
          .map((k) => h("li", { class: "tag" }, h("span", { class: "tag-k" }, k), h("span", { class: "tag-v" }, d.tags[k]!))),
      );
    }

    const firing = d.firing.size;
    t.alertFlag.hidden = firing === 0;
    if (firing) setText(t.alertFlag, firing === 1 ? "1 alert" : `${firing} alerts`);
    t.el.classList.toggle("has-alert", firing > 0);
    setText(t.age, d.lastSeen ? formatAge(Math.max(0, Date.now() - d.lastSeen)) : "never");
  }
}
