import { Backoff, type BackoffConfig } from "./backoff.js";
import { Timer } from "./clock.js";
import { jwtExpiryMs } from "./jwt.js";
import type { Clock, TokenProvider } from "./types.js";

/** The token is expired and no provider could give a valid one: never worth a connection attempt. */
export class TokenExpiredError extends Error {
  constructor(message = "token expired") {
    super(message);
    this.name = "TokenExpiredError";
  }
}

export interface TokenSourceOptions {
  clock: Clock;
  random: () => number;
  refreshMarginMs: number;
  backoff: BackoffConfig;
  /** A background refresh failed (it is retried with backoff). */
  onError: (err: unknown) => void;
}

/**
 * Holds the token the next connection will use. The server checks a token
 * only when a connection opens, so refreshing never touches the open
 * connection: it readies the token for the next reconnect, early enough
 * that a reconnect never has to wait for the provider (or finds it down).
 */
export class TokenSource {
  private fixed: string | undefined;
  private provider: TokenProvider | undefined;
  private token: string | undefined;
  private expiresAt: number | undefined;
  private refreshAt: number | undefined;
  private inflight: Promise<string> | undefined;
  private active = false;
  private generation = 0;
  private readonly timer: Timer;
  private readonly retry: Backoff;

  constructor(
    token: string | TokenProvider,
    private readonly opts: TokenSourceOptions,
  ) {
    this.timer = new Timer(opts.clock);
    this.retry = new Backoff(opts.backoff, opts.random);
    this.set(token);
  }

  /** Whether tokens come from a provider (which can be asked for a fresh one). */
  get hasProvider(): boolean {
    return this.provider !== undefined;
  }

  /** Replaces the token or provider; the next connection uses it. */
  set(token: string | TokenProvider): void {
    this.generation++; // results of the old provider are dropped
    this.inflight = undefined;
    this.timer.stop();
    this.retry.reset();
    if (typeof token === "function") {
      this.fixed = undefined;
      this.provider = token;
      this.token = this.expiresAt = this.refreshAt = undefined;
    } else {
      this.provider = undefined;
      this.fixed = token;
      this.token = token;
      this.expiresAt = jwtExpiryMs(token);
      this.refreshAt = undefined;
    }
  }

  /** Starts keeping a provided token fresh in the background. */
  start(): void {
    this.active = true;
    this.schedule();
  }

  /** Stops background refreshes; no timer is left. */
  stop(): void {
    this.active = false;
    this.timer.stop();
  }

  /**
   * The token for a connection attempt: the cached one while it is not due
   * for refresh, else a fresh one from the provider (falling back to the
   * cached one while it is still valid if the provider fails). Throws
   * TokenExpiredError when only an expired token can be had, and the
   * provider's error when it fails with nothing valid cached.
   */
  async forConnect(): Promise<string> {
    if (!this.provider) {
      if (this.isExpired(this.expiresAt)) throw new TokenExpiredError();
      return this.fixed ?? "";
    }
    if (this.token !== undefined && !this.isDue()) return this.token;
    try {
      // An expired token from the provider gets one more chance (it may
      // have handed out a cached one), then counts as a refusal.
      let token = await this.fetch(false);
      if (!this.isExpired(jwtExpiryMs(token))) return token;
      token = await this.fetch(true);
      if (!this.isExpired(jwtExpiryMs(token))) return token;
      throw new TokenExpiredError("the token provider returned an expired token");
    } catch (err) {
      if (err instanceof TokenExpiredError) throw err;
      if (this.token !== undefined && !this.isExpired(this.expiresAt)) return this.token;
      throw err;
    }
  }

  /** A token the server refused (401): ask the provider for a new one. */
  async refresh(): Promise<string> {
    if (!this.provider) throw new Error("a fixed token cannot be refreshed");
    return this.fetch(true);
  }

  private isExpired(expiresAt: number | undefined): boolean {
    return expiresAt !== undefined && expiresAt <= this.opts.clock.now();
  }

  private isDue(): boolean {
    return this.isExpired(this.expiresAt) || (this.refreshAt !== undefined && this.opts.clock.now() >= this.refreshAt);
  }

  /** Calls the provider; concurrent callers share one call unless `force`. */
  private fetch(force: boolean): Promise<string> {
    if (this.inflight && !force) return this.inflight;
    const provider = this.provider!;
    const generation = this.generation;
    const previous = this.inflight?.catch(() => undefined) ?? Promise.resolve();
    const call: Promise<string> = previous
      .then(() => provider())
      .then((token) => {
        if (typeof token !== "string" || token === "") throw new Error("the token provider returned no token");
        if (generation === this.generation) this.store(token);
        return token;
      })
      .finally(() => {
        if (this.inflight === call) this.inflight = undefined;
      });
    this.inflight = call;
    return call;
  }

  private store(token: string): void {
    const now = this.opts.clock.now();
    this.token = token;
    this.expiresAt = jwtExpiryMs(token);
    if (this.expiresAt === undefined) {
      this.refreshAt = undefined; // opaque or exp-less: refreshed only on a 401
    } else {
      // refreshMarginMs before expiry, but never in the first half of the
      // token's life: a token shorter-lived than the margin would otherwise
      // have the provider called in a loop.
      const ttl = this.expiresAt - now;
      this.refreshAt = now + Math.max(ttl - this.opts.refreshMarginMs, ttl / 2);
    }
    this.retry.reset();
    this.schedule();
  }

  private schedule(): void {
    this.timer.stop();
    if (!this.active || !this.provider || this.refreshAt === undefined) return;
    // An expired token is the next connect's business (it asks the
    // provider); refreshing it here would spin.
    if (this.isExpired(this.expiresAt)) return;
    this.timer.start(this.refreshAt - this.opts.clock.now(), () => this.backgroundRefresh());
  }

  private backgroundRefresh(): void {
    if (!this.active) return;
    // A timer clamped to 2^31-1 ms fires early: wait on.
    if (!this.isDue()) return this.schedule();
    const generation = this.generation;
    this.fetch(false).then(
      () => undefined, // store() has scheduled the next refresh
      (err: unknown) => {
        if (!this.active || generation !== this.generation) return;
        this.opts.onError(err);
        this.timer.start(this.retry.next(), () => this.backgroundRefresh());
      },
    );
  }
}
