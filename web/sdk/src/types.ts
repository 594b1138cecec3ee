// Public types of the SDK: the options, the messages of the dashboard
// WebSocket contract (docs/protocol.md section 2) and the client's events.

/**
 * Where the client is:
 * - `connecting`: the first attempt after `connect()` (or construction).
 * - `open`: a WebSocket is open (rooms are being, or have been, joined).
 * - `reconnecting`: the connection was lost or an attempt failed; waiting
 *   for, or making, the next attempt.
 * - `unauthorized`: the server refused the token (HTTP 401) and no fresh
 *   token helped; no further attempts until `connect()`.
 * - `closed`: not connected and not trying: before the first `connect()`
 *   with `autoConnect: false`, after `close()`, or after the server refused
 *   the page's Origin (403 `forbidden_origin`).
 */
export type ConnectionState = "connecting" | "open" | "reconnecting" | "unauthorized" | "closed";

/** Returns a dashboard JWT; may be async (e.g. a call to your auth backend). */
export type TokenProvider = () => string | Promise<string>;

/**
 * The part of the WebSocket API the client uses: the browser's and Node's
 * global `WebSocket` fit, and so does the `ws` package.
 */
export interface WebSocketLike {
  readonly readyState: number;
  send(data: string): void;
  close(code?: number, reason?: string): void;
  onopen: ((ev: any) => unknown) | null;
  onmessage: ((ev: any) => unknown) | null;
  onclose: ((ev: any) => unknown) | null;
  onerror: ((ev: any) => unknown) | null;
}

/** A WebSocket constructor (`globalThis.WebSocket` by default). */
export type WebSocketConstructor = new (url: string) => WebSocketLike;

/** The part of `fetch` the client uses to probe a refused connection. */
export type FetchLike = (
  url: string,
  init?: { method?: string; signal?: AbortSignal; headers?: Record<string, string> },
) => Promise<{ status: number; text(): Promise<string> }>;

/** Time and timers, replaceable so that tests need no real sleeps. */
export interface Clock {
  now(): number;
  setTimeout(fn: () => void, ms: number): unknown;
  clearTimeout(handle: unknown): void;
}

export interface BackoffOptions {
  /** First reconnect delay ceiling (ms); doubles per failed attempt. Default 1000. */
  baseMs?: number;
  /** Largest reconnect delay ceiling (ms). Default 30000. */
  maxMs?: number;
  /** After close codes 1012/1013 the client reconnects after a random 0..restartJitterMs (ms). Default 250. */
  restartJitterMs?: number;
}

export interface ClientOptions {
  /** `ws(s)://host/api/v1/ws`; the token is appended as `?token=`. */
  url: string;
  /**
   * A fixed JWT, or a provider. A provider is called before a connect when
   * the cached token is missing or due for refresh, `refreshMarginMs` before
   * the token's `exp` to have a fresh one ready for the next reconnect, and
   * once more when the server answers 401.
   */
  token: string | TokenProvider;
  /** Rooms to join at start. */
  rooms?: string[];
  /** Default for `subscribe()` (and `rooms`): ask for the latest state. Default false. */
  latest?: boolean;
  /** Refresh a provided token this long before its `exp`. Default 60000. */
  refreshMarginMs?: number;
  backoff?: BackoffOptions;
  /** Send an application `ping` after this long without any message; 0 turns it off. Default 25000. */
  pingIntervalMs?: number;
  /** No message within this long after such a ping: the link is dead, reconnect. Default 10000. */
  pongTimeoutMs?: number;
  /** Timeout of the replies to subscribe/unsubscribe/presence/ping. Default 10000. */
  requestTimeoutMs?: number;
  /** A WebSocket constructor; default `globalThis.WebSocket`. */
  WebSocket?: WebSocketConstructor;
  /** Connect from the constructor. Default true. */
  autoConnect?: boolean;

  // Additions beyond the dashboard's original contract.

  /** A socket that is not open within this long counts as a failed attempt. Default `requestTimeoutMs`. */
  connectTimeoutMs?: number;
  /**
   * `fetch` used to learn why a connection was refused (401, 403...):
   * default `globalThis.fetch`. Without one, refusals are retried with backoff.
   */
  fetch?: FetchLike;
  /** Time source and timers (tests). Default: `Date.now` and the global timers. */
  clock?: Clock;
  /** Random numbers in [0, 1) for the jitter (tests). Default `Math.random`. */
  random?: () => number;
}

export interface SubscribeOptions {
  /** Ask for the latest state of rooms not resumed through `since`. Default: the client's `latest` option. */
  latest?: boolean;
}

export interface Rejection {
  room: string;
  code: string;
  reason: string;
}

export interface SubscribeResult {
  /** Every room the connection is in, as the server last said. */
  rooms: string[];
  /** Rooms refused for good (`unavailable` is retried by the client, never listed here). */
  rejected: Rejection[];
  /** Per room resumed with `since`: whether nothing was lost. */
  recovered: Record<string, boolean>;
}

export interface PresenceMember {
  user_id: string;
  connections: number;
}

export interface Presence {
  room: string;
  count: number;
  members: PresenceMember[];
}

export interface CommandRequest {
  deviceId: string;
  name: string;
  params?: Record<string, unknown>;
  /** How long the device has to finish (server default 30000 when omitted). */
  timeoutMs?: number;
  /** W3C trace context; the server continues that trace. */
  traceparent?: string;
}

export type CommandStatus = "accepted" | "delivered" | "succeeded" | "failed" | "timeout" | "rejected";

export interface CommandResult {
  command_id?: string;
  device_id: string;
  status: CommandStatus;
  result?: any;
}

export interface CommandCall extends AsyncIterable<CommandResult> {
  /** The `request_id` the command was sent with. */
  readonly requestId: string;
  /** Every status, in order; a late listener first gets the ones already received. Returns an unsubscribe function. */
  onResult(listener: (r: CommandResult) => void): () => void;
  /**
   * The final status (succeeded, failed, timeout or rejected). Rejects with
   * NotConnectedError if sent while disconnected, ConnectionLostError if the
   * connection drops first; an `error` reply resolves as status "rejected"
   * with result `{code, reason}`.
   */
  readonly done: Promise<CommandResult>;
}

export interface RoomMessage<P> {
  type: string;
  room: string;
  /** Position in the room's stream; absent on snapshots. */
  seq?: number;
  /** True for the latest-state messages of `latest` (no seq, not history). */
  snapshot: boolean;
  payload: P;
  timestamp: string;
}

export interface Telemetry {
  device_id: string;
  timestamp: string;
  fields: Record<string, number | string | boolean>;
  tags?: Record<string, string>;
}

export interface DeviceStatus {
  device_id: string;
  status: "online" | "offline";
  timestamp: string;
}

export interface Alert {
  alert_id: string;
  device_id: string;
  rule_id?: string;
  rule_name: string;
  severity: string;
  field: string;
  value: number;
  threshold: number;
  state?: "firing" | "resolved";
  timestamp: string;
}

export interface StateEvent {
  state: ConnectionState;
  previous: ConnectionState;
  /** Consecutive failed attempts since the last healthy connection. */
  attempt: number;
  /** Epoch ms of the next attempt, while one is scheduled. */
  retryAt?: number;
  /** How the connection that just ended was closed. */
  closeCode?: number;
  closeReason?: string;
}

export interface ErrorEvent {
  code: string;
  error: string;
  request_id?: string;
  /** Set when the error is about one room (a rejection on an automatic re-subscribe). */
  room?: string;
}

export interface ClientEvents {
  telemetry: RoomMessage<Telemetry>;
  device_status: RoomMessage<DeviceStatus>;
  alert: RoomMessage<Alert>;
  presence_join: { room: string; user_id: string };
  presence_leave: { room: string; user_id: string };
  /**
   * Server `error` messages not tied to a pending request, and client-side
   * problems: "unauthorized", "forbidden_origin", "protocol" (a frame that is
   * not a JSON object), "token_provider" (the token provider failed).
   */
  error: ErrorEvent;
  state: StateEvent;
  /** Resuming this room was impossible (`recovered: false`): readings were lost to this client. */
  gap: { room: string };
  /** Every server message, raw, as received (before de-duplication). */
  message: { type: string; [k: string]: unknown };
  /** Addition: every `subscribed` reply, including the automatic re-subscribes after a reconnect. */
  subscribed: SubscribeResult;
}
