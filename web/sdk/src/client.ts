import { Backoff, DEFAULT_BACKOFF, type BackoffConfig } from "./backoff.js";
import { systemClock, Timer } from "./clock.js";
import { CommandCallImpl, isFinalStatus } from "./command.js";
import { CLOSE_ABNORMAL, Connection, type ConnectionEnd } from "./connection.js";
import { Emitter } from "./emitter.js";
import { ConnectionLostError, NotConnectedError, RequestTimeoutError, ServerError } from "./errors.js";
import { Heartbeat } from "./heartbeat.js";
import { probe } from "./probe.js";
import { PendingRequests } from "./requests.js";
import { chunkRooms } from "./rooms.js";
import { Subscriptions } from "./subscriptions.js";
import { TokenExpiredError, TokenSource } from "./token.js";
import type {
  ClientEvents,
  ClientOptions,
  Clock,
  CommandCall,
  CommandRequest,
  CommandResult,
  ConnectionState,
  FetchLike,
  Presence,
  StateEvent,
  SubscribeOptions,
  SubscribeResult,
  TokenProvider,
  WebSocketConstructor,
} from "./types.js";
import {
  errorPayload,
  isRecord,
  parseServerMessage,
  ROOM_EVENT_TYPES,
  seqOf,
  stringArray,
  withToken,
  type ServerMessage,
} from "./wire.js";

/** Close codes that ask the client to come back at once (docs/protocol.md 2.8). */
const CLOSE_SERVICE_RESTART = 1012;
const CLOSE_TRY_AGAIN_LATER = 1013;

/** The server's default command timeout, for the client's own deadline when the request gives none. */
const DEFAULT_COMMAND_TIMEOUT_MS = 30_000;

interface Settings {
  url: string;
  latest: boolean;
  backoff: BackoffConfig;
  pingIntervalMs: number;
  pongTimeoutMs: number;
  requestTimeoutMs: number;
  connectTimeoutMs: number;
}

function nonNegative(v: number | undefined, fallback: number): number {
  return typeof v === "number" && Number.isFinite(v) && v >= 0 ? v : fallback;
}

function messageOf(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}

function toRoomList(rooms: string | string[]): string[] {
  const list = typeof rooms === "string" ? [rooms] : Array.isArray(rooms) ? rooms : [];
  return [...new Set(list.filter((r): r is string => typeof r === "string" && r !== ""))];
}

/** A promise whose rejection does not count as unhandled when the caller ignores it (fire-and-forget calls). */
function quiet<T>(p: Promise<T>): Promise<T> {
  p.catch(() => undefined);
  return p;
}

/**
 * A dashboard connection to Sensorcast that stays up: it reconnects with
 * backoff, resumes every room from the last message seen so nothing is
 * lost or repeated, keeps its token fresh, and tells apart the failures
 * worth retrying from those that are not (a refused token).
 */
export class SensorcastClient {
  private readonly settings: Settings;
  private readonly WebSocketImpl: WebSocketConstructor;
  private readonly fetchImpl: FetchLike | undefined;
  private readonly clock: Clock;
  private readonly random: () => number;
  private readonly events = new Emitter<ClientEvents>();
  private readonly tokens: TokenSource;
  private readonly subs: Subscriptions;
  private readonly backoff: Backoff;
  private readonly requests: PendingRequests;
  private readonly reconnectTimer: Timer;

  private current: ConnectionState = "closed";
  /** close() was called: final. */
  private disposed = false;
  /** The client stopped trying by itself (unauthorized, forbidden origin) until connect(). */
  private halted = false;
  /** Bumped whenever an attempt starts or the client stops: async work of an older epoch is dropped. */
  private epoch = 0;
  /** A 401 already led to a fresh token and an immediate retry. */
  private retriedAfter401 = false;

  // The connection now open or opening, and what belongs to it.
  private conn: Connection | undefined;
  private heartbeat: Heartbeat | undefined;
  private connId: string | undefined;
  /** Cancels the probe of a refused connection under way. */
  private cancelProbe: (() => void) | undefined;

  private readonly commands = new Map<string, CommandCallImpl>();

  constructor(options: ClientOptions) {
    if (!options || typeof options.url !== "string" || options.url === "") {
      throw new TypeError("SensorcastClient: options.url is required");
    }
    if (typeof options.token !== "string" && typeof options.token !== "function") {
      throw new TypeError("SensorcastClient: options.token must be a string or a function returning one");
    }
    const WebSocketImpl = options.WebSocket ?? (globalThis as { WebSocket?: WebSocketConstructor }).WebSocket;
    if (typeof WebSocketImpl !== "function") {
      throw new TypeError(
        "SensorcastClient: no WebSocket implementation: pass options.WebSocket (e.g. from the 'ws' package), or on Node 20 run with --experimental-websocket",
      );
    }
    this.WebSocketImpl = WebSocketImpl;
    const globalFetch = (globalThis as { fetch?: FetchLike }).fetch;
    this.fetchImpl = options.fetch ?? (typeof globalFetch === "function" ? globalFetch.bind(globalThis) : undefined);
    this.clock = options.clock ?? systemClock;
    this.random = options.random ?? Math.random;

    const requestTimeoutMs = nonNegative(options.requestTimeoutMs, 10_000);
    this.settings = {
      url: options.url,
      latest: options.latest ?? false,
      backoff: {
        baseMs: nonNegative(options.backoff?.baseMs, DEFAULT_BACKOFF.baseMs),
        maxMs: nonNegative(options.backoff?.maxMs, DEFAULT_BACKOFF.maxMs),
        restartJitterMs: nonNegative(options.backoff?.restartJitterMs, DEFAULT_BACKOFF.restartJitterMs),
      },
      pingIntervalMs: nonNegative(options.pingIntervalMs, 25_000),
      pongTimeoutMs: nonNegative(options.pongTimeoutMs, 10_000),
      requestTimeoutMs,
      connectTimeoutMs: nonNegative(options.connectTimeoutMs, requestTimeoutMs),
    };
    this.backoff = new Backoff(this.settings.backoff, this.random);
    this.requests = new PendingRequests(this.clock, Math.floor(this.random() * 2 ** 32).toString(36));
    this.reconnectTimer = new Timer(this.clock);
    this.subs = new Subscriptions({
      clock: this.clock,
      random: this.random,
      backoff: this.settings.backoff,
      requestTimeoutMs,
      requests: this.requests,
      events: this.events,
      send: (msg) => this.send(msg),
      isOpen: () => this.conn?.isOpen ?? false,
      // Open and answering: the link is healthy again.
      onResubscribed: () => this.backoff.reset(),
      // A connection that does not answer a subscribe is replaced.
      onUnanswered: () => this.conn?.abort(CLOSE_ABNORMAL, "subscribe timed out"),
    });
    this.tokens = new TokenSource(options.token, {
      clock: this.clock,
      random: this.random,
      refreshMarginMs: nonNegative(options.refreshMarginMs, 60_000),
      backoff: this.settings.backoff,
      onError: (err) => this.emitError("token_provider", `token refresh failed: ${messageOf(err)}`),
    });
    this.subs.add(toRoomList(options.rooms ?? []), this.settings.latest);
    if (options.autoConnect ?? true) this.connect();
  }

  // ---- public API ----------------------------------------------------------

  get state(): ConnectionState {
    return this.current;
  }

  /** Addition: the server's id of the open connection (from `connected`). */
  get connectionId(): string | undefined {
    return this.connId;
  }

  /** The rooms the client wants to be in (joined now, or on the next connection). */
  rooms(): string[] {
    return this.subs.rooms();
  }

  /** The last seq delivered from a room: where a reconnect resumes it. Addition. */
  lastSeq(room: string): number | undefined {
    return this.subs.lastSeq(room);
  }

  on<K extends keyof ClientEvents>(event: K, listener: (e: ClientEvents[K]) => void): () => void {
    return this.events.on(event, listener);
  }

  /**
   * Starts connecting. A no-op while open or connecting; while waiting to
   * reconnect it tries at once; after `unauthorized` or a refused origin it
   * starts again (call `setToken()` first if the token was the problem).
   */
  connect(): void {
    if (this.disposed) throw new Error("SensorcastClient: close() is final; create a new client");
    if (this.current === "open" || this.current === "connecting") return;
    if (this.current === "reconnecting") {
      if (this.reconnectTimer.pending) {
        this.reconnectTimer.stop();
        this.attempt();
      }
      return; // an attempt is under way
    }
    this.halted = false;
    this.retriedAfter401 = false;
    this.backoff.reset();
    this.tokens.start();
    this.setState("connecting");
    this.attempt();
  }

  /** Ends the client for good: state "closed", no reconnect, no timer left. */
  close(): void {
    if (this.disposed) return;
    this.disposed = true;
    this.epoch++;
    this.reconnectTimer.stop();
    this.tokens.stop();
    this.endConnection(1000, "client closed", new ConnectionLostError("the client was closed"));
    this.subs.rejectWaiters(new NotConnectedError("the client was closed"));
    this.setState("closed", { closeCode: 1000, closeReason: "client closed" });
    this.events.clear();
  }

  /** Addition: replaces the token or provider; used from the next connection on. */
  setToken(token: string | TokenProvider): void {
    this.tokens.set(token);
    this.retriedAfter401 = false;
    if (!this.disposed && !this.halted) this.tokens.start();
  }

  /**
   * Joins rooms; resolves once each is joined or refused for good (rooms
   * refused `unavailable` are asked for again until they are joined). While
   * disconnected the rooms are recorded and joined by the next connection.
   * Refused rooms are dropped from rooms().
   */
  subscribe(rooms: string | string[], opts?: SubscribeOptions): Promise<SubscribeResult> {
    const list = toRoomList(rooms);
    if (this.disposed) return quiet(Promise.reject(new NotConnectedError("the client was closed")));
    const latest = opts?.latest ?? this.settings.latest;
    if (list.length === 0) return Promise.resolve({ rooms: this.rooms(), rejected: [], recovered: {} });
    if (this.halted) {
      this.subs.add(list, latest);
      return quiet(Promise.reject(new NotConnectedError(`not connected (${this.current}); the rooms are joined on the next connect()`)));
    }
    return quiet(this.subs.subscribe(list, latest));
  }

  /** Leaves rooms; resolves with the rooms still joined (while disconnected: the rooms still wanted). */
  unsubscribe(rooms: string | string[]): Promise<string[]> {
    const list = toRoomList(rooms);
    this.subs.forget(list);
    const conn = this.conn;
    if (list.length === 0 || !conn?.isOpen) return Promise.resolve(this.rooms());
    const replies = chunkRooms(list).map(
      (chunk) =>
        new Promise<string[]>((resolve, reject) => {
          const id = this.requests.nextId();
          this.requests.add(id, this.settings.requestTimeoutMs, {
            reply: (msg) => {
              if (msg.type === "unsubscribed") resolve(stringArray(isRecord(msg.payload) ? msg.payload["rooms"] : undefined));
              else if (msg.type === "error") reject(this.serverError(msg));
              else resolve(this.rooms());
            },
            // Gone with the connection: so are the rooms on the server.
            fail: (err) => (err instanceof ConnectionLostError ? resolve(this.rooms()) : reject(err)),
          });
          this.send({ type: "unsubscribe", request_id: id, payload: { rooms: chunk } });
        }),
    );
    return quiet(Promise.all(replies).then((all) => all[all.length - 1]!));
  }

  /** Who is in a room, across all edge pods. Rejects NotConnectedError while disconnected. */
  presence(room: string): Promise<Presence> {
    return this.request("presence", { room }, (msg) => {
      if (msg.type !== "presence" || !isRecord(msg.payload)) throw new ServerError("protocol", `unexpected reply ${msg.type}`);
      const p = msg.payload;
      return {
        ...p,
        room: typeof p["room"] === "string" ? p["room"] : room,
        count: typeof p["count"] === "number" ? p["count"] : 0,
        members: Array.isArray(p["members"]) ? (p["members"] as Presence["members"]) : [],
      };
    });
  }

  /** An application ping; resolves with the round trip in ms. */
  ping(): Promise<number> {
    const sentAt = this.clock.now();
    return this.request("ping", undefined, () => this.clock.now() - sentAt);
  }

  /** Sends a command to a device; its statuses arrive on the returned call. */
  command(req: CommandRequest): CommandCall {
    const id = this.requests.nextId();
    const call = new CommandCallImpl(id, req.deviceId);
    const payload: Record<string, unknown> = { device_id: req.deviceId, name: req.name };
    if (req.params !== undefined) payload["params"] = req.params;
    if (req.timeoutMs !== undefined) payload["timeout_ms"] = req.timeoutMs;
    const msg: Record<string, unknown> = { type: "command", request_id: id, payload };
    if (req.traceparent) msg["traceparent"] = req.traceparent;
    if (!this.conn?.isOpen || !this.send(msg)) {
      call.fail(new NotConnectedError());
      return call;
    }
    this.commands.set(id, call);
    // The server always ends a command (a `timeout` status at the latest);
    // this deadline only guards against a reply that never comes, so that
    // no call stays pending forever.
    const guard = new Timer(this.clock);
    guard.start((req.timeoutMs ?? DEFAULT_COMMAND_TIMEOUT_MS) + this.settings.requestTimeoutMs, () =>
      call.fail(new RequestTimeoutError(`no final status for command ${id}`)),
    );
    call.whenFinished(() => {
      guard.stop();
      this.commands.delete(id);
    });
    return call;
  }

  // ---- connecting ------------------------------------------------------------

  private setState(next: ConnectionState, extra: Partial<StateEvent> = {}, always = false): void {
    if (next === this.current && !always) return;
    const previous = this.current;
    this.current = next;
    this.events.emit("state", { state: next, previous, attempt: this.backoff.attempt, ...extra });
  }

  /** One connection attempt: a token, then a socket. */
  private attempt(): void {
    if (this.disposed || this.halted) return; // a listener may have closed the client
    const epoch = ++this.epoch;
    this.tokens.forConnect().then(
      (token) => {
        if (epoch === this.epoch) this.open(token);
      },
      (err: unknown) => {
        if (epoch !== this.epoch) return;
        if (err instanceof TokenExpiredError) return this.halt("unauthorized", "unauthorized", err.message);
        this.emitError("token_provider", `token provider failed: ${messageOf(err)}`);
        this.scheduleReconnect(false);
      },
    );
  }

  private open(token: string): void {
    const url = withToken(this.settings.url, token);
    let conn: Connection | undefined;
    try {
      conn = new Connection(this.WebSocketImpl, url, this.clock, this.settings.connectTimeoutMs, {
        onOpen: () => this.onOpen(conn!),
        onFrame: (data) => this.onFrame(conn!, data),
        onEnd: (end) => this.onEnd(conn!, end, url),
      });
    } catch (err) {
      // The constructor throws on a malformed URL, for one.
      this.emitError("connect_failed", messageOf(err));
      this.scheduleReconnect(false);
      return;
    }
    this.conn = conn;
  }

  private onOpen(conn: Connection): void {
    if (conn !== this.conn) return;
    this.retriedAfter401 = false;
    this.setState("open");
    if (conn !== this.conn) return; // a state listener closed the client
    this.heartbeat = new Heartbeat(
      this.clock,
      this.settings.pingIntervalMs,
      this.settings.pongTimeoutMs,
      () => this.send({ type: "ping", request_id: this.requests.nextId() }),
      () => conn.abort(CLOSE_ABNORMAL, "no reply to ping (dead connection)"),
    );
    this.heartbeat.start();
    this.subs.connectionOpened();
  }

  private onEnd(conn: Connection, end: ConnectionEnd, url: string): void {
    if (conn !== this.conn) return;
    this.endConnection(undefined, "", new ConnectionLostError(`connection closed (${end.code}${end.reason ? ` ${end.reason}` : ""})`));
    if (!end.opened) {
      this.onRefused(url, end);
      return;
    }
    // 1012 (the pod drains) and 1013 (slow consumer, replay failed) ask the
    // client to come back now; a small random delay spreads the clients of
    // a drained pod.
    const restart = end.code === CLOSE_SERVICE_RESTART || end.code === CLOSE_TRY_AGAIN_LATER;
    this.scheduleReconnect(restart, end.code, end.reason);
  }

  /** An attempt failed before opening: find out whether it is worth retrying. */
  private onRefused(url: string, end: ConnectionEnd): void {
    if (!this.fetchImpl) return this.scheduleReconnect(false, end.code, end.reason);
    const epoch = this.epoch;
    const probing = probe(this.fetchImpl, url, this.clock, this.settings.requestTimeoutMs);
    this.cancelProbe = probing.cancel;
    probing.result.then((outcome) => {
      if (this.cancelProbe === probing.cancel) this.cancelProbe = undefined;
      if (epoch !== this.epoch || this.disposed) return;
      switch (outcome.kind) {
        case "unauthorized":
          if (this.tokens.hasProvider && !this.retriedAfter401) {
            // The token may have been revoked or cut short: one fresh token,
            // tried at once. A second refusal is final.
            this.retriedAfter401 = true;
            const refreshEpoch = ++this.epoch;
            this.tokens.refresh().then(
              () => {
                if (refreshEpoch === this.epoch) this.attempt();
              },
              (err: unknown) => {
                if (refreshEpoch !== this.epoch) return;
                this.emitError("token_provider", `token provider failed: ${messageOf(err)}`);
                this.scheduleReconnect(false, end.code, end.reason);
              },
            );
          } else {
            this.halt("unauthorized", "unauthorized", outcome.message);
          }
          return;
        case "forbidden":
          this.halt("closed", outcome.code, outcome.message);
          return;
        default:
          this.scheduleReconnect(false, end.code, end.reason);
      }
    });
  }

  private scheduleReconnect(restart: boolean, closeCode?: number, closeReason?: string): void {
    if (this.disposed || this.halted) return;
    const delay = restart ? this.backoff.restart() : this.backoff.next();
    const extra: Partial<StateEvent> = { retryAt: this.clock.now() + delay };
    if (closeCode !== undefined) extra.closeCode = closeCode;
    if (closeReason) extra.closeReason = closeReason;
    // Armed before the event, so that a listener calling close() or
    // connect() finds it (and stops or skips it).
    this.reconnectTimer.start(delay, () => this.attempt());
    this.setState("reconnecting", extra, true);
  }

  /** Stops trying by itself (a refused token or origin) until connect(). */
  private halt(state: "unauthorized" | "closed", code: string, message: string): void {
    this.halted = true;
    this.epoch++;
    this.reconnectTimer.stop();
    this.tokens.stop();
    this.endConnection(1000, "", new ConnectionLostError(message));
    this.subs.rejectWaiters(new NotConnectedError(`${code}: ${message}`));
    this.setState(state);
    this.emitError(code, message);
  }

  /** Forgets the connection and everything tied to it; closes the socket when closeCode is given. */
  private endConnection(closeCode: number | undefined, reason: string, err: Error): void {
    this.cancelProbe?.();
    this.cancelProbe = undefined;
    const conn = this.conn;
    this.conn = undefined;
    this.connId = undefined;
    this.heartbeat?.stop();
    this.heartbeat = undefined;
    this.subs.connectionEnded();
    if (conn && closeCode !== undefined) conn.close(closeCode, reason);
    this.requests.failAll(err);
    for (const call of [...this.commands.values()]) call.fail(err);
    this.commands.clear();
  }

  // ---- messages ----------------------------------------------------------------

  private send(msg: Record<string, unknown>): boolean {
    return this.conn?.send(JSON.stringify(msg)) ?? false;
  }

  private onFrame(conn: Connection, data: unknown): void {
    if (conn !== this.conn) return;
    this.heartbeat?.touch();
    const msg = parseServerMessage(data);
    if (!msg) {
      this.emitError("protocol", "received a frame that is not a JSON object with a type; ignored");
      return;
    }
    this.events.emit("message", msg);
    if (typeof msg.room === "string") return this.onRoomMessage(msg, msg.room);
    const requestId = typeof msg.request_id === "string" ? msg.request_id : undefined;
    if (requestId !== undefined) {
      const call = this.commands.get(requestId);
      if (call && (msg.type === "command_result" || msg.type === "error")) return this.onCommandReply(call, msg);
      if (this.requests.resolve(requestId, msg)) return;
    }
    switch (msg.type) {
      case "connected":
        if (isRecord(msg.payload) && typeof msg.payload["connection_id"] === "string") this.connId = msg.payload["connection_id"];
        return;
      case "presence_join":
      case "presence_leave":
        if (isRecord(msg.payload) && typeof msg.payload["room"] === "string" && typeof msg.payload["user_id"] === "string") {
          this.events.emit(msg.type, { room: msg.payload["room"], user_id: msg.payload["user_id"] });
        }
        return;
      case "error": {
        const { code, error } = errorPayload(msg);
        this.events.emit("error", requestId !== undefined ? { code, error, request_id: requestId } : { code, error });
        return;
      }
      default:
      // Unknown types (and late replies) are ignored: the protocol grows by adding them.
    }
  }

  private onRoomMessage(msg: ServerMessage, room: string): void {
    const seq = seqOf(msg.seq);
    // Drops replayed duplicates and messages of rooms left meanwhile.
    if (!this.subs.accept(room, seq)) return;
    if (!ROOM_EVENT_TYPES.has(msg.type)) return;
    const event = {
      type: msg.type,
      room,
      snapshot: seq === undefined,
      payload: msg.payload as never,
      timestamp: typeof msg.timestamp === "string" ? msg.timestamp : "",
      ...(seq !== undefined ? { seq } : {}),
    };
    this.events.emit(msg.type as "telemetry" | "device_status" | "alert", event);
  }

  private onCommandReply(call: CommandCallImpl, msg: ServerMessage): void {
    if (msg.type === "error") {
      // A malformed command is refused with `error`: the same outcome as a
      // refusal, for the caller.
      const { code, error } = errorPayload(msg);
      call.push({ device_id: call.deviceId, status: "rejected", result: { code, reason: error } });
      return;
    }
    if (!isRecord(msg.payload) || typeof msg.payload["status"] !== "string") return;
    const p = msg.payload;
    const result = { ...p, device_id: typeof p["device_id"] === "string" ? p["device_id"] : call.deviceId, status: p["status"] } as CommandResult;
    if (!isFinalStatus(result.status) && !["accepted", "delivered"].includes(result.status)) return; // a status from the future
    call.push(result);
  }

  /** Sends a request that needs an open connection and one reply. */
  private request<T>(type: string, payload: unknown, onReply: (msg: ServerMessage) => T): Promise<T> {
    if (!this.conn?.isOpen) return Promise.reject(new NotConnectedError());
    return new Promise<T>((resolve, reject) => {
      const id = this.requests.nextId();
      this.requests.add(id, this.settings.requestTimeoutMs, {
        reply: (msg) => {
          if (msg.type === "error") return reject(this.serverError(msg));
          try {
            resolve(onReply(msg));
          } catch (err) {
            reject(err as Error);
          }
        },
        fail: reject,
      });
      const msg: Record<string, unknown> = { type, request_id: id };
      if (payload !== undefined) msg["payload"] = payload;
      this.send(msg);
    });
  }

  private serverError(msg: ServerMessage): ServerError {
    const { code, error } = errorPayload(msg);
    return new ServerError(code, error || code);
  }

  private emitError(code: string, error: string): void {
    this.events.emit("error", { code, error });
  }
}
