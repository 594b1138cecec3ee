import type { Clock } from "./types.js";

// Browsers and Node run a timer longer than 2^31-1 ms at once: clamp, and
// let the callers re-check the time when it fires.
export const MAX_TIMER_MS = 2 ** 31 - 1;

export const systemClock: Clock = {
  now: () => Date.now(),
  setTimeout: (fn, ms) => globalThis.setTimeout(fn, Math.min(Math.max(0, ms), MAX_TIMER_MS)),
  clearTimeout: (handle) => globalThis.clearTimeout(handle as ReturnType<typeof globalThis.setTimeout>),
};

/**
 * A single re-armable timer on a Clock. Every timer the client owns is one
 * of these, so that close() can stop them all and a closed client keeps no
 * timer alive.
 */
export class Timer {
  private handle: unknown = undefined;
  private armed = false;

  constructor(private readonly clock: Clock) {}

  /** (Re)arms the timer; a pending run is cancelled. */
  start(ms: number, fn: () => void): void {
    this.stop();
    this.armed = true;
    this.handle = this.clock.setTimeout(() => {
      this.armed = false;
      this.handle = undefined;
      fn();
    }, Math.min(Math.max(0, ms), MAX_TIMER_MS));
  }

  stop(): void {
    if (this.armed) {
      this.clock.clearTimeout(this.handle);
      this.armed = false;
      this.handle = undefined;
    }
  }

  get pending(): boolean {
    return this.armed;
  }
}
