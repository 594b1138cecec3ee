// Which devices the grid shows, filtered by the search box and the group
// select, a page at a time.
//
// With the edge's device API the list is the server's (sorted by id, paged
// with `after`). Without it (404 on an older edge, 503 without a registry) the
// list is every device heard from so far, filtered and paged here.

import { ApiUnauthorized, ApiUnavailable, fetchDevices, fetchGroups, type GroupInfo } from "./api";
import type { Store } from "./store";

export const PAGE_SIZE = 200;

export type ListMode = "pending" | "api" | "local";

export interface ListState {
  mode: ListMode;
  ids: string[];
  /** Matching devices in all (for the API: the server's `total`). */
  total: number;
  hasMore: boolean;
  loading: boolean;
  error: string | null;
  /** Why the list is built locally, when it is. */
  localReason: string | null;
}

const collator = new Intl.Collator(undefined, { numeric: true, sensitivity: "base" });

export class DeviceList {
  state: ListState = { mode: "pending", ids: [], total: 0, hasMore: false, loading: true, error: null, localReason: null };
  groups: GroupInfo[] = [];
  private q = "";
  private group = "";
  private next = "";
  private abort: AbortController | null = null;
  private localLimit = PAGE_SIZE;
  private localTimer: ReturnType<typeof setTimeout> | null = null;
  private refreshTimer: ReturnType<typeof setTimeout> | null = null;
  /** Every device id the API has listed, and those that triggered a refresh. */
  private apiKnown = new Set<string>();
  private refreshTried = new Set<string>();
  private unsubscribe: () => void;

  constructor(
    private readonly store: Store,
    private readonly token: string,
    private readonly onChange: (s: ListState) => void,
    private readonly onUnauthorized: (error: string) => void,
  ) {
    this.unsubscribe = store.onNewDevice((id) => {
      if (this.state.mode === "local") this.scheduleLocal();
      else if (this.state.mode === "api") this.maybeRefresh(id);
    });
  }

  destroy(): void {
    this.abort?.abort();
    if (this.localTimer) clearTimeout(this.localTimer);
    if (this.refreshTimer) clearTimeout(this.refreshTimer);
    this.unsubscribe();
  }

  /** Loads the groups and the first page; falls back to the local list when the API is missing. */
  async start(): Promise<void> {
    const groups = fetchGroups(this.token).then(
      (g) => (this.groups = g.sort((a, b) => collator.compare(a.name || a.id, b.name || b.id))),
      () => (this.groups = []),
    );
    await this.reload();
    await groups;
    this.emit();
  }

  setFilter(q: string, group: string): void {
    q = q.trim();
    if (q === this.q && group === this.group && this.state.mode !== "pending") return;
    this.q = q;
    this.group = group;
    void this.reload();
  }

  loadMore(): void {
    if (!this.state.hasMore || this.state.loading) return;
    if (this.state.mode === "local") {
      this.localLimit += PAGE_SIZE;
      this.computeLocal();
      return;
    }
    void this.fetchPage(false);
  }

  get filter(): { q: string; group: string } {
    return { q: this.q, group: this.group };
  }

  private async reload(): Promise<void> {
    this.localLimit = PAGE_SIZE;
    if (this.state.mode === "local") {
      this.computeLocal();
      return;
    }
    await this.fetchPage(true);
  }

  private async fetchPage(first: boolean, limit = PAGE_SIZE): Promise<void> {
    this.abort?.abort();
    const abort = (this.abort = new AbortController());
    this.state.loading = true;
    this.state.error = null;
    this.emit();
    try {
      const page = await fetchDevices(
        this.token,
        { q: this.q || undefined, group: this.group || undefined, limit, after: first ? undefined : this.next || undefined },
        abort.signal,
      );
      if (abort.signal.aborted) return;
      for (const info of page.devices) {
        this.apiKnown.add(info.id);
        this.store.setInfo(info);
      }
      const ids = page.devices.map((d) => d.id);
      this.state.mode = "api";
      if (first) this.state.ids = ids;
      else {
        const seen = new Set(this.state.ids);
        this.state.ids = this.state.ids.concat(ids.filter((id) => !seen.has(id)));
      }
      this.state.total = page.total;
      this.next = page.next;
      this.state.hasMore = !!page.next;
      this.state.loading = false;
      this.emit();
    } catch (e) {
      if (abort.signal.aborted || (e as Error).name === "AbortError") return;
      this.state.loading = false;
      if (e instanceof ApiUnauthorized) {
        this.onUnauthorized(e.message);
        return;
      }
      if (e instanceof ApiUnavailable && this.state.mode !== "api") {
        this.state.mode = "local";
        this.state.localReason =
          e.status === 503 ? `No device registry (${e.message}): showing devices as they report.` : "Showing devices as they report.";
        this.computeLocal();
        return;
      }
      this.state.error = (e as Error).message || "The device list could not be loaded.";
      this.emit();
    }
  }

  /**
   * A device the API has not listed reported in: it was probably added to the
   * registry after the list was loaded. Fetch the pages shown again (once per
   * such device, so a device the registry never lists cannot cause a loop).
   */
  private maybeRefresh(id: string): void {
    if (this.apiKnown.has(id) || this.refreshTried.has(id) || this.refreshTried.size > 10_000) return;
    this.refreshTried.add(id);
    if (this.refreshTimer) return;
    this.refreshTimer = setTimeout(() => {
      this.refreshTimer = null;
      const unknown = [...this.refreshTried].some((d) => !this.apiKnown.has(d) && (!this.q || d.toLowerCase().includes(this.q.toLowerCase())));
      // With more pages to load, a new device would not show until it is paged to anyway.
      if (unknown && !this.state.loading && !this.state.hasMore) void this.fetchPage(true, Math.min(1000, Math.max(PAGE_SIZE, this.state.ids.length)));
    }, 2000);
  }

  private scheduleLocal(): void {
    if (this.localTimer) return;
    this.localTimer = setTimeout(() => {
      this.localTimer = null;
      this.computeLocal();
    }, 250);
  }

  private computeLocal(): void {
    const q = this.q.toLowerCase();
    const all: string[] = [];
    for (const d of this.store.devices.values()) {
      if (q && !d.id.toLowerCase().includes(q) && !(d.info?.name ?? "").toLowerCase().includes(q)) continue;
      if (this.group && !(d.info?.groups ?? []).includes(this.group)) continue;
      all.push(d.id);
    }
    all.sort(collator.compare);
    this.state.ids = all.slice(0, this.localLimit);
    this.state.total = all.length;
    this.state.hasMore = all.length > this.localLimit;
    this.state.loading = false;
    this.emit();
  }

  private emit(): void {
    this.onChange(this.state);
  }
}
