import { fullJitter, type BackoffConfig } from "./backoff.js";
import { Timer } from "./clock.js";
import type { Emitter } from "./emitter.js";
import { RequestTimeoutError, ServerError } from "./errors.js";
import type { PendingRequests } from "./requests.js";
import { RoomTracker, type SubscribePayload } from "./rooms.js";
import type { ClientEvents, Clock, Rejection, SubscribeResult } from "./types.js";
import { errorPayload, isRecord, stringArray, type ServerMessage } from "./wire.js";

/** Refusals worth asking again for, later, on the same connection. */
const RETRYABLE_CODES = new Set(["unavailable", "rate_limited"]);

/** What the subscriptions need from the client. */
export interface SubscriptionsHost {
  clock: Clock;
  random: () => number;
  backoff: BackoffConfig;
  requestTimeoutMs: number;
  requests: PendingRequests;
  events: Emitter<ClientEvents>;
  /** Sends on the open connection; false when there is none. */
  send(msg: Record<string, unknown>): boolean;
  isOpen(): boolean;
  /** Every subscribe of a new connection was answered: the link works. */
  onResubscribed(): void;
  /** A subscribe got no reply in time: the connection is not to be trusted. */
  onUnanswered(): void;
}

/** A subscribe() call waiting until each of its rooms is joined or refused for good. */
interface Waiter {
  remaining: Set<string>;
  rejected: Rejection[];
  recovered: Record<string, boolean>;
  resolve(result: SubscribeResult): void;
  reject(err: Error): void;
}

/**
 * The rooms side of the client: which rooms it wants, joining them on
 * every connection from where each stopped, asking again for the rooms the
 * server could not resume yet, and settling the subscribe() calls.
 */
export class Subscriptions {
  private readonly tracker = new RoomTracker();
  private readonly waiters = new Set<Waiter>();
  /** Subscribes of the connection's initial (re)subscribe still unanswered. */
  private resubscribing = 0;
  /** Rooms refused as `unavailable` on this connection, to subscribe again after a backoff. */
  private readonly retryRooms = new Set<string>();
  private retryAttempt = 0;
  private readonly retryTimer: Timer;

  constructor(private readonly host: SubscriptionsHost) {
    this.retryTimer = new Timer(host.clock);
  }

  rooms(): string[] {
    return this.tracker.list();
  }

  lastSeq(room: string): number | undefined {
    return this.tracker.lastSeq(room);
  }

  /** Records rooms to join, without waiting for them. */
  add(rooms: string[], latest: boolean): void {
    this.tracker.add(rooms, latest);
  }

  /** Records rooms, joins them now if connected, and resolves once each is joined or refused for good. */
  subscribe(rooms: string[], latest: boolean): Promise<SubscribeResult> {
    this.tracker.add(rooms, latest);
    const promise = new Promise<SubscribeResult>((resolve, reject) => {
      this.waiters.add({ remaining: new Set(rooms), rejected: [], recovered: {}, resolve, reject });
    });
    // While disconnected, the next connection's resubscribe covers them.
    if (this.host.isOpen()) this.sendSubscribes(rooms, false);
    return promise;
  }

  /** Forgets rooms, resume points included; waiters stop waiting for them. */
  forget(rooms: string[]): void {
    this.tracker.remove(rooms);
    for (const room of rooms) {
      this.retryRooms.delete(room);
      this.settle(room, this.rooms());
    }
  }

  /** Whether a room message is to be delivered (see RoomTracker.accept). */
  accept(room: string, seq: number | undefined): boolean {
    return this.tracker.accept(room, seq);
  }

  /** A connection opened: every room again, each from where it stopped. */
  connectionOpened(): void {
    const rooms = this.rooms();
    this.resubscribing = rooms.length === 0 ? 0 : this.sendSubscribes(rooms, true);
    if (this.resubscribing === 0) this.host.onResubscribed();
  }

  /** The connection ended: what was tied to it goes (waiters wait for the next one). */
  connectionEnded(): void {
    this.retryTimer.stop();
    this.retryRooms.clear();
    this.retryAttempt = 0;
    this.resubscribing = 0;
  }

  rejectWaiters(err: Error): void {
    const all = [...this.waiters];
    this.waiters.clear();
    for (const w of all) w.reject(err);
  }

  /** Subscribes rooms (split as needed); returns how many subscribe messages were sent. */
  private sendSubscribes(rooms: string[], initial: boolean): number {
    let sent = 0;
    for (const payload of this.tracker.subscribePayloads(rooms)) {
      const id = this.host.requests.nextId();
      this.host.requests.add(id, this.host.requestTimeoutMs, {
        reply: (msg) => this.onReply(payload, msg, initial),
        fail: (err) => this.onFailed(payload, err),
      });
      if (this.host.send({ type: "subscribe", request_id: id, payload })) sent++;
    }
    return sent;
  }

  private onReply(req: SubscribePayload, msg: ServerMessage, initial: boolean): void {
    if (initial && --this.resubscribing === 0) this.host.onResubscribed();
    if (msg.type === "error") return this.onError(req, msg);
    if (msg.type !== "subscribed") return;
    const p = isRecord(msg.payload) ? msg.payload : {};
    const serverRooms = stringArray(p["rooms"]);
    const recovered: Record<string, boolean> = {};
    if (isRecord(p["recovered"])) {
      for (const [room, ok] of Object.entries(p["recovered"])) if (typeof ok === "boolean") recovered[room] = ok;
    }
    const retry: string[] = [];
    const refused = new Map<string, Rejection>();
    for (const r of Array.isArray(p["rejected"]) ? p["rejected"] : []) {
      if (!isRecord(r) || typeof r["room"] !== "string") continue;
      const rejection: Rejection = { room: r["room"], code: String(r["code"] ?? "unknown"), reason: String(r["reason"] ?? "") };
      if (!this.tracker.has(rejection.room)) continue; // left meanwhile
      if (RETRYABLE_CODES.has(rejection.code)) retry.push(rejection.room);
      else refused.set(rejection.room, rejection);
    }
    this.tracker.remove([...refused.keys()]);
    for (const [room, ok] of Object.entries(recovered)) {
      if (!ok && this.tracker.has(room)) {
        this.tracker.markGap(room);
        this.host.events.emit("gap", { room });
      }
    }
    const claimed = new Set<string>();
    for (const room of req.rooms) {
      if (retry.includes(room)) continue;
      if (this.settle(room, serverRooms, refused.get(room), recovered[room])) claimed.add(room);
    }
    for (const rejection of refused.values()) {
      // Refused on an automatic re-subscribe (say, a refreshed token grants
      // less): nobody awaits it, so tell the application.
      if (!claimed.has(rejection.room)) {
        this.host.events.emit("error", { code: rejection.code, error: `room ${rejection.room}: ${rejection.reason}`, room: rejection.room });
      }
    }
    this.host.events.emit("subscribed", { rooms: serverRooms, rejected: [...refused.values()], recovered });
    if (retry.length > 0) this.retryLater(retry);
  }

  /** The whole subscribe was refused with `error` (rate limited, malformed, too many rooms). */
  private onError(req: SubscribePayload, msg: ServerMessage): void {
    const { code, error } = errorPayload(msg);
    if (RETRYABLE_CODES.has(code)) return this.retryLater(req.rooms);
    const err = new ServerError(code, error || code);
    this.tracker.remove(req.rooms);
    if (!this.rejectWaitersOf(req.rooms, err)) this.host.events.emit("error", { code, error: err.message });
  }

  private onFailed(req: SubscribePayload, err: Error): void {
    // A lost connection: the next one subscribes the rooms again, and the
    // waiters wait for that.
    if (!(err instanceof RequestTimeoutError)) return;
    this.rejectWaitersOf(req.rooms, err);
    // The rooms stay wanted but are not joined: a new connection joins them.
    this.host.onUnanswered();
  }

  /** Rejects the subscribe() calls waiting for any of rooms; returns whether there were any. */
  private rejectWaitersOf(rooms: string[], err: Error): boolean {
    let any = false;
    for (const w of [...this.waiters]) {
      if (rooms.some((room) => w.remaining.has(room))) {
        this.waiters.delete(w);
        w.reject(err);
        any = true;
      }
    }
    return any;
  }

  /** Subscribes rooms refused as `unavailable` again, after a backoff with full jitter, on this connection. */
  private retryLater(rooms: string[]): void {
    if (!this.host.isOpen()) return; // the next connection subscribes every room anyway
    for (const room of rooms) this.retryRooms.add(room);
    if (this.retryTimer.pending) return;
    const { baseMs, maxMs } = this.host.backoff;
    this.retryTimer.start(fullJitter(this.retryAttempt++, baseMs, maxMs, this.host.random), () => {
      const again = [...this.retryRooms].filter((room) => this.tracker.has(room));
      this.retryRooms.clear();
      if (again.length > 0 && this.host.isOpen()) this.sendSubscribes(again, false);
    });
  }

  /**
   * A room is settled (joined, or refused for good): waiters that had it
   * pending take note, and resolve once all their rooms are. Returns
   * whether any waiter had it.
   */
  private settle(room: string, serverRooms: string[], rejection?: Rejection, recovered?: boolean): boolean {
    let claimed = false;
    for (const w of [...this.waiters]) {
      if (!w.remaining.delete(room)) continue;
      claimed = true;
      if (rejection) w.rejected.push(rejection);
      if (recovered !== undefined) w.recovered[room] = recovered;
      if (w.remaining.size === 0) {
        this.waiters.delete(w);
        w.resolve({ rooms: serverRooms, rejected: w.rejected, recovered: w.recovered });
      }
    }
    return claimed;
  }
}
