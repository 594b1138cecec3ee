import { Timer } from "./clock.js";
import { RequestTimeoutError } from "./errors.js";
import type { Clock } from "./types.js";
import type { ServerMessage } from "./wire.js";

export interface PendingHandlers {
  /** The reply (any message carrying the request's id). */
  reply(msg: ServerMessage): void;
  /** No reply: RequestTimeoutError after the timeout, or the error given to failAll(). */
  fail(err: Error): void;
}

interface Pending extends PendingHandlers {
  timer: Timer;
}

/**
 * Requests sent and not yet answered, by request_id. Every entry leaves the
 * map on its reply, its timeout or failAll() (when the connection ends), so
 * nothing accumulates.
 */
export class PendingRequests {
  private readonly pending = new Map<string, Pending>();
  private counter = 0;

  constructor(
    private readonly clock: Clock,
    /** Makes this client's ids unique among the connections of a user. */
    private readonly prefix: string,
  ) {}

  /** A request_id never used before by this client. */
  nextId(): string {
    return `${this.prefix}-${(++this.counter).toString(36)}`;
  }

  add(id: string, timeoutMs: number, handlers: PendingHandlers): void {
    const timer = new Timer(this.clock);
    this.pending.set(id, { ...handlers, timer });
    if (timeoutMs > 0) {
      timer.start(timeoutMs, () => {
        if (this.pending.delete(id)) handlers.fail(new RequestTimeoutError(`no reply to request ${id} within ${timeoutMs} ms`));
      });
    }
  }

  /** Routes a reply to its request; false if no request has that id. */
  resolve(id: string, msg: ServerMessage): boolean {
    const p = this.pending.get(id);
    if (!p) return false;
    this.pending.delete(id);
    p.timer.stop();
    p.reply(msg);
    return true;
  }

  /** Fails every pending request with err and empties the map. */
  failAll(err: Error): void {
    const all = [...this.pending.values()];
    this.pending.clear();
    for (const p of all) {
      p.timer.stop();
      p.fail(err);
    }
  }
}
