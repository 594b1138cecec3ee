// The live state of the fleet: plain maps updated in place on every message.
// Nothing here touches the DOM; views subscribe to "dirty" notifications and
// render in batches (see grid.ts).

import type { Alert, DeviceStatus, RoomMessage, Telemetry } from "@sensorcast/client";
import type { DeviceInfo } from "./api";
import { Series } from "./series";

export type FieldValue = number | string | boolean;

export interface DeviceState {
  id: string;
  info?: DeviceInfo;
  status: "online" | "offline" | "unknown";
  /** Epoch ms of the newest reading or status change, by the device's clock. */
  lastSeen: number;
  /** Epoch ms of the reading whose fields are shown. */
  readingAt: number;
  fields: Map<string, FieldValue>;
  tags: Record<string, string>;
  series: Map<string, Series>;
  firing: Map<string, Alert>;
  /** Bumped when the set of fields (not their values) changes. */
  shapeVersion: number;
}

export interface AlertEntry {
  key: string;
  alert: Alert;
  receivedAt: number;
}

export const MAX_ALERTS = 200;

type DirtyListener = (id: string) => void;

function parseTime(s: string | undefined, fallback: number): number {
  if (!s) return fallback;
  const t = Date.parse(s);
  return Number.isFinite(t) ? t : fallback;
}

export class Store {
  readonly devices = new Map<string, DeviceState>();
  /** Newest first, at most MAX_ALERTS. */
  alerts: AlertEntry[] = [];
  private alertKeys = new Set<string>();
  private dirtyListeners = new Set<DirtyListener>();
  private newDeviceListeners = new Set<(id: string) => void>();
  private alertListeners = new Set<(e: AlertEntry) => void>();
  messages = 0;

  onDirty(l: DirtyListener): () => void {
    this.dirtyListeners.add(l);
    return () => this.dirtyListeners.delete(l);
  }
  onNewDevice(l: (id: string) => void): () => void {
    this.newDeviceListeners.add(l);
    return () => this.newDeviceListeners.delete(l);
  }
  onAlert(l: (e: AlertEntry) => void): () => void {
    this.alertListeners.add(l);
    return () => this.alertListeners.delete(l);
  }

  private markDirty(id: string): void {
    for (const l of this.dirtyListeners) l(id);
  }

  device(id: string): DeviceState {
    let d = this.devices.get(id);
    if (!d) {
      d = {
        id,
        status: "unknown",
        lastSeen: 0,
        readingAt: 0,
        fields: new Map(),
        tags: {},
        series: new Map(),
        firing: new Map(),
        shapeVersion: 0,
      };
      this.devices.set(id, d);
      for (const l of this.newDeviceListeners) l(id);
    }
    return d;
  }

  /** Registry facts from the device API (name, groups, labels). */
  setInfo(info: DeviceInfo): void {
    const d = this.device(info.id);
    d.info = info;
    this.markDirty(info.id);
  }

  telemetry(m: RoomMessage<Telemetry>): void {
    this.messages++;
    const p = m.payload;
    if (!p || typeof p.device_id !== "string" || !p.fields) return;
    const d = this.device(p.device_id);
    const at = parseTime(p.timestamp, parseTime(m.timestamp, Date.now()));
    // The same reading arrives once per joined room it belongs to, and a
    // snapshot may repeat one already seen: only newer readings change state.
    if (at < d.readingAt) return;
    const repeat = at === d.readingAt;
    d.readingAt = at;
    if (at > d.lastSeen) d.lastSeen = at;
    let shape = false;
    for (const key in p.fields) {
      const v = p.fields[key]!;
      if (!d.fields.has(key)) shape = true;
      d.fields.set(key, v);
      if (!repeat && typeof v === "number") {
        let s = d.series.get(key);
        if (!s) {
          s = new Series();
          d.series.set(key, s);
        }
        s.push(at, v);
      }
    }
    if (shape) d.shapeVersion++;
    if (p.tags) d.tags = p.tags;
    // A device that sends readings is up, whatever an older status said.
    if (d.status === "unknown") d.status = "online";
    this.markDirty(d.id);
  }

  deviceStatus(m: RoomMessage<DeviceStatus>): void {
    this.messages++;
    const p = m.payload;
    if (!p || typeof p.device_id !== "string") return;
    const d = this.device(p.device_id);
    const at = parseTime(p.timestamp, parseTime(m.timestamp, Date.now()));
    if (p.status === "online" || p.status === "offline") {
      // A status older than the newest reading cannot say the device is offline now.
      if (!(p.status === "offline" && at < d.readingAt)) d.status = p.status;
    }
    if (at > d.lastSeen) d.lastSeen = at;
    this.markDirty(d.id);
  }

  alert(m: RoomMessage<Alert>): void {
    this.messages++;
    const a = m.payload;
    if (!a || typeof a.device_id !== "string") return;
    const state = a.state ?? "firing";
    // One alert arrives once per room and again on resume: keep one of each.
    const key = `${a.alert_id}/${state}`;
    if (this.alertKeys.has(key)) return;
    this.alertKeys.add(key);
    const entry: AlertEntry = { key, alert: a, receivedAt: Date.now() };
    this.alerts.unshift(entry);
    if (this.alerts.length > MAX_ALERTS) {
      for (const old of this.alerts.splice(MAX_ALERTS)) this.alertKeys.delete(old.key);
    }
    const d = this.device(a.device_id);
    if (state === "firing") d.firing.set(a.alert_id, a);
    else d.firing.delete(a.alert_id);
    for (const l of this.alertListeners) l(entry);
    this.markDirty(d.id);
  }

  firingCount(): number {
    let n = 0;
    for (const d of this.devices.values()) n += d.firing.size;
    return n;
  }

  clear(): void {
    this.devices.clear();
    this.alerts = [];
    this.alertKeys.clear();
  }
}
