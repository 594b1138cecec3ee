// The messages on the wire (docs/protocol.md 2.2-2.5), as the client reads
// and writes them. Parsing is lenient by design: unknown types and fields
// are ignored, so that newer servers never break older clients.

/** A parsed server message: a JSON object with a string `type`. */
export interface ServerMessage {
  type: string;
  room?: unknown;
  seq?: unknown;
  payload?: unknown;
  timestamp?: unknown;
  request_id?: unknown;
  [k: string]: unknown;
}

/** The room message types the client has typed events for. */
export const ROOM_EVENT_TYPES = new Set(["telemetry", "device_status", "alert"]);

/** Parses a frame; undefined when it is not a JSON object with a string `type`. */
export function parseServerMessage(data: unknown): ServerMessage | undefined {
  if (typeof data !== "string") return undefined;
  let value: unknown;
  try {
    value = JSON.parse(data);
  } catch {
    return undefined;
  }
  if (value === null || typeof value !== "object" || Array.isArray(value)) return undefined;
  const msg = value as ServerMessage;
  return typeof msg.type === "string" ? msg : undefined;
}

export function isRecord(v: unknown): v is Record<string, unknown> {
  return v !== null && typeof v === "object" && !Array.isArray(v);
}

export function stringArray(v: unknown): string[] {
  return Array.isArray(v) ? v.filter((x): x is string => typeof x === "string") : [];
}

/** A room's `seq`, when it is a usable one (a positive number). */
export function seqOf(v: unknown): number | undefined {
  return typeof v === "number" && Number.isFinite(v) && v > 0 ? v : undefined;
}

/** The payload of `error`. */
export function errorPayload(msg: ServerMessage): { code: string; error: string } {
  const p = isRecord(msg.payload) ? msg.payload : {};
  return {
    code: typeof p["code"] === "string" ? p["code"] : "unknown",
    error: typeof p["error"] === "string" ? p["error"] : "",
  };
}

/** Appends the token as the `token` query parameter. */
export function withToken(url: string, token: string): string {
  if (token === "") return url;
  const hash = url.indexOf("#");
  const base = hash >= 0 ? url.slice(0, hash) : url;
  return `${base}${base.includes("?") ? "&" : "?"}token=${encodeURIComponent(token)}`;
}
