// Formatting of values, units and ages for display.

import type { FieldValue } from "./store";

const nf2 = new Intl.NumberFormat(undefined, { maximumFractionDigits: 2 });
const nf1 = new Intl.NumberFormat(undefined, { maximumFractionDigits: 1 });
const nf0 = new Intl.NumberFormat(undefined, { maximumFractionDigits: 0 });
const compact = new Intl.NumberFormat(undefined, { notation: "compact", maximumFractionDigits: 2 });

/** Units guessed from common field names; unknown names get none. */
const UNITS: Array<[RegExp, string]> = [
  [/^(temp|temperature)(_c)?$/i, "°C"],
  [/^(temp|temperature)_f$/i, "°F"],
  [/humid/i, "%"],
  [/^(battery|batt|soc)(_pct|_percent)?$/i, "%"],
  [/rssi/i, "dBm"],
  [/^(pressure)$/i, "hPa"],
  [/^(voltage|volt|v)$/i, "V"],
  [/^(current)$/i, "A"],
  [/^(power)$/i, "W"],
  [/co2/i, "ppm"],
  [/_pct$|_percent$/i, "%"],
  [/_ms$/i, "ms"],
  [/_s$/i, "s"],
];

const unitCache = new Map<string, string>();
export function unitFor(field: string): string {
  let u = unitCache.get(field);
  if (u === undefined) {
    u = "";
    for (const [re, unit] of UNITS) {
      if (re.test(field)) {
        u = unit;
        break;
      }
    }
    unitCache.set(field, u);
  }
  return u;
}

export function formatNumber(v: number): string {
  if (!Number.isFinite(v)) return String(v);
  const a = Math.abs(v);
  if (a >= 1e6) return compact.format(v);
  if (a >= 1000) return nf0.format(v);
  if (a >= 100) return nf1.format(v);
  return nf2.format(v);
}

export function formatValue(v: FieldValue): string {
  if (typeof v === "number") return formatNumber(v);
  if (typeof v === "boolean") return v ? "true" : "false";
  return v;
}

const ACRONYMS = new Set(["rssi", "snr", "co2", "voc", "pm1", "pm25", "pm10", "ph", "id", "ip", "gps", "uv", "led", "cpu", "rpm"]);

/** "door_open" -> "Door open", "rssi" -> "RSSI". */
export function fieldLabel(field: string): string {
  const words = field.split(/[_.\-]+/).filter(Boolean);
  if (words.length === 0) return field;
  return words
    .map((w, i) => {
      const lw = w.toLowerCase();
      if (ACRONYMS.has(lw)) return w.toUpperCase();
      return i === 0 ? w.charAt(0).toUpperCase() + w.slice(1) : w;
    })
    .join(" ");
}

/** A short age: "now", "5 s", "3 min", "2 h", "4 d". */
export function formatAge(ms: number): string {
  if (ms < 1500) return "now";
  const s = Math.round(ms / 1000);
  if (s < 60) return `${s} s ago`;
  const m = Math.floor(s / 60);
  if (m < 60) return `${m} min ago`;
  const h = Math.floor(m / 60);
  if (h < 48) return `${h} h ago`;
  return `${Math.floor(h / 24)} d ago`;
}

export function formatDuration(ms: number): string {
  if (ms <= 0) return "0 s";
  const s = Math.ceil(ms / 1000);
  if (s < 60) return `${s} s`;
  const m = Math.floor(s / 60);
  if (m < 60) return `${m} min`;
  const h = Math.floor(m / 60);
  if (h < 48) return `${h} h ${m % 60} min`;
  return `${Math.floor(h / 24)} d ${h % 24} h`;
}

const timeFmt = new Intl.DateTimeFormat(undefined, { hour: "2-digit", minute: "2-digit", second: "2-digit" });
const dateTimeFmt = new Intl.DateTimeFormat(undefined, { dateStyle: "medium", timeStyle: "short" });

export function formatClock(ms: number): string {
  return timeFmt.format(ms);
}

export function formatDateTime(ms: number): string {
  return dateTimeFmt.format(ms);
}

/** Close codes of the protocol (section 2.8) and the browser's own. */
export function describeClose(code: number | undefined, reason: string | undefined): string {
  if (code === undefined) return "";
  const names: Record<number, string> = {
    1000: "normal closure",
    1001: "going away",
    1006: "connection lost",
    1008: "policy violation",
    1009: "message too big",
    1011: "server error",
    1012: "service restart",
    1013: "try again later",
  };
  const name = names[code] ?? "closed";
  return reason ? `${code} ${name}: ${reason}` : `${code} ${name}`;
}
