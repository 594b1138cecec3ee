// Reconnect delays: exponential backoff with full jitter (AWS architecture
// blog, "Exponential Backoff And Jitter"), as docs/protocol.md 2.9 asks.
// Full jitter spreads the clients of a failed server over the whole window
// instead of having them all come back at the same instants.

export interface BackoffConfig {
  baseMs: number;
  maxMs: number;
  restartJitterMs: number;
}

export const DEFAULT_BACKOFF: BackoffConfig = { baseMs: 1000, maxMs: 30_000, restartJitterMs: 250 };

/** The ceiling of attempt `attempt` (0 for the first retry): min(maxMs, baseMs·2^attempt). */
export function backoffCeiling(attempt: number, baseMs: number, maxMs: number): number {
  let ceiling = Math.max(0, baseMs);
  // Doubling step by step stops at the cap, so a large attempt never
  // overflows to Infinity.
  for (let i = 0; i < attempt && ceiling < maxMs; i++) ceiling *= 2;
  return Math.max(0, Math.min(ceiling, maxMs));
}

/** A delay uniformly random in [0, ceiling] (integer ms). */
export function jitter(ceiling: number, random: () => number): number {
  if (!(ceiling > 0)) return 0;
  return Math.min(ceiling, Math.floor(random() * (ceiling + 1)));
}

/** The delay before retry `attempt`: random in [0, min(maxMs, baseMs·2^attempt)]. */
export function fullJitter(attempt: number, baseMs: number, maxMs: number, random: () => number = Math.random): number {
  return jitter(backoffCeiling(attempt, baseMs, maxMs), random);
}

/**
 * Counts consecutive failures and hands out their delays; reset once things
 * work again.
 */
export class Backoff {
  private failures = 0;

  constructor(
    private readonly config: BackoffConfig,
    private readonly random: () => number,
  ) {}

  /** Consecutive failures so far. */
  get attempt(): number {
    return this.failures;
  }

  /** The delay before the next try, counting one more failure. */
  next(): number {
    const delay = fullJitter(this.failures, this.config.baseMs, this.config.maxMs, this.random);
    this.failures++;
    return delay;
  }

  /** The short random delay after a close that asks to come back now (1012/1013). */
  restart(): number {
    return jitter(this.config.restartJitterMs, this.random);
  }

  reset(): void {
    this.failures = 0;
  }
}
