import { Timer } from "./clock.js";
import type { Clock } from "./types.js";

/**
 * Dead-link detection for browsers, which cannot see WebSocket ping frames:
 * after `intervalMs` without any message, send an application `ping`; if
 * nothing at all arrives within `timeoutMs` after it, the link is dead (a
 * NAT dropped it, the laptop slept, the Wi-Fi changed...) even though the
 * socket has not noticed, and `onDead` is called.
 *
 * Any message counts as a sign of life, so a busy connection never pings.
 * `touch()` only records the time (no timer work per message); the single
 * timer compares times when it fires, so a timer that fires late (a
 * throttled background tab) never causes a false alarm by itself.
 */
export class Heartbeat {
  private lastSeen: number;
  private pingSentAt: number | undefined;
  private readonly timer: Timer;

  constructor(
    private readonly clock: Clock,
    private readonly intervalMs: number,
    private readonly timeoutMs: number,
    private readonly sendPing: () => void,
    private readonly onDead: () => void,
  ) {
    this.timer = new Timer(clock);
    this.lastSeen = clock.now();
  }

  start(): void {
    if (this.intervalMs <= 0) return;
    this.lastSeen = this.clock.now();
    this.pingSentAt = undefined;
    this.timer.start(this.intervalMs, () => this.check());
  }

  /** A message arrived. */
  touch(): void {
    this.lastSeen = this.clock.now();
  }

  stop(): void {
    this.timer.stop();
    this.pingSentAt = undefined;
  }

  private check(): void {
    const now = this.clock.now();
    if (this.pingSentAt !== undefined) {
      if (this.lastSeen >= this.pingSentAt) {
        this.pingSentAt = undefined; // answered (or something else came)
      } else {
        const waited = now - this.pingSentAt;
        if (waited > 2 * this.timeoutMs) {
          // Our own timer ran far too late: this tab or process was
          // frozen, and the answer may be queued right behind us. Give it
          // one more full window rather than kill a healthy link.
          this.pingSentAt = now;
          this.timer.start(this.timeoutMs, () => this.check());
          return;
        }
        if (waited >= this.timeoutMs) {
          this.stop();
          this.onDead();
          return;
        }
        this.timer.start(this.timeoutMs - waited, () => this.check());
        return;
      }
    }
    const idle = now - this.lastSeen;
    if (idle < this.intervalMs) {
      this.timer.start(this.intervalMs - idle, () => this.check());
      return;
    }
    this.pingSentAt = now;
    this.sendPing();
    this.timer.start(this.timeoutMs, () => this.check());
  }
}
